// Attribution in bulk: the holders of many (address, instant) pairs in a few
// queries. The pairs are sorted by address and time and turned into ranges of
// the trace index (trace-index.ts), merged where an address's windows
// overlap, so ten thousand log lines cost one round trip instead of ten
// thousand and a busy address is read once over each stretch of time; each
// address's lines are then answered in one pass over what its ranges
// returned, and the instances of the holders are read afterwards, each
// holder's once, in key order. Also the holders of one address over a window.
import { storedIp } from '../domain/ip.ts';
import { PostgresAdapter, sql, type Kysely } from 'kysely';
import type { LedgerSchema } from './schema.ts';
import { boundsOf, goneBetween, type Holder } from './trace.ts';
import { OPEN_END } from './migrations.ts';
import { OWNER_NAME_COLUMNS, ownerNames, type OwnerNameColumns } from './owner-names.ts';
import { OPEN_END_SQL, SPAN_BOUNDS, SQLITE_INSTANCES_INDEX, spanClassSql, type HolderRowBase, type IntervalColumns } from './trace-index.ts';

export interface Probe {
  address: string;
  at: Date;
}

interface Row extends HolderRowBase, OwnerNameColumns {
  k: number;
  from_certain?: number | null;
  to_certain?: number | null;
  gone_after?: number | null;
  gone_by?: number | null;
}

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(Number(ms)).toISOString());

/** The instance columns of a holder (null where the ledger has no row for its instance). */
interface InstanceRow extends OwnerNameColumns {
  name: string | null;
  instance_project: string | null;
  user_id: string | null;
  host: string | null;
  deleted_at: number | null;
  gone_after?: number | null;
  gone_by?: number | null;
}

const NO_INSTANCE_ROW: InstanceRow = { name: null, instance_project: null, user_id: null, host: null, deleted_at: null, gone_after: null, gone_by: null };

function toHolder(r: Row, t?: number): Holder {
  return {
    cloud: r.cloud, kind: r.kind, network: r.network, port: r.port, mac: r.mac, project: r.project,
    ...boundsOf(r, t),
    instance: r.instance_id === null ? null : {
      id: r.instance_id, name: r.name, project: r.instance_project ?? r.project, user: r.user_id, ...ownerNames(r), host: r.host, deletedAt: iso(r.deleted_at),
      ...goneBetween(r.gone_after, r.gone_by),
    },
  };
}

/** A candidate: an interval of one of the probes' addresses, without its instance (read afterwards, for holders only). */
interface Candidate extends IntervalColumns {
  address: string;
  id: number;
  from_certain: number | null;
  to_certain: number | null;
}

// The interval's columns only: the trace index carries them all (migration 0017), so the ranges are read
// from index entries. Its instance is read afterwards, once per instance that holds some probe: looked up
// here for every candidate, in the order the ranges return them (at random in a 1 GiB index at 10M), the
// join was two thirds of the query's time on PostgreSQL, and most candidates that are no holder of any
// probe paid for it too.
const CANDIDATE_COLUMNS = sql.raw('a.address, a.id, a.cloud, a.kind, a.network, a.port, a.mac, a.project, a.valid_from, a.valid_to, a.instance_id, a.from_certain, a.to_certain');

const INSTANCE_COLUMNS = sql.raw(`i.cloud, i.instance_id, i.name, i.project AS instance_project, i.user_id, i.host, i.deleted_at, i.gone_after, i.gone_by, ${OWNER_NAME_COLUMNS}`);

const isPostgres = (db: Kysely<LedgerSchema>) => db.getExecutor().adapter instanceof PostgresAdapter;

/**
 * One range of the trace index: intervals of `address` and length class
 * `cls` that began in (lo, hi] and had not ended by t. Every holder of any
 * probe the range stands for is among them.
 */
interface Range {
  address: string;
  cls: number;
  lo: number;
  hi: number;
  t: number;
}

/**
 * The index ranges that cover every probe: per address and length class, the
 * probes' windows (t - bound, t], overlapping ones merged, so an address
 * asked about many times is read once over each stretch of time rather than
 * once per line. Probes sorted by address, then time.
 */
function rangesOf(sorted: readonly Probe[]): Range[] {
  const out: Range[] = [];
  const bounds = [...SPAN_BOUNDS, Number.MAX_SAFE_INTEGER];
  let i = 0;
  while (i < sorted.length) {
    const address = (sorted[i] as Probe).address;
    let j = i;
    while (j < sorted.length && (sorted[j] as Probe).address === address) j++;
    for (const [cls, bound] of bounds.entries()) {
      // The last class (open, or longer than any bound) has no lower bound a real time could cross.
      const unbounded = cls === SPAN_BOUNDS.length;
      let run: Range | undefined;
      for (let k = i; k < j; k++) {
        const t = (sorted[k] as Probe).at.getTime();
        if (run !== undefined && (unbounded || t - bound <= run.hi)) run.hi = t;
        else {
          run = { address, cls, lo: unbounded ? Number.MIN_SAFE_INTEGER : t - bound, hi: t, t };
          out.push(run);
        }
      }
    }
    i = j;
  }
  return out;
}

/**
 * The query behind attribute, exported so its plan can be checked on each engine: the probes' index ranges
 * (rangesOf), each read as traceAddress reads one (trace-index.ts). Unordered: each probe's few holders are
 * put in traceAddress's order afterwards (rankOf), which costs less than sorting every candidate in the engine.
 */
export function attributeQuery(db: Kysely<LedgerSchema>, probes: readonly Probe[], cloud?: string) {
  const ranges = rangesOf([...probes].sort(byAddressThenTime));
  const onCloud = cloud === undefined ? sql`` : sql` AND a.cloud = ${cloud}`;
  // The ranges travel as one JSON text: pg's writing of JS arrays as array literals took longer than parsing
  // this in the server (over a second of client time for 100,000 lines).
  const json = JSON.stringify(ranges.map((r) => [r.address, r.cls, r.lo, r.hi, r.t]));
  if (isPostgres(db)) {
    // LATERAL, kept from being flattened by OFFSET 0: one index range per row of r, whatever the statistics say.
    return sql<Candidate>`SELECT ${CANDIDATE_COLUMNS}
      FROM (SELECT v ->> 0 AS address, (v ->> 1)::integer AS cls, (v ->> 2)::bigint AS lo, (v ->> 3)::bigint AS hi, (v ->> 4)::bigint AS t
        FROM json_array_elements(${json}::json) AS j(v)) AS r
      CROSS JOIN LATERAL (SELECT * FROM address_intervals AS a
        WHERE a.address = r.address AND ${sql.raw(spanClassSql('a.'))} = r.cls AND a.valid_from > r.lo AND a.valid_from <= r.hi
          AND COALESCE(a.valid_to, ${sql.raw(OPEN_END_SQL)}) > r.t${onCloud} OFFSET 0) AS a`;
  }
  // Materialized, the ranges are read from the JSON once rather than at every index entry compared;
  // CROSS JOIN makes SQLite loop over them and look each up in the trace index.
  return sql<Candidate>`WITH r AS MATERIALIZED (
      SELECT value ->> 0 AS address, value ->> 1 AS cls, value ->> 2 AS lo, value ->> 3 AS hi, value ->> 4 AS t FROM json_each(${json}))
    SELECT ${CANDIDATE_COLUMNS}
    FROM r
    CROSS JOIN address_intervals a
    WHERE a.address = r.address AND ${sql.raw(spanClassSql('a.'))} = r.cls AND a.valid_from > r.lo AND a.valid_from <= r.hi
      AND (a.valid_to IS NULL OR a.valid_to > r.t)${onCloud}`;
}

/**
 * The instances of the given keys, each row with its key's place in `keys` (n), exported so its plan can be
 * checked: one entry of instances_trace each (migration 0017). Looked up in key order, sorted by the engine,
 * so that consecutive lookups meet the index pages the previous ones read.
 */
export function instancesQuery(db: Kysely<LedgerSchema>, keys: ReadonlyArray<readonly [string, string]>) {
  const json = JSON.stringify(keys);
  if (isPostgres(db)) {
    return sql<InstanceRow & { n: number }>`SELECT k.n, ${INSTANCE_COLUMNS}
      FROM (SELECT v ->> 0 AS cloud, v ->> 1 AS instance_id, (n - 1)::integer AS n
        FROM json_array_elements(${json}::json) WITH ORDINALITY AS j(v, n) ORDER BY 1, 2) AS k
      CROSS JOIN LATERAL (SELECT * FROM instances AS i WHERE i.cloud = k.cloud AND i.instance_id = k.instance_id OFFSET 0) AS i`;
  }
  return sql<InstanceRow & { n: number }>`WITH k AS MATERIALIZED (
      SELECT value ->> 0 AS cloud, value ->> 1 AS instance_id, key AS n FROM json_each(${json}) ORDER BY 1, 2)
    SELECT k.n, ${INSTANCE_COLUMNS}
    FROM k CROSS JOIN instances AS i ${sql.raw(SQLITE_INSTANCES_INDEX)}
    WHERE i.cloud = k.cloud AND i.instance_id = k.instance_id`;
}

/** The given texts' places in the engine's own order of the column type (its collation), which traceAddress's ORDER BY follows. */
async function engineOrder(db: Kysely<LedgerSchema>, values: readonly string[]): Promise<Map<string, number>> {
  const rows = isPostgres(db)
    ? (await sql<{ v: string }>`SELECT v FROM unnest(${values}::text[]) AS u(v) ORDER BY v`.execute(db)).rows
    : (await sql<{ v: string }>`SELECT value AS v FROM json_each(${JSON.stringify(values)}) ORDER BY v`.execute(db)).rows;
  return new Map(rows.map((r, i) => [r.v, i]));
}

function byAddressThenTime(a: Probe, b: Probe): number {
  return a.address < b.address ? -1 : a.address > b.address ? 1 : a.at.getTime() - b.at.getTime();
}

/** A candidate in an address's sweep, with its place in the answer's order and, once built, its Holder. */
interface Entry {
  rank: number;
  /** Its (cloud, kind) in the answer's order. */
  group: number;
  from: number;
  to: number | null;
  row: Candidate;
  /** Its instance's row, once read. */
  instance: InstanceRow | undefined;
  /** The holder as every line sees it, when that does not depend on the line's time (no uncertainty window). */
  holder: Holder | undefined;
}

const byRank = (a: Entry, b: Entry) => a.rank - b.rank;

/**
 * The candidate as a holder at t. An interval with no uncertainty window reads
 * the same at every t, so its Holder is built once and shared by every line it
 * answers (a busy private address's holders answer many lines): at 100,000
 * lines and some 1.75 million holders, building and collecting a copy per
 * line was most of the time spent outside the query. Answers are read-only.
 */
function holderAt(c: Entry, t: number): Holder {
  const r = c.row;
  const windowed = r.from_certain !== null || r.to_certain !== null;
  if (!windowed && c.holder !== undefined) return c.holder;
  const i = c.instance ?? NO_INSTANCE_ROW;
  // toHolder's object, built from the interval and its instance row as they are (no merged copy of both per holder).
  const h: Holder = {
    cloud: r.cloud, kind: r.kind, network: r.network, port: r.port, mac: r.mac, project: r.project,
    ...boundsOf(r, t),
    instance: r.instance_id === null ? null : {
      id: r.instance_id, name: i.name, project: i.instance_project ?? r.project, user: i.user_id, ...ownerNames(i), host: i.host, deletedAt: iso(i.deleted_at),
      ...goneBetween(i.gone_after, i.gone_by),
    },
  };
  if (!windowed) c.holder = h;
  return h;
}

/** Ranges per query: bounds the statement's size and the rows held at once. */
const RANGES = 50_000;

/**
 * Runs `q` on PostgreSQL without JIT compilation, which the planner would
 * start for a query this size and which costs more than the lookups
 * themselves (over a second for 20,000 lines), and with room to sort the
 * instance keys in memory.
 */
async function withSettings<T>(db: Kysely<LedgerSchema>, q: (db: Kysely<LedgerSchema>) => Promise<T>): Promise<T> {
  if (!isPostgres(db)) return q(db);
  const run = async (trx: Kysely<LedgerSchema>) => {
    await sql`SET LOCAL jit = off`.execute(trx);
    await sql`SET LOCAL work_mem = '64MB'`.execute(trx);
    return q(trx);
  };
  // Inside the caller's transaction the settings last until it ends; they change no answer.
  return db.isTransaction ? run(db) : db.transaction().execute(run);
}

/** For each probe (same index), every holder at its instant; repeated probes are asked once. */
export async function attribute(db: Kysely<LedgerSchema>, given: readonly Probe[], cloud?: string): Promise<Holder[][]> {
  // The ledger holds one spelling per address (RFC 5952 for IPv6); a log line may use another.
  const probes = given.map((p) => ({ ...p, address: storedIp(p.address) }));
  const unique: Probe[] = [];
  const slot = new Map<string, number>();
  const index = probes.map((p) => {
    const key = `${p.address} ${p.at.getTime()}`;
    let i = slot.get(key);
    if (i === undefined) {
      i = unique.length;
      slot.set(key, i);
      unique.push(p);
    }
    return i;
  });
  const found: Holder[][] = unique.map(() => []);
  // In address-then-time order: each address's probes are answered together, from the intervals
  // the index ranges of all of them return, in one pass over those intervals by start.
  const order = unique.map((_, i) => i).sort((a, b) => byAddressThenTime(unique[a] as Probe, unique[b] as Probe));
  // Chunks of whole addresses, so that every address's probes meet all its candidates.
  const chunks: number[][] = [];
  let start = 0;
  while (start < order.length) {
    let end = start;
    let ranges = 0;
    while (end < order.length && ranges < RANGES) {
      const address = (unique[order[end] as number] as Probe).address;
      while (end < order.length && (unique[order[end] as number] as Probe).address === address) end++;
      ranges += SPAN_BOUNDS.length + 1;
    }
    chunks.push(order.slice(start, end));
    start = end;
  }
  const answer = (chunk: readonly number[]) => withSettings(db, async (q) => {
    const rows = (await attributeQuery(q, chunk.map((i) => unique[i] as Probe), cloud).execute(q)).rows;
    if (rows.length === 0) return;
    // traceAddress orders holders by cloud, kind, start, id, the texts in the engine's collation.
    const clouds = await engineOrder(q, [...new Set(rows.map((r) => r.cloud))]);
    const kinds = await engineOrder(q, [...new Set(rows.map((r) => r.kind))]);
    const byAddress = new Map<string, Entry[]>();
    const kindCount = kinds.size;
    for (const row of rows) {
      let list = byAddress.get(row.address);
      if (list === undefined) byAddress.set(row.address, (list = []));
      const group = (clouds.get(row.cloud) as number) * kindCount + (kinds.get(row.kind) as number);
      list.push({ rank: 0, group, from: Number(row.valid_from), to: row.valid_to === null ? null : Number(row.valid_to), row, instance: undefined, holder: undefined });
    }
    for (const list of byAddress.values()) {
      list.sort((a, b) => a.group - b.group || a.from - b.from || Number(a.row.id) - Number(b.row.id));
      for (const [rank, e] of list.entries()) e.rank = rank;
      list.sort((a, b) => a.from - b.from);
    }
    // One sweep per address: probes by time, candidates by start; the ones begun and not ended hold.
    const held: Array<{ i: number; t: number; holders: Entry[] }> = [];
    // Every holder with an instance, once: its instance is read for it (an instance behind two of them is read twice, which is rare).
    const waiting: Entry[] = [];
    let k = 0;
    while (k < chunk.length) {
      const address = (unique[chunk[k] as number] as Probe).address;
      const candidates = byAddress.get(address) ?? [];
      let next = 0;
      let open: Entry[] = [];
      for (; k < chunk.length && (unique[chunk[k] as number] as Probe).address === address; k++) {
        const i = chunk[k] as number;
        const t = (unique[i] as Probe).at.getTime();
        // A new array per probe: the previous one is that probe's answer.
        const still: Entry[] = [];
        for (const c of open) if (c.to === null || c.to > t) still.push(c);
        while (next < candidates.length && (candidates[next] as Entry).from <= t) {
          const c = candidates[next++] as Entry;
          if (c.to === null || c.to > t) still.push(c);
        }
        // Kept in the answer's order: sorting an array that is already almost sorted costs little.
        open = still.sort(byRank);
        if (open.length === 0) continue;
        held.push({ i, t, holders: open });
        for (const c of open) {
          if (c.row.instance_id === null || c.instance !== undefined) continue;
          c.instance = NO_INSTANCE_ROW;
          waiting.push(c);
        }
      }
    }
    if (waiting.length > 0) {
      const keys = waiting.map((c) => [c.row.cloud, c.row.instance_id as string] as const);
      for (const r of (await instancesQuery(q, keys).execute(q)).rows) (waiting[r.n] as Entry).instance = r;
    }
    for (const h of held) found[h.i] = h.holders.map((c) => holderAt(c, h.t));
  });
  // On PostgreSQL two chunks at a time, on two connections of the pool: while the server reads one
  // chunk's ranges and instances, this process sorts out the other's answers. Inside a transaction
  // there is one connection, and SQLite answers synchronously, so one at a time there.
  const lanes = isPostgres(db) && !db.isTransaction ? 2 : 1;
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(lanes, chunks.length) }, async () => {
    while (next < chunks.length) await answer(chunks[next++] as number[]);
  }));
  return index.map((i) => found[i] ?? []);
}

/** Every holder of an address at any time in [from, to). */
export async function holdersDuring(db: Kysely<LedgerSchema>, address: string, from: Date, to: Date, cloud?: string): Promise<Holder[]> {
  let q = db
    .selectFrom('address_intervals as a')
    .leftJoin('instances as i', (j) => j.onRef('i.cloud', '=', 'a.cloud').onRef('i.instance_id', '=', 'a.instance_id'))
    .select([
      sql<number>`0`.as('k'), 'a.cloud', 'a.kind', 'a.network', 'a.port', 'a.mac', 'a.project', 'a.valid_from', 'a.valid_to', 'a.instance_id',
      'i.name', 'i.project as instance_project', 'i.user_id', 'i.host', 'i.deleted_at', 'a.from_certain', 'a.to_certain', 'i.gone_after', 'i.gone_by',
      'i.user_name', 'i.user_name_source', 'i.user_name_at', 'i.project_name', 'i.project_name_source', 'i.project_name_at',
    ])
    .where('a.address', '=', storedIp(address))
    .where('a.valid_from', '<', to.getTime())
    .where((eb) => isPostgres(db)
      ? sql<boolean>`coalesce(a.valid_to, ${sql.raw(OPEN_END.toString())}) > ${from.getTime()}`
      : eb.or([eb('a.valid_to', 'is', null), eb('a.valid_to', '>', from.getTime())]));
  if (cloud !== undefined) q = q.where('a.cloud', '=', cloud);
  const rows = await q.orderBy('a.valid_from').orderBy('a.cloud').orderBy('a.kind').execute();
  return rows.map((r) => toHolder({ ...r, name: r.name ?? null, instance_project: r.instance_project ?? null, user_id: r.user_id ?? null, host: r.host ?? null, deleted_at: r.deleted_at ?? null, gone_after: r.gone_after ?? null, gone_by: r.gone_by ?? null }));
}

/** Every interval overlapping [from, to), with its address, for export. */
export async function intervalsDuring(db: Kysely<LedgerSchema>, from: Date, to: Date, cloud?: string): Promise<Array<{ address: string; holder: Holder }>> {
  let q = db
    .selectFrom('address_intervals as a')
    .leftJoin('instances as i', (j) => j.onRef('i.cloud', '=', 'a.cloud').onRef('i.instance_id', '=', 'a.instance_id'))
    .select([
      sql<number>`0`.as('k'), 'a.address', 'a.cloud', 'a.kind', 'a.network', 'a.port', 'a.mac', 'a.project', 'a.valid_from', 'a.valid_to', 'a.instance_id',
      'i.name', 'i.project as instance_project', 'i.user_id', 'i.host', 'i.deleted_at', 'a.from_certain', 'a.to_certain', 'i.gone_after', 'i.gone_by',
    ])
    .where('a.valid_from', '<', to.getTime())
    .where((eb) => eb.or([eb('a.valid_to', 'is', null), eb('a.valid_to', '>', from.getTime())]));
  if (cloud !== undefined) q = q.where('a.cloud', '=', cloud);
  const rows = await q.orderBy('a.valid_from').orderBy('a.id').execute();
  return rows.map((r) => ({
    address: r.address,
    holder: toHolder({ ...r, name: r.name ?? null, instance_project: r.instance_project ?? null, user_id: r.user_id ?? null, host: r.host ?? null, deleted_at: r.deleted_at ?? null, gone_after: r.gone_after ?? null, gone_by: r.gone_by ?? null }),
  }));
}
