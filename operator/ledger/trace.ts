// The investigator's question: who held this address at this time. Private
// addresses repeat across tenant networks, so every holder is returned, each
// with its network.
import { CompiledQuery, PostgresAdapter, type Kysely } from 'kysely';
import type { LedgerSchema } from './schema.ts';
import { traceStatement, type HolderRowBase } from './trace-index.ts';
import { PACKED_TRACE_COLUMNS, packedHolders, unpackRows, type PackedRow } from './trace-packed.ts';
import { storedIp } from '../domain/ip.ts';
import { holderOf } from './trace-holder.ts';
import type { OwnerNameColumns } from './owner-names.ts';
import type { OwnerNames } from '../domain/owner-names.ts';

export { boundsOf, goneBetween, type Bounds } from './bounds.ts';

export interface Holder {
  cloud: string;
  kind: string;
  network: string | null;
  port: string | null;
  mac: string | null;
  project: string | null;
  /** From when the holding is certain; with fromUncertainSince it may have begun earlier. */
  from: string;
  /** Until when the holding is certain (null: still held); with toUncertainUntil it may have lasted longer. */
  to: string | null;
  /**
   * Only for a start the ledger learnt from a listing of the cloud's API rather
   * than a notification: it began after this time (null: no earlier bound known).
   */
  fromUncertainSince?: string | null;
  /** Only for an end learnt from a listing: it ended by this time. */
  toUncertainUntil?: string;
  /** True when the asked time lies in an uncertainty window: the address may or may not have been held then. */
  uncertain?: true;
  /** Names beside the ids, present only where the cloud gave them, each with its source and read time. */
  instance: OwnerNames & {
    id: string;
    name: string | null;
    project: string | null;
    user: string | null;
    host: string | null;
    deletedAt: string | null;
    /** The API stopped listing the instance, with no notification of when: gone somewhere in this window. */
    goneBetween?: [string, string];
  } | null;
  /** For kind `router-gateway` (a SNAT address): the router, and the instances on the networks behind it at that time, as far as the ledger knows them. */
  router?: {
    id: string;
    name: string | null;
    behind: Array<{ instanceId: string; address: string; network: string | null }>;
  };
}

export interface AddressTrace {
  address: string;
  at: string;
  holders: Holder[];
}

interface TraceRow extends HolderRowBase, OwnerNameColumns {
  slot: string;
  from_certain: number | null;
  to_certain: number | null;
  gone_after: number | null;
  gone_by: number | null;
}

const onPostgres = (db: Kysely<LedgerSchema>) => db.getExecutor().adapter instanceof PostgresAdapter;

/**
 * The query behind traceAddress (trace-index.ts), exported so its plan can be
 * checked against the real database. On PostgreSQL its rows are packed
 * (trace-packed.ts) unless `plain`.
 */
export function traceQuery(db: Kysely<LedgerSchema>, address: string, at: Date, cloud?: string, plain = false): CompiledQuery<TraceRow | PackedRow> {
  const pg = onPostgres(db);
  const q = traceStatement(pg ? 'postgres' : 'sqlite', address, at.getTime(), cloud, pg && !plain ? PACKED_TRACE_COLUMNS : undefined);
  return CompiledQuery.raw(q.text, q.parameters) as CompiledQuery<TraceRow | PackedRow>;
}

/** `address` is looked up in its canonical form (callers validate it first: see canonicalIp). */
export async function traceAddress(db: Kysely<LedgerSchema>, given: string, at: Date, cloud?: string): Promise<AddressTrace> {
  const address = storedIp(given);
  let rows: TraceRow[] | undefined;
  if (onPostgres(db)) {
    // Packed (trace-packed.ts): the holders straight from them, or their rows where a router needs them.
    const packed = (await db.executeQuery(traceQuery(db, address, at, cloud) as CompiledQuery<PackedRow>)).rows;
    const holders = packedHolders(packed, at.getTime());
    if (holders !== undefined) return { address, at: at.toISOString(), holders };
    rows = unpackRows(packed) as TraceRow[] | undefined;
  }
  // SQLite, or the rare packing that cannot be undone exactly: the plain columns.
  rows ??= (await db.executeQuery(traceQuery(db, address, at, cloud, true) as CompiledQuery<TraceRow>)).rows;
  const routers = new Map<string, NonNullable<Holder['router']>>();
  for (const r of rows) {
    if (r.kind !== 'router-gateway') continue;
    const id = r.slot.slice('router-gw:'.length, r.slot.lastIndexOf('|'));
    routers.set(`${r.cloud}|${r.slot}`, await routerBehind(db, r.cloud, id, at.getTime()));
  }
  const t = at.getTime();
  return {
    address,
    at: at.toISOString(),
    holders: rows.map((r) => {
      const router = routers.size === 0 ? undefined : routers.get(`${r.cloud}|${r.slot}`);
      return router === undefined ? holderOf(r, t) : { router, ...holderOf(r, t) };
    }),
  };
}

/** The router and the instances whose fixed addresses were on a network with an interface of the router at `t`. */
async function routerBehind(db: Kysely<LedgerSchema>, cloud: string, id: string, t: number): Promise<NonNullable<Holder['router']>> {
  const router = await db.selectFrom('routers').select(['name']).where('cloud', '=', cloud).where('router_id', '=', id).executeTakeFirst();
  const interfaces = await db.selectFrom('ports').select('network').where('cloud', '=', cloud).where('device_id', '=', id)
    .where('device_owner', 'like', 'network:router_interface%')
    .where((eb) => eb.or([eb('deleted_at', 'is', null), eb('deleted_at', '>', t)])).execute();
  const networks = [...new Set(interfaces.map((i) => i.network).filter((n): n is string => n !== null))];
  const behind = networks.length === 0 ? [] : await db.selectFrom('address_intervals').select(['instance_id', 'address', 'network'])
    .where('cloud', '=', cloud).where('kind', '=', 'fixed').where('network', 'in', networks).where('instance_id', 'is not', null)
    .where('valid_from', '<=', t).where((eb) => eb.or([eb('valid_to', 'is', null), eb('valid_to', '>', t)]))
    .orderBy('instance_id').orderBy('address').execute();
  return { id, name: router?.name ?? null, behind: behind.map((b) => ({ instanceId: b.instance_id as string, address: b.address, network: b.network })) };
}
