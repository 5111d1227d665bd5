// End to end on OpenNebula: the simulated front-end runs the project's real
// hook publisher on each VM state change and the Ceph TM's real delete
// semantics; the real operator captures. One test per mode that works there:
// trash (datastore CEPH_TRASH=YES) and onDelete (snapshot on ACTIVE/SHUTDOWN).
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { RbdPermissionDeniedError } from '../../operator/ceph/errors.ts';
import { restoreQuarantine } from '../../operator/capture/restore.ts';
import { upsertHold, releaseHolds } from '../../operator/capture/holds.ts';
import type { QuarantineRow } from '../../operator/capture/quarantine-store.ts';
import { traceAddress } from '../../operator/ledger/trace.ts';
import { OneSim } from '../sim/opennebula.ts';
import { cloudRbd } from '../sim/rbd-tool.ts';
import { purgeImage } from '../sim/disks.ts';
import { uniqueSuffix } from '../support/env.ts';
import { env, sha256Of, startOperator, until, type RunningOperator } from './harness.ts';

const MiB = 1024 * 1024;

async function checkQuarantine(op: RunningOperator, q: QuarantineRow, expected: { sha256: string; vm: string; uname: string; gname: string; address: string }): Promise<void> {
  assert.equal(q.state, 'quarantined', q.failure ?? '');
  const location = { pool: q.location_pool, image: q.location_image };
  assert.equal(await sha256Of(op.operatorBlocks, location), expected.sha256, 'the quarantine holds the disk as it was');
  const prov = JSON.parse(q.provenance) as { instance: { id: string; user: string; project: string }; addresses: Array<{ address: string }> };
  assert.deepEqual([prov.instance.id, prov.instance.user, prov.instance.project], [expected.vm, expected.uname, expected.gname]);
  assert.ok(prov.addresses.some((a) => a.address === expected.address), 'the NIC address is in the provenance');
  await assert.rejects(op.cloudBlocks.removeImage(location), RbdPermissionDeniedError, "OpenNebula's cephx user cannot delete it");
  const target = { pool: 'images', image: `restore-${q.id}` };
  assert.equal((await restoreQuarantine({ db: op.ledger.db, blocks: op.operatorBlocks, actor: 'e2e' }, q.id, target)).sha256, expected.sha256);
  await op.operatorBlocks.removeImage(target);
  await upsertHold(op.ledger.db, { name: `hold-${q.id}`, selector: { users: [expected.uname] }, actor: 'e2e' }, new Date());
  await until(async () => Date.now() > (q.expires_at ?? 0) + 10, 'expiry', 10_000);
  const held = await op.operator.scheduler.runNow(op.policy);
  assert.ok(held?.held.some((h) => h.id === q.id), 'a hold keeps it past expiry');
  await releaseHolds(op.ledger.db, { name: `hold-${q.id}` }, 'e2e', new Date());
  assert.deepEqual((await op.operator.scheduler.runNow(op.policy))?.deleted.map((d) => d.id), [q.id]);
}

describe('OpenNebula end to end', { concurrency: false }, () => {
  const s = uniqueSuffix();
  const exchange = `opennebula-${s}`;
  const imageId = 1000 + Math.floor(Math.random() * 8000);
  const { rbd, rbdTool } = cloudRbd({ cephConf: env.cephConf, id: env.cloudId });
  const admin = cloudRbd({ cephConf: env.cephConf, id: env.operatorId });
  const sims: OneSim[] = [];

  before(() => {
    if (spawnSync('amqp-publish', ['--help'], { stdio: 'ignore' }).error !== undefined) throw new Error('amqp-publish (amqp-tools) is missing: run test/env/install.sh');
  });
  after(async () => {
    for (const one of sims) await one.stop();
    await sims[0]?.deleteImage(imageId).catch(() => purgeImage(admin.rbd, { pool: 'vms', image: `one-${imageId}` }, undefined, (snap) => rbdTool.unprotectSnapshot(snap)));
    const model = await import('amqplib').then((m) => m.connect(env.amqpUrl));
    const ch = await model.createChannel();
    await ch.deleteExchange(exchange).catch(() => undefined);
    await model.close();
  });

  // One front-end for both tests: CEPH_TRASH is set per VM, as a datastore setting would be per disk.
  async function sim(): Promise<OneSim> {
    if (sims[0] !== undefined) return sims[0];
    const one = await OneSim.start({ amqpUrl: env.amqpUrl, exchange, rbd, rbdTool, pool: 'vms', cephTrash: false, shutdownMs: 1500, waitForHooks: true, firstVmId: 100_000 + Math.floor(Math.random() * 800_000) });
    await one.ensureImage(imageId, 4 * MiB, 'alma');
    sims.push(one);
    return one;
  }

  test('trash mode: the TM moves the disk to the trash (CEPH_TRASH=YES); the operator adopts it', async () => {
    const one = await sim();
    const op = await startOperator({ type: 'opennebula', exchanges: [exchange], mode: 'trash', retention: '2s' });
    try {
      const vm = await one.create({ disks: [{ imageId }], nics: [{ ip: '198.51.100.41', network: 'public' }], uname: 'dave', uid: 7, gname: 'physics', gid: 101, cephTrash: true });
      const digest = await one.writeDisk(one.diskImage(vm.id, 0), randomBytes(4 * MiB));
      await until(async () => (await traceAddress(op.ledger.db, '198.51.100.41', new Date())).holders.length > 0, 'the NIC address in the ledger');
      await one.terminate(vm.id, { by: { uid: 7 } });
      await one.settled();
      const q = await op.waitForQuarantine(String(vm.id));
      await checkQuarantine(op, q, { sha256: digest, vm: String(vm.id), uname: 'dave', gname: 'physics', address: '198.51.100.41' });
      const t = await traceAddress(op.ledger.db, '198.51.100.41', new Date());
      assert.deepEqual(t.holders, [], 'DONE closed the address interval');
    } finally {
      await op.stop();
    }
  });

  test('onDelete mode: a snapshot at ACTIVE/SHUTDOWN keeps the disk through the TM delete; the orphan is adopted', async () => {
    const one = await sim();
    const op = await startOperator({ type: 'opennebula', exchanges: [exchange], mode: 'onDelete', retention: '2s', orphanGraceMs: 300 });
    try {
      const vm = await one.create({ disks: [{ imageId }], nics: [{ ip: '198.51.100.42', network: 'public' }], uname: 'erin', uid: 8, gname: 'astro', gid: 102 });
      const digest = await one.writeDisk(one.diskImage(vm.id, 0), randomBytes(4 * MiB));
      await until(async () => (await traceAddress(op.ledger.db, '198.51.100.42', new Date())).holders.length > 0, 'the NIC address in the ledger');
      await one.terminate(vm.id, { by: { uid: 8 } });
      const q = await op.waitForQuarantine(String(vm.id));
      await one.settled();
      assert.equal(one.vm(vm.id)?.stateName, 'DONE');
      await until(async () => !(await rbd.listImages({ pool: 'vms' })).includes(`one-${imageId}-${vm.id}-0`), 'the orphan adopted out of the cloud pool', 15_000);
      await checkQuarantine(op, q, { sha256: digest, vm: String(vm.id), uname: 'erin', gname: 'astro', address: '198.51.100.42' });
    } finally {
      await op.stop();
    }
  });
});
