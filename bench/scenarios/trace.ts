// `trace ip` latency: the real traceAddress() over a ledger holding 1M and 10M
// address intervals, next to the same question answered by a full scan (the
// address predicate written so that no index can serve it).
//
// The data are generated (trace-data.ts) and bulk-loaded into the ledger's
// real schema: migrateToLatest, secondary indexes dropped, rows inserted in
// large transactions (SQLite) or streamed through COPY (psql's \copy, for
// PostgreSQL; batched INSERTs where there is no psql), the same indexes
// recreated from their own definitions.
// SQLite databases are cached in bench/out/ (keyed by size and generator
// version); PostgreSQL ones live in this run's database and are rebuilt each
// run, so by default PostgreSQL is measured at 1M only.
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, readSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { DatabaseSync, type SQLInputValue } from 'node:sqlite';
import pg from 'pg';
import { sql, type Kysely } from 'kysely';
import type { Context, Figure, Scenario } from '../scenario.ts';
import { round, summarize } from '../lib/stats.ts';
import { GENERATOR_VERSION, INSTANCE_COLUMNS, INTERVAL_COLUMNS, generate, querySet, type Generated, type Row, type TraceQuery } from './trace-data.ts';
import { migrateToLatest, openLedgerDb, type LedgerDb } from '../../operator/ledger/db.ts';
import { traceAddress } from '../../operator/ledger/trace.ts';
import { backfillSql } from '../../operator/ledger/instance-copies.ts';
import type { LedgerSchema } from '../../operator/ledger/schema.ts';

type Engine = 'sqlite' | 'postgres';

export interface Built {
  stats: Omit<Generated, 'samples'>;
  samples: Generated['samples'];
  generationSeconds: number;
  indexSeconds: number;
  bytes?: number;
}

const TARGET_MS = 2;
const TARGET_SIZE = 10_000_000;

export function sizeLabel(n: number): string {
  if (n >= 1_000_000 && n % 1_000_000 === 0) return `${n / 1_000_000}M`;
  if (n >= 1000 && n % 1000 === 0) return `${n / 1000}k`;
  return String(n);
}

export function sizesOf(text: string, what: string): number[] {
  const out = text.split(',').map((s) => s.trim()).filter((s) => s !== '').map(Number);
  for (const n of out) if (!Number.isInteger(n) || n < 1000) throw new Error(`${what}: sizes are integers ≥ 1000, got "${text}"`);
  return out;
}

function placeholders(columns: number, rows: number): string {
  const one = `(${Array.from({ length: columns }, () => '?').join(', ')})`;
  return Array.from({ length: rows }, () => one).join(', ');
}

// ---------------------------------------------------------------------------
// SQLite: built once per size and generator version, then reused.

async function buildSqlite(path: string, size: number, ctx: Context): Promise<Built> {
  const tmp = `${path}.partial`;
  for (const f of [tmp, `${tmp}-wal`, `${tmp}-shm`]) rmSync(f, { force: true });
  const ledger = openLedgerDb(`sqlite:${tmp}`);
  await migrateToLatest(ledger);
  await ledger.close();

  const t0 = performance.now();
  const db = new DatabaseSync(tmp);
  // Throwaway until renamed: nothing to protect from a crash, so no syncing.
  db.exec('PRAGMA synchronous = OFF; PRAGMA cache_size = -1048576; PRAGMA temp_store = MEMORY;');
  const indexes = db.prepare(`SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL AND tbl_name IN ('address_intervals', 'instances')`).all() as Array<{ name: string; sql: string }>;
  for (const ix of indexes) db.exec(`DROP INDEX "${ix.name}"`);
  // The triggers that copy instance columns onto intervals (0018) would look each row up: the copies are filled once after the load.
  const triggers = db.prepare(`SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name IN ('address_intervals', 'instances')`).all() as Array<{ name: string; sql: string }>;
  for (const t of triggers) db.exec(`DROP TRIGGER "${t.name}"`);

  const PER = 40;
  const intervalSql = `INSERT INTO address_intervals (${INTERVAL_COLUMNS.join(', ')}) VALUES `;
  const instanceSql = `INSERT INTO instances (${INSTANCE_COLUMNS.join(', ')}) VALUES `;
  const manyIntervals = db.prepare(intervalSql + placeholders(INTERVAL_COLUMNS.length, PER));
  const manyInstances = db.prepare(instanceSql + placeholders(INSTANCE_COLUMNS.length, PER));
  const oneInterval = db.prepare(intervalSql + placeholders(INTERVAL_COLUMNS.length, 1));
  const oneInstance = db.prepare(instanceSql + placeholders(INSTANCE_COLUMNS.length, 1));
  let intervalBuf: SQLInputValue[] = [];
  let instanceBuf: SQLInputValue[] = [];
  const sink = {
    interval(row: Row) {
      for (const v of row) intervalBuf.push(v);
      if (intervalBuf.length === PER * INTERVAL_COLUMNS.length) {
        manyIntervals.run(...intervalBuf);
        intervalBuf = [];
      }
    },
    instance(row: Row) {
      for (const v of row) instanceBuf.push(v);
      if (instanceBuf.length === PER * INSTANCE_COLUMNS.length) {
        manyInstances.run(...instanceBuf);
        instanceBuf = [];
      }
    },
  };
  db.exec('BEGIN');
  const gen = generate(size, sink);
  let step = gen.next();
  let sinceCommit = 0;
  while (step.done !== true) {
    sinceCommit += 1;
    if (sinceCommit >= 8) {
      db.exec('COMMIT; BEGIN');
      sinceCommit = 0;
    }
    const done = step.value;
    const s = (performance.now() - t0) / 1000;
    ctx.progress.update(`sqlite ${sizeLabel(size)}: ${done}/${size} intervals (${Math.round(done / s)}/s)`);
    step = gen.next();
  }
  const generated = step.value;
  for (let i = 0; i < intervalBuf.length; i += INTERVAL_COLUMNS.length) oneInterval.run(...intervalBuf.slice(i, i + INTERVAL_COLUMNS.length));
  for (let i = 0; i < instanceBuf.length; i += INSTANCE_COLUMNS.length) oneInstance.run(...instanceBuf.slice(i, i + INSTANCE_COLUMNS.length));
  db.exec('COMMIT');
  const generationSeconds = (performance.now() - t0) / 1000;
  ctx.progress.log(`sqlite ${sizeLabel(size)}: ${generated.intervals} intervals, ${generated.instances} instances written in ${round(generationSeconds, 1)} s; building ${indexes.length} indexes`);
  const t1 = performance.now();
  if (triggers.length > 0) {
    ctx.progress.update(`sqlite ${sizeLabel(size)}: instance copies`);
    db.exec(backfillSql('sqlite', () => true));
  }
  for (const ix of indexes) {
    ctx.progress.update(`sqlite ${sizeLabel(size)}: index ${ix.name}`);
    db.exec(ix.sql);
  }
  for (const t of triggers) db.exec(t.sql);
  const indexSeconds = (performance.now() - t1) / 1000;
  db.exec('PRAGMA wal_checkpoint(TRUNCATE)');
  db.close();
  for (const f of [path, `${path}-wal`, `${path}-shm`]) rmSync(f, { force: true });
  renameSync(tmp, path);
  for (const f of [`${tmp}-wal`, `${tmp}-shm`]) rmSync(f, { force: true });
  const { samples, ...stats } = generated;
  return { stats, samples, generationSeconds, indexSeconds, bytes: statSync(path).size };
}

/**
 * Reads the whole file once so that the timed queries meet a warm page cache
 * whatever ran on the machine before (a 10M ledger is several GiB). The
 * figures are warm-cache latencies; a cold cache adds disk reads to each.
 */
function prewarm(path: string): number {
  const t0 = performance.now();
  const fd = openSync(path, 'r');
  const buf = Buffer.allocUnsafe(8 << 20);
  try {
    let pos = 0;
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, pos);
      if (n <= 0) break;
      pos += n;
    }
  } finally {
    closeSync(fd);
  }
  return (performance.now() - t0) / 1000;
}

export async function sqliteLedger(size: number, ctx: Context, rebuild: boolean): Promise<{ ledger: LedgerDb; built: Built; cached: boolean; metaPath: string }> {
  const path = join(ctx.outDir, `trace-v${GENERATOR_VERSION}-${size}.sqlite`);
  const metaPath = `${path}.json`;
  let built: Built | undefined;
  let cached = false;
  if (!rebuild && existsSync(path) && existsSync(metaPath)) {
    built = JSON.parse(readFileSync(metaPath, 'utf8')) as Built;
    cached = true;
    ctx.progress.log(`sqlite ${sizeLabel(size)}: using cached ${path} (built in ${round(built.generationSeconds + built.indexSeconds)} s)`);
  } else {
    ctx.progress.log(`sqlite ${sizeLabel(size)}: generating ${path}`);
    rmSync(metaPath, { force: true });
    built = await buildSqlite(path, size, ctx);
    writeFileSync(metaPath, JSON.stringify(built));
  }
  const warmSeconds = prewarm(path);
  ctx.note(`sqlite ${sizeLabel(size)}: database file read once before timing (${round(warmSeconds, 1)} s) so that the page cache is warm.`);
  const ledger = openLedgerDb(`sqlite:${path}`);
  // A cache made before a newer migration gets it here, like a real ledger would.
  await migrateToLatest(ledger);
  return { ledger, built, cached, metaPath };
}

// ---------------------------------------------------------------------------
// PostgreSQL: built in this run's database.

const PG_TYPES: Record<string, string> = { valid_from: 'bigint', valid_to: 'bigint', created_at: 'bigint', deleted_at: 'bigint', first_seen_at: 'bigint', last_event_at: 'bigint' };

function unnestInsert(table: string, columns: readonly string[]): string {
  const arrays = columns.map((c, i) => `$${i + 1}::${PG_TYPES[c] ?? 'text'}[]`).join(', ');
  return `INSERT INTO ${table} (${columns.join(', ')}) SELECT * FROM unnest(${arrays})`;
}

class Columnar {
  readonly columns: Array<Array<string | number | null>>;
  length = 0;
  constructor(width: number) {
    this.columns = Array.from({ length: width }, () => []);
  }
  push(row: Row): void {
    for (let i = 0; i < row.length; i++) (this.columns[i] as Array<string | number | null>).push(row[i] ?? null);
    this.length += 1;
  }
  /** Up to `max` rows, as one array per column (what unnest() takes). */
  take(max: number): Array<Array<string | number | null>> {
    const n = Math.min(max, this.length);
    this.length -= n;
    return this.columns.map((c) => c.splice(0, n));
  }
}

const csvCell = (v: string | number | null): string => {
  if (v === null) return '';
  const t = String(v);
  // An empty string is quoted: unquoted, COPY would read it as NULL.
  return t === '' || /[",\n\r]/.test(t) ? `"${t.replace(/"/g, '""')}"` : t;
};

/** A `\copy … FROM STDIN` of one table through psql, fed CSV rows; resolves when psql has committed them. */
function psqlCopy(url: string, table: string, columns: readonly string[]) {
  const child = spawn('psql', [url, '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-c', 'SET synchronous_commit = off', '-c', `\\copy ${table} (${columns.join(', ')}) FROM pstdin WITH (FORMAT csv)`], { stdio: ['pipe', 'ignore', 'pipe'] });
  // A psql that fails closes the pipe: its exit status says why, not an EPIPE.
  child.stdin.on('error', () => undefined);
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
  const done = new Promise<void>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`psql \\copy ${table} exited ${String(code)}: ${stderr.trim()}`))));
  });
  let buf: string[] = [];
  return {
    row(r: Row) {
      buf.push(r.map(csvCell).join(','));
    },
    /** Hands what is buffered to psql and waits until its pipe takes more. */
    async flush(): Promise<void> {
      if (buf.length === 0) return;
      const text = `${buf.join('\n')}\n`;
      buf = [];
      if (!child.stdin.write(text)) await Promise.race([new Promise<void>((resolve) => child.stdin.once('drain', () => resolve())), done]);
    },
    async end(): Promise<void> {
      await this.flush();
      child.stdin.end();
      await done;
    },
  };
}

/**
 * Loads the generated rows with COPY (psql's \copy, one process per table),
 * some ten times faster than batched INSERTs on a loaded machine; undefined
 * when there is no psql, for the INSERT path.
 */
async function copyWithPsql(url: string, size: number, ctx: Context, t0: number): Promise<Generated | undefined> {
  if (spawnSync('psql', ['--version'], { stdio: 'ignore' }).status !== 0) return undefined;
  const intervals = psqlCopy(url, 'address_intervals', INTERVAL_COLUMNS);
  const instances = psqlCopy(url, 'instances', INSTANCE_COLUMNS);
  const gen = generate(size, { interval: (r) => intervals.row(r), instance: (r) => instances.row(r) });
  let step = gen.next();
  while (step.done !== true) {
    await Promise.all([intervals.flush(), instances.flush()]);
    const s = (performance.now() - t0) / 1000;
    ctx.progress.update(`postgres ${sizeLabel(size)}: ${step.value}/${size} intervals copied (${Math.round(step.value / s)}/s)`);
    step = gen.next();
  }
  await Promise.all([intervals.end(), instances.end()]);
  return step.value;
}

export async function buildPostgres(url: string, size: number, ctx: Context): Promise<{ ledger: LedgerDb; built: Built }> {
  const ledger = openLedgerDb(url);
  await migrateToLatest(ledger);
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(`SET synchronous_commit = off`);
    await client.query(`SET maintenance_work_mem = '512MB'`);
    const ix = await client.query<{ indexname: string; indexdef: string }>(
      `SELECT i.indexname, i.indexdef FROM pg_indexes i
        WHERE i.schemaname = current_schema() AND i.tablename IN ('address_intervals', 'instances')
          AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)`,
    );
    for (const r of ix.rows) await client.query(`DROP INDEX "${r.indexname}"`);
    // As on SQLite: the instance copies (0018) are filled once after the load, not by a trigger per row.
    const copies = (await client.query(`SELECT 1 FROM pg_trigger WHERE tgname = 'address_intervals_instance_copy'`)).rowCount === 1;
    if (copies) await client.query('ALTER TABLE address_intervals DISABLE TRIGGER USER; ALTER TABLE instances DISABLE TRIGGER USER');
    const fillCopies = async () => {
      if (!copies) return;
      await client.query(backfillSql('postgres', () => true));
      await client.query('ALTER TABLE address_intervals ENABLE TRIGGER USER; ALTER TABLE instances ENABLE TRIGGER USER');
    };
    const t0 = performance.now();
    const copied = await copyWithPsql(url, size, ctx, t0);
    if (copied !== undefined) {
      const generationSeconds = (performance.now() - t0) / 1000;
      ctx.progress.log(`postgres ${sizeLabel(size)}: copied in ${round(generationSeconds, 1)} s; building ${ix.rows.length} indexes`);
      const t1 = performance.now();
      await fillCopies();
      for (const r of ix.rows) {
        ctx.progress.update(`postgres ${sizeLabel(size)}: index ${r.indexname}`);
        await client.query(r.indexdef);
      }
      await client.query('VACUUM (ANALYZE) address_intervals, instances');
      const indexSeconds = (performance.now() - t1) / 1000;
      const bytes = await client.query<{ n: string }>(`SELECT pg_database_size(current_database())::text AS n`);
      const { samples, ...stats } = copied;
      return { ledger, built: { stats, samples, generationSeconds, indexSeconds, bytes: Number(bytes.rows[0]?.n ?? 0) } };
    }
    const intervals = new Columnar(INTERVAL_COLUMNS.length);
    const instances = new Columnar(INSTANCE_COLUMNS.length);
    const insertIntervals = unnestInsert('address_intervals', INTERVAL_COLUMNS);
    const insertInstances = unnestInsert('instances', INSTANCE_COLUMNS);
    const CHUNK = 8192;
    const flush = async (all: boolean) => {
      while (intervals.length >= CHUNK || (all && intervals.length > 0)) await client.query(insertIntervals, intervals.take(CHUNK));
      while (instances.length >= CHUNK || (all && instances.length > 0)) await client.query(insertInstances, instances.take(CHUNK));
    };
    const gen = generate(size, { interval: (r) => intervals.push(r), instance: (r) => instances.push(r) });
    await client.query('BEGIN');
    let step = gen.next();
    while (step.done !== true) {
      await flush(false);
      const s = (performance.now() - t0) / 1000;
      ctx.progress.update(`postgres ${sizeLabel(size)}: ${step.value}/${size} intervals (${Math.round(step.value / s)}/s)`);
      step = gen.next();
    }
    await flush(true);
    await client.query('COMMIT');
    const generationSeconds = (performance.now() - t0) / 1000;
    ctx.progress.log(`postgres ${sizeLabel(size)}: written in ${round(generationSeconds, 1)} s; building ${ix.rows.length} indexes`);
    const t1 = performance.now();
    await fillCopies();
    for (const r of ix.rows) {
      ctx.progress.update(`postgres ${sizeLabel(size)}: index ${r.indexname}`);
      await client.query(r.indexdef);
    }
    // Autovacuum would vacuum and analyze freshly loaded tables within minutes; doing it now keeps it from
    // running under the timed queries and gives the steady-state plans and visibility map.
    await client.query('VACUUM (ANALYZE) address_intervals, instances');
    const indexSeconds = (performance.now() - t1) / 1000;
    const bytes = await client.query<{ n: string }>(`SELECT pg_database_size(current_database())::text AS n`);
    const { samples, ...stats } = step.value;
    return { ledger, built: { stats, samples, generationSeconds, indexSeconds, bytes: Number(bytes.rows[0]?.n ?? 0) } };
  } catch (err) {
    await ledger.close();
    throw err;
  } finally {
    await client.end();
  }
}

/**
 * A PostgreSQL ledger of `size` intervals: built in this run's database, or
 * with `cache`, kept between runs in a database of its own (qop_bench_trace_vN_SIZE,
 * described by bench/out/qop_bench_trace_vN_SIZE.json) like the SQLite files,
 * since a 10M build takes 5 to 30 minutes. A cached ledger gets any newer
 * migration on opening, like a real one.
 */
/**
 * How the PostgreSQL server's buffer cache was sized, for the figures: a run on
 * a server whose shared_buffers is not the packaged default (128MB) gets
 * figures of its own (id and label), so that they never replace the default's.
 */
export async function serverBuffers(db: Kysely<LedgerSchema>): Promise<{ idSuffix: string; labelSuffix: string; note: string }> {
  const { rows } = await sql<{ shared_buffers: string }>`SHOW shared_buffers`.execute(db);
  const value = rows[0]?.shared_buffers ?? 'unknown';
  if (value === '128MB') return { idSuffix: '', labelSuffix: '', note: 'shared_buffers 128MB (the default)' };
  return { idSuffix: `.sb${value}`, labelSuffix: ` (shared_buffers ${value})`, note: `shared_buffers ${value}` };
}

export async function postgresLedger(ctx: Context, purpose: string, size: number, cache: boolean, prefix = 'qop_bench_trace'): Promise<{ ledger: LedgerDb; built: Built; cached: boolean }> {
  const runUrl = await ctx.services.postgresUrl(`${purpose}_${size}`);
  if (!cache) {
    ctx.progress.log(`postgres ${sizeLabel(size)}: generating`);
    return { ...(await buildPostgres(runUrl, size, ctx)), cached: false };
  }
  const name = `${prefix}_v${GENERATOR_VERSION}_${size}`;
  const metaPath = join(ctx.outDir, `${name}.json`);
  const url = new URL(runUrl);
  url.pathname = `/${name}`;
  const admin = new pg.Client({ connectionString: runUrl });
  await admin.connect();
  try {
    const exists = (await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [name])).rowCount === 1;
    if (exists && existsSync(metaPath)) {
      const built = JSON.parse(readFileSync(metaPath, 'utf8')) as Built;
      ctx.progress.log(`postgres ${sizeLabel(size)}: using cached database ${name} (built in ${round(built.generationSeconds + built.indexSeconds)} s)`);
      const ledger = openLedgerDb(url.toString());
      const applied = await migrateToLatest(ledger);
      if (applied.length > 0) await sql`VACUUM (ANALYZE) address_intervals`.execute(ledger.db);
      return { ledger, built, cached: true };
    }
    rmSync(metaPath, { force: true });
    await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  ctx.progress.log(`postgres ${sizeLabel(size)}: generating the cached database ${name}`);
  const { ledger, built } = await buildPostgres(url.toString(), size, ctx);
  writeFileSync(metaPath, JSON.stringify(built));
  return { ledger, built, cached: false };
}

/**
 * PostgreSQL's counterpart of prewarm(): reads the two indexes the trace
 * reads, whole, so that their pages are in the OS page cache whatever ran
 * before (the SQLite file of the same size is read before timing too, and
 * the machine cannot cache both ledgers at 10M). shared_buffers, the server's
 * own setting, holds a fraction of them whatever this does. Index-only scans
 * named by the columns they carry: seqscan and bitmap scans off for this one
 * connection.
 */
async function prewarmPostgres(db: Kysely<LedgerSchema>): Promise<number> {
  const t0 = performance.now();
  await db.connection().execute(async (c) => {
    await sql`SET enable_seqscan = off`.execute(c);
    await sql`SET enable_bitmapscan = off`.execute(c);
    try {
      await sql`SELECT count(to_certain) FROM address_intervals WHERE address > ''`.execute(c);
      await sql`SELECT count(gone_by) FROM instances WHERE cloud > ''`.execute(c);
    } finally {
      await sql`RESET enable_seqscan`.execute(c);
      await sql`RESET enable_bitmapscan`.execute(c);
    }
  });
  return (performance.now() - t0) / 1000;
}

// ---------------------------------------------------------------------------
// Timing

/** The question traceAddress() answers, written so that no index on the address can serve it. */
async function naiveTrace(db: Kysely<LedgerSchema>, address: string, at: Date): Promise<number> {
  const t = at.getTime();
  const r = await sql<{ cloud: string }>`
    SELECT a.cloud, a.kind, a.network, a.port, a.mac, a.project, a.valid_from, a.valid_to, a.instance_id,
           i.name, i.project AS instance_project, i.user_id, i.host, i.deleted_at
      FROM address_intervals AS a
      LEFT JOIN instances AS i ON i.cloud = a.cloud AND i.instance_id = a.instance_id
     WHERE (a.address || '') = ${address} AND a.valid_from <= ${t} AND (a.valid_to IS NULL OR a.valid_to > ${t})
     ORDER BY a.cloud, a.kind, a.valid_from`.execute(db);
  return r.rows.length;
}

interface Timed {
  ms: number[];
  holders: number[];
  kinds: Array<TraceQuery['kind']>;
}

async function timeQueries(queries: readonly TraceQuery[], run: (q: TraceQuery) => Promise<number>, ctx: Context, label: string): Promise<Timed> {
  const out: Timed = { ms: [], holders: [], kinds: [] };
  let lastUpdate = 0;
  for (let i = 0; i < queries.length; i++) {
    const q = queries[i]!;
    const t0 = performance.now();
    const n = await run(q);
    const t1 = performance.now();
    out.ms.push(t1 - t0);
    out.holders.push(n);
    out.kinds.push(q.kind);
    if (t1 - lastUpdate > 250) {
      lastUpdate = t1;
      ctx.progress.update(`${label}: ${i + 1}/${queries.length}`);
    }
  }
  return out;
}

function byKind(t: Timed, kind: TraceQuery['kind']): number[] {
  return t.ms.filter((_, i) => t.kinds[i] === kind);
}

async function measure(engine: Engine, size: number, ledger: LedgerDb, built: Built, cached: boolean, ctx: Context, queryCount: number, naiveSetting: string): Promise<Figure[]> {
  const label = `${engine} ${sizeLabel(size)}`;
  const queries = querySet(built.samples, queryCount);
  const warm = querySet(built.samples, Math.min(200, queryCount), 777);
  const real = (q: TraceQuery) => traceAddress(ledger.db, q.address, new Date(q.at)).then((r) => r.holders.length);
  if (engine === 'postgres' && ctx.param('trace-pg-prewarm') === 'true') {
    ctx.progress.update(`${label}: reading the trace indexes`);
    const s = await prewarmPostgres(ledger.db);
    ctx.note(`${label}: the trace's two indexes read whole once before timing (${round(s, 1)} s) so that the OS page cache holds them.`);
  }
  await timeQueries(warm, real, ctx, `${label}: warm-up`);
  const timed = await timeQueries(queries, real, ctx, `${label}: traceAddress`);
  // A full scan takes seconds at 10M; a smaller sample of the same queries bounds the run time.
  const naiveCount = naiveSetting === 'auto' ? Math.max(10, Math.min(queryCount, Math.round(1e8 / size))) : Number(naiveSetting);
  const naiveQueries = queries.slice(0, naiveCount);
  const naive = await timeQueries(naiveQueries, (q) => naiveTrace(ledger.db, q.address, new Date(q.at)), ctx, `${label}: full scan`);
  for (let i = 0; i < naiveQueries.length; i++) {
    if (naive.holders[i] !== timed.holders[i]) throw new Error(`${label}: the full scan found ${naive.holders[i]} holders of ${naiveQueries[i]!.address} where traceAddress found ${timed.holders[i]}`);
  }
  const all = summarize(timed.ms);
  const pub = summarize(byKind(timed, 'floating'));
  const priv = summarize(byKind(timed, 'fixed'));
  const scan = summarize(naive.ms);
  const holders = summarize(timed.holders);
  const privHolders = summarize(timed.holders.filter((_, i) => timed.kinds[i] === 'fixed'));
  const how = cached ? `cached database (built earlier in ${round(built.generationSeconds + built.indexSeconds)} s)` : `built in this run: ${round(built.generationSeconds)} s rows + ${round(built.indexSeconds)} s indexes`;
  const gib = built.bytes === undefined ? '' : `, ${round(built.bytes / 2 ** 30, 2)} GiB`;
  ctx.note(`${label}: ${built.stats.intervals.toLocaleString('en-US')} intervals, ${built.stats.instances.toLocaleString('en-US')} instances, ${built.stats.networks} tenant networks, ` +
    `${built.stats.publicAddresses} public addresses (${built.stats.floatingIntervals.toLocaleString('en-US')} floating intervals), ${built.stats.openIntervals.toLocaleString('en-US')} still open${gib}; ${how}. ` +
    `${queries.length} traceAddress() queries after ${warm.length} warm-up ones: p50 ${round(all.p50, 3)} ms, p90 ${round(all.p90, 3)} ms, p99 ${round(all.p99, 3)} ms, max ${round(all.max, 2)} ms; ` +
    `public addresses (${pub.n}) p50 ${round(pub.p50, 3)} / p99 ${round(pub.p99, 3)} ms, private (${priv.n}) p50 ${round(priv.p50, 3)} / p99 ${round(priv.p99, 3)} ms; ` +
    `holders per answer mean ${round(holders.mean, 1)}, max ${holders.max} (private: mean ${round(privHolders.mean, 1)}). ` +
    `Full scan over ${naive.ms.length} of the same queries: p50 ${round(scan.p50, 1)} ms, p99 ${round(scan.p99, 1)} ms (answers identical).`);
  const params = {
    engine, intervals: size, instances: built.stats.instances, queries: queries.length, warmup: warm.length, naiveQueries: naive.ms.length,
    cachedDatabase: cached, generationSeconds: round(built.generationSeconds, 1), indexSeconds: round(built.indexSeconds, 1), bytes: built.bytes,
    publicP50Ms: round(pub.p50, 3), publicP99Ms: round(pub.p99, 3), privateP50Ms: round(priv.p50, 3), privateP99Ms: round(priv.p99, 3),
    meanHolders: round(holders.mean, 2), maxHolders: holders.max, generatorVersion: GENERATOR_VERSION,
  };
  const buffers = engine === 'postgres' ? await serverBuffers(ledger.db) : { idSuffix: '', labelSuffix: '', note: '' };
  const engineName = (engine === 'sqlite' ? 'SQLite' : 'PostgreSQL') + buffers.labelSuffix;
  const target = size >= TARGET_SIZE ? { op: '<=' as const, value: TARGET_MS } : undefined;
  const server = buffers.note === '' ? '' : `; ${buffers.note}`;
  return [
    {
      figure: `trace.${engine}.${sizeLabel(size)}.p50${buffers.idSuffix}`, label: `trace ip p50, ${sizeLabel(size)} intervals, ${engineName}`,
      value: round(all.p50, 3), unit: 'ms', ceiling: round(scan.p50, 1), params,
      notes: `ceiling = full scan (${naive.ms.length} queries); public ${round(pub.p50, 3)} ms, private ${round(priv.p50, 3)} ms${server}`,
    },
    {
      figure: `trace.${engine}.${sizeLabel(size)}.p99${buffers.idSuffix}`, label: `trace ip p99, ${sizeLabel(size)} intervals, ${engineName}`,
      value: round(all.p99, 3), unit: 'ms', ceiling: round(scan.p99, 1), target, params,
      notes: `${queries.length} queries (70% public); public p99 ${round(pub.p99, 3)} ms, private p99 ${round(priv.p99, 3)} ms (mean ${round(privHolders.mean)} holders)${server}`,
    },
  ];
}

/**
 * Replaces the ledger's trace index by a candidate with other columns, times
 * the same queries, and puts the original back. SQLite keeps choosing the
 * original while both exist, so replacing is the only way to see the effect.
 */
async function measureCandidate(size: number, ledger: LedgerDb, built: Built, ctx: Context, queryCount: number, columns: string[]): Promise<Figure[]> {
  const label = `sqlite ${sizeLabel(size)}`;
  const found = await sql<{ name: string; sql: string }>`
    SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'address_intervals' AND sql IS NOT NULL`.execute(ledger.db);
  const current = found.rows.find((r) => /\(\s*"?address"?\s*,/.test(r.sql));
  if (current === undefined) throw new Error('no index on address_intervals starting with address');
  const wanted = columns.map((c) => `"${c}"`).join(', ');
  if (current.sql.replace(/\s+/g, ' ').includes(`(${wanted})`)) {
    ctx.note(`${label}: the ledger's own trace index already is (${columns.join(', ')}); no candidate measured.`);
    return [];
  }
  const t0 = performance.now();
  await sql.raw(`DROP INDEX "${current.name}"`).execute(ledger.db);
  try {
    await sql.raw(`CREATE INDEX bench_candidate_trace ON address_intervals (${wanted})`).execute(ledger.db);
    const buildSeconds = (performance.now() - t0) / 1000;
    const queries = querySet(built.samples, queryCount);
    const real = (q: TraceQuery) => traceAddress(ledger.db, q.address, new Date(q.at)).then((r) => r.holders.length);
    await timeQueries(querySet(built.samples, Math.min(200, queryCount), 777), real, ctx, `${label}: candidate warm-up`);
    const timed = await timeQueries(queries, real, ctx, `${label}: candidate index`);
    const all = summarize(timed.ms);
    const pub = summarize(byKind(timed, 'floating'));
    const priv = summarize(byKind(timed, 'fixed'));
    ctx.note(`${label} with the candidate index (${columns.join(', ')}) in place of ${current.name} (built in ${round(buildSeconds, 1)} s): ` +
      `p50 ${round(all.p50, 3)} ms, p99 ${round(all.p99, 3)} ms; public p99 ${round(pub.p99, 3)} ms, private p50 ${round(priv.p50, 3)} / p99 ${round(priv.p99, 3)} ms.`);
    const target = size >= TARGET_SIZE ? { op: '<=' as const, value: TARGET_MS } : undefined;
    return [{
      figure: `trace.sqlite.${sizeLabel(size)}.p99.candidate-index`, label: `trace ip p99, ${sizeLabel(size)} intervals, SQLite, with candidate index (${columns.join(', ')})`,
      value: round(all.p99, 3), unit: 'ms', target,
      params: { engine: 'sqlite', intervals: size, queries: queries.length, index: columns, replaces: current.sql, p50Ms: round(all.p50, 3), publicP99Ms: round(pub.p99, 3), privateP99Ms: round(priv.p99, 3) },
      notes: `not the shipped schema: what replacing ${current.name} would give; public p99 ${round(pub.p99, 3)} ms, private p99 ${round(priv.p99, 3)} ms`,
    }];
  } finally {
    await sql.raw('DROP INDEX IF EXISTS bench_candidate_trace').execute(ledger.db);
    ctx.progress.update(`${label}: restoring ${current.name}`);
    await sql.raw(current.sql).execute(ledger.db);
  }
}

export const trace: Scenario = {
  name: 'trace',
  description:
    '`trace ip` latency (the real traceAddress()) over 1M and 10M generated address intervals in the ledger schema, SQLite (cached in bench/out/) and PostgreSQL; ' +
    'the ceiling column holds the same query answered by a full scan (the baseline without the index), so there the ratio is the fraction of the scan time.',
  params: [
    { name: 'trace-sizes', description: 'interval counts for SQLite', default: '1000000,10000000' },
    { name: 'trace-pg-sizes', description: 'interval counts for PostgreSQL (rebuilt every run); empty to skip', default: '1000000,10000000' },
    { name: 'trace-queries', description: 'timed traceAddress() calls per database', default: '2000' },
    { name: 'trace-naive-queries', description: 'full-scan queries per database (auto: 10…2000 by size)', default: 'auto' },
    { name: 'trace-rebuild', description: 'regenerate cached SQLite databases', default: 'false' },
    { name: 'trace-pg-cache', description: 'keep the PostgreSQL ledgers between runs (databases qop_bench_trace_v1_SIZE) instead of rebuilding them', default: 'false' },
    { name: 'trace-pg-cache-prefix', description: 'name of the kept PostgreSQL ledgers before _vN_SIZE: another one for a branch whose migrations must not reach the shared ones', default: 'qop_bench_trace' },
    { name: 'trace-pg-prewarm', description: 'read the PostgreSQL trace indexes whole before timing, as the SQLite file is', default: 'true' },
    { name: 'trace-candidate-index', description: 'also time SQLite with the trace index replaced by one on these columns; empty to skip', default: 'address,valid_from,valid_to' },
  ],
  async run(ctx) {
    const sizes = sizesOf(ctx.param('trace-sizes'), '--trace-sizes');
    const pgSizes = sizesOf(ctx.param('trace-pg-sizes'), '--trace-pg-sizes');
    const queryCount = Number(ctx.param('trace-queries'));
    if (!Number.isInteger(queryCount) || queryCount < 10) throw new Error('--trace-queries must be an integer ≥ 10');
    const naive = ctx.param('trace-naive-queries');
    if (naive !== 'auto' && !(Number.isInteger(Number(naive)) && Number(naive) >= 1)) throw new Error('--trace-naive-queries must be auto or a positive integer');
    const rebuild = ctx.param('trace-rebuild') === 'true';
    const candidate = ctx.param('trace-candidate-index').split(',').map((c) => c.trim()).filter((c) => c !== '');
    for (const c of candidate) if (!/^[a-z_]+$/.test(c)) throw new Error(`--trace-candidate-index: "${c}" is not a column name`);
    ctx.note('Query mix: 70% public (floating) addresses, 30% private (fixed) ones, each drawn from a uniform sample of the generated intervals (so busy private addresses such as 10.0.0.x are drawn as often as they occur); 80% at a time inside the sampled interval, 20% at a uniformly random time. Latencies are warm-cache ones (the data set fits in RAM and is read once before timing); queries run one at a time, through the real traceAddress() and Kysely.');
    const figures: Figure[] = [];
    for (const size of sizes) {
      const { ledger, built, cached, metaPath } = await sqliteLedger(size, ctx, rebuild);
      try {
        figures.push(...(await measure('sqlite', size, ledger, built, cached, ctx, queryCount, naive)));
        if (candidate.length > 0) {
          // Without its description the cache counts as absent: a run interrupted while the
          // index is swapped rebuilds the database instead of reusing a changed schema.
          const meta = readFileSync(metaPath, 'utf8');
          rmSync(metaPath);
          figures.push(...(await measureCandidate(size, ledger, built, ctx, queryCount, candidate)));
          writeFileSync(metaPath, meta);
        }
      } finally {
        await ledger.close();
      }
      ctx.progress.log(`sqlite ${sizeLabel(size)}: done`);
    }
    for (const size of pgSizes) {
      const { ledger, built, cached } = await postgresLedger(ctx, 'trace', size, ctx.param('trace-pg-cache') === 'true', ctx.param('trace-pg-cache-prefix'));
      try {
        figures.push(...(await measure('postgres', size, ledger, built, cached, ctx, queryCount, naive)));
      } finally {
        await ledger.close();
      }
      ctx.progress.log(`postgres ${sizeLabel(size)}: done`);
    }
    return figures;
  },
};
