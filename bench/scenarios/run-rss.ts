// The operator's own process through a long ingest: `quarantine run`, started
// as a site starts it (bin/quarantine, so with the operator's memory flags),
// standalone with a SQLite ledger, then with a PostgreSQL one (each engine with
// its own default prefetch, DEFAULT_PREFETCH), and one Cloud on a throwaway Ceph cluster
// (librbd, the default driver), consuming the workload's notifications from
// RabbitMQ while they are published. Its peak RSS is the kernel's own (VmHWM in
// /proc), so no sampling can miss it. The apply scenario's streamed apply measures the ledger's part in a
// process of its own; this is everything the operator's process holds besides:
// the broker client, the Ceph libraries, the HTTP server, the checkpoint
// thread and Node's type stripper.
//
// The compile cache is filled first, as scripts/bootstrap.sh and the image's
// build fill it: a module compiled at start would load Node's type stripper,
// about 15 MiB more for the life of the process (bench/notes/run-rss.md).
//
// No QuarantinePolicy is given, so deletions record no capture: the figure is
// the intake's. The ledger's size (max(id) of the notifications) is read by a
// connection of this process: read-only to the SQLite file, or to the database.
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, openSync, readFileSync, rmSync, writeFileSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { fileURLToPath } from 'node:url';
import * as amqp from 'amqplib';
import pg from 'pg';
import type { Context, Figure, Scenario } from '../scenario.ts';
import { bootCeph } from '../lib/ceph.ts';
import { round } from '../lib/stats.ts';
import { workloadStream } from './ingest-workload.ts';
import { AmqpPublisher } from '../../operator/intake/amqp.ts';
import { DEFAULT_PREFETCH } from '../../operator/intake/cloud-intake.ts';
import type { Engine } from '../../operator/ledger/migrations.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));
const TARGET_MIB = 256;
const CLOUD = 'bench';
const QUEUE = `quarantine-operator.${CLOUD}`;
const STALL_MS = 120_000;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function cloudYaml(ceph: Record<string, string>): string {
  const q = (s: string | undefined) => JSON.stringify(s ?? '');
  return `apiVersion: quarantine.forensics.dev/v1alpha1
kind: Cloud
metadata:
  name: ${CLOUD}
spec:
  type: openstack
  amqp:
    urlSecretRef: {name: rabbit, key: url}
    exchanges: [{name: nova}, {name: neutron}]
    queue: ${QUEUE}
  ceph:
    configFile: ${q(ceph['QTEST_CEPH_CONF'])}
    user: ${q(ceph['QTEST_CEPH_OPERATOR_ID'])}
    watchedPools: [vms]
    quarantine: {pool: ${q(ceph['QTEST_CEPH_QUARANTINE_POOL'])}}
`;
}

function withoutKey(env: NodeJS.ProcessEnv, key: string): NodeJS.ProcessEnv {
  const { [key]: _dropped, ...rest } = env;
  return rest;
}

/** A line of /proc/PID/status in MiB (VmRSS, VmHWM). */
function statusMiB(pid: number, key: 'VmRSS' | 'VmHWM'): number {
  const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m === null ? Number.NaN : Number(m[1]) / 1024;
}

/** Resident MiB by kind of mapping: the node binary, other files (shared libraries), malloc's heap, anonymous (V8's heaps, thread stacks). */
function residentByKind(pid: number): Record<string, number> {
  const out: Record<string, number> = { node: 0, libraries: 0, mallocHeap: 0, anonymous: 0 };
  let kind = 'anonymous';
  for (const line of readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    const head = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (head !== null) {
      const name = head[1] ?? '';
      kind = name === '[heap]' ? 'mallocHeap' : name.endsWith('/bin/node') ? 'node' : name.startsWith('/') ? 'libraries' : 'anonymous';
    } else if (line.startsWith('Rss:')) out[kind] = (out[kind] ?? 0) + Number(line.split(/\s+/)[1]) / 1024;
  }
  return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, round(v, 1)]));
}

function sqliteCount(file: string): number {
  try {
    const db = new DatabaseSync(file, { readOnly: true });
    try {
      const row = db.prepare('SELECT max(id) AS n FROM notifications').get() as { n: number | null } | undefined;
      return row?.n ?? 0;
    } finally {
      db.close();
    }
  } catch {
    return 0; // not created yet
  }
}

/** max(id) of the notifications, asked on one connection kept for the run (0 before the table exists). */
async function postgresCounter(url: string, ctx: Context): Promise<() => Promise<number>> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  ctx.defer(() => client.end());
  return async () => {
    try {
      const r = await client.query<{ n: string | null }>('SELECT max(id) AS n FROM notifications');
      return Number(r.rows[0]?.n ?? 0);
    } catch {
      return 0; // not created yet
    }
  };
}

async function deleteQueues(url: string): Promise<void> {
  const conn = await amqp.connect(url);
  try {
    const ch = await conn.createChannel();
    for (const q of [QUEUE, `${QUEUE}.dead-letter`]) await ch.deleteQueue(q);
  } finally {
    await conn.close().catch(() => undefined);
  }
}

async function queueExists(url: string): Promise<boolean> {
  const conn = await amqp.connect(url);
  try {
    const ch = await conn.createChannel();
    ch.on('error', () => undefined);
    await ch.checkQueue(QUEUE);
    return true;
  } catch {
    return false;
  } finally {
    await conn.close().catch(() => undefined);
  }
}

export const runRss: Scenario = {
  name: 'run-rss',
  description: 'peak RSS of the operator process (`quarantine run` standalone: a SQLite ledger, then a PostgreSQL one, each at its default prefetch; a Cloud on a throwaway Ceph cluster with librbd) through an ingest of N workload notifications from RabbitMQ, published while it consumes',
  params: [
    { name: 'run-rss-n', description: 'notifications published to the operator', default: '1000000' },
    { name: 'run-rss-engines', description: 'comma-separated ledger engines, one run each: sqlite, postgres', default: 'sqlite,postgres' },
  ],
  async run(ctx: Context): Promise<Figure[]> {
    const n = Number(ctx.param('run-rss-n'));
    if (!Number.isInteger(n) || n < 1) throw new Error(`--run-rss-n must be a positive whole number, got ${ctx.param('run-rss-n')}`);
    const engines = ctx.param('run-rss-engines').split(',').map((e) => e.trim()).filter((e) => e !== '');
    for (const e of engines) if (e !== 'sqlite' && e !== 'postgres') throw new Error(`--run-rss-engines: unknown engine ${e} (sqlite, postgres)`);
    const url = await ctx.services.amqpUrl();
    ctx.progress.update('run-rss: booting a Ceph cluster');
    const ceph = await bootCeph(ctx, 'run-rss');
    const figures: Figure[] = [];
    for (const engine of engines as Engine[]) figures.push(await runOne(ctx, engine, n, url, ceph));
    return figures;
  },
};

/** One operator process, one engine's ledger, N notifications. */
async function runOne(ctx: Context, engine: Engine, n: number, url: string, ceph: Record<string, string>): Promise<Figure> {
  const dir = join(ctx.outDir, `run-rss-${process.pid}-${engine}`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(join(dir, 'manifests'), { recursive: true });
  mkdirSync(join(dir, 'secrets', 'rabbit'), { recursive: true, mode: 0o700 });
  ctx.defer(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'manifests', 'cloud.yaml'), cloudYaml(ceph));
  writeFileSync(join(dir, 'secrets', 'rabbit', 'url'), `${url}\n`, { mode: 0o600 });
  const file = join(dir, 'ledger.db');
  const dbUrl = engine === 'sqlite' ? `sqlite:${file}` : await ctx.services.postgresUrl('run_rss');
  const pgCount = engine === 'postgres' ? await postgresCounter(dbUrl, ctx) : undefined;
  const ledgerCount = (): Promise<number> => pgCount?.() ?? Promise.resolve(sqliteCount(file));
  // As scripts/bootstrap.sh leaves an installation (and the image is built): every module in bin/quarantine's
  // compile cache, so the operator loads no type stripper. The checkout may have changed since bootstrap.
  ctx.progress.update('run-rss: filling the compile cache');
  // bin/quarantine's own compile cache, not one this process may have been given.
  const env = withoutKey(process.env, 'NODE_COMPILE_CACHE');
  const filled = spawnSync(process.execPath, [join(root, 'scripts', 'fill-compile-cache.ts')], { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8', env });
  if (filled.status !== 0) throw new Error(`run-rss: scripts/fill-compile-cache.ts failed: ${filled.stderr.trim()}`);
  const log = openSync(join(dir, 'operator.log'), 'w');
  const child = spawn(join(root, 'bin', 'quarantine'), ['run', '--manifests', join(dir, 'manifests'), '--secrets', join(dir, 'secrets'), '--db', dbUrl], {
    stdio: ['ignore', log, log], env: { ...env, CEPH_CONF: ceph['QTEST_CEPH_CONF'] ?? '' },
  });
  closeSync(log);
  const pid = child.pid;
  if (pid === undefined) throw new Error('run-rss: the operator did not start');
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  ctx.defer(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await exited;
    }
  });
  const operatorLog = () => readFileSync(join(dir, 'operator.log'), 'utf8').trim().split('\n').slice(-5).join('\n');

  const t0 = performance.now();
  while (!(await queueExists(url))) {
    if (child.exitCode !== null) throw new Error(`run-rss: the operator exited (${child.exitCode}) before declaring its queue:\n${operatorLog()}`);
    if (performance.now() - t0 > 60_000) throw new Error(`run-rss: no queue ${QUEUE} after 60 s:\n${operatorLog()}`);
    await sleep(250);
  }
  await sleep(1000);
  const startRss = statusMiB(pid, 'VmRSS');
  const atStart = residentByKind(pid);

  const memory = () => `RSS ${round(statusMiB(pid, 'VmRSS'), 1)} MiB (peak ${round(statusMiB(pid, 'VmHWM'), 1)})`;

  const tPublish = performance.now();
  const pub = await AmqpPublisher.connect(url);
  let published = 0;
  try {
    for (const m of workloadStream()) {
      if (published === n) break;
      pub.publish(m.exchange, m.routingKey, m.body, { contentType: 'application/json', contentEncoding: 'utf-8' });
      published += 1;
      if (published % 1000 === 0) {
        await pub.confirmed();
        if (published % 20_000 === 0) ctx.progress.update(`run-rss, ${engine}: published ${published}/${n}, ledger ${await ledgerCount()}, ${memory()}`);
      }
    }
    await pub.confirmed();
  } finally {
    await pub.close();
  }
  const publishS = (performance.now() - tPublish) / 1000;

  let count = await ledgerCount();
  let moved = performance.now();
  while (count < n) {
    if (child.exitCode !== null) throw new Error(`run-rss: the operator exited (${child.exitCode}) at ${count} of ${n}:\n${operatorLog()}`);
    await sleep(1000);
    const now = await ledgerCount();
    if (now > count) moved = performance.now();
    else if (performance.now() - moved > STALL_MS) throw new Error(`run-rss: the ledger stopped at ${count} of ${n}:\n${operatorLog()}`);
    count = now;
    ctx.progress.update(`run-rss, ${engine}: ledger ${count}/${n}, ${memory()}`);
  }
  const ingestS = (performance.now() - tPublish) / 1000;
  const hwm = statusMiB(pid, 'VmHWM');
  const endRss = statusMiB(pid, 'VmRSS');
  const atEnd = residentByKind(pid);
  child.kill('SIGTERM');
  const code = await exited;
  // The next engine's operator declares the queue again: its wait for the queue must not find this one.
  await deleteQueues(url);

  const parts = (r: Record<string, number>) => `node binary ${r['node']}, libraries ${r['libraries']}, malloc heap ${r['mallocHeap']}, anonymous ${r['anonymous']}`;
  ctx.note(`run-rss, ${engine}: ${n} notifications published in ${round(publishS, 1)} s and in the ledger after ${round(ingestS, 1)} s (${Math.round(n / ingestS)}/s); ` +
    `RSS after start-up ${round(startRss, 1)} MiB (${parts(atStart)}), peak (VmHWM) ${round(hwm, 1)} MiB; at the end ${round(endRss, 1)} MiB (${parts(atEnd)}); the operator exited ${code} on SIGTERM.`);
  return {
    figure: `run-rss.${engine}.peak`,
    label: `peak RSS of \`quarantine run\` through an ingest of ${n.toLocaleString('en-US')} notifications from RabbitMQ (${engine === 'sqlite' ? 'SQLite' : 'PostgreSQL'}, prefetch ${DEFAULT_PREFETCH[engine].toLocaleString('en-US')}, a Cloud on Ceph with librbd)`,
    value: round(hwm, 1),
    unit: 'MiB',
    target: { op: '<=', value: TARGET_MIB },
    params: { notifications: n, engine, prefetch: DEFAULT_PREFETCH[engine], startRssMiB: round(startRss, 1), atStart, endRssMiB: round(endRss, 1), atEnd, vmHwmMiB: round(hwm, 1), publishSeconds: round(publishS, 1), ingestSeconds: round(ingestS, 1), exitCode: code },
    notes: `the operator's own process (bin/quarantine run, its memory flags), published while it consumes, ${Math.round(n / ingestS).toLocaleString('en-US')}/s; RSS after start-up ${round(startRss, 1)} MiB; at the end ${round(endRss, 1)} MiB: ${parts(atEnd)} MiB`,
  };
}
