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
import { env, sha256Of, until, writeSetup, type Setup } from './harness.ts';

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
      const setup = writeSetup({ type: 'openstack', exchanges: [`nova-crash-${randomUUID().slice(0, 8)}`], mode: 'trash', armTrash: true, trashScanSeconds: 1 });
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
