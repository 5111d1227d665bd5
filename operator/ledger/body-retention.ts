// Notification bodies are the evidence and the bulk of the ledger. They expire
// on a retention of their own; what was derived from them (intervals,
// instances, ports) and the notifications rows themselves (ids, types, times
// and the body's SHA-256) stay. Every expiry is an audit record in the same
// transaction, and bodies that a standing legal hold concerns are kept.
//
// On PostgreSQL bodies are partitioned by month of receipt: whole months past
// the cutoff are detached and dropped, so the cutoff is rounded down to the
// first of a month there (bodies are kept up to a month longer than asked).
// Held bodies of a dropped month move to the default partition first. SQLite
// deletes the rows before the exact cutoff.
import { createHash } from 'node:crypto';
import { sql, type Kysely, type Transaction } from 'kysely';
import type { LedgerSchema } from './schema.ts';
import type { Engine } from './migrations.ts';
import { appendAudit } from './audit.ts';
import { holdActive, type HoldSelector } from '../domain/holds.ts';
import { ensureBodyPartitions, monthOf } from './body-partitions.ts';

type Tx = Transaction<LedgerSchema>;

const DAY_MS = 86_400_000;

export interface BodyRetentionOptions {
  /** Bodies received longer ago than this expire. */
  keepMs: number;
  now: Date;
  actor: string;
  /** Count only; change nothing and record nothing. */
  dryRun?: boolean;
}

export interface BodyPruneResult {
  /** Bodies received before this expired (rounded down to a month on PostgreSQL). */
  cutoff: Date;
  removed: number;
  /** Bodies past the cutoff kept because a standing hold concerns them. */
  keptUnderHold: number;
  /** PostgreSQL: the monthly partitions dropped. */
  partitionsDropped: string[];
  /** Lowest and highest notification id whose body went, when any did. */
  ids: { from: number; to: number } | null;
}

export class BodyRetentionError extends Error {
  override name = 'BodyRetentionError';
}

/** The retention from days, checked: at least one day, or bodies could go before anyone read them. */
export function retentionFromDays(days: number): number {
  if (!Number.isFinite(days) || days < 1) throw new BodyRetentionError(`body retention must be at least 1 day, got ${days}`);
  return days * DAY_MS;
}

/** Creates the monthly body partitions up to a few months ahead (PostgreSQL; nothing to do on SQLite). */
export async function prepareBodyPartitions(db: Kysely<LedgerSchema>, engine: Engine, now: Date): Promise<string[]> {
  if (engine !== 'postgres') return [];
  return ensureBodyPartitions(db as unknown as Kysely<unknown>, now.getTime(), now.getTime());
}

export async function pruneBodies(db: Kysely<LedgerSchema>, engine: Engine, o: BodyRetentionOptions): Promise<BodyPruneResult> {
  const exact = o.now.getTime() - o.keepMs;
  const cutoff = engine === 'postgres' ? monthOf(exact).from : exact;
  return db.transaction().execute(async (trx) => {
    const held = await heldBodies(trx, o.now, cutoff);
    const candidates = await sql<{ n: number | string; lo: number | string | null; hi: number | string | null }>`
      SELECT count(*) AS n, min(notification_id) AS lo, max(notification_id) AS hi FROM notification_bodies WHERE received_at < ${cutoff}`.execute(trx);
    const c = candidates.rows[0];
    const total = Number(c?.n ?? 0);
    const keptUnderHold = held.size;
    const result: BodyPruneResult = {
      cutoff: new Date(cutoff), removed: total - keptUnderHold, keptUnderHold, partitionsDropped: [],
      ids: total - keptUnderHold > 0 && c?.lo !== null && c?.hi !== null ? { from: Number(c?.lo), to: Number(c?.hi) } : null,
    };
    if (o.dryRun === true || result.removed === 0) return result;
    await fillDigests(trx, engine, cutoff);
    if (engine === 'postgres') result.partitionsDropped = await dropMonths(trx, cutoff, held);
    await deleteRows(trx, cutoff, held);
    await appendAudit(trx, {
      at: o.now, actor: o.actor, action: 'notification-bodies.pruned',
      details: {
        cutoff: result.cutoff.toISOString(), retentionDays: o.keepMs / DAY_MS, removed: result.removed, keptUnderHold,
        notificationIds: result.ids, partitionsDropped: result.partitionsDropped,
        // Each notification keeps the SHA-256 of its body (notifications.body_sha256): a copy kept elsewhere can still be matched.
        digestsKept: 'notifications.body_sha256',
      },
    });
    return result;
  });
}

/** Rows from before migration 0012 have no digest yet: it is taken from the body before the body goes. */
async function fillDigests(trx: Tx, engine: Engine, cutoff: number): Promise<void> {
  if (engine === 'postgres') {
    await sql`UPDATE notifications n SET body_sha256 = encode(sha256(convert_to(b.body, 'UTF8')), 'hex')
      FROM notification_bodies b WHERE b.notification_id = n.id AND n.body_sha256 IS NULL AND b.received_at < ${cutoff}`.execute(trx);
    return;
  }
  for (;;) {
    const rows = await trx.selectFrom('notifications as n').innerJoin('notification_bodies as b', 'b.notification_id', 'n.id')
      .select(['n.id', 'b.body']).where('n.body_sha256', 'is', null).where('b.received_at', '<', cutoff).limit(500).execute();
    if (rows.length === 0) return;
    for (const r of rows) {
      await trx.updateTable('notifications').set({ body_sha256: createHash('sha256').update(r.body).digest('hex') }).where('id', '=', r.id).execute();
    }
  }
}

/**
 * Notification ids past the cutoff whose bodies a standing hold concerns: the
 * notifications about a held instance (instance_events), and those that
 * reported a held address (address_changes). A hold on whole clouds keeps
 * every body of those clouds.
 */
async function heldBodies(trx: Tx, now: Date, cutoff: number): Promise<Set<number>> {
  const holds = await trx.selectFrom('holds').select(['selector', 'until']).where('released_at', 'is', null).execute();
  const ids = new Set<number>();
  const add = (rows: ReadonlyArray<{ id: number }>) => {
    for (const r of rows) ids.add(r.id);
  };
  for (const h of holds) {
    if (!holdActive({ name: '', selector: {}, until: h.until === null ? undefined : new Date(h.until) }, now)) continue;
    const s = JSON.parse(h.selector) as HoldSelector;
    const clouds = s.clouds ?? [];
    const others = [s.quarantines, s.instances, s.projects, s.users, s.addresses].some((l) => l !== undefined && l.length > 0);
    if (clouds.length > 0 && !others) {
      add(await trx.selectFrom('notification_bodies as b').innerJoin('notifications as n', 'n.id', 'b.notification_id').select('n.id')
        .where('b.received_at', '<', cutoff).where('n.cloud', 'in', clouds).execute());
      continue;
    }
    // The instances the hold names, directly or by owner or quarantine.
    const instances = new Set<string>();
    const byOwner = await trx.selectFrom('instances').select(['cloud', 'instance_id']).where((eb) => eb.or([
      ...(s.instances?.length ? [eb('instance_id', 'in', s.instances)] : []),
      ...(s.projects?.length ? [eb('project', 'in', s.projects)] : []),
      ...(s.users?.length ? [eb('user_id', 'in', s.users)] : []),
      eb.lit(false),
    ])).execute();
    for (const r of byOwner) if (clouds.length === 0 || clouds.includes(r.cloud)) instances.add(`${r.cloud}\u0000${r.instance_id}`);
    if (s.quarantines?.length) {
      for (const r of await trx.selectFrom('quarantines').select(['cloud', 'instance_id']).where('id', 'in', s.quarantines).execute()) instances.add(`${r.cloud}\u0000${r.instance_id}`);
    }
    for (const key of instances) {
      const [cloud, instanceId] = key.split('\u0000') as [string, string];
      add(await trx.selectFrom('instance_events as e').innerJoin('notifications as n', (j) => j.onRef('n.cloud', '=', 'e.cloud').onRef('n.message_id', '=', 'e.message_id'))
        .innerJoin('notification_bodies as b', 'b.notification_id', 'n.id')
        .select('n.id').where('e.cloud', '=', cloud).where('e.instance_id', '=', instanceId).where('b.received_at', '<', cutoff).execute());
    }
    // The reports of a held address in its window, and the instances that held it then.
    for (const a of s.addresses ?? []) {
      const from = a.from === undefined ? Number.MIN_SAFE_INTEGER : Date.parse(a.from);
      const to = a.to === undefined ? Number.MAX_SAFE_INTEGER : Date.parse(a.to);
      add(await trx.selectFrom('address_changes as c').innerJoin('notifications as n', (j) => j.onRef('n.cloud', '=', 'c.cloud').onRef('n.message_id', '=', 'c.message_id'))
        .innerJoin('notification_bodies as b', 'b.notification_id', 'n.id')
        .select('n.id').where('c.address', '=', a.address).where('c.at', '>=', from).where('c.at', '<', to).where('b.received_at', '<', cutoff)
        .$if(clouds.length > 0, (q) => q.where('c.cloud', 'in', clouds)).execute());
    }
  }
  return ids;
}

const CHUNK = 500;

/** PostgreSQL: whole months before the cutoff go by dropping their partition, their held bodies moved to the default partition first. */
async function dropMonths(trx: Tx, cutoff: number, held: ReadonlySet<number>): Promise<string[]> {
  const parts = await sql<{ name: string }>`
    SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent
    WHERE p.relname = 'notification_bodies' AND c.relname ~ '^notification_bodies_y[0-9]{4}m[0-9]{2}$' ORDER BY c.relname`.execute(trx);
  const dropped: string[] = [];
  const keep = [...held];
  for (const { name } of parts.rows) {
    const m = /y(\d{4})m(\d{2})$/.exec(name);
    if (m === null) continue;
    const end = Date.UTC(Number(m[1]), Number(m[2]), 1);
    if (end > cutoff) continue;
    await sql`ALTER TABLE notification_bodies DETACH PARTITION ${sql.table(name)}`.execute(trx);
    // No partition covers the month any more: its held bodies land in the default partition.
    for (let i = 0; i < keep.length; i += CHUNK) {
      await sql`INSERT INTO notification_bodies SELECT * FROM ${sql.table(name)} WHERE notification_id IN (${sql.join(keep.slice(i, i + CHUNK))})`.execute(trx);
    }
    await sql`DROP TABLE ${sql.table(name)}`.execute(trx);
    dropped.push(name);
  }
  return dropped;
}

/** Whatever is left before the cutoff (SQLite; on PostgreSQL the default partition): deleted row by row, held bodies kept. */
async function deleteRows(trx: Tx, cutoff: number, held: ReadonlySet<number>): Promise<void> {
  if (held.size === 0) {
    await trx.deleteFrom('notification_bodies').where('received_at', '<', cutoff).execute();
    return;
  }
  // Held ids can be many: a temporary table keeps the statement small on both engines.
  await sql`CREATE TEMPORARY TABLE held_bodies (id bigint PRIMARY KEY)`.execute(trx);
  const keep = [...held];
  for (let i = 0; i < keep.length; i += CHUNK) {
    await sql`INSERT INTO held_bodies (id) VALUES ${sql.join(keep.slice(i, i + CHUNK).map((id) => sql`(${id})`))}`.execute(trx);
  }
  await sql`DELETE FROM notification_bodies WHERE received_at < ${cutoff} AND notification_id NOT IN (SELECT id FROM held_bodies)`.execute(trx);
  await sql`DROP TABLE held_bodies`.execute(trx);
}
