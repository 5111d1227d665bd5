// Notifications/s through the real broker into the ledger by the operator's
// own intake (startCloudIntake: decode, batched apply, ack after commit), next
// to what the same broker delivers to a consumer that does nothing but ack.
//
// The queue is filled before consuming starts: the figure is the rate at which
// the operator drains a backlog (after a restart or an outage), which is also
// the highest rate it can sustain. Publishing concurrently would have the
// publisher, the broker and the operator share two cores, and the figure would
// describe that contention rather than the operator.
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import * as amqp from 'amqplib';
import pg from 'pg';
import { sql } from 'kysely';
import type { Context, Figure, Scenario } from '../scenario.ts';
import { buildWorkload, type WireMessage } from './ingest-workload.ts';
import { RateSeries, round } from '../lib/stats.ts';
import { cpuMeter, serviceCpuMeter, type CpuShare } from '../lib/cpu.ts';
import { AmqpPublisher } from '../../operator/intake/amqp.ts';
import { applyBatchSize, DEFAULT_PREFETCH, startCloudIntake } from '../../operator/intake/cloud-intake.ts';
import type { IngestOutcome } from '../../operator/intake/pipeline.ts';
import { migrateToLatest, openLedgerDb, type LedgerDb } from '../../operator/ledger/db.ts';
import { startCheckpointer } from '../../operator/ledger/checkpoint-thread.ts';
import { pendingDerivation } from '../../operator/ledger/derive-pending.ts';
import { Cloud, defaultExchanges, queueName } from '../../operator/resources/cloud.ts';
import { silentLogger } from '../../operator/log.ts';

type Engine = 'sqlite' | 'postgres';

// The targets: a rate, or a share of the bare consumer's rate in the same run.
const TARGETS: Record<Engine, { value: number; orRatio: number }> = { sqlite: { value: 10_000, orRatio: 0.5 }, postgres: { value: 5_000, orRatio: 0.3 } };
const STALL_MS = 60_000;

interface Drain {
  rate: number;
  seconds: number;
  setupMs: number;
  series: RateSeries;
  end: number;
  cpu: CpuShare;
  /** Broker and database server CPU over the drain, percent of one core. */
  services: Record<string, number>;
}

const SERVICES = ['beam.smp', 'postgres'] as const;

function benchCloud(engine: Engine, prefetch: number): Cloud {
  return Cloud.parse({
    apiVersion: 'quarantine.forensics.dev/v1alpha1',
    kind: 'Cloud',
    metadata: { name: `bench-${engine}` },
    spec: { type: 'openstack', amqp: { urlSecretRef: { name: 'rabbit', key: 'url' }, prefetch } },
  });
}

/** Resolves when `count()` reaches `n`; rejects if it stops moving for STALL_MS. */
function whenDone(n: number, count: () => number, ctx: Context, label: string, t0: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let last = -1;
    let lastMove = performance.now();
    const timer = setInterval(() => {
      const c = count();
      const now = performance.now();
      if (c !== last) {
        last = c;
        lastMove = now;
      }
      ctx.progress.update(`${label}: ${c}/${n} (${Math.round(c / ((now - t0) / 1000))}/s)`);
      if (c >= n) {
        clearInterval(timer);
        resolve();
      } else if (now - lastMove > STALL_MS) {
        clearInterval(timer);
        reject(new Error(`${label} stalled at ${c}/${n} for ${STALL_MS / 1000} s`));
      }
    }, 250);
  });
}

async function publishAll(url: string, messages: readonly WireMessage[], ctx: Context, label: string): Promise<number> {
  const pub = await AmqpPublisher.connect(url);
  try {
    const t0 = performance.now();
    for (let i = 0; i < messages.length; i++) {
      const m = messages[i]!;
      // oslo.messaging's rabbit driver marks notifications as JSON.
      pub.publish(m.exchange, m.routingKey, m.body, { contentType: 'application/json', contentEncoding: 'utf-8' });
      if (i % 1000 === 999) {
        await pub.confirmed();
        ctx.progress.update(`${label}: published ${i + 1}/${messages.length}`);
      }
    }
    await pub.confirmed();
    return messages.length / ((performance.now() - t0) / 1000);
  } finally {
    await pub.close();
  }
}

async function queueDepth(url: string, queue: string): Promise<number> {
  const conn = await amqp.connect(url);
  try {
    const ch = await conn.createChannel();
    const q = await ch.checkQueue(queue);
    return q.messageCount;
  } finally {
    await conn.close();
  }
}

/** The same broker, the same queue contents and prefetch, and a consumer that only acks: what no consumer can beat. */
async function drainBare(url: string, queue: string, n: number, prefetch: number, ctx: Context, label: string): Promise<Drain> {
  const t0 = performance.now();
  const cpu = cpuMeter();
  const services = serviceCpuMeter(SERVICES);
  const series = new RateSeries(t0);
  let count = 0;
  let end = t0;
  const conn = await amqp.connect(url);
  try {
    const ch = await conn.createChannel();
    await ch.prefetch(prefetch);
    const done = whenDone(n, () => count, ctx, label, t0);
    await ch.consume(queue, (msg) => {
      if (msg === null) return;
      ch.ack(msg);
      count += 1;
      end = performance.now();
      series.add(end);
    }, { noAck: false });
    const setupMs = performance.now() - t0;
    await done;
    const seconds = (end - t0) / 1000;
    const usage = cpu();
    const others = services();
    await ch.close();
    return { rate: n / seconds, seconds, setupMs, series, end, cpu: usage, services: others };
  } finally {
    await conn.close().catch(() => undefined);
  }
}

async function drainOperator(cloud: Cloud, url: string, ledger: LedgerDb, n: number, ctx: Context, label: string): Promise<Drain & { outcomes: Record<string, number>; derivedAfterLastAckMs: number }> {
  const outcomes: Record<string, number> = {};
  let count = 0;
  // As the operator runs: a SQLite file's WAL checkpointed by a thread of its own (operator/ledger/checkpoint-thread.ts).
  const checkpointer = await startCheckpointer(ledger);
  const t0 = performance.now();
  const cpu = cpuMeter();
  const services = serviceCpuMeter(SERVICES);
  const series = new RateSeries(t0);
  let end = t0;
  const onOutcome = (_cloud: string, _source: string, outcome: IngestOutcome) => {
    outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
    count += 1;
    end = performance.now();
    series.add(end);
  };
  const intake = await startCloudIntake(cloud, url, ledger.db, silentLogger, { onOutcome });
  const setupMs = performance.now() - t0;
  let lastAck: number;
  try {
    await whenDone(n, () => count, ctx, label, t0);
    lastAck = end;
    // Done when every notification is acknowledged and derived: the intake leaves derivation to passes of its own
    // (derive-pending.ts), the last of which runs once deliveries stop.
    while ((await pendingDerivation(ledger.db)).rows > 0) await new Promise((resolve) => setTimeout(resolve, 2));
    end = Math.max(end, performance.now());
  } finally {
    await intake.stop();
    await checkpointer.stop();
  }
  const seconds = (end - t0) / 1000;
  return { rate: n / seconds, seconds, setupMs, series, end, cpu: cpu(), services: services(), outcomes, derivedAfterLastAckMs: end - lastAck };
}

/**
 * Counts statements sent to PostgreSQL while `fn` runs. Each is one network
 * round trip (node-postgres does not pipeline), which is what bounds a
 * per-notification apply on PostgreSQL.
 */
async function countingPgQueries<T>(fn: () => Promise<T>): Promise<{ result: T; queries: number }> {
  const proto = pg.Client.prototype as unknown as { query: (...args: unknown[]) => unknown };
  const original = proto.query;
  let queries = 0;
  proto.query = function (this: unknown, ...args: unknown[]) {
    queries += 1;
    return original.apply(this, args);
  };
  try {
    return { result: await fn(), queries };
  } finally {
    proto.query = original;
  }
}

/** Median time of a trivial statement on one connection: the floor under every ledger query. */
async function pgRoundTripUs(url: string): Promise<number> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const times: number[] = [];
    for (let i = 0; i < 2000; i++) {
      const t0 = performance.now();
      await client.query('SELECT 1');
      times.push((performance.now() - t0) * 1000);
    }
    times.sort((a, b) => a - b);
    return Math.round(times[times.length >> 1] as number);
  } finally {
    await client.end();
  }
}

async function tableCounts(ledger: LedgerDb): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const table of ['notifications', 'instances', 'ports', 'address_changes', 'address_intervals', 'instance_events'] as const) {
    const r = await sql<{ n: number | string }>`SELECT count(*) AS n FROM ${sql.table(table)}`.execute(ledger.db);
    out[table] = Number(r.rows[0]?.n ?? 0);
  }
  return out;
}

function steadyRate(points: Array<{ t: number; value: number }>): number {
  // The first and last seconds hold start-up and the tail; the middle is the sustained rate.
  const middle = points.slice(1, -1).map((p) => p.value).sort((a, b) => a - b);
  return middle.length === 0 ? Number.NaN : (middle[Math.floor(middle.length / 2)] as number);
}

/** One round: a fresh ledger, the backlog published to both queues, drained by the bare consumer, then by the operator. */
interface Round {
  op: Drain & { outcomes: Record<string, number>; derivedAfterLastAckMs: number };
  bare: Drain;
  publishRate: number;
  counts: Record<string, number>;
  pgParams: Record<string, number>;
  roundTrip: string;
}

async function runRound(engine: Engine, ctx: Context, messages: readonly WireMessage[], prefetch: number, roundNo: number): Promise<Round> {
  const url = await ctx.services.amqpUrl();
  const n = messages.length;
  let ledger: LedgerDb;
  let removeFile = () => {};
  if (engine === 'sqlite') {
    const path = join(ctx.outDir, `ingest-${roundNo}.sqlite`);
    removeFile = () => {
      for (const suffix of ['', '-wal', '-shm']) rmSync(`${path}${suffix}`, { force: true });
    };
    removeFile();
    ledger = openLedgerDb(`sqlite:${path}`);
  } else {
    ledger = openLedgerDb(await ctx.services.postgresUrl(`ingest_${roundNo}`));
  }
  try {
    await migrateToLatest(ledger);
    const cloud = benchCloud(engine, prefetch);
    // Let the operator declare its own queue and bindings, then stop it so the backlog can build up.
    await (await startCloudIntake(cloud, url, ledger.db, silentLogger)).stop();
    const ceilingQueue = ceilingQueueOf(engine);
    {
      const conn = await amqp.connect(url);
      const ch = await conn.createChannel();
      await ch.assertQueue(ceilingQueue, { durable: true });
      for (const ex of defaultExchanges('openstack')) {
        for (const t of cloud.spec.amqp.topics) await ch.bindQueue(ceilingQueue, ex.name, `${t}.*`);
      }
      await conn.close();
    }
    const label = `${engine} round ${roundNo}`;
    const publishRate = await publishAll(url, messages, ctx, `${label}: publish`);
    const depths = [await queueDepth(url, queueName(cloud)), await queueDepth(url, ceilingQueue)];
    if (depths.some((d) => d !== n)) throw new Error(`queues hold ${depths.join(' and ')} messages, expected ${n} each`);
    ctx.progress.log(`${label}: ${n} notifications queued twice (operator queue + ceiling queue) at ${Math.round(publishRate)}/s`);

    const bare = await drainBare(url, ceilingQueue, n, prefetch, ctx, `${label}: bare consumer`);
    const drained = engine === 'postgres'
      ? await countingPgQueries(() => drainOperator(cloud, url, ledger, n, ctx, `${label}: operator intake`))
      : { result: await drainOperator(cloud, url, ledger, n, ctx, `${label}: operator intake`), queries: undefined };
    const op = drained.result;
    ctx.progress.log(`${label}: bare consumer ${Math.round(bare.rate)}/s, operator intake ${Math.round(op.rate)}/s (${round(ratio({ op, bare }), 2)}; acknowledged and derived, the last pass ended ${Math.round(op.derivedAfterLastAckMs)} ms after the last ack)`);
    let roundTrip = '';
    const pgParams: Record<string, number> = {};
    if (drained.queries !== undefined) {
      const rtt = await pgRoundTripUs(await ctx.services.postgresUrl(`ingest_${roundNo}`));
      const perNotification = drained.queries / n;
      pgParams['statementsPerNotification'] = round(perNotification, 2);
      pgParams['selectOneRoundTripUs'] = rtt;
      pgParams['usPerNotification'] = Math.round(1e6 / op.rate);
      roundTrip = `; ${round(perNotification, 3)} statements (round trips) per notification, SELECT 1 round trip ${rtt} µs`;
    }
    const counts = await tableCounts(ledger);
    if (counts['notifications'] !== n) throw new Error(`${engine}: the ledger holds ${counts['notifications']} notifications after ${n} acks`);
    const left = await queueDepth(url, queueName(cloud));
    if (left !== 0) throw new Error(`${engine}: ${left} messages left in the operator's queue`);
    return { op, bare, publishRate, counts, pgParams, roundTrip };
  } finally {
    await ledger.close();
    removeFile();
  }
}

const ceilingQueueOf = (engine: Engine): string => `bench.ceiling.${engine}`;

/** A round's figure: the operator's rate as a share of its own bare consumer's. */
const ratio = (r: Pick<Round, 'op' | 'bare'>): number => r.op.rate / r.bare.rate;

/**
 * Runs the rounds one after another and reports the median one: on two
 * cores shared with the broker (and PostgreSQL), one drain's rate moves by a
 * quarter from one minute to the next, and the bare consumer's with it, so
 * a single run's verdict against the target would be a draw. Each round
 * measures the bare consumer and the operator on the same queue contents,
 * back to back.
 */
async function runEngine(engine: Engine, ctx: Context, messages: readonly WireMessage[], prefetch: number, rounds: number): Promise<Figure[]> {
  const n = messages.length;
  const url = await ctx.services.amqpUrl();
  const queue = queueName(benchCloud(engine, prefetch));
  // Needed only when BENCH_AMQP_URL names a vhost that outlives the run.
  ctx.defer(async () => {
    const conn = await amqp.connect(url);
    try {
      const ch = await conn.createChannel();
      for (const q of [ceilingQueueOf(engine), queue, `${queue}.dead-letter`]) await ch.deleteQueue(q);
    } finally {
      await conn.close();
    }
  });
  const all: Round[] = [];
  for (let r = 1; r <= rounds; r++) all.push(await runRound(engine, ctx, messages, prefetch, r));
  // The round of the median ratio (the lower of the two middle ones for an even count), with its own bare
  // consumer as the ceiling: a pair drained back to back, so the machine's drift from minute to minute, which
  // moves both, cancels out of the ratio.
  const mid = [...all].sort((a, b) => ratio(a) - ratio(b))[(all.length - 1) >> 1] as Round;
  const { op, bare, counts } = mid;
  const points = op.series.points(op.end);
  const ceilingPoints = bare.series.points(bare.end);
  const steady = steadyRate(points);
  const perRound = all.map((r) => `${Math.round(r.op.rate).toLocaleString('en-US')}/s of ${Math.round(r.bare.rate).toLocaleString('en-US')}/s (${round(ratio(r), 2)})`);
  for (const [i, r] of all.entries()) {
    ctx.note(`${engine}, round ${i + 1}: ${n} notifications in ${round(r.op.seconds, 1)} s (intake set-up ${Math.round(r.op.setupMs)} ms included), ${Math.round(r.op.rate)}/s; bare consumer ${round(r.bare.seconds, 1)} s, ${Math.round(r.bare.rate)}/s. ` +
      `Outcomes ${JSON.stringify(r.op.outcomes)}; ledger rows ${JSON.stringify(r.counts)}. ` +
      `CPU during the operator drain: this process ${r.op.cpu.processPct}% of one core, RabbitMQ ${r.op.services['beam.smp']}%, PostgreSQL ${r.op.services['postgres']}%, machine ${r.op.cpu.machinePct ?? '?'}% of all cores; ` +
      `during the bare drain: this process ${r.bare.cpu.processPct}%, RabbitMQ ${r.bare.services['beam.smp']}%, machine ${r.bare.cpu.machinePct ?? '?'}%. Publish rate (with confirms, both queues) ${Math.round(r.publishRate)}/s${r.roundTrip}.`);
  }
  return [{
    figure: `ingest.${engine}.rate`,
    label: `ingest into ${engine === 'sqlite' ? 'SQLite (file)' : 'PostgreSQL'}, notifications/s`,
    value: round(op.rate),
    unit: '/s',
    ceiling: round(bare.rate),
    target: { op: '>=', ...TARGETS[engine] },
    params: {
      notifications: n, prefetch, applyBatch: applyBatchSize(prefetch), backlog: 'pre-published', persistent: true, rounds,
      roundRates: all.map((r) => Math.round(r.op.rate)), roundCeilings: all.map((r) => Math.round(r.bare.rate)),
      seconds: round(op.seconds, 2), steadyRatePerS: steady, setupMs: Math.round(op.setupMs), derivedAfterLastAckMs: Math.round(op.derivedAfterLastAckMs),
      operatorProcessCpuPct: op.cpu.processPct, machineCpuPct: op.cpu.machinePct, brokerCpuPct: op.services['beam.smp'], postgresCpuPct: op.services['postgres'], outcomes: op.outcomes, ledgerRows: counts,
      ceilingSeconds: round(bare.seconds, 2), ceilingProcessCpuPct: bare.cpu.processPct, publishRatePerS: Math.round(mid.publishRate),
      ...mid.pgParams,
    },
    notes: `the round of the median ratio of ${rounds} (operator/s of bare consumer/s): ${perRound.join(', ')}; ` +
      `${n.toLocaleString('en-US')} notifications, prefetch ${prefetch}; the median round's per-second median ${Number.isFinite(steady) ? steady.toLocaleString('en-US') : '—'}/s, ` +
      `operator process ${op.cpu.processPct}% of a core, machine ${op.cpu.machinePct ?? '?'}%${mid.roundTrip}`,
    series: { unit: 'notifications/s', points },
    ceilingSeries: { unit: 'notifications/s', points: ceilingPoints },
  }];
}

export const ingest: Scenario = {
  name: 'ingest',
  description:
    'Notifications/s from the real RabbitMQ into the ledger through the operator intake (startCloudIntake: decode, batched apply, ack after commit), ' +
    'once into SQLite (file) and once into PostgreSQL. The ceiling is a bare amqplib consumer with the same prefetch that acks at once, draining an identical copy of the same queue contents.',
  params: [
    { name: 'ingest-n', description: 'notifications per engine', default: '50000' },
    { name: 'ingest-engines', description: 'comma-separated: sqlite, postgres', default: 'sqlite,postgres' },
    { name: 'ingest-prefetch', description: "consumer prefetch; the apply batch is half of it ('': the Cloud's default for the engine, DEFAULT_PREFETCH)", default: '' },
    { name: 'ingest-rounds', description: 'rounds per engine, each a fresh ledger and the bare consumer beside it; the figure is the median round', default: '3' },
  ],
  async run(ctx) {
    const n = Number(ctx.param('ingest-n'));
    const given = ctx.param('ingest-prefetch');
    const prefetch = given === '' ? undefined : Number(given);
    const rounds = Number(ctx.param('ingest-rounds'));
    if (!Number.isInteger(n) || n < 1) throw new Error('--ingest-n must be a positive integer');
    if (!Number.isInteger(rounds) || rounds < 1) throw new Error('--ingest-rounds must be a positive integer');
    if (prefetch !== undefined && (!Number.isInteger(prefetch) || prefetch < 1)) throw new Error('--ingest-prefetch must be a positive integer');
    const engines = ctx.param('ingest-engines').split(',').map((s) => s.trim()).filter((s) => s !== '');
    for (const e of engines) if (e !== 'sqlite' && e !== 'postgres') throw new Error(`unknown engine ${e}`);
    const t0 = performance.now();
    const { messages, mix } = buildWorkload(n);
    const bytes = messages.reduce((s, m) => s + m.body.length, 0);
    ctx.note(`Workload (${Math.round(performance.now() - t0)} ms to build, mean body ${Math.round(bytes / n)} B, persistent messages, durable queues): ` +
      Object.entries(mix).map(([k, v]) => `${k} ${v}`).join(', ') + '.');
    const figures: Figure[] = [];
    for (const e of engines as Engine[]) figures.push(...(await runEngine(e, ctx, messages, prefetch ?? DEFAULT_PREFETCH[e], rounds)));
    return figures;
  },
};
