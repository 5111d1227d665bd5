// The Neutron simulator on the real RabbitMQ: floating IP association in
// every form the ledger must follow, and the one Neutron never announces (the
// association cleared by deleting its port), read back through the
// operator's decoder.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { FloatingIpEvent, PortEvent } from '../../operator/domain/events.ts';
import { RbdCli } from '../../operator/ceph/rbd-cli.ts';
import { SimBus } from '../sim/bus.ts';
import { purgeImage } from '../sim/disks.ts';
import { NeutronSim } from '../sim/neutron.ts';
import { NovaSim } from '../sim/nova.ts';
import { cloudRbd } from '../sim/rbd-tool.ts';
import { NotificationTap, type TappedMessage } from '../sim/tap.ts';
import { requireEnv, uniqueSuffix } from '../support/env.ts';

const amqpUrl = requireEnv('QTEST_AMQP_URL');
const cephConf = requireEnv('QTEST_CEPH_CONF');
const cloudId = requireEnv('QTEST_CEPH_CLOUD_ID');
const operatorId = requireEnv('QTEST_CEPH_OPERATOR_ID');
const [vmsPool = 'vms', imagesPool = 'images', volumesPool = 'volumes'] = requireEnv('QTEST_CEPH_POOLS').split(/\s+/).filter((p) => p !== '');

const fipOf = (m: TappedMessage) => (m.decoded?.events[0] as FloatingIpEvent).floatingIp;
/** The resource id in the oslo payload, for messages the decoder does not turn into events (create.start). */
function payloadId(m: TappedMessage, resource: string): unknown {
  const inner = JSON.parse((JSON.parse(m.body.toString('utf8')) as { 'oslo.message': string })['oslo.message']) as { payload: Record<string, { id?: unknown } | unknown> };
  const p = inner.payload;
  return (p[resource] as { id?: unknown } | undefined)?.id ?? p['id'] ?? p[`${resource}_id`];
}
const portOf = (m: TappedMessage) => (m.decoded?.events[0] as PortEvent).port;

describe('Neutron simulator against the real RabbitMQ', { concurrency: false }, () => {
  const s = uniqueSuffix();
  const exchange = `neutron-${s}`;
  let bus: SimBus;
  let neutron: NeutronSim;
  let tap: NotificationTap;

  before(async () => {
    bus = await SimBus.connect(amqpUrl);
    neutron = await NeutronSim.start({ bus, exchange });
    tap = await NotificationTap.open(amqpUrl, [{ exchange }]);
  });

  after(async () => {
    await neutron?.stop();
    await tap?.close();
    await bus?.deleteExchanges([exchange]);
    await bus?.close();
  });

  const fipMessages = (id: string) => tap.messages.filter((m) => m.decoded?.eventType.startsWith('floatingip.') && payloadId(m, 'floatingip') === id);

  test('a floating IP created associated, moved A→B in one update, described, disassociated and deleted', async () => {
    const a = await neutron.createPort({ project: 'proj-f', deviceId: 'vm-a', host: 'compute-1' });
    const b = await neutron.createPort({ project: 'proj-f', deviceId: 'vm-b', host: 'compute-1' });
    const fip = await neutron.createFloatingIp({ project: 'proj-f', portId: a.id });
    await neutron.associateFloatingIp(fip.id, b.id);
    await neutron.describeFloatingIp(fip.id, 'web front');
    await neutron.disassociateFloatingIp(fip.id);
    await neutron.deleteFloatingIp(fip.id);
    await tap.waitFor((m) => m.decoded?.eventType === 'floatingip.delete.end' && fipOf(m).id === fip.id, 10_000, 'floatingip.delete.end');

    const seen = fipMessages(fip.id);
    // create.start carries only the request (no id yet): it is the message just before create.end.
    const createEnd = seen[0];
    assert.equal(createEnd === undefined ? undefined : tap.messages[tap.messages.indexOf(createEnd) - 1]?.decoded?.eventType, 'floatingip.create.start');
    assert.deepEqual(seen.map((m) => m.decoded?.eventType), [
      'floatingip.create.end',
      'floatingip.update.start', 'floatingip.update.end',
      'floatingip.update.start', 'floatingip.update.end',
      'floatingip.update.start', 'floatingip.update.end',
      'floatingip.delete.start', 'floatingip.delete.end',
    ]);
    const ends = seen.filter((m) => m.decoded?.eventType.endsWith('.end'));
    const [created, moved, described, disassociated, deleted] = ends.map(fipOf);
    assert.equal(created?.portId, a.id);
    assert.equal(created?.fixedAddress, a.fixedIps[0]?.address);
    assert.equal(created?.instanceId, 'vm-a');
    assert.equal(created?.address, fip.address);
    assert.equal(created?.project, 'proj-f');
    assert.equal(moved?.portId, b.id, 'a move names only the new port');
    assert.equal(moved?.instanceId, 'vm-b');
    assert.equal(described?.portId, b.id, 'an unrelated update repeats the association');
    assert.equal(disassociated?.portId, null);
    assert.equal(disassociated?.fixedAddress, null);
    assert.equal(deleted?.id, fip.id);
    for (const m of seen) {
      assert.equal(m.decoded?.publisher, neutron.publisher);
      assert.equal(m.routingKey, 'notifications.info');
      assert.equal(m.decoded?.context.userId, 'user-proj-f');
    }
    const updateStart = seen.find((m) => m.decoded?.eventType === 'floatingip.update.start');
    assert.equal(updateStart?.decoded?.events.length === 1 ? fipOf(updateStart).portId : undefined, b.id, 'update.start carries the request');
    await neutron.deletePort(a.id);
    await neutron.deletePort(b.id);
  });

  test('deleting the associated port clears the floating IP silently: only port.delete.end goes out', async () => {
    const port = await neutron.createPort({ project: 'proj-g', deviceId: 'vm-g', host: 'compute-1' });
    const fip = await neutron.createFloatingIp({ project: 'proj-g' });
    await neutron.associateFloatingIp(fip.id, port.id);
    await tap.waitFor((m) => m.decoded?.eventType === 'floatingip.update.end' && fipOf(m).id === fip.id, 10_000, 'association');
    const before = tap.messages.length;
    const mark = neutron.timeline.last;

    await neutron.deletePort(port.id);
    const deleted = await tap.waitFor((m) => m.decoded?.eventType === 'port.delete.end' && portOf(m).id === port.id, 10_000, 'port.delete.end');
    await new Promise((resolve) => setTimeout(resolve, 200));
    const after = tap.messages.slice(before).map((m) => m.decoded?.eventType);
    assert.deepEqual(after, ['port.delete.start', 'port.delete.end'], 'no floatingip notification');
    const p = portOf(deleted);
    assert.equal(p.deviceId, 'vm-g');
    assert.deepEqual(p.fixedIps.map((f) => f.address), [port.fixedIps[0]?.address]);
    assert.equal((deleted.decoded?.events[0] as PortEvent).idOnly, false);
    assert.equal(neutron.floatingIp(fip.id)?.portId, null, 'yet Neutron has disassociated it');
    const silent = neutron.timeline.since(mark).find((x) => x.kind === 'fip-silently-disassociated');
    assert.equal(silent?.detail['floatingIpId'], fip.id);
    assert.equal(silent?.detail['portId'], port.id);
    await neutron.deleteFloatingIp(fip.id);
  });

  test('a user\'s own port is only unbound at instance delete and keeps its floating IP; Nova\'s port is deleted', async () => {
    const novaExchange = `nova-${s}`;
    const { rbd, rbdTool } = cloudRbd({ cephConf, id: cloudId });
    const operator = new RbdCli({ cephConf, id: operatorId });
    const nova = await NovaSim.start({
      bus, exchange: novaExchange, format: 'versioned', rbd, rbdTool, neutron, pools: { vms: vmsPool, images: imagesPool, volumes: volumesPool },
      deleteGapMs: 50,
    });
    const imageId = `img-${s}`;
    try {
      await nova.ensureImage(imageId, 4 * 1024 * 1024);
      const own = await neutron.createPort({ project: 'proj-h', network: 'private' });
      const server = await nova.boot({ image: imageId, project: 'proj-h', ports: [own.id], networks: ['private'] });
      const novaPort = server.ports.find((p) => p.createdByNova);
      assert.ok(novaPort !== undefined);
      const kept = await neutron.createFloatingIp({ project: 'proj-h', portId: own.id });
      const lost = await neutron.createFloatingIp({ project: 'proj-h', portId: novaPort.portId });
      await tap.waitFor((m) => m.decoded?.eventType === 'floatingip.create.end' && fipOf(m).id === lost.id, 10_000, 'floatingip.create.end');
      const before = tap.messages.length;

      await (await nova.delete(server.uuid)).done;
      await tap.waitFor((m) => m.decoded?.eventType === 'port.delete.end' && portOf(m).id === novaPort.portId, 10_000, 'port.delete.end');
      const unbound = await tap.waitFor((m) => tap.messages.indexOf(m) >= before && m.decoded?.eventType === 'port.update.end' && portOf(m).id === own.id, 10_000, 'port.update.end');
      assert.equal(portOf(unbound).deviceId, undefined, 'device cleared');
      assert.equal(portOf(unbound).host, undefined, 'binding cleared');
      assert.equal(tap.messages.slice(before).filter((m) => m.decoded?.eventType.startsWith('floatingip.')).length, 0);
      assert.equal(neutron.floatingIp(kept.id)?.portId, own.id, 'the user\'s port keeps its floating IP');
      assert.equal(neutron.floatingIp(lost.id)?.portId, null);
      await neutron.deleteFloatingIp(kept.id);
      await neutron.deleteFloatingIp(lost.id);
      await neutron.deletePort(own.id);
    } finally {
      await nova.stop();
      for (const server of nova.servers()) for (const disk of server.disks) await purgeImage(operator, disk);
      await nova.deleteImage(imageId).catch(() => undefined);
      await purgeImage(operator, { pool: imagesPool, image: imageId }, undefined, (snap) => rbdTool.unprotectSnapshot(snap));
      await bus.deleteExchanges([novaExchange]);
    }
  });
});
