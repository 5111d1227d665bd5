// Attribution in bulk: the holders of many (address, instant) pairs in one
// query, the pairs passed as a single JSON parameter and joined against the
// trace index, so ten thousand log lines cost one round trip instead of ten
// thousand. Also the holders of one address over a window.
import { storedIp } from '../domain/ip.ts';
import { PostgresAdapter, sql, type Kysely } from 'kysely';
import type { LedgerSchema } from './schema.ts';
import { boundsOf, goneBetween, type Holder } from './trace.ts';
import { OPEN_END } from './migrations.ts';
import { OPEN_END_SQL, SPAN_CLASSES_SQL, spanClassSql } from './trace-index.ts';

export interface Probe {
  address: string;
  at: Date;
}

interface Row {
  k: number;
  cloud: string;
  kind: string;
  network: string | null;
  port: string | null;
  mac: string | null;
  project: string | null;
  valid_from: number;
  valid_to: number | null;
  instance_id: string | null;
  name: string | null;
  instance_project: string | null;
  user_id: string | null;
  host: string | null;
  deleted_at: number | null;
  from_certain?: number | null;
  to_certain?: number | null;
  gone_after?: number | null;
  gone_by?: number | null;
  /** The probe's instant, when the row answers one. */
  t?: number | null;
}

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(Number(ms)).toISOString());

function toHolder(r: Row): Holder {
  return {
    cloud: r.cloud, kind: r.kind, network: r.network, port: r.port, mac: r.mac, project: r.project,
    ...boundsOf(r, r.t === null || r.t === undefined ? undefined : Number(r.t)),
    instance: r.instance_id === null ? null : {
      id: r.instance_id, name: r.name, project: r.instance_project ?? r.project, user: r.user_id, host: r.host, deletedAt: iso(r.deleted_at),
      ...goneBetween(r.gone_after, r.gone_by),
    },
  };
}

const COLUMNS = sql.raw(`a.cloud, a.kind, a.network, a.port, a.mac, a.project, a.valid_from, a.valid_to, a.instance_id,
  i.name, i.project AS instance_project, i.user_id, i.host, i.deleted_at, a.from_certain, a.to_certain, i.gone_after, i.gone_by, q.t`);

const isPostgres = (db: Kysely<LedgerSchema>) => db.getExecutor().adapter instanceof PostgresAdapter;

/** The query behind attribute, exported so its plan can be checked on each engine: each probe looked up as traceAddress does (trace-index.ts). */
export function attributeQuery(db: Kysely<LedgerSchema>, probes: readonly Probe[], cloud?: string) {
  const json = JSON.stringify(probes.map((p, k) => ({ k, address: p.address, t: p.at.getTime() })));
  const onCloud = cloud === undefined ? sql`` : sql` AND a.cloud = ${cloud}`;
  if (isPostgres(db)) {
    // LATERAL, kept from being flattened by OFFSET 0: one index range per probe and length class.
    return sql<Row>`SELECT q.k, ${COLUMNS}
      FROM jsonb_to_recordset(${json}::jsonb) AS q(k integer, address text, t bigint)
      CROSS JOIN (${sql.raw(SPAN_CLASSES_SQL)}) AS c(cls, len)
      CROSS JOIN LATERAL (SELECT * FROM address_intervals AS a
        WHERE a.address = q.address AND ${sql.raw(spanClassSql('a.'))} = c.cls AND a.valid_from > q.t - c.len AND a.valid_from <= q.t
          AND COALESCE(a.valid_to, ${sql.raw(OPEN_END_SQL)}) > q.t${onCloud} OFFSET 0) AS a
      LEFT JOIN instances i ON i.cloud = a.cloud AND i.instance_id = a.instance_id
      ORDER BY q.k, a.cloud, a.kind, a.valid_from, a.id`;
  }
  // Materialized, the probes are read from the JSON once rather than at every index entry compared;
  // CROSS JOIN makes SQLite loop over them and the length classes and look each pair up in the trace index.
  return sql<Row>`WITH q AS MATERIALIZED (
      SELECT json_extract(value, '$.k') AS k, json_extract(value, '$.address') AS address, json_extract(value, '$.t') AS t FROM json_each(${json})),
    c(cls, len) AS (${sql.raw(SPAN_CLASSES_SQL)})
    SELECT q.k, ${COLUMNS}
    FROM q
    CROSS JOIN c
    CROSS JOIN address_intervals a
    LEFT JOIN instances i ON i.cloud = a.cloud AND i.instance_id = a.instance_id
    WHERE a.address = q.address AND ${sql.raw(spanClassSql('a.'))} = c.cls AND a.valid_from > q.t - c.len AND a.valid_from <= q.t
      AND (a.valid_to IS NULL OR a.valid_to > q.t)${onCloud}
    ORDER BY q.k, a.cloud, a.kind, a.valid_from, a.id`;
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
  if (unique.length > 0) {
    // In address-then-time order the lookups walk the trace index forwards, so the pages
    // one probe reads are mostly the ones the previous probe just read.
    const order = unique.map((_, i) => i).sort((a, b) => {
      const pa = unique[a];
      const pb = unique[b];
      if (pa === undefined || pb === undefined) return 0;
      return pa.address < pb.address ? -1 : pa.address > pb.address ? 1 : pa.at.getTime() - pb.at.getTime();
    });
    const { rows } = await attributeQuery(db, order.map((i) => unique[i]).filter((p): p is Probe => p !== undefined), cloud).execute(db);
    for (const r of rows) found[order[Number(r.k)] ?? -1]?.push(toHolder(r));
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
