// The Nova simulator against the real RabbitMQ and Ceph: what it leaves in
// the pools and what it puts on the bus must be what Nova does, or the
// capture engine's end-to-end tests prove nothing. Every notification is read
// back through the operator's own decoder.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { InstanceEvent, PortEvent } from '../../operator/domain/events.ts';
import type { ImageSpec } from '../../operator/domain/block-store.ts';
import { RbdCli } from '../../operator/ceph/rbd-cli.ts';
import { RbdPermissionDeniedError } from '../../operator/ceph/errors.ts';
import { SimBus } from '../sim/bus.ts';
import { imageExists, purgeImage, sha256 } from '../sim/disks.ts';
import { NeutronSim } from '../sim/neutron.ts';
import { NovaApi } from '../sim/nova-api.ts';
import { NovaSim, waitForNotification } from '../sim/nova.ts';
import { cloudRbd } from '../sim/rbd-tool.ts';
import { NotificationTap, type TappedMessage } from '../sim/tap.ts';
import type { SimStep } from '../sim/timeline.ts';
import { requireEnv, uniqueSuffix } from '../support/env.ts';

const amqpUrl = requireEnv('QTEST_AMQP_URL');
const cephConf = requireEnv('QTEST_CEPH_CONF');
const cloudId = requireEnv('QTEST_CEPH_CLOUD_ID');
const operatorId = requireEnv('QTEST_CEPH_OPERATOR_ID');
const quarantinePool = requireEnv('QTEST_CEPH_QUARANTINE_POOL');
const [vmsPool = 'vms', imagesPool = 'images', volumesPool = 'volumes'] = requireEnv('QTEST_CEPH_POOLS').split(/\s+/).filter((p) => p !== '');

const MiB = 1024 * 1024;
const GAP_MS = 300;
const RETRIES = 3;
const RETRY_MS = 100;

const instanceEvent = (m: TappedMessage): InstanceEvent => {
  const e = m.decoded?.events[0];
  assert.equal(e?.type, 'instance', `${m.decoded?.eventType} carries an instance event`);
  return e as InstanceEvent;
};

describe('Nova simulator against the real RabbitMQ and Ceph', { concurrency: false }, () => {
  const s = uniqueSuffix();
  const novaExchange = `nova-${s}`;
  const neutronExchange = `neutron-${s}`;
  const imageId = `img-${s}`;
  const { rbd, rbdTool } = cloudRbd({ cephConf, id: cloudId });
  const operator = new RbdCli({ cephConf, id: operatorId });
  const leftovers: ImageSpec[] = [];
  let bus: SimBus;
  let neutron: NeutronSim;
  let nova: NovaSim;
  let tap: NotificationTap;
  let imageContent: Buffer;

  const messagesFor = (uuid: string, prefix: string) => tap.messages.filter((m) => m.decoded?.eventType.startsWith(prefix) && (m.decoded.events[0] as InstanceEvent | undefined)?.instance?.id === uuid);

  before(async () => {
    bus = await SimBus.connect(amqpUrl);
    neutron = await NeutronSim.start({ bus, exchange: neutronExchange });
    nova = await NovaSim.start({
      bus, exchange: novaExchange, format: 'both', rbd, rbdTool, neutron, pools: { vms: vmsPool, images: imagesPool, volumes: volumesPool },
      deleteGapMs: GAP_MS, destroyRetries: RETRIES, destroyRetryIntervalMs: RETRY_MS, cinderRetries: 2, cinderRetryIntervalMs: 50,
      computeHosts: ['compute-1', 'compute-2'],
    });
    tap = await NotificationTap.open(amqpUrl, [{ exchange: novaExchange }, { exchange: neutronExchange }]);
    imageContent = randomBytes(4 * MiB);
    await nova.ensureImage(imageId, imageContent);
  });

  after(async () => {
    await nova?.stop();
    await neutron?.stop();
    await tap?.close();
    for (const spec of leftovers) await purgeImage(operator, spec, (snap) => rbdTool.children(snap));
    for (const server of nova?.servers() ?? []) {
      for (const disk of [...server.disks, ...server.volumes.map((v) => v.image)]) await purgeImage(operator, disk);
    }
    await nova?.deleteImage(imageId).catch(() => undefined);
    // Also when a concurrent test had the pool moving removals to the trash.
    await purgeImage(operator, { pool: imagesPool, image: imageId }, undefined, (snap) => rbdTool.unprotectSnapshot(snap));
    await bus?.deleteExchanges([novaExchange, neutronExchange]);
    await bus?.close();
  });

  test('boot makes the root disk a clone of the Glance snapshot, plus _disk.local and _disk.config, and announces it with the ports', async () => {
    const server = await nova.boot({ image: imageId, ephemeralSizeBytes: MiB, configDrive: true, project: 'proj-boot', user: 'alice' });
    const uuid = server.uuid;
    const names = await rbd.listImages({ pool: vmsPool });
    assert.deepEqual(names.filter((n) => n.startsWith(uuid)).sort(), [`${uuid}_disk`, `${uuid}_disk.config`, `${uuid}_disk.local`]);
    const root = await rbd.info({ pool: vmsPool, image: `${uuid}_disk` });
    assert.equal(root.parent?.pool, imagesPool);
    assert.equal(root.parent?.image, imageId);
    assert.equal(root.parent?.snapshot, 'snap');
    const glanceSnap = (await rbd.listSnapshots({ pool: imagesPool, image: imageId })).find((x) => x.name === 'snap');
    assert.equal(glanceSnap?.protected, true, 'Glance protects the snapshot clones are made from');
    assert.equal(await nova.diskSha256(nova.rootDisk(uuid)), sha256(imageContent), 'the clone reads as the image');

    const port = server.ports[0];
    assert.ok(port !== undefined && port.createdByNova);
    const versioned = await tap.waitFor((m) => m.decoded?.eventType === 'instance.create.end', 10_000, 'instance.create.end');
    const legacy = await tap.waitFor((m) => m.decoded?.eventType === 'compute.instance.create.end', 10_000, 'compute.instance.create.end');
    for (const m of [versioned, legacy]) {
      const e = instanceEvent(m);
      assert.equal(e.instance.id, uuid);
      assert.equal(e.instance.state, 'active');
      assert.equal(e.instance.project, 'proj-boot');
      assert.equal(e.instance.image, imageId);
      assert.equal(e.instance.host, 'compute-1');
      assert.deepEqual(e.addresses?.map((a) => a.address), [port.address]);
      assert.equal(e.addressesAuthoritative, true);
    }
    assert.equal(instanceEvent(versioned).addresses?.[0]?.portId, port.portId);
    assert.equal(versioned.routingKey, 'versioned_notifications.info');
    assert.equal(legacy.routingKey, 'notifications.info');
    assert.equal(versioned.decoded?.publisher, 'nova-compute:compute-1');
    assert.equal(legacy.decoded?.publisher, 'compute.compute-1');
    const start = tap.ofType('instance.create.start').find((m) => instanceEvent(m).instance.id === uuid);
    assert.ok(start !== undefined, 'create.start came first');
    assert.ok(tap.messages.indexOf(start) < tap.messages.indexOf(versioned));

    const portCreated = await tap.waitFor((m) => m.decoded?.eventType === 'port.create.end' && (m.decoded.events[0] as PortEvent).port.deviceId === uuid, 10_000, 'port.create.end');
    const p = (portCreated.decoded?.events[0] as PortEvent).port;
    assert.equal(p.id, port.portId);
    assert.equal(p.project, 'proj-boot', 'the port belongs to the tenant');
    assert.equal(portCreated.decoded?.context.userId, neutron.novaServiceActor.userId ?? undefined, 'Nova makes the port as its service user');
  });

  test('delete removes every <uuid>* image between shutdown.start and shutdown.end, after the gap, in Nova\'s order', async () => {
    const server = await nova.boot({ image: imageId, ephemeralSizeBytes: MiB });
    const uuid = server.uuid;
    const content = randomBytes(4 * MiB);
    assert.equal(await nova.writeDisk(nova.rootDisk(uuid), content), sha256(content), 'the written content reads back');
    assert.equal((await rbd.info(nova.rootDisk(uuid))).parent?.image, imageId, 'writing keeps the disk a clone');
    // Named like a copy someone might keep next to the disk: Nova's prefix match takes it too.
    const bystander: ImageSpec = { pool: vmsPool, image: `${uuid}.copy` };
    await rbd.createImage(bystander, MiB);
    leftovers.push(bystander);

    const mark = nova.timeline.last;
    const op = await nova.delete(uuid, { user: 'bob', project: 'proj-x' });
    assert.equal(op.kind, 'delete');
    await op.done;

    const remaining = (await rbd.listImages({ pool: vmsPool })).filter((n) => n.startsWith(uuid));
    assert.deepEqual(remaining, []);

    const steps = nova.timeline.since(mark);
    const seqOf = (pred: (x: SimStep) => boolean) => steps.find(pred)?.seq ?? -1;
    const note = (type: string) => (x: SimStep) => x.kind === 'notification' && x.instance === uuid && x.eventType === type;
    const removed = steps.filter((x) => x.kind === 'disk-removed' && x.instance === uuid);
    assert.deepEqual(removed.map((x) => x.image).sort(), [`${vmsPool}/${uuid}.copy`, `${vmsPool}/${uuid}_disk`, `${vmsPool}/${uuid}_disk.local`]);
    const deleteStart = steps.find(note('instance.delete.start'));
    assert.ok(deleteStart !== undefined);
    assert.ok((removed[0]?.t ?? 0) - deleteStart.t >= GAP_MS - 5, 'the disks go only after the gap');
    for (const x of removed) {
      assert.ok(x.seq > seqOf(note('instance.shutdown.start')) && x.seq < seqOf(note('instance.shutdown.end')), `${x.image} removed between shutdown.start and .end`);
    }
    assert.ok(seqOf((x) => x.kind === 'notification' && x.eventType === 'port.delete.end') < seqOf(note('instance.shutdown.end')), 'ports go before shutdown.end');

    const versioned = messagesFor(uuid, 'instance.').map((m) => m.decoded?.eventType);
    assert.deepEqual(versioned.slice(-4), ['instance.delete.start', 'instance.shutdown.start', 'instance.shutdown.end', 'instance.delete.end']);
    const legacy = messagesFor(uuid, 'compute.instance.').map((m) => m.decoded?.eventType);
    assert.deepEqual(legacy.slice(-4), ['compute.instance.delete.start', 'compute.instance.shutdown.start', 'compute.instance.shutdown.end', 'compute.instance.delete.end']);

    const [start, , shutdownEnd, end] = messagesFor(uuid, 'instance.').slice(-4).map(instanceEvent);
    assert.equal(start?.instance.state, 'active');
    assert.equal(start?.instance.taskState, 'deleting');
    assert.equal(start?.addresses?.length, 1, 'delete.start still lists the IPs');
    assert.equal(start?.actor?.user, 'bob');
    assert.deepEqual(shutdownEnd?.addresses, []);
    assert.equal(end?.instance.state, 'deleted');
    assert.ok(end?.instance.deletedAt instanceof Date);
    assert.ok(end?.instance.terminatedAt instanceof Date);
    assert.deepEqual(end?.addresses, []);
    assert.equal(end?.addressesAuthoritative, false);
    assert.equal(end?.localDelete, false);
  });

  test('an RBD snapshot on the disk makes Nova give up after its retries, silently, leaving the image', async () => {
    const server = await nova.boot({ image: imageId, ephemeralSizeBytes: MiB });
    const uuid = server.uuid;
    const root = nova.rootDisk(uuid);
    const digest = await nova.writeDisk(root, randomBytes(2 * MiB));
    await operator.createSnapshot({ ...root, snapshot: 'armed' });
    leftovers.push(root);

    const mark = nova.timeline.last;
    await (await nova.delete(uuid)).done;
    const steps = nova.timeline.since(mark).filter((x) => x.instance === uuid);
    const failed = steps.filter((x) => x.kind === 'disk-remove-failed' && x.image === `${vmsPool}/${uuid}_disk`);
    assert.equal(failed.length, RETRIES);
    assert.ok(failed.every((x) => x.detail['reason'] === 'has-snapshots'));
    assert.ok(steps.some((x) => x.kind === 'disk-gave-up' && x.image === `${vmsPool}/${uuid}_disk`));
    assert.ok(steps.some((x) => x.kind === 'disk-removed' && x.image === `${vmsPool}/${uuid}_disk.local`), 'the other disks still go');
    const retrySpan = (failed.at(-1)?.t ?? 0) - (failed[0]?.t ?? 0);
    assert.ok(retrySpan >= (RETRIES - 1) * RETRY_MS - 5, `retried every ${RETRY_MS} ms (span ${retrySpan})`);

    assert.ok(await imageExists(rbd, root), 'the disk is still there');
    assert.equal(await nova.diskSha256(root), digest, 'with its data');
    const end = instanceEvent(await tap.waitFor((m) => m.decoded?.eventType === 'instance.delete.end' && instanceEvent(m).instance.id === uuid, 10_000, 'delete.end'));
    assert.equal(end.instance.state, 'deleted', 'and the instance is reported deleted all the same');
    assert.equal(tap.messages.filter((m) => m.decoded?.priority === 'ERROR').length, 0, 'no error notification');
  });

  test('soft delete keeps the disks; forceDelete through the REST API (with a token) runs the normal delete', async () => {
    const soft = await NovaSim.start({
      bus, exchange: novaExchange, format: 'versioned', rbd, rbdTool, neutron, pools: { vms: vmsPool, images: imagesPool, volumes: volumesPool },
      deleteGapMs: GAP_MS, destroyRetries: RETRIES, destroyRetryIntervalMs: RETRY_MS, reclaimInstanceIntervalMs: 3600_000,
    });
    const api = await NovaApi.start({ nova: soft, credentials: [{ id: 'cred-1', secret: 's3cret', userId: 'op-user', projectId: 'op-project' }] });
    try {
      await soft.ensureImage(imageId, imageContent);
      const server = await soft.boot({ image: imageId });
      const uuid = server.uuid;
      leftovers.push(soft.rootDisk(uuid));
      const serverUrl = `${api.computeUrl}/servers/${uuid}`;

      assert.equal((await fetch(serverUrl)).status, 401, 'no token, no answer');
      const badAuth = await fetch(`${api.authUrl}/auth/tokens`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ auth: { identity: { methods: ['application_credential'], application_credential: { id: 'cred-1', secret: 'wrong' } } } }) });
      assert.equal(badAuth.status, 401);
      const auth = await fetch(`${api.authUrl}/auth/tokens`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ auth: { identity: { methods: ['application_credential'], application_credential: { id: 'cred-1', secret: 's3cret' } } } }) });
      assert.equal(auth.status, 201);
      const token = auth.headers.get('x-subject-token');
      assert.ok(token !== null && token !== '');
      const catalog = ((await auth.json()) as { token: { catalog: Array<{ type: string; endpoints: Array<{ interface: string; url: string }> }> } }).token.catalog;
      assert.equal(catalog.find((c) => c.type === 'compute')?.endpoints.find((e) => e.interface === 'public')?.url, api.computeUrl);
      const headers = { 'X-Auth-Token': token, 'Content-Type': 'application/json' };
      assert.equal((await fetch(serverUrl, { headers: { 'X-Auth-Token': 'forged' } })).status, 401);

      assert.equal((await fetch(serverUrl, { method: 'DELETE', headers })).status, 204);
      await waitForNotification(soft.timeline, uuid, 'instance.soft_delete.end');
      const shown = (await (await fetch(serverUrl, { headers })).json()) as { server: Record<string, unknown> };
      assert.equal(shown.server['status'], 'SOFT_DELETED');
      assert.equal(shown.server['OS-EXT-STS:vm_state'], 'soft-delete');
      assert.ok(await imageExists(rbd, soft.rootDisk(uuid)), 'soft delete leaves the disk');
      const softEnd = instanceEvent(await tap.waitFor((m) => m.decoded?.eventType === 'instance.soft_delete.end' && instanceEvent(m).instance.id === uuid, 10_000, 'soft_delete.end'));
      assert.equal(softEnd.instance.state, 'soft-delete');
      assert.ok(softEnd.instance.deletedAt instanceof Date);
      assert.equal(softEnd.addresses?.length, 1, 'soft-deleted instances keep their IPs');

      const forced = await fetch(`${serverUrl}/action`, { method: 'POST', headers, body: JSON.stringify({ forceDelete: null }) });
      assert.equal(forced.status, 202);
      await waitForNotification(soft.timeline, uuid, 'instance.delete.end', { timeoutMs: 10_000 });
      assert.equal(await imageExists(rbd, soft.rootDisk(uuid)), false, 'forceDelete removes the disk');
      assert.equal((await fetch(serverUrl, { headers })).status, 404);
      const start = instanceEvent(await tap.waitFor((m) => m.decoded?.eventType === 'instance.delete.start' && instanceEvent(m).instance.id === uuid, 10_000, 'delete.start'));
      assert.equal(start.actor?.user, 'op-user', 'the credential\'s user is the initiator');
      assert.equal(start.instance.state, 'soft-delete');

      const other = await soft.boot({ image: imageId });
      leftovers.push(soft.rootDisk(other.uuid));
      await (await soft.delete(other.uuid)).done;
      const restore = await fetch(`${api.computeUrl}/servers/${other.uuid}/action`, { method: 'POST', headers, body: JSON.stringify({ restore: null }) });
      assert.equal(restore.status, 202);
      await waitForNotification(soft.timeline, other.uuid, 'instance.restore.end');
      assert.equal(((await (await fetch(`${api.computeUrl}/servers/${other.uuid}`, { headers })).json()) as { server: { status: string } }).server.status, 'ACTIVE');
      const again = await fetch(`${api.computeUrl}/servers/${other.uuid}/action`, { method: 'POST', headers, body: JSON.stringify({ restore: null }) });
      assert.equal(again.status, 409, 'restore only from soft-delete');
      assert.equal((await fetch(`${api.computeUrl}/servers/${other.uuid}/action`, { method: 'POST', headers, body: JSON.stringify({ reboot: { type: 'HARD' } }) })).status, 400);
      await (await soft.forceDelete(other.uuid)).done;
    } finally {
      await api.stop();
      await soft.stop();
    }
  });

  test('the periodic reclaim hard-deletes a soft-deleted server with nobody as initiator', async () => {
    const reclaim = await NovaSim.start({
      bus, exchange: novaExchange, format: 'versioned', rbd, rbdTool, pools: { vms: vmsPool, images: imagesPool, volumes: volumesPool },
      deleteGapMs: 50, destroyRetries: RETRIES, destroyRetryIntervalMs: RETRY_MS, reclaimInstanceIntervalMs: 300, reclaimPollMs: 100,
    });
    try {
      await reclaim.ensureImage(imageId, imageContent);
      const server = await reclaim.boot({ image: imageId });
      leftovers.push(reclaim.rootDisk(server.uuid));
      const op = await reclaim.delete(server.uuid);
      assert.equal(op.kind, 'soft-delete');
      await waitForNotification(reclaim.timeline, server.uuid, 'instance.delete.end', { timeoutMs: 10_000 });
      assert.equal(await imageExists(rbd, reclaim.rootDisk(server.uuid)), false);
      const start = instanceEvent(await tap.waitFor((m) => m.decoded?.eventType === 'instance.delete.start' && instanceEvent(m).instance.id === server.uuid, 10_000, 'delete.start'));
      assert.equal(start.actor, undefined, 'a periodic task has no user');
    } finally {
      await reclaim.stop();
    }
  });

  test('a delete while the compute service is down is announced by nova-api at once; the disks go later, silently', async () => {
    const server = await nova.boot({ image: imageId, host: 'compute-2', configDrive: true });
    const uuid = server.uuid;
    nova.computeDown('compute-2');
    const op = await nova.delete(uuid);
    assert.equal(op.kind, 'local-delete');
    await op.done;
    const start = await tap.waitFor((m) => m.decoded?.eventType === 'instance.delete.start' && instanceEvent(m).instance.id === uuid, 10_000, 'delete.start');
    const end = await tap.waitFor((m) => m.decoded?.eventType === 'instance.delete.end' && instanceEvent(m).instance.id === uuid, 10_000, 'delete.end');
    assert.equal(start.decoded?.publisher, `nova-api:${nova.apiHost}`);
    assert.equal(instanceEvent(start).instance.host, 'compute-2');
    assert.equal(instanceEvent(end).localDelete, true);
    await tap.waitFor((m) => m.decoded?.eventType === 'compute.instance.delete.end' && instanceEvent(m).instance.id === uuid, 10_000, 'legacy delete.end');
    assert.equal(messagesFor(uuid, 'instance.shutdown').length, 0, 'no shutdown.* without the compute service');
    assert.equal((await rbd.listImages({ pool: vmsPool })).filter((n) => n.startsWith(uuid)).length, 2, 'both disks are still there');
    assert.equal(nova.server(uuid)?.localDeleted, true);

    const before = tap.messages.length;
    const mark = nova.timeline.last;
    await nova.computeComesBack('compute-2');
    assert.equal((await rbd.listImages({ pool: vmsPool })).filter((n) => n.startsWith(uuid)).length, 0, 'reaped when the service returns');
    assert.equal(nova.timeline.since(mark).filter((x) => x.kind === 'disk-removed').length, 2);
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal(tap.messages.slice(before).filter((m) => m.decoded?.eventType.includes('instance') === true).length, 0, 'without a notification');
  });

  test('boot from volume: the root disk is volumes/volume-<id>; delete_on_termination with a snapshot moves it to the trash', async () => {
    const volumeId = `${randomBytes(4).toString('hex')}-${s}`;
    const server = await nova.boot({ image: imageId, bootVolume: { id: volumeId, deleteOnTermination: true } });
    const volume: ImageSpec = { pool: volumesPool, image: `volume-${volumeId}` };
    assert.deepEqual(nova.rootDisk(server.uuid), volume);
    assert.equal((await rbd.info(volume)).parent?.image, imageId);
    assert.equal((await rbd.listImages({ pool: vmsPool })).filter((n) => n.startsWith(server.uuid)).length, 0, 'no _disk for a volume-backed server');
    const create = instanceEvent(await tap.waitFor((m) => m.decoded?.eventType === 'instance.create.end' && instanceEvent(m).instance.id === server.uuid, 10_000, 'create.end'));
    assert.equal(create.instance.image, undefined, 'boot-from-volume has no image in the payload');
    await operator.createSnapshot({ ...volume, snapshot: 'armed' });
    leftovers.push(volume);

    const mark = nova.timeline.last;
    await (await nova.delete(server.uuid)).done;
    const steps = nova.timeline.since(mark).filter((x) => x.source === 'cinder');
    assert.deepEqual(steps.filter((x) => x.kind === 'disk-remove-failed').map((x) => x.detail['reason']), ['has-snapshots', 'has-snapshots']);
    assert.ok(steps.some((x) => x.kind === 'disk-trashed'));
    assert.equal(await imageExists(rbd, volume), false);
    const entry = (await rbd.listTrash({ pool: volumesPool })).find((t) => t.name === volume.image);
    assert.ok(entry !== undefined, 'the volume is in the trash');
    assert.deepEqual((await rbd.listSnapshots({ pool: volumesPool, imageId: entry.id })).map((x) => x.name), ['armed'], 'with its snapshot');
  });

  test('notify_on_state_change=vm_and_task_state adds instance.update for every state and task change', async () => {
    const chatty = await NovaSim.start({
      bus, exchange: novaExchange, format: 'both', rbd, rbdTool, pools: { vms: vmsPool, images: imagesPool, volumes: volumesPool },
      deleteGapMs: 50, notifyOnStateChange: 'vm_and_task_state', apiHost: 'api-7',
    });
    try {
      await chatty.ensureImage(imageId, imageContent);
      const server = await chatty.boot({ image: imageId });
      leftovers.push(chatty.rootDisk(server.uuid));
      await (await chatty.delete(server.uuid)).done;
      await tap.waitFor((m) => m.decoded?.eventType === 'instance.delete.end' && instanceEvent(m).instance.id === server.uuid, 10_000, 'delete.end');
      const updates = messagesFor(server.uuid, 'instance.update').map(instanceEvent);
      assert.deepEqual(updates.map((e) => [e.instance.state, e.instance.taskState ?? null]), [
        ['building', null], ['building', 'networking'], ['building', 'block_device_mapping'], ['building', 'spawning'], ['active', null],
        ['active', 'deleting'], ['deleted', null],
      ]);
      assert.ok(updates.every((e) => e.action === 'update'));
      const legacy = messagesFor(server.uuid, 'compute.instance.update');
      assert.equal(legacy.length, updates.length);
      const deleting = legacy[5];
      assert.equal(deleting?.decoded?.publisher, 'compute.api-7', 'the API saved the deleting task state');
    } finally {
      await chatty.stop();
    }
  });

  test('the cloud\'s cephx user cannot touch the quarantine pool', async () => {
    const kept: ImageSpec = { pool: quarantinePool, image: `kept-${s}` };
    await operator.createImage(kept, MiB);
    try {
      await assert.rejects(rbd.listImages({ pool: quarantinePool }), RbdPermissionDeniedError);
      await assert.rejects(rbd.createImage({ pool: quarantinePool, image: `intruder-${s}` }, MiB), RbdPermissionDeniedError);
      await assert.rejects(rbd.removeImage(kept), RbdPermissionDeniedError);
      await assert.rejects(rbd.moveToTrash(kept), RbdPermissionDeniedError);
      assert.ok(await imageExists(operator, kept));
    } finally {
      await operator.removeImage(kept);
    }
  });
});
