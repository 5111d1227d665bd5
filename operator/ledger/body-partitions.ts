// PostgreSQL keeps notification bodies in one partition per calendar month
// (UTC) of receipt. Partitions are created ahead of time; a row whose month
// has none goes to the default partition and is moved out when its month is
// created.
import { sql, type Kysely } from 'kysely';

/** Months of partitions kept ready beyond the current one. */
export const MONTHS_AHEAD = 2;

export interface Month {
  /** notification_bodies_y2026m03 */
  name: string;
  from: number;
  to: number;
}

export function monthOf(t: number): Month {
  const d = new Date(t);
  const y = d.getUTCFullYear();
  const m = d.getUTCMonth();
  return {
    name: `notification_bodies_y${y}m${String(m + 1).padStart(2, '0')}`,
    from: Date.UTC(y, m, 1),
    to: Date.UTC(y, m + 1, 1),
  };
}

/** Every month from the one holding `from` to `MONTHS_AHEAD` after the one holding `until`. */
export function monthsBetween(from: number, until: number): Month[] {
  const out: Month[] = [];
  const last = monthOf(until);
  let m = monthOf(from);
  for (let i = 0; i < MONTHS_AHEAD; i++) last.to = monthOf(last.to).to;
  while (m.from < last.to) {
    out.push(m);
    m = monthOf(m.to);
  }
  return out;
}

/** The partitions of notification_bodies, by name. */
export async function bodyPartitions(db: Kysely<unknown>): Promise<string[]> {
  return (await sql<{ name: string }>`
    SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent
    WHERE p.relname = 'notification_bodies'`.execute(db)).rows.map((r) => r.name);
}

/**
 * The compression notification_bodies.body names (lz4 since migration 0019,
 * where the server has it), which a new partition must be given: a partition
 * made with LIKE takes it only with INCLUDING COMPRESSION, which servers
 * before 14 do not know, and an empty setting means the server's default.
 */
async function bodyCompression(db: Kysely<unknown>): Promise<'lz4' | 'pglz' | undefined> {
  const version = await sql<{ v: number | string }>`SELECT current_setting('server_version_num') AS v`.execute(db);
  if (Number(version.rows[0]?.v ?? 0) < 140000) return undefined;
  const r = await sql<{ c: string }>`SELECT attcompression::text AS c FROM pg_attribute WHERE attrelid = 'notification_bodies'::regclass AND attname = 'body'`.execute(db);
  const c = r.rows[0]?.c;
  return c === 'l' ? 'lz4' : c === 'p' ? 'pglz' : undefined;
}

/** Creates the monthly partitions missing between `from` and `until` (plus the months ahead); returns those created. */
export async function ensureBodyPartitions(db: Kysely<unknown>, from: number, until: number): Promise<string[]> {
  const existing = new Set(await bodyPartitions(db));
  const missing = monthsBetween(from, until).filter((m) => !existing.has(m.name));
  if (missing.length === 0) return [];
  const compression = await bodyCompression(db);
  const created: string[] = [];
  for (const m of missing) {
    const attach = async (trx: Kysely<unknown>) => {
      // Rows of this month that went to the default partition would make the new partition's bounds fail: move them.
      await sql`CREATE TABLE ${sql.table(m.name)} (LIKE notification_bodies INCLUDING DEFAULTS)`.execute(trx);
      if (compression !== undefined) await sql`ALTER TABLE ${sql.table(m.name)} ALTER COLUMN body SET COMPRESSION ${sql.raw(compression)}`.execute(trx);
      await sql`WITH moved AS (DELETE FROM notification_bodies_default WHERE received_at >= ${m.from} AND received_at < ${m.to} RETURNING *)
        INSERT INTO ${sql.table(m.name)} SELECT * FROM moved`.execute(trx);
      await sql`ALTER TABLE notification_bodies ATTACH PARTITION ${sql.table(m.name)} FOR VALUES FROM (${sql.lit(m.from)}) TO (${sql.lit(m.to)})`.execute(trx);
    };
    // Inside a migration the caller's transaction already holds it all.
    if (db.isTransaction) await attach(db);
    else await db.transaction().execute(attach);
    created.push(m.name);
  }
  return created;
}
