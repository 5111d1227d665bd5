// `trace ip --at` without the query builder: the same question as
// traceAddress, written in each engine's SQL and run on node:sqlite or pg
// directly, because loading kysely (some 250 modules) costs more than the
// rest of the command together (BENCHMARKS.md, "cli"). It answers only when
// that is safe — the ledger exists, has every migration applied, nothing the
// intake applied waits to be derived (the full path derives it first), and no
// holder is a router's SNAT address (which needs the routers and ports) — and
// returns undefined otherwise, for the caller to take the full path, which also
// gives the proper one-line errors. A test keeps it equal to traceAddress.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import type PgModule from 'pg';
import { storedIp } from '../domain/ip.ts';
import type { AddressTrace } from './trace.ts';
import { traceStatement } from './trace-index.ts';
import { holderOf, type HolderSource } from './trace-holder.ts';
import { PACKED_TRACE_COLUMNS, packedHolders, unpackRows, type PackedRow } from './trace-packed.ts';

/** Every migration of migrations.ts (kept equal by a test): a ledger missing one takes the full path, which applies it. */
export const MIGRATION_NAMES: readonly string[] = [
  '0001_init', '0002_quarantine', '0003_trace_index', '0004_trace_index_pg', '0005_ledger_facts', '0006_canonical_addresses', '0007_audit_keyed',
  '0008_capture_intents', '0009_isolation', '0010_cases', '0011_reconciliation', '0012_notification_bodies', '0013_transfers',
  '0014_trace_span_index', '0015_fact_order_identity_names', '0016_name_sources', '0017_trace_covering_indexes', '0018_trace_instance_copies',
  '0019_ingest_indexes', '0020_drop_instances_trace', '0021_instance_copy_statements', '0022_derive_pending', '0023_derivation_lock', '0024_holder_slots',
];

export { OPEN_END_SQL } from './trace-index.ts';

function answer(address: string, at: Date, rows: readonly HolderSource[]): AddressTrace | undefined {
  if (rows.some((r) => r.kind === 'router-gateway')) return undefined;
  return { address, at: at.toISOString(), holders: rows.map((r) => holderOf(r, at.getTime())) };
}

const complete = (applied: readonly string[]) => MIGRATION_NAMES.every((m) => applied.includes(m));

async function onSqlite(path: string, address: string, at: Date, cloud: string | undefined): Promise<AddressTrace | undefined> {
  // A missing file would be created empty; the full path makes and migrates it.
  if (path === ':memory:' || !existsSync(path)) return undefined;
  const { DatabaseSync } = await import('node:sqlite');
  const db = new DatabaseSync(path, { readOnly: true, timeout: 5000 });
  try {
    const applied = db.prepare('SELECT name FROM kysely_migration').all().map((r) => String(r['name']));
    if (!complete(applied) || db.prepare('SELECT 1 FROM derive_pending LIMIT 1').get() !== undefined) return undefined;
    const q = traceStatement('sqlite', address, at.getTime(), cloud);
    const rows = db.prepare(q.text).all(...q.parameters) as unknown as HolderSource[];
    return answer(address, at, rows);
  } finally {
    db.close();
  }
}

async function onPostgres(url: string, address: string, at: Date, cloud: string | undefined): Promise<AddressTrace | undefined> {
  const pg = createRequire(import.meta.url)('pg') as typeof PgModule;
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 });
  // A connection that breaks after the answer must not end the process with an unhandled 'error'.
  client.on('error', () => undefined);
  await client.connect();
  try {
    const applied = await client.query<{ name: string }>('SELECT name FROM kysely_migration');
    if (!complete(applied.rows.map((r) => r.name)) || (await client.query('SELECT 1 FROM derive_pending LIMIT 1')).rows.length > 0) return undefined;
    // Packed as traceAddress asks (trace-packed.ts), and plain where the packing cannot be undone exactly.
    const packed = traceStatement('postgres', address, at.getTime(), cloud, PACKED_TRACE_COLUMNS);
    const rows = (await client.query<PackedRow>(packed.text, packed.parameters)).rows;
    const holders = packedHolders(rows, at.getTime());
    if (holders !== undefined) return { address, at: at.toISOString(), holders };
    const fields = unpackRows(rows);
    if (fields !== undefined) return answer(address, at, fields);
    const plain = traceStatement('postgres', address, at.getTime(), cloud);
    return answer(address, at, (await client.query<HolderSource>(plain.text, plain.parameters)).rows);
  } finally {
    await client.end();
  }
}

/**
 * traceAddress's answer for a ledger URL, or undefined when only the full
 * path can give it (or gives a better error: any failure here lands there).
 */
export async function traceDirect(url: string, given: string, at: Date, cloud?: string): Promise<AddressTrace | undefined> {
  const address = storedIp(given);
  try {
    if (url.startsWith('sqlite:')) return await onSqlite(url.slice('sqlite:'.length).replace(/^\/\/(?=\/)/, ''), address, at, cloud);
    if (/^postgres(ql)?:\/\//.test(url)) return await onPostgres(url, address, at, cloud);
  } catch {
    return undefined;
  }
  return undefined;
}
