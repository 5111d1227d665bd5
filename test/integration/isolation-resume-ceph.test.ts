// An isolation whose flatten was killed mid-way, resumed on the real Ceph
// cluster. librbd marks an object as existing in the clone's object map before
// it writes it, and a flatten skips every object the map says exists: a
// process killed between the two leaves a claim with no object behind it, and
// a plain second flatten then detaches a copy that reads zeros there
// (bench/notes/capture.md, bench/repro/flatten-kill.sh). The resumed isolation
// renews the object map first and checks the copy against the capture digest.
//
// The first attempt records the digest, then an `rbd flatten` of the clone is
// killed (SIGKILL) once it has copied some objects, a seeded moment later; a
// disk is kept only when the kill left such a claim, and up to ATTEMPTS disks
// are tried for one.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promisify } from 'node:util';
import { openLedgerDb, migrateToLatest, type LedgerDb } from '../../operator/ledger/db.ts';
import { verifyAudit } from '../../operator/ledger/audit.ts';
import { RbdCli } from '../../operator/ceph/rbd-cli.ts';
import { CaptureEngine, type CaptureRequest } from '../../operator/capture/engine.ts';
import { Isolation } from '../../operator/capture/isolation.ts';
import { destroyImage } from '../../operator/capture/sweep.ts';
import type { BlockStore, ImageSpec } from '../../operator/domain/block-store.ts';
import { systemClock } from '../../operator/kube/runtime/clock.ts';
import { silentLogger } from '../../operator/log.ts';
import { requireEnv, uniqueSuffix } from '../support/env.ts';
import { sha256Of } from '../support/ceph-checks.ts';

const run = promisify(execFile);
const conf = requireEnv('QTEST_CEPH_CONF');
const operatorId = requireEnv('QTEST_CEPH_SNAPSHOT_OPERATOR_ID');
const admin = new RbdCli({ cephConf: conf, id: 'admin' });
const qpool = requireEnv('QTEST_CEPH_QUARANTINE_POOL');
const KiB = 1024;
const MiB = 1024 * KiB;
const ATTEMPTS = 12;
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** A seeded generator (LCG), so that a failing run can be told apart from bad luck. */
function seeded(seed: number): (n: number) => number {
  let s = seed;
  return (n) => { s = (s * 1103515245 + 12345) % 2147483648; return s % n; };
}

/** A known pattern: 6 MiB of seeded bytes at the start of an 8 MiB disk, in 64 KiB objects (many objects, a short flatten). */
function pattern(seed: number): Buffer {
  const next = seeded(seed);
  const data = Buffer.alloc(8 * MiB);
  for (let i = 0; i < 6 * MiB; i += 4) data.writeUInt32LE(next(2 ** 31), i);
  return data;
}

async function tool(name: 'rbd' | 'rados', args: string[], input?: Buffer): Promise<string> {
  if (input === undefined) return (await run(name, [`--conf=${conf}`, '--id=admin', ...args], { maxBuffer: 64 * MiB })).stdout;
  return new Promise((resolve, reject) => {
    const child = spawn(name, [`--conf=${conf}`, '--id=admin', ...args], { stdio: ['pipe', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve('') : reject(new Error(`${name} ${args.join(' ')}: ${err}`))));
    child.stdin.end(input);
  });
}

/**
 * `rbd flatten` of `image` as the operator's user, killed with SIGKILL `extraMs`
 * after its first progress report (some objects copied, most not). False when
 * it ended before the kill.
 */
async function killFlattenMidway(image: ImageSpec, extraMs: number): Promise<boolean> {
  const child = spawn('rbd', [`--conf=${conf}`, `--id=${operatorId}`, 'flatten', `${image.pool}/${image.image}`], { stdio: ['ignore', 'ignore', 'pipe'] });
  const exited = new Promise<string | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)));
  child.stderr.on('data', (d: Buffer) => {
    if (/[1-9]\d*% complete/.test(d.toString())) setTimeout(() => child.kill('SIGKILL'), extraMs).unref();
  });
  return (await exited) === 'SIGKILL';
}

/** The dead flatten's exclusive lock, broken (and its client blocklisted) so the resume does not wait out its watch. */
async function breakDeadLock(image: ImageSpec): Promise<void> {
  const locks = JSON.parse(await tool('rbd', ['lock', 'ls', '--format', 'json', `${image.pool}/${image.image}`])) as Array<{ id: string; locker: string }>;
  for (const l of locks) await tool('rbd', ['lock', 'rm', `${image.pool}/${image.image}`, l.id, l.locker]);
}

/** Objects the clone's object map claims (fast-diff's usage) and objects RADOS holds for it. */
async function claimsAndObjects(image: ImageSpec, objectBytes: number): Promise<{ claimed: number; held: number }> {
  const du = JSON.parse(await tool('rbd', ['du', '--format', 'json', `${image.pool}/${image.image}`])) as { images: Array<{ used_size: number }> };
  const id = (await admin.info(image)).id;
  const held = (await tool('rados', ['-p', image.pool, 'ls'])).split('\n').filter((o) => o.startsWith(`rbd_data.${id}.`)).length;
  return { claimed: Math.round((du.images[0]?.used_size ?? 0) / objectBytes), held };
}

function request(vm: string, image: ImageSpec): CaptureRequest {
  return {
    cloud: 'lab', instanceId: vm, disk: 'disk', mode: 'softDelete', policy: { name: 'all', retentionMs: 3_600_000, flatten: false, isolate: true }, source: { kind: 'live', image },
    provenance: { cloud: 'lab', instance: { id: vm, name: 'vm', project: 'hep', user: 'alice', host: 'cmp-1', image: null, flavor: null, createdAt: null }, addresses: [], deletedAt: null, deletedBy: 'alice', messageId: 'm-1' },
  };
}

describe('an isolation whose flatten was killed mid-way, resumed on real Ceph', { concurrency: false }, () => {
  const s = uniqueSuffix();
  let ledger: LedgerDb;
  const images: ImageSpec[] = [];
  const closers: (() => Promise<void>)[] = [];

  before(async () => {
    ledger = openLedgerDb('sqlite::memory:');
    await migrateToLatest(ledger);
  });

  after(async () => {
    for (const close of closers) await close();
    for (const img of images) await destroyImage(admin, img).catch(() => undefined);
    await ledger.close();
  });

  for (const [n, driver] of (['librbd', 'cli'] as const).entries()) {
    test(`${driver}: the resumed isolation renews the object map, and its copy is the capture digest`, { timeout: 600_000 }, async () => {
      let blocks: BlockStore = new RbdCli({ cephConf: conf, id: operatorId });
      if (driver === 'librbd') {
        const { LibrbdStore } = await import('../../operator/ceph/librbd.ts');
        const lib = new LibrbdStore({ cephConf: conf, id: operatorId });
        closers.push(() => lib.close());
        blocks = lib;
      }
      const engine = new CaptureEngine({ db: ledger.db, blocks, quarantine: { pool: qpool }, logger: silentLogger, owner: 'pod-a' });
      const next = seeded(20261204 + n);
      const tried: string[] = [];
      for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
        const data = pattern(attempt + 100 * n);
        const disk = { pool: 'vms', image: `resume-${driver}-${attempt}-${s}_disk` };
        images.push(disk);
        await tool('rbd', ['import', '--no-progress', '--object-size', '64K', '-', `${disk.pool}/${disk.image}`], data);
        const row = await engine.capture(request(`resume-${driver}-${attempt}-${s}`, disk));
        assert.equal(row.state, 'quarantined', row.failure ?? '');
        const location = { pool: qpool, image: row.location_image };
        images.unshift(location);
        const extraMs = next(40);
        // The first attempt: the digest is recorded, then its copy is a flatten killed mid-way and the process "dies".
        let killed = false;
        const first = new Isolation({
          store: engine.store, blocks, clock: systemClock, logger: silentLogger, owner: 'pod-a', sideBySide: false,
          beforeStep: async (_id, step) => {
            if (step !== 'isolating') return;
            killed = await killFlattenMidway(location, extraMs);
            throw new Error('killed');
          },
        });
        await assert.rejects(first.reconcile(row.id), /killed/);
        const stuck = await engine.store.get(row.id);
        assert.equal(stuck?.isolation, 'isolating');
        assert.equal(stuck?.digest, sha(data), 'the capture digest is the disk\'s');
        if (!killed || (await admin.info(location)).parent === undefined) { tried.push(`${attempt}: flat before the kill`); continue; }
        await breakDeadLock(location);
        const { claimed, held } = await claimsAndObjects(location, 64 * KiB);
        tried.push(`${attempt}: +${extraMs} ms, ${claimed} objects claimed, ${held} held`);
        if (claimed <= held) continue;

        // The same worker identity comes back (a restarted process) and resumes the step at once.
        const resumed = new Isolation({ store: engine.store, blocks, clock: systemClock, logger: silentLogger, owner: 'pod-a' });
        assert.equal(await resumed.reconcile(row.id), 'isolated', tried.join('; '));
        const q = await engine.store.get(row.id);
        assert.equal(q?.digest, sha(data));
        assert.equal((await admin.info(location)).parent, undefined);
        assert.equal(await sha256Of(admin, location), sha(data), `the copy is the capture (${tried.join('; ')})`);
        const notes = (await ledger.db.selectFrom('audit').select('details').where('subject', '=', row.id).orderBy('seq').execute()).map((a) => JSON.parse(a.details) as Record<string, unknown>);
        assert.deepEqual(notes.map((x) => x['step']).filter((x) => x !== undefined), ['digest', 'object map renewed', 'isolated']);
        const isolated = notes.find((x) => x['step'] === 'isolated');
        assert.equal(isolated?.['objectMapRenewed'], true);
        assert.equal(isolated?.['copyMatchesDigest'], true);
        const audit = await verifyAudit(ledger.db);
        assert.ok(audit.ok, JSON.stringify(audit.problems));
        console.log(`# ${driver}: ${tried.join('; ')}`);
        return;
      }
      assert.fail(`no kill left a claimed object missing in ${ATTEMPTS} attempts: ${tried.join('; ')}`);
    });
  }
});
