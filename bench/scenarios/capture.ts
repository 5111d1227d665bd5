// Capture on real Ceph, driven by the cloud simulator: how long from the
// deletion to a durable quarantine, per mode, at a steady rate and in a burst,
// beside the bare `rbd snap create` + `rbd clone` the capture is built on; and
// how often onDelete wins its race against Nova's delete, by the delete gap.
import { randomUUID } from 'node:crypto';
import { loadavg } from 'node:os';
import type { Figure, Scenario } from '../scenario.ts';
import { summarize, round } from '../lib/stats.ts';
import { bootCeph } from '../lib/ceph.ts';
import { childrenCpuSeconds, cpuMeter, serviceCpuMeter } from '../lib/cpu.ts';

const MiB = 1024 * 1024;

const ms = (v: number) => round(v, 1);
const loadavgOne = () => round(loadavg()[0] ?? 0, 1);

export const capture: Scenario = {
  name: 'capture',
  description: 'capture latency (deletion → quarantine durable in the ledger) per mode and Ceph driver on a throwaway Ceph cluster with the cloud simulator, beside bare snap create + clone through each driver; onDelete win rate by Nova delete gap; RSS over 10,000 librbd operations',
  params: [
    { name: 'capture-steady', description: 'deletions per mode at the steady rate (one a second)', default: '15' },
    { name: 'capture-burst', description: 'deletions at once in the burst (each mode)', default: '60' },
    { name: 'capture-gaps', description: 'Nova delete gaps (ms) for the onDelete race', default: '0,100,250,500,1000' },
    { name: 'capture-race-vms', description: 'VMs deleted per gap', default: '10' },
    { name: 'capture-drivers', description: 'Ceph drivers to measure captures with (spec.ceph.driver), the first is the default', default: 'librbd,cli' },
    { name: 'capture-rss-ops', description: 'librbd operations on one open connection for the RSS (handle leak) check', default: '10000' },
    { name: 'capture-modes', description: 'capture modes to measure (steady and burst), among trash, onDelete, softDelete', default: 'trash,onDelete,softDelete' },
  ],
  async run(ctx) {
    const figures: Figure[] = [];
    ctx.progress.update('capture: booting a Ceph cluster');
    const ceph = await bootCeph(ctx, 'ceph');
    const amqpUrl = await ctx.services.amqpUrl();
    Object.assign(process.env, ceph, { QTEST_AMQP_URL: amqpUrl });
    const { startOperator, until, sleep } = await import('../../test/e2e/harness.ts');
    const { RbdCli } = await import('../../operator/ceph/rbd-cli.ts');
    const { LibrbdStore } = await import('../../operator/ceph/librbd.ts');
    const { loadLibrbd } = await import('../../operator/ceph/librbd-ffi.ts');
    const { SimBus } = await import('../../test/sim/bus.ts');
    const { NeutronSim } = await import('../../test/sim/neutron.ts');
    const { NovaSim } = await import('../../test/sim/nova.ts');
    const { cloudRbd } = await import('../../test/sim/rbd-tool.ts');
    const { startProcessHost } = await import('../../test/sim/process-host.ts');
    const conf = ceph['QTEST_CEPH_CONF'] ?? '';
    // The cloud's rbd processes start from a host process of their own, as on a
    // real cloud: started from here, each fork held the in-process operator's
    // event loop for a fifth of a second (see bench/notes/capture.md).
    const host = startProcessHost();
    ctx.defer(() => host.close());
    const cloudUser = new RbdCli({ cephConf: conf, id: ceph['QTEST_CEPH_CLOUD_ID'], run: host.run });
    const opUser = new RbdCli({ cephConf: conf, id: ceph['QTEST_CEPH_OPERATOR_ID'] });
    const qpool = ceph['QTEST_CEPH_QUARANTINE_POOL'] ?? 'quarantine';
    const lib = new LibrbdStore({ cephConf: conf, id: ceph['QTEST_CEPH_OPERATOR_ID'] });
    ctx.defer(() => lib.close());
    await lib.connect();
    // Diagnosis aid: QOP_BENCH_INFLIGHT=FILE samples the librbd calls in flight (per C function, and those
    // waiting for a slot), the event loop's lag and the load twice a second, one JSON line each.
    const inflightFile = process.env['QOP_BENCH_INFLIGHT'];
    if (inflightFile !== undefined && inflightFile !== '') {
      const { appendFileSync } = await import('node:fs');
      let last = performance.now();
      const timer = setInterval(() => {
        const now = performance.now();
        const { running, waiting } = loadLibrbd().callsInFlight();
        const total = Object.values(running).reduce((a, b) => a + (b ?? 0), 0);
        appendFileSync(inflightFile, JSON.stringify({ t: new Date().toISOString(), lagMs: Math.round(now - last - 500), load: loadavg()[0], total, waiting, running }) + '\n');
        last = now;
      }, 500);
      timer.unref();
      ctx.defer(() => clearInterval(timer));
    }
    const drivers = ctx.param('capture-drivers').split(',').filter((d): d is 'librbd' | 'cli' => d === 'librbd' || d === 'cli');
    const steady = Number(ctx.param('capture-steady'));
    const burst = Number(ctx.param('capture-burst'));

    // The ceilings: what the two calls a capture rests on cost by themselves,
    // through each driver (librbd on the connection opened above).
    type Store = InstanceType<typeof RbdCli> | InstanceType<typeof LibrbdStore>;
    const bareCeiling = async (driver: 'librbd' | 'cli', store: Store) => {
      const bare: number[] = [];
      const bareSnap: number[] = [];
      for (let i = 0; i < 30; i++) {
        ctx.progress.update(`capture: bare ${driver} snap create + clone ${i + 1}/30`);
        const image = `${randomUUID()}_disk`;
        await cloudUser.createImage({ pool: 'vms', image }, MiB);
        const t = performance.now();
        await store.createSnapshot({ pool: 'vms', image, snapshot: 's' });
        bareSnap.push(performance.now() - t);
        await store.clone({ pool: 'vms', image, snapshot: 's' }, { pool: qpool, image: `bare.${i}` });
        bare.push(performance.now() - t);
        await opUser.removeImage({ pool: qpool, image: `bare.${i}` });
        await opUser.purgeSnapshots({ pool: 'vms', image });
        await opUser.removeImage({ pool: 'vms', image });
      }
      // The burst's ceiling: the same two calls for as many images at once, each timed from the common start.
      const images = Array.from({ length: burst }, () => `${randomUUID()}_disk`);
      for (const [i, image] of images.entries()) {
        ctx.progress.update(`capture: bare ${driver} burst, creating ${i + 1}/${burst}`);
        await cloudUser.createImage({ pool: 'vms', image }, MiB);
      }
      ctx.progress.update(`capture: bare ${driver} snap create + clone, ${burst} at once`);
      const t0 = performance.now();
      const bareBurst = await Promise.all(images.map(async (image, i) => {
        await store.createSnapshot({ pool: 'vms', image, snapshot: 's' });
        await store.clone({ pool: 'vms', image, snapshot: 's' }, { pool: qpool, image: `bare.burst.${i}` });
        return performance.now() - t0;
      }));
      for (const [i, image] of images.entries()) {
        await opUser.removeImage({ pool: qpool, image: `bare.burst.${i}` });
        await opUser.purgeSnapshots({ pool: 'vms', image });
        await opUser.removeImage({ pool: 'vms', image });
      }
      const one = summarize([...bare].sort((a, b) => a - b));
      const all = summarize([...bareBurst].sort((a, b) => a - b));
      const id = driver === 'cli' ? 'capture.bare' : 'capture.bare.librbd';
      const what = driver === 'cli' ? 'bare rbd snap create + clone (CLI)' : 'bare librbd snap create + clone (open connection)';
      figures.push({ figure: `${id}.p50`, label: `${what}, p50`, value: ms(one.p50), unit: 'ms', ceiling: ms(one.p50), params: { n: 30 }, samples: bare.map(ms), notes: `the ceiling of the ${driver} capture latencies below (bare calls, no operator)` });
      figures.push({ figure: `${id}.p99`, label: `${what}, p99`, value: ms(one.p99), unit: 'ms', ceiling: ms(one.p99), params: { n: 30 }, notes: `the ceiling of the ${driver} capture latencies below (bare calls, no operator)` });
      figures.push({ figure: `${id}.burst.p50`, label: `${what}, ${burst} at once, p50`, value: ms(all.p50), unit: 'ms', ceiling: ms(all.p50), params: { n: burst }, samples: bareBurst.map(ms), notes: `the ceiling of the ${driver} burst capture latencies below (bare calls, all started together)` });
      figures.push({ figure: `${id}.burst.p99`, label: `${what}, ${burst} at once, p99`, value: ms(all.p99), unit: 'ms', ceiling: ms(all.p99), params: { n: burst }, notes: `the ceiling of the ${driver} burst capture latencies below (bare calls, all started together)` });
      return { one, all, bareSnap };
    };
    // Only the drivers measured: a driver's ceiling is a run of its own (the CLI's burst alone takes a minute).
    const ceilings: Partial<Record<'librbd' | 'cli', Awaited<ReturnType<typeof bareCeiling>>>> = {};
    for (const driver of drivers) ceilings[driver] = await bareCeiling(driver, driver === 'cli' ? opUser : lib);
    const ceilingOf = (driver: 'librbd' | 'cli') => {
      const c = ceilings[driver];
      if (c === undefined) throw new Error(`no ceiling was measured for ${driver}`);
      return c;
    };
    const modes = new Set(ctx.param('capture-modes').split(',').filter((m) => m !== ''));

    // RSS on one open connection over many operations, half of them failing
    // (a missing image): a leaked image handle or I/O context shows as growth.
    {
      const ops = Number(ctx.param('capture-rss-ops'));
      const image = `${randomUUID()}_disk`;
      await cloudUser.createImage({ pool: 'vms', image }, MiB);
      await lib.createSnapshot({ pool: 'vms', image, snapshot: 's' });
      let peak = 0;
      const warmup = Math.min(1000, Math.floor(ops / 10));
      let base = 0;
      for (let i = 0; i < ops; i++) {
        if (i % 500 === 0) ctx.progress.update(`capture: librbd RSS check, ${i}/${ops} operations`);
        if (i % 4 === 0) await lib.info({ pool: 'vms', image });
        else if (i % 4 === 1) await lib.listSnapshots({ pool: 'vms', image });
        else if (i % 4 === 2) await lib.getMeta({ pool: 'vms', image }, 'nope').catch(() => undefined);
        else await lib.info({ pool: 'vms', image: `missing-${i}` }).catch(() => undefined);
        if (i === warmup) base = process.memoryUsage.rss();
        if (i % 100 === 0) peak = Math.max(peak, process.memoryUsage.rss());
      }
      const end = process.memoryUsage.rss();
      await opUser.purgeSnapshots({ pool: 'vms', image });
      await opUser.removeImage({ pool: 'vms', image });
      const growth = (100 * (end - base)) / base;
      figures.push({
        figure: 'capture.librbd.rss.growth', label: `RSS growth over ${ops.toLocaleString('en')} librbd operations on one connection`, value: round(growth, 1), unit: '%',
        target: { op: '<=', value: 10 }, params: { ops, warmup },
        notes: `${round(base / MiB, 0)} MiB after ${warmup} operations, ${round(end / MiB, 0)} MiB after ${ops}, peak ${round(peak / MiB, 0)} MiB (info, snap ls, a missing meta key, a missing image, in turn)`,
      });
    }

    // What a capture costs in librbd calls: every call the process made during
    // a steady phase (the operator's scans and relists included), per capture.
    const callsSince = (before: Readonly<Record<string, number>>) => {
      const now = loadLibrbd().callCounts() as Readonly<Record<string, number>>;
      let calls = 0;
      let opens = 0;
      for (const [name, n] of Object.entries(now)) {
        const d = n - (before[name] ?? 0);
        calls += d;
        if (name.startsWith('rbd_open')) opens += d;
      }
      return { calls, opens };
    };
    const callFigures = (mode: string, before: Readonly<Record<string, number>>, captured: number) => {
      if (captured === 0) return;
      const { calls, opens } = callsSince(before);
      // Which calls they were, for the notes: per capture, most first.
      const now = loadLibrbd().callCounts() as Readonly<Record<string, number>>;
      const each = Object.entries(now).map(([name, n]) => [name, (n - (before[name] ?? 0)) / captured] as const).filter(([, n]) => n > 0).sort((a, b) => b[1] - a[1]);
      ctx.progress.log(`librbd calls per ${mode} capture: ${each.map(([name, n]) => `${name} ${round(n, 1)}`).join(', ')}`);
      figures.push({
        figure: `capture.librbd.${mode}.calls`, label: `librbd calls per capture, ${mode}`, value: round(calls / captured, 1), unit: 'calls',
        params: { captures: captured }, notes: `${round(opens / captured, 1)} image opens per capture; every librbd call of the process during the steady ${mode} phase (scans and relists included), divided by its captures`,
      });
    };

    // The default driver's figures keep the plain ids (capture.<mode>.<kind>); the others are capture.<driver>.<mode>.<kind>.
    const latencyFigures = (driver: 'librbd' | 'cli', mode: string, kind: 'steady' | 'burst', lat: number[], n: number) => {
      const ceil = kind === 'burst' ? ceilingOf(driver).all : ceilingOf(driver).one;
      const s = summarize([...lat].sort((a, b) => a - b));
      const params = { deletions: n, captured: lat.length, driver };
      const notes = `${lat.length} of ${n} deletions captured`;
      const id = driver === drivers[0] ? `capture.${mode}.${kind}` : `capture.${driver}.${mode}.${kind}`;
      figures.push({ figure: `${id}.p50`, label: `capture latency ${mode}, ${kind}, ${driver}, p50`, value: ms(s.p50), unit: 'ms', ceiling: ms(ceil.p50), params, notes, samples: lat.map(ms) });
      figures.push({ figure: `${id}.p99`, label: `capture latency ${mode}, ${kind}, ${driver}, p99`, value: ms(s.p99), unit: 'ms', ceiling: ms(ceil.p99), params, notes });
    };

    // onDelete and softDelete: Nova's own sequences from the simulator.
    const { rbd, rbdTool } = cloudRbd({ cephConf: conf, id: ceph['QTEST_CEPH_CLOUD_ID'] ?? 'nova', run: host.run });
    const bus = await SimBus.connect(amqpUrl);
    ctx.defer(() => bus.close());
    const s = randomUUID().slice(0, 6);
    const neutron = await NeutronSim.start({ bus, exchange: `neutron-${s}` });
    const imageId = `img-${s}`;
    const novaFor = async (opts: Record<string, unknown>) => {
      const n = await NovaSim.start({ bus, exchange: `nova-${s}`, format: 'versioned', rbd, rbdTool, neutron, destroyRetries: 2, destroyRetryIntervalMs: 100, ...opts });
      await n.ensureImage(imageId, MiB).catch(() => undefined);
      return n;
    };
    for (const driver of drivers) {
      // trash mode: the cloud removes disks from an armed pool.
      if (modes.has('trash')) {
        const op = await startOperator({ type: 'openstack', exchanges: [`nova-${s}`, `neutron-${s}`], mode: 'trash', armTrash: true, trashScanSeconds: 1, driver });
        const nova = await novaFor({ deleteGapMs: 1000 });
        try {
          const measure = async (images: string[], removedAt: Map<string, number>) => {
            await until(async () => Number((await op.ledger.db.selectFrom('quarantines').select((eb) => eb.fn.countAll<number>().as('n')).where('state', '=', 'quarantined').where('source_image', 'in', images).executeTakeFirstOrThrow()).n) >= images.length, 'trash captures', 600_000);
            const rows = await op.ledger.db.selectFrom('quarantines').select(['source_image', 'captured_at']).where('source_image', 'in', images).execute();
            return rows.map((r) => (r.captured_at ?? 0) - (removedAt.get(r.source_image) ?? 0));
          };
          const steadyImages: string[] = [];
          const removed = new Map<string, number>();
          const before = loadLibrbd().callCounts() as Readonly<Record<string, number>>;
          // Steady: Nova's delete sequence, so the adoption is triggered by its notifications
          // (delete.start, shutdown.end right after the disk removal, delete.end); latency from the removal.
          for (let i = 0; i < steady; i++) {
            ctx.progress.update(`capture: ${driver} trash steady ${i + 1}/${steady}`);
            const server = await nova.boot({ image: imageId });
            const mark = nova.timeline.last;
            const del = await nova.delete(server.uuid);
            await del.done;
            for (const step of nova.timeline.since(mark)) {
              if (step.kind !== 'disk-removed' || step.instance !== server.uuid || step.image === undefined) continue;
              const image = step.image.slice(step.image.indexOf('/') + 1);
              removed.set(image, step.at.getTime());
              steadyImages.push(image);
            }
            await sleep(1000);
          }
          const trashSteady = await measure(steadyImages, removed);
          if (driver === 'librbd') callFigures('trash', before, trashSteady.length);
          latencyFigures(driver, 'trash', 'steady', trashSteady, steady);
          ctx.progress.update(`capture: ${driver} trash burst of ${burst}`);
          const burstImages = Array.from({ length: burst }, () => `${randomUUID()}_disk`);
          for (const image of burstImages) await cloudUser.createImage({ pool: 'vms', image }, MiB);
          await Promise.all(burstImages.map(async (image) => { await cloudUser.removeImage({ pool: 'vms', image }); removed.set(image, Date.now()); }));
          latencyFigures(driver, 'trash', 'burst', await measure(burstImages, removed), burst);
        } finally {
          await nova.stop();
          await op.halt();
          await opUser.removePoolConfig('vms', 'rbd_move_to_trash_on_remove').catch(() => undefined);
          await op.stop();
        }
      }

      for (const mode of ['onDelete', 'softDelete'] as const) {
        if (!modes.has(mode)) continue;
        const op = await startOperator({ type: 'openstack', exchanges: [`nova-${s}`, `neutron-${s}`], mode, orphanGraceMs: 60_000, driver });
        const nova = await novaFor(mode === 'softDelete' ? { reclaimInstanceIntervalMs: 3_600_000, deleteGapMs: 1000 } : { deleteGapMs: 1000 });
        try {
          const lat: number[] = [];
          const before = loadLibrbd().callCounts() as Readonly<Record<string, number>>;
          for (let i = 0; i < steady; i++) {
            ctx.progress.update(`capture: ${driver} ${mode} steady ${i + 1}/${steady}`);
            const server = await nova.boot({ image: imageId });
            const t = Date.now();
            const del = await nova.delete(server.uuid);
            const q = await op.waitForQuarantine(server.uuid, 60_000).catch(() => undefined);
            if (q?.state === 'quarantined') lat.push((q.captured_at ?? 0) - t);
            if (mode === 'onDelete') await del.done;
            await sleep(1000);
          }
          if (driver === 'librbd') callFigures(mode, before, lat.length);
          latencyFigures(driver, mode, 'steady', lat, steady);

          // The burst: every VM deleted at once, as a batch user's script does.
          const servers = [];
          for (let i = 0; i < burst; i++) {
            ctx.progress.update(`capture: ${driver} ${mode} burst, booting ${i + 1}/${burst}`);
            servers.push(await nova.boot({ image: imageId }));
          }
          ctx.progress.update(`capture: ${driver} ${mode} burst of ${burst}`);
          // Where the machine's CPU went during the burst: this process (the operator, in-process),
          // the cloud's rbd processes (the host's children), the Ceph daemons, everything.
          const burstStart = performance.now();
          const meter = cpuMeter();
          const daemons = serviceCpuMeter(['ceph-osd', 'ceph-mon']);
          const cloudCpu0 = host.pid === undefined ? undefined : childrenCpuSeconds(host.pid);
          const asked = new Map<string, number>();
          const deletions = await Promise.all(servers.map(async (server) => {
            asked.set(server.uuid, Date.now());
            return nova.delete(server.uuid);
          }));
          await Promise.all(deletions.map((d) => d.done));
          const burstLat: number[] = [];
          for (const server of servers) {
            const q = mode === 'softDelete'
              ? await op.waitForQuarantine(server.uuid, 120_000).catch(() => undefined)
              // onDelete: Nova has finished deleting, so whatever was won is in the ledger by now or soon.
              : await until(async () => (await op.quarantinesOf(server.uuid)).find((r) => r.state === 'quarantined' || r.state === 'failed'), 'the race outcome', 5_000).catch(() => undefined);
            if (q?.state === 'quarantined') burstLat.push((q.captured_at ?? 0) - (asked.get(server.uuid) ?? 0));
          }
          {
            const seconds = (performance.now() - burstStart) / 1000;
            const share = meter();
            const d = daemons();
            const cloudCpu1 = host.pid === undefined ? undefined : childrenCpuSeconds(host.pid);
            const cloudS = cloudCpu0 === undefined || cloudCpu1 === undefined ? undefined : cloudCpu1 - cloudCpu0;
            ctx.progress.log(`${driver} ${mode} burst of ${burst}, ${round(seconds, 1)} s from the deletes to the last outcome: CPU (core-seconds) operator process ${round((share.processPct / 100) * seconds, 1)}, the cloud's rbd processes ${cloudS === undefined ? '?' : round(cloudS, 1)}, ceph-osd ${round(((d['ceph-osd'] ?? 0) / 100) * seconds, 1)}, ceph-mon ${round(((d['ceph-mon'] ?? 0) / 100) * seconds, 1)}; machine busy ${share.machinePct ?? '?'} % of 2 cores (load ${loadavgOne()})`);
          }
          latencyFigures(driver, mode, 'burst', burstLat, burst);
        } finally {
          await nova.stop();
          await op.stop();
        }
      }

      // The onDelete race, by Nova's gap between delete.start and the disk removal.
      const perGap = Number(ctx.param('capture-race-vms'));
      for (const gap of ctx.param('capture-gaps').split(',').filter((g) => g !== '').map(Number)) {
        const op = await startOperator({ type: 'openstack', exchanges: [`nova-${s}`, `neutron-${s}`], mode: 'onDelete', orphanGraceMs: 60_000, driver });
        const nova = await novaFor({ deleteGapMs: gap });
        let won = 0;
        try {
          for (let i = 0; i < perGap; i++) {
            ctx.progress.update(`capture: ${driver} onDelete race, gap ${gap} ms, ${i + 1}/${perGap}`);
            const server = await nova.boot({ image: imageId });
            const del = await nova.delete(server.uuid);
            await del.done;
            await sleep(300);
            const rows = await op.quarantinesOf(server.uuid);
            if (rows.some((r) => r.state === 'quarantined')) won += 1;
          }
        } finally {
          await nova.stop();
          await op.stop();
        }
        // The ceiling: a bare `rbd snap create` issued the instant delete.start is published wins when it takes less than the gap.
        const { bareSnap } = ceilingOf(driver);
        const bareWins = bareSnap.filter((t) => t < gap).length / bareSnap.length;
        figures.push({ figure: driver === drivers[0] ? `capture.onDelete.winrate.gap${gap}` : `capture.${driver}.onDelete.winrate.gap${gap}`, label: `onDelete win rate, ${driver}, Nova delete gap ${gap} ms`, value: round((100 * won) / perGap, 0), unit: '%', ceiling: round(100 * bareWins, 0), params: { gap, vms: perGap, driver }, notes: `${won} of ${perGap} VMs` });
      }
    }
    await neutron.stop();
    ctx.note('Latency is measured from the deletion (the removal of the disk for trash mode, by Nova\'s delete sequence in the steady phase and by the cloud user\'s rbd rm in the burst; Nova accepting the delete request, which publishes delete.start / soft_delete at once, for the other modes) to the quarantine\'s captured_at in the ledger. The ceiling column is the bare snap create + clone in the same cluster through the same driver: librbd calls on an already open connection for the librbd figures, `rbd snap create` + `rbd clone` processes for the CLI figures (one at a time for the steady figures; for the burst figures, as many images as the burst, all started together): a capture does several more calls (restore, metadata, snapshot removal, trash move); in trash mode the steady deletions trigger a scan with Nova\'s notifications, while the burst (no notification) waits for the next periodic scan (1 s). Figures without a driver in their id are the default driver\'s (librbd); `capture.cli.*` are the CLI\'s.');
    ctx.note('Bursts: the trash burst removes N images at once with the cloud\'s rbd user; the onDelete and softDelete bursts boot N servers, then send N delete requests at once to the simulated Nova (1 s delete gap for onDelete, soft delete with a 1 h reclaim for softDelete); latency counts from each delete request. An onDelete capture that loses the race to Nova is not a latency sample: the table\'s notes say how many of the N were captured.');
    ctx.note('The win-rate ceiling is the share of the bare snap create calls through the same driver in this run (timed alone, 30 samples) that finished within the gap: what a snapshot issued the instant delete.start was published would achieve.');
    ctx.note('The onDelete race: Nova removes every `<uuid>*` image `deleteGap` after delete.start; the operator wins when its snapshot exists first (Nova then gives up silently and the orphan is adopted). 1 MiB disks, versioned notifications, each VM deleted alone.');
    return figures;
  },
};
