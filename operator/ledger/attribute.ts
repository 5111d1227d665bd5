// Attribution in bulk: the holders of many (address, instant) pairs in a few
// queries. The pairs are sorted by address and time and turned into ranges of
// the trace index (trace-index.ts), merged where an address's windows
// overlap, so ten thousand log lines cost one round trip instead of ten
// thousand and a busy address is read once over each stretch of time; each
// address's lines are then answered in one pass over what its ranges
// returned. Also the holders of one address over a window.
import { storedIp } from '../domain/ip.ts';
import { PostgresAdapter, sql, type Kysely } from 'kysely';
import type { LedgerSchema } from './schema.ts';
import { boundsOf, goneBetween, type Holder } from './trace.ts';
import { OPEN_END } from './migrations.ts';
import { OWNER_NAME_COLUMNS, ownerNames, type OwnerNameColumns } from './owner-names.ts';
import { OPEN_END_SQL, SPAN_BOUNDS, SQLITE_INSTANCES_INDEX, spanClassSql, type HolderRowBase } from './trace-index.ts';

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

/** A candidate: an interval with its address and instance, and its place in the answer's order (cloud, kind, start, id). */
interface Candidate extends Row {
  address: string;
}

const CANDIDATE_COLUMNS = sql.raw(`a.address, a.cloud, a.kind, a.network, a.port, a.mac, a.project, a.valid_from, a.valid_to, a.instance_id,
  i.name, i.project AS instance_project, i.user_id, i.host, i.deleted_at, a.from_certain, a.to_certain, i.gone_after, i.gone_by, ${OWNER_NAME_COLUMNS}`);

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

/** The query behind attribute, exported so its plan can be checked on each engine: the probes' index ranges (rangesOf), each read as traceAddress reads one (trace-index.ts). */
export function attributeQuery(db: Kysely<LedgerSchema>, probes: readonly Probe[], cloud?: string) {
  const ranges = rangesOf([...probes].sort(byAddressThenTime));
  const onCloud = cloud === undefined ? sql`` : sql` AND a.cloud = ${cloud}`;
  // Ordered as traceAddress orders its holders; each probe's holders keep this order.
  if (isPostgres(db)) {
    // LATERAL, kept from being flattened by OFFSET 0: one index range per row of r, whatever the statistics say.
    return sql<Candidate>`SELECT ${CANDIDATE_COLUMNS}
      FROM unnest(${ranges.map((r) => r.address)}::text[], ${ranges.map((r) => r.cls)}::integer[], ${ranges.map((r) => r.lo)}::bigint[],
        ${ranges.map((r) => r.hi)}::bigint[], ${ranges.map((r) => r.t)}::bigint[]) AS r(address, cls, lo, hi, t)
      CROSS JOIN LATERAL (SELECT * FROM address_intervals AS a
        WHERE a.address = r.address AND ${sql.raw(spanClassSql('a.'))} = r.cls AND a.valid_from > r.lo AND a.valid_from <= r.hi
          AND COALESCE(a.valid_to, ${sql.raw(OPEN_END_SQL)}) > r.t${onCloud} OFFSET 0) AS a
      LEFT JOIN instances i ON i.cloud = a.cloud AND i.instance_id = a.instance_id
      ORDER BY a.cloud, a.kind, a.valid_from, a.id`;
  }
  // Materialized, the ranges are read from the JSON once rather than at every index entry compared;
  // CROSS JOIN makes SQLite loop over them and look each up in the trace index.
  const json = JSON.stringify(ranges.map((r) => [r.address, r.cls, r.lo, r.hi, r.t]));
  return sql<Candidate>`WITH r AS MATERIALIZED (
      SELECT value ->> 0 AS address, value ->> 1 AS cls, value ->> 2 AS lo, value ->> 3 AS hi, value ->> 4 AS t FROM json_each(${json}))
    SELECT ${CANDIDATE_COLUMNS}
    FROM r
    CROSS JOIN address_intervals a
    LEFT JOIN instances i ${sql.raw(SQLITE_INSTANCES_INDEX)} ON i.cloud = a.cloud AND i.instance_id = a.instance_id
    WHERE a.address = r.address AND ${sql.raw(spanClassSql('a.'))} = r.cls AND a.valid_from > r.lo AND a.valid_from <= r.hi
      AND (a.valid_to IS NULL OR a.valid_to > r.t)${onCloud}
    ORDER BY a.cloud, a.kind, a.valid_from, a.id`;
}

function byAddressThenTime(a: Probe, b: Probe): number {
  return a.address < b.address ? -1 : a.address > b.address ? 1 : a.at.getTime() - b.at.getTime();
}

/** A candidate in an address's sweep, with its place in the answer's order and, once built, its Holder. */
interface Entry {
  rank: number;
  from: number;
  to: number | null;
  row: Candidate;
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
  const windowed = (r.from_certain ?? null) !== null || (r.to_certain ?? null) !== null;
  return windowed ? toHolder(r, t) : (c.holder ??= toHolder(r, t));
}

/** Ranges per query: bounds the statement's size and the rows held at once. */
const RANGES = 50_000;

/**
 * The query's rows. On PostgreSQL without JIT compilation, which the
 * planner would start for a query this size and which costs more than the
 * lookups themselves (over a second for 20,000 lines), and with room to sort
 * the candidates in memory.
 */
async function candidates(db: Kysely<LedgerSchema>, probes: readonly Probe[], cloud: string | undefined): Promise<Candidate[]> {
  if (!isPostgres(db)) return (await attributeQuery(db, probes, cloud).execute(db)).rows;
  const run = async (trx: Kysely<LedgerSchema>) => {
    await sql`SET LOCAL jit = off`.execute(trx);
    await sql`SET LOCAL work_mem = '64MB'`.execute(trx);
    return (await attributeQuery(trx, probes, cloud).execute(trx)).rows;
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
  let start = 0;
  while (start < order.length) {
    // A chunk of whole addresses, so that every address's probes meet all its candidates.
    let end = start;
    let ranges = 0;
    while (end < order.length && ranges < RANGES) {
      const address = (unique[order[end] as number] as Probe).address;
      while (end < order.length && (unique[order[end] as number] as Probe).address === address) end++;
      ranges += SPAN_BOUNDS.length + 1;
    }
    const chunk = order.slice(start, end);
    const rows = await candidates(db, chunk.map((i) => unique[i] as Probe), cloud);
    const byAddress = new Map<string, Entry[]>();
    for (const [rank, row] of rows.entries()) {
      let list = byAddress.get(row.address);
      if (list === undefined) byAddress.set(row.address, (list = []));
      list.push({ rank, from: Number(row.valid_from), to: row.valid_to === null ? null : Number(row.valid_to), row, holder: undefined });
    }
    for (const list of byAddress.values()) list.sort((a, b) => a.from - b.from);
    // One sweep per address: probes by time, candidates by start; the ones begun and not ended hold.
    let k = 0;
    while (k < chunk.length) {
      const address = (unique[chunk[k] as number] as Probe).address;
      const candidates = byAddress.get(address) ?? [];
      let next = 0;
      let open: Entry[] = [];
      for (; k < chunk.length && (unique[chunk[k] as number] as Probe).address === address; k++) {
        const i = chunk[k] as number;
        const t = (unique[i] as Probe).at.getTime();
        while (next < candidates.length && (candidates[next] as Entry).from <= t) open.push(candidates[next++] as Entry);
        // Kept in the answer's order: sorting an array that is already almost sorted costs little.
        open = open.filter((c) => c.to === null || c.to > t).sort(byRank);
        found[i] = open.map((c) => holderAt(c, t));
      }
    }
    start = end;
  }
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
