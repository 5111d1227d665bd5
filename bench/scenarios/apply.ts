// The ledger's apply path on its own: the ingest workload decoded once, then
// applied in batches of the intake's size as the intake applies them (each
// batch's derivation left to a pass over about a second of batches,
// bench/lib/intake-apply.ts), in this process, into SQLite (file) and
// PostgreSQL. Without the broker this is the most the
// intake can reach; the statements counted per notification do not depend on
// how loaded the machine is, the rates do.
//
// Ceiling: the same notifications written as evidence only (notifications
// rows and bodies, multi-row statements per batch), which every apply must do
// anyway. Storage: bytes per million notifications, bodies and the rest.
import { spawn } from 'node:child_process';
import { rmSync, statSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { sql, type KyselyPlugin, type Kysely } from 'kysely';
import type { Context, Figure, Scenario } from '../scenario.ts';
import { buildWorkload } from './ingest-workload.ts';
import type { StreamResult } from './apply-stream.ts';
import { round } from '../lib/stats.ts';
import { cpuMeter } from '../lib/cpu.ts';
import { prepare } from '../../operator/intake/pipeline.ts';
import type { Recorded } from '../../operator/ledger/apply.ts';
import { intakeApply } from '../lib/intake-apply.ts';
import { migrateToLatest, openLedgerDb, type LedgerDb } from '../../operator/ledger/db.ts';
import { startCheckpointer } from '../../operator/ledger/checkpoint-thread.ts';
import { directStatementCount } from '../../operator/ledger/sqlite-driver.ts';
import type { LedgerSchema } from '../../operator/ledger/schema.ts';
import { MEMORY_ENV, NODE_MEMORY_FLAGS } from '../../operator/process-memory.ts';
import { hourlyFigure, hourlyReports } from './hourly-reports.ts';

type Engine = 'sqlite' | 'postgres';

const TARGETS: Record<Engine, number> = { sqlite: 10_000, postgres: 5_000 };

/** Counts the statements Kysely sends (transaction control excluded). */
function statementCounter(): { plugin: KyselyPlugin; count: () => number } {
  let n = 0;
  return {
    plugin: {
      transformQuery(args) {
        return args.node;
      },
      // Counted on the result: precompiled statements (sqlite-sets.ts) skip transformQuery, every statement has a result.
      transformResult(args) {
        n += 1;
        return Promise.resolve(args.result);
      },
    },
    count: () => n,
  };
}

function decodeAll(n: number): { recorded: Recorded[]; decodeMs: number; bodyBytes: number } {
  const { messages } = buildWorkload(n);
  const t0 = performance.now();
  const recorded: Recorded[] = [];
  let bodyBytes = 0;
  for (const [i, m] of messages.entries()) {
    const p = prepare(m.body, { cloud: 'bench', exchange: m.exchange, routingKey: m.routingKey, receivedAt: new Date(Date.parse('2026-03-02T08:00:00Z') + i * 50) });
    if (!p.ok) throw new Error(`workload message ${i} does not decode: ${p.error.message}`);
    recorded.push(p.recorded);
    bodyBytes += m.body.length;
  }
  return { recorded, decodeMs: performance.now() - t0, bodyBytes };
}

async function open(engine: Engine, ctx: Context, purpose: string): Promise<LedgerDb> {
  let ledger: LedgerDb;
  if (engine === 'sqlite') {
    const path = join(ctx.outDir, `${purpose}.sqlite`);
    const clear = () => {
      for (const suffix of ['', '-wal', '-shm']) rmSync(`${path}${suffix}`, { force: true });
    };
    clear();
    ledger = openLedgerDb(`sqlite:${path}`);
    ctx.defer(clear);
  } else {
    ledger = openLedgerDb(await ctx.services.postgresUrl(purpose));
  }
  ctx.defer(() => ledger.close());
  await migrateToLatest(ledger);
  return ledger;
}

/** Bytes on disk for the ledger's tables: notification bodies apart from everything else. */
async function storage(engine: Engine, ledger: LedgerDb, ctx: Context, purpose: string): Promise<{ total: number; bodies: number }> {
  if (engine === 'sqlite') {
    await sql`PRAGMA wal_checkpoint(TRUNCATE)`.execute(ledger.db);
    const total = statSync(join(ctx.outDir, `${purpose}.sqlite`)).size;
    // dbstat is not compiled into every SQLite; the bodies' share is then the sum of their lengths.
    const r = await sql<{ b: number }>`SELECT coalesce(sum(length(body)), 0) AS b FROM notification_bodies`.execute(ledger.db);
    return { total, bodies: Number(r.rows[0]?.b ?? 0) };
  }
  await sql`VACUUM ANALYZE`.execute(ledger.db);
  const rows = await sql<{ name: string; bytes: string | number }>`
    SELECT c.relname AS name, pg_total_relation_size(c.oid) AS bytes FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace
    WHERE s.nspname = current_schema() AND c.relkind IN ('r', 'p') AND c.relispartition = false`.execute(ledger.db);
  const parts = await sql<{ bytes: string | number }>`
    SELECT coalesce(sum(pg_total_relation_size(i.inhrelid)), 0) AS bytes FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'notification_bodies'`.execute(ledger.db);
  const bodies = Number(parts.rows[0]?.bytes ?? 0);
  const total = rows.rows.reduce((s, r) => s + Number(r.bytes), 0) + bodies;
  return { total, bodies };
}

async function applyAll(db: Kysely<LedgerSchema>, recorded: readonly Recorded[], batch: number, ctx: Context, label: string): Promise<{ seconds: number; peakRss: number; startRss: number }> {
  const startRss = process.memoryUsage.rss();
  let peakRss = startRss;
  const t0 = performance.now();
  // As the intake applies: derivation in passes over the batches of about a second.
  const intake = intakeApply(db, batch);
  for (let i = 0; i < recorded.length; i += batch) {
    await intake.apply(recorded.slice(i, i + batch));
    if ((i / batch) % 25 === 0) {
      peakRss = Math.max(peakRss, process.memoryUsage.rss());
      ctx.progress.update(`${label}: ${i + batch}/${recorded.length} (${Math.round((i + batch) / ((performance.now() - t0) / 1000))}/s)`);
    }
  }
  await intake.finish();
  return { seconds: (performance.now() - t0) / 1000, peakRss: Math.max(peakRss, process.memoryUsage.rss()), startRss };
}

/** The evidence alone: notifications rows and their bodies, as applyBatch writes them. */
async function recordOnly(db: Kysely<LedgerSchema>, recorded: readonly Recorded[], batch: number): Promise<number> {
  const t0 = performance.now();
  for (let i = 0; i < recorded.length; i += batch) {
    const part = recorded.slice(i, i + batch);
    await db.transaction().execute(async (trx) => {
      const rows = part.map(({ notification: n }) => ({
        cloud: n.cloud, source: n.source, message_id: n.messageId, id_kind: n.idKind, event_type: n.eventType,
        publisher: n.publisher ?? null, occurred_at: n.occurredAt.getTime(), received_at: n.receivedAt.getTime(), outcome: 'applied', body_sha256: null,
      }));
      const ids = await trx.insertInto('notifications').values(rows).onConflict((oc) => oc.columns(['cloud', 'message_id']).doNothing()).returning('id').execute();
      // A fresh ledger: every row is new and comes back in order; which body goes with which id does not matter here.
      const bodies = ids.map((r, j) => ({ notification_id: r.id, received_at: rows[j]!.received_at, body: part[j]!.body }));
      for (let j = 0; j < bodies.length; j += 100) await trx.insertInto('notification_bodies').values(bodies.slice(j, j + 100)).execute();
    });
  }
  return (performance.now() - t0) / 1000;
}

async function runEngine(engine: Engine, ctx: Context, recorded: readonly Recorded[], batch: number): Promise<Figure[]> {
  const n = recorded.length;
  const ledger = await open(engine, ctx, `apply_${engine}`);
  const counter = statementCounter();
  const cpu = cpuMeter();
  // As the operator runs: a SQLite file's WAL checkpointed by a thread of its own.
  const checkpointer = await startCheckpointer(ledger);
  const direct = directStatementCount(ledger.db);
  const run = await applyAll(ledger.db.withPlugin(counter.plugin), recorded, batch, ctx, `${engine}: apply`);
  await checkpointer.stop();
  const usage = cpu();
  const rate = n / run.seconds;
  // On SQLite the apply path's own statements skip Kysely, and its plugins with it: the driver counts those.
  const statements = counter.count() + directStatementCount(ledger.db) - direct;
  const perNotification = statements / n;
  ctx.progress.log(`${engine}: apply ${Math.round(rate)}/s, ${round(perNotification, 3)} statements per notification, peak RSS ${Math.round(run.peakRss / 2 ** 20)} MiB`);
  const stored = await storage(engine, ledger, ctx, `apply_${engine}`);
  const ceilingDb = await open(engine, ctx, `apply_${engine}_ceiling`);
  const ceilingSeconds = await recordOnly(ceilingDb.db, recorded, batch);
  const ceiling = n / ceilingSeconds;
  const perMillion = (b: number) => Math.round((b * 1e6) / n);
  const mib = (b: number) => round(b / 2 ** 20, 1);
  ctx.note(`${engine}: ${n} notifications in ${round(run.seconds, 1)} s in batches of ${batch}; ${statements} statements (${round(perNotification, 3)} per notification, ` +
    `transaction control excluded); this process ${usage.processPct}% of a core, machine ${usage.machinePct ?? '?'}% of all cores; ` +
    `ceiling (notifications and bodies only) ${Math.round(ceiling)}/s. On disk ${mib(stored.total)} MiB, of which bodies ${mib(stored.bodies)} MiB.`);
  const engineName = engine === 'sqlite' ? 'SQLite (file)' : 'PostgreSQL';
  return [
    {
      figure: `apply.${engine}.rate`,
      label: `apply in process into ${engineName}, notifications/s`,
      value: round(rate),
      unit: '/s',
      ceiling: round(ceiling),
      target: { op: '>=', value: TARGETS[engine] },
      params: {
        notifications: n, batch, seconds: round(run.seconds, 2), statements, statementsPerNotification: round(perNotification, 3),
        processCpuPct: usage.processPct, machineCpuPct: usage.machinePct, ceilingSeconds: round(ceilingSeconds, 2),
      },
      notes: `${n.toLocaleString('en-US')} decoded notifications, batches of ${batch}; ${round(perNotification, 3)} statements per notification; ` +
        `ceiling = the notifications and their bodies alone; process ${usage.processPct}% of a core, machine ${usage.machinePct ?? '?'}%`,
    },
    {
      figure: `apply.${engine}.rss`,
      label: `RSS added by applying ${n.toLocaleString('en-US')} notifications into ${engineName}`,
      value: mib(run.peakRss - run.startRss),
      unit: 'MiB',
      params: { notifications: n, batch, startRssMiB: mib(run.startRss), peakRssMiB: mib(run.peakRss) },
      notes: `peak ${mib(run.peakRss)} MiB for the whole bench process, of which ${mib(run.startRss)} MiB before applying (Node, the workload's raw and decoded messages held in memory)`,
    },
    {
      figure: `storage.${engine}.perMillion`,
      label: `ledger bytes per million notifications, ${engineName}`,
      value: mib(perMillion(stored.total)),
      unit: 'MiB',
      params: { notifications: n, totalBytes: stored.total, bodyBytes: stored.bodies, bodiesPerMillionMiB: mib(perMillion(stored.bodies)) },
      notes: `of which raw bodies ${mib(perMillion(stored.bodies)).toLocaleString('en-US')} MiB (${engine === 'sqlite' ? 'sum of body lengths' : 'notification_bodies partitions, indexes and TOAST included'}); ` +
        `derived rows, indexes and the rest ${mib(perMillion(stored.total - stored.bodies)).toLocaleString('en-US')} MiB; extrapolated from ${n.toLocaleString('en-US')}`,
    },
  ];
}

/**
 * A long apply with nothing held beforehand, in a process of its own
 * (apply-stream.ts) started as the operator's launchers start it
 * (operator/process-memory.ts), or with the Node options given: the workload is
 * generated, decoded and applied one batch at a time, so the process's RSS is
 * the ledger's own (Node, the driver, SQLite's page cache, one batch).
 */
async function runStream(engine: Engine, ctx: Context, n: number, batch: number, given: readonly string[] | undefined): Promise<Figure[]> {
  const nodeOptions = given ?? NODE_MEMORY_FLAGS;
  let url: string;
  if (engine === 'sqlite') {
    const path = join(ctx.outDir, 'apply_stream.sqlite');
    const clear = () => {
      for (const suffix of ['', '-wal', '-shm']) rmSync(`${path}${suffix}`, { force: true });
    };
    clear();
    ctx.defer(clear);
    url = `sqlite:${path}`;
  } else {
    url = await ctx.services.postgresUrl('apply_stream');
  }
  const t0 = performance.now();
  const child = spawn(process.execPath, [...nodeOptions, '--expose-gc', fileURLToPath(new URL('./apply-stream.ts', import.meta.url)), url, String(n), String(batch)], {
    stdio: ['ignore', 'pipe', 'inherit'], env: given === undefined ? { ...process.env, ...MEMORY_ENV } : process.env,
  });
  let result: StreamResult | undefined;
  for await (const line of createInterface({ input: child.stdout })) {
    const [word, a, b] = line.split(' ');
    if (word === 'progress') {
      const done = Number(a);
      ctx.progress.update(`${engine}: streamed apply: ${done}/${n} (${Math.round(done / ((performance.now() - t0) / 1000))}/s, peak RSS ${Math.round(Number(b) / 2 ** 20)} MiB)`);
    } else if (word === 'result') result = JSON.parse(line.slice('result '.length)) as StreamResult;
  }
  const code = await new Promise<number | null>((resolve) => (child.exitCode !== null ? resolve(child.exitCode) : child.once('exit', resolve)));
  if (code !== 0 || result === undefined) throw new Error(`the streamed apply exited with ${code}`);
  const r = result;
  const mib = (b: number) => round(b / 2 ** 20, 1);
  const rate = Math.round(n / r.seconds);
  const cpuPerN = Math.round(r.cpuUs / n);
  const operatorEnv = Object.entries(MEMORY_ENV).map(([k, v]) => `${k}=${v}`).join(' ');
  const options = given === undefined ? `the operator's settings: ${operatorEnv} node ${nodeOptions.join(' ')}` : nodeOptions.length === 0 ? 'default Node options' : `node ${nodeOptions.join(' ')}`;
  const engineName = engine === 'sqlite' ? 'SQLite (file)' : 'PostgreSQL';
  ctx.progress.log(`${engine}: streamed apply of ${n}: ${rate}/s, peak RSS ${mib(r.peakRss)} MiB`);
  ctx.note(`${engine}, streamed (${options}): ${n} notifications generated, decoded and applied a batch of ${batch} at a time in ${round(r.seconds, 1)} s ` +
    `(${rate}/s, decoding included, ${cpuPerN} µs of CPU per notification); RSS ${mib(r.startRss)} MiB after start-up, peak ${mib(r.peakRss)} MiB` +
    `${r.liveHeap === undefined ? '' : `; V8 heap live after a full collection at the end ${mib(r.liveHeap)} MiB`}.`);
  return [{
    // Runs with other Node options are other figures (e.g. apply.sqlite.stream.rss.max-old-space-size-128, .node-defaults).
    figure: `apply.${engine}.stream.rss${given === undefined ? '' : given.length === 0 ? '.node-defaults' : `.${given.join(' ').replace(/^-+/, '').replace(/[^a-z0-9]+/gi, '-').replace(/-+$/, '').toLowerCase()}`}`,
    label: `peak RSS through a streamed apply of ${n.toLocaleString('en-US')} notifications into ${engineName}${given === undefined ? '' : ` (${options})`}`,
    value: mib(r.peakRss),
    unit: 'MiB',
    target: { op: '<=', value: 256 },
    params: { notifications: n, batch, seconds: round(r.seconds, 1), rate, cpuUsPerNotification: cpuPerN, startRssMiB: mib(r.startRss), liveHeapMiB: r.liveHeap === undefined ? null : mib(r.liveHeap), nodeOptions: nodeOptions.join(' ') },
    notes: `a process of its own (${options}) generating, decoding and applying one batch of ${batch} at a time; ${rate}/s with decoding; ` +
      `RSS ${mib(r.startRss)} MiB after start-up${r.liveHeap === undefined ? '' : `, V8 heap live at the end ${mib(r.liveHeap)} MiB`}`,
  }];
}

export const apply: Scenario = {
  name: 'apply',
  description:
    'The ledger apply path alone (decoded notifications in batches of the intake size, derived by passes as the intake does, in this process), into SQLite (file) and PostgreSQL: ' +
    'notifications/s, statements per notification, the RSS it adds and bytes per million notifications. The ceiling is writing the notifications and their bodies alone.',
  params: [
    { name: 'apply-n', description: 'notifications per engine', default: '50000' },
    { name: 'apply-engines', description: 'comma-separated: sqlite, postgres', default: 'sqlite,postgres' },
    { name: 'apply-batch', description: 'notifications per applyBatch call (the intake\'s batch at the Cloud prefetch default)', default: '800' },
    { name: 'apply-hourly-instances', description: 'running instances reported every hour, for the cost of a report once the ledger holds their history', default: '500' },
    { name: 'apply-hourly-hours', description: 'hours of those reports; 0 skips them', default: '200' },
    { name: 'apply-stream-n', description: 'notifications for the streamed apply (generated, decoded and applied a batch at a time, for peak RSS); 0 skips it', default: '0' },
    { name: 'apply-stream-engines', description: 'comma-separated engines for the streamed apply', default: 'sqlite' },
    { name: 'apply-stream-node-options', description: 'space-separated Node options for the streamed apply\'s process instead of the operator\'s own (operator/process-memory.ts), e.g. --max-old-space-size=128; "none" for Node\'s defaults', default: '' },
  ],
  async run(ctx) {
    const n = Number(ctx.param('apply-n'));
    const batch = Number(ctx.param('apply-batch'));
    if (!Number.isInteger(n) || n < 1) throw new Error('--apply-n must be a positive integer');
    if (!Number.isInteger(batch) || batch < 1) throw new Error('--apply-batch must be a positive integer');
    const engines = ctx.param('apply-engines').split(',').map((s) => s.trim()).filter((s) => s !== '');
    for (const e of engines) if (e !== 'sqlite' && e !== 'postgres') throw new Error(`unknown engine ${e}`);
    const streamN = Number(ctx.param('apply-stream-n'));
    if (!Number.isInteger(streamN) || streamN < 0) throw new Error('--apply-stream-n must be a non-negative integer');
    const streamEngines = ctx.param('apply-stream-engines').split(',').map((s) => s.trim()).filter((s) => s !== '');
    for (const e of streamEngines) if (e !== 'sqlite' && e !== 'postgres') throw new Error(`unknown engine ${e}`);
    // Checked before any run: a bad value found after the in-process runs would have cost them.
    const instances = Number(ctx.param('apply-hourly-instances'));
    const hours = Number(ctx.param('apply-hourly-hours'));
    if (!Number.isInteger(instances) || instances < 1) throw new Error('--apply-hourly-instances must be a positive integer');
    if (!Number.isInteger(hours) || hours < 0) throw new Error('--apply-hourly-hours must be a non-negative integer');
    if (hours > 0 && hours < 10) throw new Error('--apply-hourly-hours must be 0 or at least 10 (the figure compares the first and last five hours)');
    const figures: Figure[] = [];
    const optionsParam = ctx.param('apply-stream-node-options').trim();
    const nodeOptions = optionsParam === '' ? undefined : optionsParam === 'none' ? [] : optionsParam.split(' ').filter((s) => s !== '');
    if (streamN > 0) for (const e of streamEngines as Engine[]) figures.push(...(await runStream(e, ctx, streamN, batch, nodeOptions)));
    if (engines.length === 0) return figures;
    const { recorded, decodeMs, bodyBytes } = decodeAll(n);
    ctx.note(`Workload: the ingest scenario's (bench/scenarios/ingest-workload.ts), ${n} notifications, mean body ${Math.round(bodyBytes / n)} B; ` +
      `decoded once beforehand in ${Math.round(decodeMs)} ms (${Math.round(n / (decodeMs / 1000))}/s), not timed.`);
    for (const e of engines as Engine[]) figures.push(...(await runEngine(e, ctx, recorded, batch)));
    for (const e of hours === 0 ? [] : engines as Engine[]) {
      const ledger = await open(e, ctx, `apply_${e}_hourly`);
      const checkpointer = await startCheckpointer(ledger);
      const r = await hourlyReports(ledger.db, instances, hours, batch, (text) => ctx.progress.update(`${e}: hourly reports: ${text}`));
      await checkpointer.stop();
      ctx.progress.log(`${e}: an hourly report of ${instances} instances: ${Math.round(r.firstUs)} µs each in the first hours, ${Math.round(r.lastUs)} µs after ${hours} hours (by hour: ${JSON.stringify(r.byHour)})`);
      figures.push(hourlyFigure(e, instances, hours, r));
    }
    return figures;
  },
};
