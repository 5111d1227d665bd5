// Attribution in bulk: the holders of many (address, instant) pairs in a few
// queries. The pairs are sorted by address and time and turned into ranges of
// the trace index (trace-index.ts), merged where an address's windows
// overlap, so ten thousand log lines cost one round trip instead of ten
// thousand and a busy address is read once over each stretch of time; each
// address's lines are then answered in one pass over what its ranges
// returned. Each candidate's index entry carries the copies of its
// instance's columns (migration 0018, instance-copies.ts), so a holder is
// answered whole from it. Also the holders of one address over a window.
import { storedIp } from '../domain/ip.ts';
import { PostgresAdapter, sql, type Kysely } from 'kysely';
import type { LedgerSchema } from './schema.ts';
import type { Holder } from './trace.ts';
import { holderOf, type HolderSource } from './trace-holder.ts';
import { OPEN_END } from './migrations.ts';
import { OPEN_END_SQL, SPAN_BOUNDS, spanClassSql } from './trace-index.ts';
import { CANDIDATE_COLUMNS, CANDIDATE_FIELDS, CANDIDATE_PLACE, candidateSource, certainCandidateHolder } from './candidate-values.ts';
import { onSqliteConnection } from './sqlite-driver.ts';

export interface Probe {
  address: string;
  at: Date;
}

// A candidate is an interval of one of the probes' addresses with the copies of its instance's columns
// (CANDIDATE_FIELDS): the trace index carries them all (migrations 0017 and 0018), so the ranges are read
// from index entries and nothing else. The instances were read in a second query, once per holder
// (646,482 lookups in instances_trace for 100,000 lines at 10M); the copies cost the candidates that hold
// no probe a few null or repeated columns each. Each row is first `g`, the number of its range's address
// in its chunk (rangesJson's g: a number per row instead of the address), and the interval's `id`.

/** Where a row's CANDIDATE_FIELDS begin, after g and id. */
const FIELDS_AT = 2;

const isPostgres = (db: Kysely<LedgerSchema>) => db.getExecutor().adapter instanceof PostgresAdapter;

/**
 * The probes without repeats, sorted by address, then time: the k-th address
 * of `addresses` has its times, ascending, at times[first[k] .. first[k + 1]).
 * A probe is known by its place in `times`.
 */
interface Sorted {
  addresses: string[];
  first: number[];
  times: number[];
}

/**
 * Sorts the probes (address and time of each) and drops repeats; `slot[i]` is
 * the i-th probe's place in `times`. Grouped by address first, so that only the
 * distinct addresses (about one in nine lines) are compared as strings, and
 * each address's times as numbers.
 */
function sortedOf(addresses: readonly string[], times: readonly number[]): { sorted: Sorted; slot: Int32Array } {
  const byAddress = new Map<string, number[]>();
  for (const [i, address] of addresses.entries()) {
    const list = byAddress.get(address);
    if (list === undefined) byAddress.set(address, [i]);
    else list.push(i);
  }
  // The default sort compares UTF-16 code units, as < does (byAddressThenTime's order).
  const names = [...byAddress.keys()].sort();
  const first = [0];
  const sortedTimes: number[] = [];
  const slot = new Int32Array(addresses.length);
  for (const name of names) {
    const list = byAddress.get(name) as number[];
    if (list.length > 1) list.sort((a, b) => (times[a] as number) - (times[b] as number));
    let previous: number | undefined;
    for (const i of list) {
      const t = times[i] as number;
      if (t !== previous) sortedTimes.push(t);
      slot[i] = sortedTimes.length - 1;
      previous = t;
    }
    first.push(sortedTimes.length);
  }
  return { sorted: { addresses: names, first, times: sortedTimes }, slot };
}

/** A number as JSON.stringify writes it: null for NaN and the infinities (an invalid time, which no row matches). */
const jsonNumber = (n: number) => (Number.isFinite(n) ? String(n) : 'null');

/**
 * The index ranges that cover the probes of addresses [from, to), as the
 * query's JSON: per address and length class, the probes' windows
 * (t - bound, t], overlapping ones merged, so an address asked about many
 * times is read once over each stretch of time rather than once per line.
 * Each range is [address, cls, lo, hi, t, g]: intervals of the address and
 * length class `cls` that began in (lo, hi] and had not ended by t, for the
 * address numbered g in its chunk. Every holder of any probe the range
 * stands for is among them. Written as text directly: some 220,000 ranges
 * for 100,000 lines, an array each and JSON.stringify cost more.
 */
function rangesJson(s: Sorted, from: number, to: number): string {
  const out: string[] = [];
  const last = SPAN_BOUNDS.length;
  for (let g = from; g < to; g++) {
    const head = `[${JSON.stringify(s.addresses[g] as string)},`;
    const tail = `,${g - from}]`;
    const a = s.first[g] as number;
    const b = s.first[g + 1] as number;
    for (let cls = 0; cls < last; cls++) {
      const bound = SPAN_BOUNDS[cls] as number;
      let t = s.times[a] as number;
      let hi = t;
      for (let k = a + 1; k < b; k++) {
        const next = s.times[k] as number;
        if (next - bound <= hi) hi = next;
        else {
          out.push(`${head}${cls},${jsonNumber(t - bound)},${jsonNumber(hi)},${jsonNumber(t)}${tail}`);
          t = hi = next;
        }
      }
      out.push(`${head}${cls},${jsonNumber(t - bound)},${jsonNumber(hi)},${jsonNumber(t)}${tail}`);
    }
    // The last class (open, or longer than any bound) has no lower bound a real time could cross: one range.
    out.push(`${head}${last},${Number.MIN_SAFE_INTEGER},${jsonNumber(s.times[b - 1] as number)},${jsonNumber(s.times[a] as number)}${tail}`);
  }
  return `[${out.join(',')}]`;
}

/** The candidates of the ranges (rangesJson), each with its range's address number `g` and its id. */
function candidatesQuery(db: Kysely<LedgerSchema>, json: string, cloud?: string) {
  const onCloud = cloud === undefined ? sql`` : sql` AND a.cloud = ${cloud}`;
  const select = sql.raw(CANDIDATE_COLUMNS);
  if (isPostgres(db)) {
    // LATERAL, kept from being flattened by OFFSET 0: one index range per row of r, whatever the statistics say.
    return sql<Record<string, unknown>>`SELECT r.g, a.id, ${select}
      FROM (SELECT v ->> 0 AS address, (v ->> 1)::integer AS cls, (v ->> 2)::bigint AS lo, (v ->> 3)::bigint AS hi, (v ->> 4)::bigint AS t, (v ->> 5)::integer AS g
        FROM json_array_elements(${json}::json) AS j(v)) AS r
      CROSS JOIN LATERAL (SELECT * FROM address_intervals AS a
        WHERE a.address = r.address AND ${sql.raw(spanClassSql('a.'))} = r.cls AND a.valid_from > r.lo AND a.valid_from <= r.hi
          AND COALESCE(a.valid_to, ${sql.raw(OPEN_END_SQL)}) > r.t${onCloud} OFFSET 0) AS a`;
  }
  // Materialized, the ranges are read from the JSON once rather than at every index entry compared;
  // CROSS JOIN makes SQLite loop over them and look each up in the trace index.
  return sql<Record<string, unknown>>`WITH r AS MATERIALIZED (
      SELECT value ->> 0 AS address, value ->> 1 AS cls, value ->> 2 AS lo, value ->> 3 AS hi, value ->> 4 AS t, value ->> 5 AS g FROM json_each(${json}))
    SELECT r.g, a.id, ${select}
    FROM r
    CROSS JOIN address_intervals a
    WHERE a.address = r.address AND ${sql.raw(spanClassSql('a.'))} = r.cls AND a.valid_from > r.lo AND a.valid_from <= r.hi
      AND (a.valid_to IS NULL OR a.valid_to > r.t)${onCloud}`;
}

/**
 * The query behind attribute, exported so its plan can be checked on each engine: the probes' index ranges
 * (rangesJson), each read as traceAddress reads one (trace-index.ts). Unordered: each probe's few holders are
 * put in traceAddress's order afterwards, which costs less than sorting every candidate in the engine.
 * The ranges travel as one JSON text: pg's writing of JS arrays as array literals took longer than parsing
 * this in the server (over a second of client time for 100,000 lines).
 */
export function attributeQuery(db: Kysely<LedgerSchema>, probes: readonly Probe[], cloud?: string) {
  const { sorted } = sortedOf(probes.map((p) => p.address), probes.map((p) => p.at.getTime()));
  return candidatesQuery(db, rangesJson(sorted, 0, sorted.addresses.length), cloud);
}

/** The given texts' places in the engine's own order of the column type (its collation), which traceAddress's ORDER BY follows. */
async function engineOrder(db: Kysely<LedgerSchema>, values: readonly string[]): Promise<Map<string, number>> {
  const rows = isPostgres(db)
    ? (await sql<{ v: string }>`SELECT v FROM unnest(${values}::text[]) AS u(v) ORDER BY v`.execute(db)).rows
    : (await sql<{ v: string }>`SELECT value AS v FROM json_each(${JSON.stringify(values)}) ORDER BY v`.execute(db)).rows;
  return new Map(rows.map((r, i) => [r.v, i]));
}

/**
 * A chunk's candidates, each known by its place in the order they were read:
 * what the sweep compares, in lists of numbers rather than an object per
 * candidate, and its holder, made as its row is read. On SQLite no row then
 * outlives its reading (some 700,000 at 10M, which the garbage collector
 * copied at every collection until the chunk was answered).
 */
class Candidates {
  /** The number of the candidate's address in the chunk (rangesJson's g). */
  readonly g: number[] = [];
  readonly id: number[] = [];
  readonly start: number[] = [];
  /** The end, Infinity while open (no line is at or after it). */
  readonly end: number[] = [];
  /** The candidate's cloud and kind, as places in cloudNames and kindNames: one string of each for all the rows (the holders keep them). */
  readonly cloudOf: number[] = [];
  readonly kindOf: number[] = [];
  readonly cloudNames: string[] = [];
  readonly kindNames: string[] = [];
  readonly #clouds = new Map<string, number>();
  readonly #kinds = new Map<string, number>();
  /** The holder as every line sees it, when that does not depend on the line's time (no uncertainty window): shared by every line it answers. */
  readonly holders: Array<Holder | undefined> = [];
  /** The rows of the others, for holderOf at each line's time. */
  readonly uncertain = new Map<number, HolderSource>();

  /** A candidate from its row's values, CANDIDATE_FIELDS from v[o] on. */
  add(g: number, id: number, v: readonly unknown[], o: number): void {
    const i = this.g.length;
    this.g.push(g);
    this.id.push(id);
    this.start.push(v[o + CANDIDATE_PLACE.validFrom] as number);
    const end = v[o + CANDIDATE_PLACE.validTo] as number | null;
    this.end.push(end === null ? Infinity : end);
    const c = Candidates.#place(this.#clouds, this.cloudNames, v[o + CANDIDATE_PLACE.cloud] as string);
    const k = Candidates.#place(this.#kinds, this.kindNames, v[o + CANDIDATE_PLACE.kind] as string);
    this.cloudOf.push(c);
    this.kindOf.push(k);
    const cloud = this.cloudNames[c] as string;
    const kind = this.kindNames[k] as string;
    if (v[o + CANDIDATE_PLACE.fromCertain] === null && v[o + CANDIDATE_PLACE.toCertain] === null) {
      this.holders.push(certainCandidateHolder(v, o, cloud, kind));
    } else {
      this.holders.push(undefined);
      this.uncertain.set(i, { ...candidateSource(v, o), cloud, kind });
    }
  }

  static #place(places: Map<string, number>, names: string[], name: string): number {
    let p = places.get(name);
    if (p === undefined) {
      p = names.length;
      places.set(name, p);
      names.push(name);
    }
    return p;
  }

  /** Candidate i as a holder at t. Answers are read-only. */
  holderAt(i: number, t: number): Holder {
    return this.holders[i] ?? holderOf(this.uncertain.get(i) as HolderSource, t);
  }
}

/** The candidates from rows of the plain columns (CANDIDATE_COLUMNS), by name. */
function fromPlainRows(rows: ReadonlyArray<Record<string, unknown>>): Candidates {
  const out = new Candidates();
  for (const row of rows) out.add(Number(row['g']), Number(row['id']), CANDIDATE_FIELDS.map((f) => row[f.name]), 0);
  return out;
}

/**
 * The candidates of the ranges in `json`. SQLite's rows are read as arrays
 * of values, one at a time, so that none outlives its reading. PostgreSQL's
 * come whole from node-postgres either way; packed into one text a row, as
 * the trace asks for them (trace-packed.ts), they cost the server as much
 * time formatting as they saved this process (100,000 lines at 10M, six
 * alternated runs: 5.8-6.2 s packed, 5.7-6.1 s plain).
 */
async function readCandidates(db: Kysely<LedgerSchema>, json: string, cloud: string | undefined): Promise<Candidates> {
  const query = candidatesQuery(db, json, cloud).compile(db);
  const read = isPostgres(db) ? undefined : await onSqliteConnection(db, (connection) => {
    const out = new Candidates();
    connection.eachRow(query.sql, query.parameters, (v) => out.add(v[0] as number, v[1] as number, v, FIELDS_AT));
    return out;
  });
  return read ?? fromPlainRows((await db.executeQuery(query)).rows);
}

/** A growable list of small integers. */
class IntList {
  items = new Int32Array(1024);
  length = 0;
  push(v: number): void {
    if (this.length === this.items.length) {
      const more = new Int32Array(this.items.length * 2);
      more.set(this.items);
      this.items = more;
    }
    this.items[this.length++] = v;
  }
}

/** Ranges per query: bounds the statement's size and the rows held at once. */
const RANGES = 50_000;

/** Addresses per query: each has at least SPAN_BOUNDS.length + 1 ranges. */
const ADDRESSES = Math.ceil(RANGES / (SPAN_BOUNDS.length + 1));

/**
 * Runs `q` on PostgreSQL without JIT compilation, which the planner would
 * start for a query this size and which costs more than the lookups
 * themselves (over a second for 20,000 lines).
 */
async function withSettings<T>(db: Kysely<LedgerSchema>, q: (db: Kysely<LedgerSchema>) => Promise<T>): Promise<T> {
  if (!isPostgres(db)) return q(db);
  const run = async (trx: Kysely<LedgerSchema>) => {
    await sql`SET LOCAL jit = off`.execute(trx);
    return q(trx);
  };
  // Inside the caller's transaction the settings last until it ends; they change no answer.
  return db.isTransaction ? run(db) : db.transaction().execute(run);
}

/** For each probe (same index), every holder at its instant; repeated probes are asked once. */
export async function attribute(db: Kysely<LedgerSchema>, given: readonly Probe[], cloud?: string): Promise<Holder[][]> {
  // The ledger holds one spelling per address (RFC 5952 for IPv6); a log line may use another.
  const { sorted, slot } = sortedOf(given.map((p) => storedIp(p.address)), given.map((p) => p.at.getTime()));
  const { times, first } = sorted;
  // Sized up front: on PostgreSQL a second chunk may answer before the first, and writing far past the end would make it a sparse array.
  const found = new Array<Holder[] | undefined>(times.length);
  // Each address's probes are answered together, from the intervals the index ranges of all of them
  // return, in one pass over those intervals by start; a chunk of whole addresses is one query.
  const answer = (from: number, to: number) => withSettings(db, async (q) => {
    const c = await readCandidates(q, rangesJson(sorted, from, to), cloud);
    const m = c.g.length;
    if (m === 0) return;
    // traceAddress orders holders by cloud, kind, start, id, the texts in the engine's collation.
    const clouds = await engineOrder(q, c.cloudNames);
    const kinds = await engineOrder(q, c.kindNames);
    const cloudRank = c.cloudNames.map((n) => clouds.get(n) as number);
    const kindRank = c.kindNames.map((n) => kinds.get(n) as number);
    const kindCount = kinds.size;
    const start = Float64Array.from(c.start);
    const end = Float64Array.from(c.end);
    const id = Float64Array.from(c.id);
    // The (cloud, kind) group for now; the rank is completed below.
    const rank = new Float64Array(m);
    // The candidates by address (counting sort on g): those of the chunk's g-th address at order[at[g] .. at[g + 1]).
    const at = new Int32Array(to - from + 1);
    for (let i = 0; i < m; i++) {
      rank[i] = (cloudRank[c.cloudOf[i] as number] as number) * kindCount + (kindRank[c.kindOf[i] as number] as number);
      (at[(c.g[i] as number) + 1] as number)++;
    }
    for (let g = 1; g < at.length; g++) (at[g] as number) += at[g - 1] as number;
    const order = new Int32Array(m);
    const fill = at.slice();
    for (let i = 0; i < m; i++) order[(fill[c.g[i] as number] as number)++] = i;
    const byStart = (a: number, b: number) => (start[a] as number) - (start[b] as number) || (id[a] as number) - (id[b] as number);
    const byRank = (a: number, b: number) => (rank[a] as number) - (rank[b] as number);
    // Each probe with holders (heldAt) and its holders, in the answer's order, at held[heldEnd[j - 1] .. heldEnd[j]).
    const heldAt = new IntList();
    const heldEnd = new IntList();
    const held = new IntList();
    const fresh: number[] = [];
    let open: number[] = [];
    let still: number[] = [];
    for (let g = from; g < to; g++) {
      const a = at[g - from] as number;
      const n = (at[g - from + 1] as number) - a;
      if (n === 0) continue;
      // By start (then id), which is also the answer's order within a (cloud, kind) group: the rank is
      // the group, then the place in this order.
      const candidates = order.subarray(a, a + n);
      if (n > 1) candidates.sort(byStart);
      for (let place = 0; place < n; place++) {
        const i = candidates[place] as number;
        rank[i] = (rank[i] as number) * n + place;
      }
      // One sweep: probes by time, candidates by start; the ones begun and not ended hold.
      let next = 0;
      open.length = 0;
      for (let k = first[g] as number; k < (first[g + 1] as number); k++) {
        const t = times[k] as number;
        fresh.length = 0;
        while (next < n && (start[candidates[next] as number] as number) <= t) {
          const c = candidates[next++] as number;
          if ((end[c] as number) > t) fresh.push(c);
        }
        if (fresh.length > 1) fresh.sort(byRank);
        // Those still held, merged in the answer's order with the ones begun since.
        still.length = 0;
        let f = 0;
        for (const c of open) {
          if ((end[c] as number) <= t) continue;
          while (f < fresh.length && (rank[fresh[f] as number] as number) < (rank[c] as number)) still.push(fresh[f++] as number);
          still.push(c);
        }
        while (f < fresh.length) still.push(fresh[f++] as number);
        const swap = open;
        open = still;
        still = swap;
        if (open.length === 0) continue;
        heldAt.push(k);
        for (const c of open) held.push(c);
        heldEnd.push(held.length);
      }
    }
    let p = 0;
    for (let j = 0; j < heldAt.length; j++) {
      const k = heldAt.items[j] as number;
      const t = times[k] as number;
      const stop = heldEnd.items[j] as number;
      const holders: Holder[] = [];
      for (; p < stop; p++) holders.push(c.holderAt(held.items[p] as number, t));
      found[k] = holders;
    }
  });
  const chunks: Array<[number, number]> = [];
  for (let g = 0; g < sorted.addresses.length; g += ADDRESSES) chunks.push([g, Math.min(g + ADDRESSES, sorted.addresses.length)]);
  // On PostgreSQL two chunks at a time, on two connections of the pool: while the server reads one
  // chunk's ranges, this process sorts out the other's answers. Inside a transaction
  // there is one connection, and SQLite answers synchronously, so one at a time there.
  const lanes = isPostgres(db) && !db.isTransaction ? 2 : 1;
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(lanes, chunks.length) }, async () => {
    while (next < chunks.length) {
      const [from, to] = chunks[next++] as [number, number];
      await answer(from, to);
    }
  }));
  return Array.from(slot, (k) => found[k] ?? []);
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
  return rows.map((r) => holderOf(r));
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
    holder: holderOf(r),
  }));
}
