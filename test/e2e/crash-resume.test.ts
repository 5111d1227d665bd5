// The operator process is killed for real (SIGKILL) at each capture step,
// right after the step is recorded and before its Ceph call, then started
// again: every time, exactly one quarantine exists, with the disk's content.
import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { randomBytes, randomUUID, createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { join } from 'node:path';
import { rmSync } from 'node:fs';
import { openLedgerDb } from '../../operator/ledger/db.ts';
import { RbdCli } from '../../operator/ceph/rbd-cli.ts';
import { sweep } from '../../operator/capture/sweep.ts';
import { silentLogger } from '../../operator/log.ts';
import { SimBus } from '../sim/bus.ts';
import { NeutronSim } from '../sim/neutron.ts';
import { NovaSim } from '../sim/nova.ts';
import { cloudRbd } from '../sim/rbd-tool.ts';
import { purgeImage } from '../sim/disks.ts';
import { env, sha256Of, until, writeSetup, type Setup } from './harness.ts';

const YEAR = 365 * 86_400_000;
const bin = join(import.meta.dirname, '..', '..', 'bin', 'quarantine');
const cloudBlocks = new RbdCli({ cephConf: env.cephConf, id: env.cloudId });
const operatorBlocks = new RbdCli({ cephConf: env.cephConf, id: env.operatorId });

function start(setup: Setup, killAt?: string): { child: ChildProcess; output: () => string } {
  const child = spawn(bin, ['--db', setup.dbUrl, 'run', '--manifests', setup.manifests, '--secrets', setup.secrets], {
    env: { ...process.env, LOG_LEVEL: 'info', ...(killAt === undefined ? {} : { QUARANTINE_FAULT_KILL_AT: killAt }) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout?.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr?.on('data', (d: Buffer) => { out += d.toString(); });
  return { child, output: () => out };
}

const setups: Setup[] = [];
after(async () => {
  for (const s of setups) {
    const ledger = openLedgerDb(s.dbUrl);
    await sweep({ db: ledger.db, blocksFor: () => operatorBlocks, logger: silentLogger }, { now: new Date(8_000_000_000_000), dryRun: false, policies: [] }).catch(() => undefined);
    await ledger.close();
    rmSync(s.dir, { recursive: true, force: true });
  }
  await operatorBlocks.removePoolConfig('vms', 'rbd_move_to_trash_on_remove').catch(() => undefined);
  await operatorBlocks.removePoolConfig('vms', 'rbd_move_to_trash_on_remove_expire_seconds').catch(() => undefined);
});

describe('killing the operator at each capture step', { concurrency: false }, () => {
  for (const step of ['snapshotting', 'cloning'] as const) {
    test(`SIGKILL at ${step}, then a restart: exactly one quarantine with the disk's content`, { timeout: 120_000 }, async () => {
      const setup = writeSetup({ type: 'openstack', exchanges: [`nova-crash-${randomUUID().slice(0, 8)}`], mode: 'trash', armTrash: true, trashScanSeconds: 1, retention: '365d' });
      setups.push(setup);
      const first = start(setup, step);
      await until(async () => first.output().includes('operator running'), 'the operator to start', 30_000);
      const image = `${randomUUID()}_disk`;
      const data = randomBytes(2 * 1024 * 1024);
      await cloudBlocks.importImage({ stream: Readable.from([data]) }, { pool: 'vms', image });
      await cloudBlocks.removeImage({ pool: 'vms', image });
      const [, signal] = (await once(first.child, 'exit')) as [number | null, string | null];
      assert.equal(signal, 'SIGKILL', first.output().slice(-2000));
      const ledger = openLedgerDb(setup.dbUrl);
      try {
        const before = await ledger.db.selectFrom('quarantines').selectAll().where('source_image', '=', image).execute();
        assert.deepEqual(before.map((q) => q.state), [step], 'the step was recorded before the process died');

        const second = start(setup);
        try {
          const q = await until(async () => (await ledger.db.selectFrom('quarantines').selectAll().where('source_image', '=', image).where('state', '=', 'quarantined').executeTakeFirst()), 'the resumed capture', 60_000);
          const rows = await ledger.db.selectFrom('quarantines').selectAll().where('source_image', '=', image).execute();
          assert.equal(rows.length, 1, 'exactly one quarantine');
          assert.equal((q.expires_at ?? 0) - (q.captured_at ?? 0), YEAR, 'the policy\'s one-year retention survives the crash');
          const copies = (await operatorBlocks.listImages({ pool: env.quarantinePool })).filter((i) => i === q.location_image);
          assert.equal(copies.length, 1, 'exactly one image in the quarantine pool');
          assert.equal(await sha256Of(operatorBlocks, { pool: env.quarantinePool, image: q.location_image }), createHash('sha256').update(data).digest('hex'));
          assert.ok(!(await cloudBlocks.listImages({ pool: 'vms' })).some((i) => i.startsWith('qop-anchor.')), 'the anchor went back to the trash');
        } finally {
          second.child.kill('SIGTERM');
          await once(second.child, 'exit');
        }
      } finally {
        await ledger.close();
      }
    });
  }
});

describe('killing the operator at each isolation step', { concurrency: false }, () => {
  for (const step of ['digesting', 'isolating'] as const) {
    test(`SIGKILL at ${step}, then a restart: isolated once, with the capture digest, the anchor released`, { timeout: 120_000 }, async () => {
      const setup = writeSetup({ type: 'openstack', exchanges: [`nova-crash-${randomUUID().slice(0, 8)}`], mode: 'trash', armTrash: true, trashScanSeconds: 1, retention: '365d' });
      setups.push(setup);
      const first = start(setup, step);
      await until(async () => first.output().includes('operator running'), 'the operator to start', 30_000);
      const image = `${randomUUID()}_disk`;
      const data = randomBytes(2 * 1024 * 1024);
      const sha = createHash('sha256').update(data).digest('hex');
      await cloudBlocks.importImage({ stream: Readable.from([data]) }, { pool: 'vms', image });
      await cloudBlocks.removeImage({ pool: 'vms', image });
      const [, signal] = (await once(first.child, 'exit')) as [number | null, string | null];
      assert.equal(signal, 'SIGKILL', first.output().slice(-2000));
      const ledger = openLedgerDb(setup.dbUrl);
      try {
        const before = await ledger.db.selectFrom('quarantines').selectAll().where('source_image', '=', image).execute();
        assert.deepEqual(before.map((q) => [q.state, q.isolation]), [['quarantined', step]], 'the step was recorded before the process died');
        const second = start(setup);
        try {
          const q = await until(async () => (await ledger.db.selectFrom('quarantines').selectAll().where('source_image', '=', image).where('isolation', '=', 'isolated').executeTakeFirst()), 'the resumed isolation', 60_000);
          assert.equal(q.digest, sha, 'the capture digest is the disk\'s');
          assert.equal(await sha256Of(operatorBlocks, { pool: env.quarantinePool, image: q.location_image }), sha);
          assert.equal((await operatorBlocks.info({ pool: env.quarantinePool, image: q.location_image })).parent, undefined);
          assert.ok(!(await cloudBlocks.listTrash({ pool: 'vms' })).some((e) => e.id === q.source_image_id), 'the anchor is released');
          const isolatedEntries = await ledger.db.selectFrom('audit').select('details').where('subject', '=', q.id).execute();
          assert.equal(isolatedEntries.filter((a) => (JSON.parse(a.details) as { step?: string }).step === 'isolated').length, 1, 'isolated once');
        } finally {
          second.child.kill('SIGTERM');
          await once(second.child, 'exit');
        }
      } finally {
        await ledger.close();
      }
    });
  }
});

// The notification is acknowledged once its effects are committed; a process
// that dies between that commit and the capture must still capture after a
// restart, from the warning in the ledger.
describe('killing the operator between a delete warning and its capture', { concurrency: false }, () => {
  const s = randomUUID().slice(0, 8);
  const novaExchange = `nova-warn-${s}`;
  const neutronExchange = `neutron-warn-${s}`;
  const imageId = `img-warn-${s}`;
  const { rbd, rbdTool } = cloudRbd({ cephConf: env.cephConf, id: env.cloudId });
  const admin = cloudRbd({ cephConf: env.cephConf, id: env.operatorId });
  const novas: NovaSim[] = [];
  let bus: SimBus | undefined;
  let neutron: NeutronSim | undefined;
  after(async () => {
    for (const n of novas) {
      await n.stop();
      for (const server of n.servers()) for (const d of server.disks) await purgeImage(admin.rbd, d).catch(() => undefined);
    }
    await neutron?.stop();
    await bus?.close();
  });

  const cases = [
    { mode: 'onDelete', warning: 'instance.delete.start', nova: { deleteGapMs: 30_000, destroyRetries: 2, destroyRetryIntervalMs: 100 } },
    { mode: 'softDelete', warning: 'instance.soft_delete.end', nova: { reclaimInstanceIntervalMs: 3_600_000 } },
  ] as const;
  for (const c of cases) {
    test(`${c.mode}: SIGKILL after ${c.warning} is committed, then a restart: the disk is captured from the recorded warning`, { timeout: 120_000 }, async () => {
      bus ??= await SimBus.connect(env.amqpUrl);
      neutron ??= await NeutronSim.start({ bus, exchange: neutronExchange });
      const nova = await NovaSim.start({ bus, exchange: novaExchange, format: 'versioned', rbd, rbdTool, neutron, ...c.nova });
      novas.push(nova);
      await nova.ensureImage(imageId, 2 * 1024 * 1024).catch(() => undefined);
      const setup = writeSetup({ type: 'openstack', exchanges: [novaExchange, neutronExchange], mode: c.mode, retention: '365d' });
      setups.push(setup);
      const first = start(setup, 'warned');
      const exited = once(first.child, 'exit') as Promise<[number | null, string | null]>;
      let server;
      let digest;
      try {
        await until(async () => first.output().includes('operator running'), 'the operator to start', 30_000);
        server = await nova.boot({ image: imageId, project: 'proj-crash', user: 'erin', host: 'compute-1' });
        digest = await nova.writeDisk(nova.rootDisk(server.uuid), randomBytes(2 * 1024 * 1024));
        void nova.delete(server.uuid, { user: 'mallory', project: 'proj-crash' });
        const [, signal] = await Promise.race([exited, new Promise<[null, string]>((r) => setTimeout(() => r([null, 'still running']), 30_000))]);
        assert.equal(signal, 'SIGKILL', first.output().slice(-2000));
      } finally {
        if (first.child.exitCode === null && first.child.signalCode === null) {
          first.child.kill('SIGKILL');
          await exited;
        }
      }
      const ledger = openLedgerDb(setup.dbUrl);
      try {
        const events = await ledger.db.selectFrom('instance_events').select('event_type').where('instance_id', '=', server.uuid).execute();
        assert.ok(events.some((e) => e.event_type === c.warning), `${c.warning} is in the ledger: ${JSON.stringify(events)}`);
        assert.equal((await ledger.db.selectFrom('quarantines').select('id').where('instance_id', '=', server.uuid).execute()).length, 0, 'no capture had started');

        const second = start(setup);
        try {
          const q = await until(async () => (await ledger.db.selectFrom('quarantines').selectAll().where('instance_id', '=', server.uuid).where('state', '=', 'quarantined').executeTakeFirst()), 'the capture resumed from the warning', 60_000);
          assert.match(second.output(), /resuming captures for delete warnings/);
          assert.equal((await ledger.db.selectFrom('quarantines').select('id').where('instance_id', '=', server.uuid).execute()).length, 1, 'exactly one quarantine');
          assert.equal((q.expires_at ?? 0) - (q.captured_at ?? 0), YEAR, 'the policy\'s one-year retention survives the crash');
          assert.equal(await sha256Of(operatorBlocks, { pool: q.location_pool, image: q.location_image }), digest, 'the quarantine holds the disk as it was');
          const prov = JSON.parse(q.provenance) as { instance: { user: string; project: string; host: string } };
          assert.deepEqual([prov.instance.user, prov.instance.project, prov.instance.host], ['erin', 'proj-crash', 'compute-1']);
        } finally {
          second.child.kill('SIGTERM');
          await once(second.child, 'exit');
        }
      } finally {
        await ledger.close();
      }
    });
  }
});
