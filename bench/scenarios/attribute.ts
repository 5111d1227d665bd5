// Bulk attribution (`trace log`): many log lines attributed in one query by
// attribute(), over the same generated ledgers as the trace scenario, beside
// the same lines as a loop of traceAddress() calls in one process — the best
// today's one-question-at-a-time way can do.
import { performance } from 'node:perf_hooks';
import type { Context, Figure, Scenario } from '../scenario.ts';
import { round } from '../lib/stats.ts';
import { querySet, type TraceQuery } from './trace-data.ts';
import { postgresLedger, serverBuffers, sizeLabel, sizesOf, sqliteLedger, type Built } from './trace.ts';
import type { LedgerDb } from '../../operator/ledger/db.ts';
import { attribute } from '../../operator/ledger/attribute.ts';
import { traceAddress } from '../../operator/ledger/trace.ts';

const TARGET_SECONDS = 10;
const TARGET_SIZE = 10_000_000;
const TARGET_LINES = 100_000;

async function measure(engine: 'sqlite' | 'postgres', size: number, ledger: LedgerDb, built: Built, ctx: Context, lineCount: number, loopCount: number): Promise<Figure[]> {
  const label = `${engine} ${sizeLabel(size)}`;
  // An abuse report's lines: the trace scenario's question mix, another seed.
  const lines = querySet(built.samples, lineCount, 9090);
  const probes = lines.map((q: TraceQuery) => ({ address: q.address, at: new Date(q.at) }));
  await attribute(ledger.db, probes.slice(0, 1000));
  ctx.progress.update(`${label}: attributing ${lineCount} lines in one query`);
  const t0 = performance.now();
  const bulk = await attribute(ledger.db, probes);
  const bulkSeconds = (performance.now() - t0) / 1000;
  const loopProbes = probes.slice(0, Math.min(loopCount, probes.length));
  const t1 = performance.now();
  let done = 0;
  for (const [i, p] of loopProbes.entries()) {
    const r = await traceAddress(ledger.db, p.address, p.at);
    if (r.holders.length !== bulk[i]?.length) throw new Error(`${label}: attribute() found ${bulk[i]?.length} holders of ${p.address} where traceAddress found ${r.holders.length}`);
    if (++done % 1000 === 0) ctx.progress.update(`${label}: traceAddress loop ${done}/${loopProbes.length}`);
  }
  const loopSeconds = ((performance.now() - t1) / 1000) * (probes.length / loopProbes.length);
  const attributed = bulk.filter((h) => h.length > 0).length;
  const scaled = loopProbes.length === probes.length ? '' : ` (${loopProbes.length} lines timed, scaled to ${probes.length})`;
  ctx.note(`${label}: ${probes.length.toLocaleString('en-US')} lines, ${attributed.toLocaleString('en-US')} with a holder; one attribute() query ${round(bulkSeconds, 2)} s ` +
    `(${round(probes.length / bulkSeconds)} lines/s); traceAddress() loop ${round(loopSeconds, 2)} s${scaled}; holders identical for every line of the loop.`);
  const target = size >= TARGET_SIZE && lineCount >= TARGET_LINES ? { op: '<=' as const, value: TARGET_SECONDS } : undefined;
  const buffers = engine === 'postgres' ? await serverBuffers(ledger.db) : { idSuffix: '', labelSuffix: '', note: '' };
  return [{
    figure: `attribute.${engine}.${sizeLabel(size)}.${lineCount}${buffers.idSuffix}`,
    label: `trace log: ${lineCount.toLocaleString('en-US')} lines, ${sizeLabel(size)} intervals, ${engine === 'sqlite' ? 'SQLite' : 'PostgreSQL'}${buffers.labelSuffix}`,
    value: round(bulkSeconds, 2), unit: 's', ceiling: round(loopSeconds, 2), target,
    params: { engine, intervals: size, lines: probes.length, loopLines: loopProbes.length, attributed },
    notes: `ceiling = the same lines as a traceAddress() loop in one process${scaled}; ${round(probes.length / bulkSeconds)} lines/s${buffers.note === '' ? '' : `; ${buffers.note}`}`,
  }];
}

export const attributeScenario: Scenario = {
  name: 'attribute',
  description: '`trace log` bulk attribution: log lines attributed in one attribute() query over the trace scenario\'s generated ledgers; the ceiling column holds the same lines as a loop of traceAddress() calls in one process.',
  params: [
    { name: 'attribute-sizes', description: 'interval counts for SQLite (the trace scenario\'s cached databases)', default: '1000000,10000000' },
    { name: 'attribute-pg-sizes', description: 'interval counts for PostgreSQL (rebuilt every run); empty to skip', default: '1000000,10000000' },
    { name: 'attribute-lines', description: 'log lines per attribution', default: '100000' },
    { name: 'attribute-pg-cache', description: 'use the trace scenario\'s kept PostgreSQL ledgers (see --trace-pg-cache) instead of rebuilding them', default: 'false' },
    { name: 'attribute-pg-cache-prefix', description: 'name of the kept PostgreSQL ledgers before _vN_SIZE (see --trace-pg-cache-prefix): another one for a branch whose migrations must not reach the shared ones', default: 'qop_bench_trace' },
    { name: 'attribute-loop-lines', description: 'lines timed as a traceAddress() loop (scaled to all lines)', default: '20000' },
  ],
  async run(ctx) {
    const sizes = sizesOf(ctx.param('attribute-sizes'), '--attribute-sizes');
    const pgSizes = sizesOf(ctx.param('attribute-pg-sizes'), '--attribute-pg-sizes');
    const lines = Number(ctx.param('attribute-lines'));
    const loop = Number(ctx.param('attribute-loop-lines'));
    if (!Number.isInteger(lines) || lines < 1) throw new Error('--attribute-lines must be a positive integer');
    if (!Number.isInteger(loop) || loop < 1) throw new Error('--attribute-loop-lines must be a positive integer');
    ctx.note('Lines: the trace scenario\'s question mix (70% public addresses, 80% at a time someone held them), as an abuse report would name them. The attribute() time is one query for all lines (repeated lines asked once); warm cache.');
    const figures: Figure[] = [];
    for (const size of sizes) {
      const { ledger, built } = await sqliteLedger(size, ctx, false);
      try {
        figures.push(...(await measure('sqlite', size, ledger, built, ctx, lines, loop)));
      } finally {
        await ledger.close();
      }
    }
    for (const size of pgSizes) {
      const { ledger, built } = await postgresLedger(ctx, 'attribute', size, ctx.param('attribute-pg-cache') === 'true', ctx.param('attribute-pg-cache-prefix'));
      try {
        figures.push(...(await measure('postgres', size, ledger, built, ctx, lines, loop)));
      } finally {
        await ledger.close();
      }
    }
    return figures;
  },
};
