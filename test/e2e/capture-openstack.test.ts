// End to end on OpenStack, one test per capture mode: the simulated Nova and
// Neutron on the real broker and Ceph, the real operator. A VM with known disk
// content is deleted; its quarantine exists with the same SHA-256 and the right
// provenance; the cloud's cephx user cannot delete it; a restore reproduces it;
// a hold keeps it past expiry; the sweep then removes it.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { RbdPermissionDeniedError } from '../../operator/ceph/errors.ts';
import { restoreQuarantine } from '../../operator/capture/restore.ts';
import { upsertHold, releaseHolds } from '../../operator/capture/holds.ts';
import type { QuarantineRow } from '../../operator/capture/quarantine-store.ts';
import { waitForNotification } from '../sim/nova.ts';
import { NovaApi } from '../sim/nova-api.ts';
import { startSimOpenStack, type SimOpenStack } from '../support/sim-openstack.ts';
import { env, sha256Of, sleep, startOperator, until, type RunningOperator } from './harness.ts';

const MiB = 1024 * 1024;

/** The checks every mode must pass once a quarantine exists. */
async function checkQuarantine(op: RunningOperator, q: QuarantineRow, expected: { sha256: string; instance: string; user: string; project: string; host: string; address: string }): Promise<void> {
  assert.equal(q.state, 'quarantined', q.failure ?? '');
  const location = { pool: q.location_pool, image: q.location_image };
  assert.equal(await sha256Of(op.operatorBlocks, location), expected.sha256, 'the quarantine holds the disk as it was before deletion');
  const prov = JSON.parse(q.provenance) as { instance: { id: string; user: string; project: string; host: string }; addresses: Array<{ address: string }>; source: { image: string } };
  assert.deepEqual({ id: prov.instance.id, user: prov.instance.user, project: prov.instance.project, host: prov.instance.host }, { id: expected.instance, user: expected.user, project: expected.project, host: expected.host });
  assert.ok(prov.addresses.some((a) => a.address === expected.address), `provenance lists ${expected.address}`);
  assert.equal(prov.source.image, `${expected.instance}_disk`);
  const meta = await op.operatorBlocks.listMeta(location);
  assert.equal(meta['quarantine.instance'], expected.instance);
  await assert.rejects(op.cloudBlocks.removeImage(location), RbdPermissionDeniedError, "the cloud's user cannot delete it");
  await assert.rejects(op.cloudBlocks.removeSnapshot({ ...location, snapshot: 'x' }), RbdPermissionDeniedError);

  const target = { pool: 'images', image: `restore-${q.id}` };
  const r = await restoreQuarantine({ db: op.ledger.db, blocks: op.operatorBlocks, actor: 'e2e' }, q.id, target);
  assert.equal(r.sha256, expected.sha256, 'a restore reproduces the content');
  assert.equal(await sha256Of(op.operatorBlocks, target), expected.sha256);
  await op.operatorBlocks.removeImage(target);

  await upsertHold(op.ledger.db, { name: `hold-${q.id}`, selector: { instances: [expected.instance] }, actor: 'e2e' }, new Date());
  await until(async () => Date.now() > (q.expires_at ?? 0) + 10, 'expiry', 10_000);
  const held = await op.operator.scheduler.runNow(op.policy);
  assert.deepEqual(held?.deleted, []);
  assert.ok(held?.held.some((h) => h.id === q.id && h.expired), 'a hold keeps it past expiry');
  await releaseHolds(op.ledger.db, { name: `hold-${q.id}` }, 'e2e', new Date());
  const swept = await op.operator.scheduler.runNow(op.policy);
  assert.deepEqual(swept?.deleted.map((d) => d.id), [q.id], 'the sweep removes it once expired and unheld');
  assert.ok(!(await op.operatorBlocks.listImages({ pool: env.quarantinePool })).includes(q.location_image));
}

describe('OpenStack end to end', { concurrency: false }, () => {
  let cloud: SimOpenStack;

  before(async () => {
    cloud = await startSimOpenStack(env);
  });
  after(async () => {
    await cloud.close();
  });

  test('trash mode: Nova deletes, the pool moves the disk to the trash, the operator adopts it', async () => {
    const op = await startOperator({ type: 'openstack', exchanges: cloud.exchanges, mode: 'trash', armTrash: true, retention: '2s' });
    try {
      assert.equal(await op.operatorBlocks.getPoolConfig('vms', 'rbd_move_to_trash_on_remove'), 'true', 'the operator armed the watched pool');
      const n = await cloud.nova();
      const server = await n.boot({ image: cloud.imageId, project: 'proj-hep', user: 'alice', host: 'compute-1' });
      const digest = await n.writeDisk(n.rootDisk(server.uuid), randomBytes(4 * MiB));
      await sleep(200);
      const del = await n.delete(server.uuid, { user: 'alice', project: 'proj-hep' });
      await del.done;
      assert.ok(!(await cloud.rbd.listImages({ pool: 'vms' })).some((i) => i.startsWith(server.uuid)), 'Nova believes the disk is gone');
      const q = await op.waitForQuarantine(server.uuid);
      // Isolated by default: the capture digest taken, the data copied out, the anchor gone from the cloud's trash.
      await until(async () => (await op.quarantinesOf(server.uuid))[0]?.isolation === 'isolated', 'the quarantine isolated', 30_000);
      const isolated = (await op.quarantinesOf(server.uuid))[0] ?? q;
      assert.equal(isolated.digest, digest, 'the capture digest is that of the disk');
      assert.ok(!(await cloud.rbd.listTrash({ pool: 'vms' })).some((e) => e.id === q.source_image_id), 'the anchor is released');
      await checkQuarantine(op, isolated, { sha256: digest, instance: server.uuid, user: 'alice', project: 'proj-hep', host: 'compute-1', address: server.ports[0]?.address ?? '?' });
    } finally {
      await op.disarmTrash();
      await op.stop();
    }
  });

  test('softDelete mode: captured on soft delete, then force-deleted through the Nova API; the disk Nova cannot remove is adopted', async () => {
    const n = await cloud.nova({ reclaimInstanceIntervalMs: 3_600_000 });
    const api = await NovaApi.start({ nova: n, credentials: [{ id: 'app-cred', secret: 'app-secret', userId: 'quarantine-operator', projectId: 'admin', roles: ['admin'] }] });
    const op = await startOperator({ type: 'openstack', exchanges: cloud.exchanges, mode: 'softDelete', releaseResources: true, retention: '2s', api: { authUrl: api.authUrl, id: 'app-cred', secret: 'app-secret' }, orphanGraceMs: 300, isolate: false });
    try {
      const server = await n.boot({ image: cloud.imageId, project: 'proj-astro', user: 'bob', host: 'compute-1' });
      const digest = await n.writeDisk(n.rootDisk(server.uuid), randomBytes(4 * MiB));
      await sleep(200);
      const del = await n.delete(server.uuid, { user: 'bob', project: 'proj-astro' });
      assert.equal(del.kind, 'soft-delete');
      const q = await op.waitForQuarantine(server.uuid);
      // releaseResources: the operator force-deletes the server; Nova runs its delete and cannot remove the pinned disk.
      await waitForNotification(n.timeline, server.uuid, 'instance.delete.end', { timeoutMs: 20_000 });
      assert.equal(n.server(server.uuid)?.deleted, true);
      assert.ok(api.requests.some((r) => r.method === 'POST' && r.path.endsWith('/action')), 'forceDelete went through the API');
      await until(async () => !(await cloud.rbd.listImages({ pool: 'vms' })).includes(`${server.uuid}_disk`), 'the orphan adopted out of the cloud pool', 15_000);
      await checkQuarantine(op, (await op.quarantinesOf(server.uuid))[0] ?? q, { sha256: digest, instance: server.uuid, user: 'bob', project: 'proj-astro', host: 'compute-1', address: server.ports[0]?.address ?? '?' });
    } finally {
      await op.stop();
      await api.stop();
    }
  });

  test('onDelete mode: the snapshot on delete.start wins the race, Nova gives up, the orphan is adopted', async () => {
    const n = await cloud.nova({ deleteGapMs: 1500 });
    const op = await startOperator({ type: 'openstack', exchanges: cloud.exchanges, mode: 'onDelete', retention: '2s', orphanGraceMs: 300, isolate: false });
    try {
      const server = await n.boot({ image: cloud.imageId, project: 'proj-hep', user: 'carol', host: 'compute-1' });
      const digest = await n.writeDisk(n.rootDisk(server.uuid), randomBytes(4 * MiB));
      await sleep(200);
      const del = await n.delete(server.uuid, { user: 'mallory', project: 'proj-hep' });
      const q = await op.waitForQuarantine(server.uuid);
      await del.done;
      assert.ok(n.timeline.steps.some((st) => st.kind === 'disk-gave-up' && st.instance === server.uuid), 'Nova gave up on the pinned disk, silently');
      await until(async () => !(await cloud.rbd.listImages({ pool: 'vms' })).includes(`${server.uuid}_disk`), 'the orphan adopted', 15_000);
      const inst = await op.ledger.db.selectFrom('instances').selectAll().where('instance_id', '=', server.uuid).executeTakeFirstOrThrow();
      assert.equal(inst.deleted_by, 'mallory', 'who deleted it is recorded');
      await checkQuarantine(op, q, { sha256: digest, instance: server.uuid, user: 'carol', project: 'proj-hep', host: 'compute-1', address: server.ports[0]?.address ?? '?' });
      assert.ok((op.operator.clouds.get(op.cloud)?.capture?.stats.racesWon ?? 0) >= 1, "the race is counted as won");
      const exposed = await op.operator.metrics.registry.getSingleMetricAsString('quarantine_capture_races_total');
      assert.match(exposed, new RegExp(`quarantine_capture_races_total\\{cloud="${op.cloud}",mode="onDelete",result="won"\\} 1`), exposed);
    } finally {
      await op.stop();
    }
  });
});
