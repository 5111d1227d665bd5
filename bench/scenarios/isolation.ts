// Time to isolation on real Ceph: from a quarantine's capture (the instant
// copy-on-write clone) to its isolation (capture digest read, clone flattened
// into the quarantine pool, anchor in the cloud's pool released), for disks of
// a given size with real data in them, beside a bare `rbd clone` + `rbd
// flatten` of the same disk in the same run (the ceiling), and a bare
// `rbd deep cp --flatten` where the cluster has room for it.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { randomUUID } from 'node:crypto';
import type { Figure, Scenario } from '../scenario.ts';
import { summarize, round } from '../lib/stats.ts';
import { bootCeph } from '../lib/ceph.ts';

const run = promisify(execFile);
const GiB = 1024 * 1024 * 1024;

const seconds = (v: number) => round(v, 2);

export const isolation: Scenario = {
  name: 'isolation',
  description: 'time to isolation (capture → digest of the capture snapshot, and beside it the copy into the quarantine pool (flatten, or a paced copy + flatten) → anchor released) for 1 GiB and 10 GiB disks with real data, beside a bare rbd clone + flatten (and rbd deep cp --flatten) of the same disk in the same run',
  params: [
    { name: 'isolation-sizes', description: 'disk sizes in GiB', default: '1,10' },
    { name: 'isolation-written', description: 'MiB of data written into each disk, per size (4 MiB writes at random object-aligned offsets; the size itself = every object written)', default: '1024,1024' },
    { name: 'isolation-runs', description: 'quarantines isolated per size', default: '5,3' },
    { name: 'isolation-deepcp-max-gib', description: 'largest size for which the bare deep cp is also measured (a deep copy of a 10 GiB sparse clone filled a 4 GiB memstore OSD in a trial run)', default: '1' },
    { name: 'isolation-driver', description: 'Ceph driver the operator isolates with (spec.ceph.driver): cli or librbd', default: 'cli' },
    { name: 'isolation-osd-mb', description: 'memstore OSD capacity of the throwaway cluster, MiB', default: '6144' },
    { name: 'isolation-side-by-side', description: 'on: the copy starts beside the capture digest (the operator\'s way); off: after the digest is recorded (as before)', default: 'on' },
    { name: 'isolation-bandwidth-mibps', description: 'spec.ceph.isolation.bandwidthMiBps of the operator (empty: none, a plain flatten)', default: '' },
    { name: 'isolation-flatten-ops', description: 'values of rbd_concurrent_management_ops for extra bare clone + flatten runs on each disk (e.g. 1,2,10; empty: none)', default: '' },
  ],
  async run(ctx) {
    const figures: Figure[] = [];
    ctx.progress.update('isolation: booting a Ceph cluster');
    const osdMb = Number(ctx.param('isolation-osd-mb'));
    const ceph = await bootCeph(ctx, 'iso', { QTEST_CEPH_OSD_MB: String(osdMb) });
    const { RbdCli } = await import('../../operator/ceph/rbd-cli.ts');
    const { openLedgerDb, migrateToLatest } = await import('../../operator/ledger/db.ts');
    const { CaptureEngine } = await import('../../operator/capture/engine.ts');
    const { Isolation } = await import('../../operator/capture/isolation.ts');
    const { destroyImage } = await import('../../operator/capture/sweep.ts');
    const { systemClock } = await import('../../operator/kube/runtime/clock.ts');
    const { silentLogger } = await import('../../operator/log.ts');
    const conf = ceph['QTEST_CEPH_CONF'] ?? '';
    const qpool = ceph['QTEST_CEPH_QUARANTINE_POOL'] ?? 'quarantine';
    const admin = new RbdCli({ cephConf: conf, id: 'admin' });
    // The operator as documented for clouds that capture by snapshot: the least-privilege caps.
    const operatorId = ceph['QTEST_CEPH_SNAPSHOT_OPERATOR_ID'] ?? 'quarantine-snapshot';
    const driver = ctx.param('isolation-driver') === 'librbd' ? 'librbd' : 'cli';
    let operator: import('../../operator/domain/block-store.ts').BlockStore = new RbdCli({ cephConf: conf, id: operatorId });
    if (driver === 'librbd') {
      const { LibrbdStore } = await import('../../operator/ceph/librbd.ts');
      const lib = new LibrbdStore({ cephConf: conf, id: operatorId });
      ctx.defer(() => lib.close());
      await lib.connect();
      operator = lib;
    }
    const rbd = (args: string[]) => run('rbd', [`--conf=${conf}`, '--id=admin', ...args], { maxBuffer: 16 * 1024 * 1024 });
    const ledger = openLedgerDb('sqlite::memory:');
    ctx.defer(() => ledger.close());
    await migrateToLatest(ledger);
    const engine = new CaptureEngine({ db: ledger.db, blocks: operator, quarantine: { pool: qpool }, logger: silentLogger, owner: 'bench' });
    const sideBySide = ctx.param('isolation-side-by-side') !== 'off';
    const bandwidthParam = ctx.param('isolation-bandwidth-mibps');
    const limitMiBps = bandwidthParam === '' ? undefined : Number(bandwidthParam);
    const { bucketForMiBps } = await import('../../operator/capture/bandwidth.ts');
    const iso = new Isolation({ store: engine.store, blocks: operator, clock: systemClock, logger: silentLogger, owner: 'bench', sideBySide, bandwidth: bucketForMiBps(systemClock, limitMiBps) });
    const flattenOps = ctx.param('isolation-flatten-ops').split(',').filter((x) => x !== '').map(Number);
    const mode = `${driver === 'cli' ? '' : `.${driver}`}${limitMiBps === undefined ? '' : '.paced'}${sideBySide ? '' : '.sequential'}`;
    const how = `${driver}${sideBySide ? ', copy beside the digest' : ', copy after the digest'}${limitMiBps === undefined ? '' : `, paced to ${limitMiBps} MiB/s`}`;

    const sizes = ctx.param('isolation-sizes').split(',').map(Number);
    const written = ctx.param('isolation-written').split(',').map(Number);
    const runs = ctx.param('isolation-runs').split(',').map(Number);
    const deepMax = Number(ctx.param('isolation-deepcp-max-gib'));

    for (const [i, gib] of sizes.entries()) {
      const mib = written[i] ?? written[written.length - 1] ?? 1024;
      const n = runs[i] ?? runs[runs.length - 1] ?? 3;
      const total: number[] = [];
      const digest: number[] = [];
      const copy: number[] = [];
      const bare: number[] = [];
      const deep: number[] = [];
      const achieved: number[] = [];
      const opsRates = new Map<number, number[]>();
      for (let r = 0; r < n; r++) {
        const vm = randomUUID();
        const disk = { pool: 'vms', image: `${vm}_disk` };
        ctx.progress.update(`isolation: ${gib} GiB disk ${r + 1}/${n}: writing ${mib} MiB`);
        await admin.createImage(disk, gib * GiB);
        const full = mib >= gib * 1024;
        await rbd(['bench', '--io-type', 'write', '--io-size', '4M', '--io-threads', '4', '--io-total', `${mib}M`, '--io-pattern', full ? 'seq' : 'rand', `${disk.pool}/${disk.image}`]);

        // The ceiling first, on the same disk: a bare clone + flatten, then a bare deep copy.
        ctx.progress.update(`isolation: ${gib} GiB disk ${r + 1}/${n}: bare clone + flatten`);
        await rbd(['snap', 'create', `${disk.pool}/${disk.image}@bare`]);
        const bareImage = `bare.${vm}`;
        let t = performance.now();
        await rbd(['clone', `${disk.pool}/${disk.image}@bare`, `${qpool}/${bareImage}`]);
        await rbd(['flatten', '--no-progress', `${qpool}/${bareImage}`]);
        bare.push((performance.now() - t) / 1000);
        await destroyImage(admin, { pool: qpool, image: bareImage });
        if (gib <= deepMax) {
          ctx.progress.update(`isolation: ${gib} GiB disk ${r + 1}/${n}: bare deep cp`);
          await rbd(['clone', `${disk.pool}/${disk.image}@bare`, `${qpool}/${bareImage}`]);
          t = performance.now();
          await rbd(['deep', 'cp', '--flatten', '--no-progress', `${qpool}/${bareImage}`, `${qpool}/${bareImage}.deep`]);
          deep.push((performance.now() - t) / 1000);
          await destroyImage(admin, { pool: qpool, image: `${bareImage}.deep` });
          await destroyImage(admin, { pool: qpool, image: bareImage });
        }
        for (const ops of flattenOps) {
          ctx.progress.update(`isolation: ${gib} GiB disk ${r + 1}/${n}: bare clone + flatten, rbd_concurrent_management_ops=${ops}`);
          await rbd(['clone', `${disk.pool}/${disk.image}@bare`, `${qpool}/${bareImage}`]);
          t = performance.now();
          await rbd(['flatten', '--no-progress', `--rbd-concurrent-management-ops=${ops}`, `${qpool}/${bareImage}`]);
          const rates = opsRates.get(ops) ?? [];
          rates.push(mib / ((performance.now() - t) / 1000));
          opsRates.set(ops, rates);
          await destroyImage(admin, { pool: qpool, image: bareImage });
        }
        await rbd(['snap', 'rm', '--no-progress', `${disk.pool}/${disk.image}@bare`]);

        ctx.progress.update(`isolation: ${gib} GiB disk ${r + 1}/${n}: capture and isolation`);
        const row = await engine.capture({
          cloud: 'bench', instanceId: vm, disk: 'disk', mode: 'softDelete', policy: { name: 'bench', retentionMs: 3_600_000, flatten: false, isolate: true }, source: { kind: 'live', image: disk },
          provenance: { cloud: 'bench', instance: { id: vm, name: null, project: null, user: null, host: null, image: null, flavor: null, createdAt: null }, addresses: [], deletedAt: null, deletedBy: null, messageId: null },
        });
        if (row.state !== 'quarantined') throw new Error(`capture failed: ${row.failure ?? row.state}`);
        const outcome = await iso.reconcile(row.id);
        if (outcome !== 'isolated') throw new Error(`isolation ended ${outcome}`);
        const q = await engine.store.get(row.id);
        if (q?.captured_at == null || q.digest_at === null || q.isolated_at === null) throw new Error('isolation left no times');
        total.push((q.isolated_at - q.captured_at) / 1000);
        digest.push((q.digest_at - q.captured_at) / 1000);
        // The copy's own time and pace, as the audit trail has them.
        const notes = (await ledger.db.selectFrom('audit').select(['details']).where('subject', '=', row.id).execute()).map((a) => JSON.parse(a.details) as Record<string, unknown>);
        const isolated = notes.find((x) => x['step'] === 'isolated');
        copy.push(Number(isolated?.['copySeconds'] ?? NaN));
        if (typeof isolated?.['achievedMiBps'] === 'number') achieved.push(isolated['achievedMiBps']);
        await destroyImage(admin, { pool: qpool, image: row.location_image });
        await destroyImage(admin, disk);
      }
      const s = summarize(total.map((x) => x * 1000));
      const b = summarize(bare.map((x) => x * 1000));
      const d = summarize(digest.map((x) => x * 1000));
      const c = summarize(copy.map((x) => x * 1000));
      const params = { sizeGiB: gib, writtenMiB: mib, runs: n, driver, caps: 'quarantine-snapshot', sideBySide, ...(limitMiBps === undefined ? {} : { bandwidthMiBps: limitMiBps }) };
      const shared = `${n} disks of ${gib} GiB, ${mib} MiB written; of the p50, digest ${seconds(d.p50 / 1000)} s, copy ${seconds(c.p50 / 1000)} s (${sideBySide ? 'side by side' : 'one after the other'})`;
      figures.push({ figure: `isolation${mode}.${gib}g.p50`, label: `time to isolation, ${gib} GiB disk, ${how}, p50`, value: seconds(s.p50 / 1000), unit: 's', ceiling: seconds(b.p50 / 1000), params, notes: `ceiling = bare rbd clone + flatten of the same disk (p50); ${shared}`, samples: total });
      figures.push({ figure: `isolation${mode}.${gib}g.p99`, label: `time to isolation, ${gib} GiB disk, ${how}, p99`, value: seconds(s.p99 / 1000), unit: 's', ceiling: seconds(b.p99 / 1000), params, notes: `ceiling = bare clone + flatten (p99); with ${n} samples the p99 is the slowest`, samples: total });
      figures.push({ figure: `isolation${mode}.${gib}g.copy.p50`, label: `isolation copy (${limitMiBps === undefined ? 'flatten' : 'paced copy + flatten'}), ${gib} GiB disk, ${how}, p50`, value: seconds(c.p50 / 1000), unit: 's', ceiling: seconds(b.p50 / 1000), params, notes: 'the copy alone, from its start to the end of the flatten', samples: copy });
      figures.push({ figure: `isolation${mode}.${gib}g.digest.p50`, label: `capture digest (sparse: allocated extents read, zeros hashed unread), ${gib} GiB disk, ${how}, p50`, value: seconds(d.p50 / 1000), unit: 's', ceiling: seconds(b.p50 / 1000), params, notes: `the digest alone (capture to digest recorded), against the bare clone + flatten of the same disk; ${mib} MiB of ${gib * 1024} MiB written`, samples: digest });
      if (limitMiBps !== undefined && achieved.length > 0) {
        const a = summarize(achieved);
        figures.push({ figure: `isolation${mode}.${gib}g.rate.p50`, label: `paced copy rate, ${gib} GiB disk, ${how}, p50`, value: round(a.p50, 1), unit: 'MiB/s', ceiling: limitMiBps, params, notes: `ceiling = the limit (spec.ceph.isolation.bandwidthMiBps); achieved = bytes copied / time of the paced copy; bare clone + flatten of the same disk p50 ${seconds(b.p50 / 1000)} s (${round(mib / (b.p50 / 1000), 1)} MiB/s)`, samples: achieved });
      }
      for (const [ops, rates] of opsRates) {
        const o = summarize(rates);
        figures.push({ figure: `isolation.${gib}g.flatten-ops${ops}.rate.p50`, label: `bare flatten with rbd_concurrent_management_ops=${ops}, ${gib} GiB disk, p50`, value: round(o.p50, 1), unit: 'MiB/s', ceiling: round(mib / (b.p50 / 1000), 1), params, notes: `MiB written / flatten time; ceiling = the default flatten (10 in flight) of the same disk`, samples: rates });
      }
      ctx.progress.log(`isolation ${gib} GiB: p50 ${seconds(s.p50 / 1000)} s (digest ${seconds(d.p50 / 1000)} s, copy ${seconds(c.p50 / 1000)} s), bare clone+flatten p50 ${seconds(b.p50 / 1000)} s${deep.length > 0 ? `, deep cp p50 ${seconds(summarize(deep.map((x) => x * 1000)).p50 / 1000)} s` : ''}`);
    }
    ctx.note(`Each disk is created by the admin user and written with \`rbd bench\` (4 MiB writes; sequential when the whole disk is written, at random object-aligned offsets otherwise, so a 10 GiB disk holds real data in about a tenth of its objects and the rest is sparse). The bare clone + flatten (the ceiling) and the bare \`rbd deep cp --flatten\` run on the same disk just before its capture. Time to isolation runs from the quarantine's captured_at to its isolated_at in the ledger: the SHA-256 of the capture snapshot (read through the clone: its allocated extents only, the zeros between them hashed unread) and, ${sideBySide ? 'beside it' : 'after it'}, ${limitMiBps === undefined ? '\`rbd flatten\` of the clone' : `a copy of the clone's allocated extents into it paced to ${limitMiBps} MiB/s, then \`rbd flatten\``}, then the release of the capture snapshot on the live disk. The operator uses the ${driver} driver and the least-privilege snapshot caps; one isolation at a time. The cluster is the throwaway single-OSD memstore cluster of test/env with ${osdMb} MiB of OSD memory.`);
    return figures;
  },
};
