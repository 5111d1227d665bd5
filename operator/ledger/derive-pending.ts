// Derivation deferred from the intake's batches to a pass of its own.
//
// Deriving a slot reads every fact it has and every full list of its holders,
// so what it costs grows with the slot's history, and the intake derived the
// slots of each batch of 400: an instance updated five times in a few seconds
// was derived five times. Intervals are a function of the set of facts
// (derive.ts), so deriving the union of what several batches touched, once,
// gives the same intervals as deriving each batch in turn (shown for generated
// histories by test/unit/ledger-derive-pending.test.ts). The intake records
// what each batch touched in derive_pending, in the batch's own transaction;
// a pass reads those rows, derives their union and deletes them in one
// transaction. The rows are the state: a pass that fails, or an operator that
// stops between a batch and its pass, leaves them for the next pass.
import type { Kysely } from 'kysely';
import { z } from 'zod';
import type { LedgerSchema } from './schema.ts';
import { EVER, lockDerivation, lowerTo, rederive, touched, type Touched } from './derive.ts';

// EVER (-Infinity) has no JSON form: it is written as null.
const at = z.number().nullable().transform((v) => v ?? EVER);
const timed = z.array(z.tuple([z.string(), at]));
const keys = z.array(z.string());
// Rows recorded before lists were kept have none: their instances and ports name every slot of them.
const TouchedJson = z.object({ slots: timed, instances: keys, ports: keys, routers: keys, ends: timed, portChanges: timed, lists: timed.optional() }).strict();

const finite = (m: ReadonlyMap<string, number>) => [...m].map(([k, v]) => [k, Number.isFinite(v) ? v : null] as const);

export function encodeTouched(t: Touched): string {
  return JSON.stringify({
    slots: finite(t.slots), instances: [...t.instances], ports: [...t.ports], routers: [...t.routers], ends: finite(t.ends), portChanges: finite(t.portChanges),
    lists: finite(t.lists),
  });
}

export function parseTouched(text: string): Touched {
  const j = TouchedJson.parse(JSON.parse(text));
  return {
    slots: new Map(j.slots), instances: new Set(j.instances), ports: new Set(j.ports), routers: new Set(j.routers), ends: new Map(j.ends), portChanges: new Map(j.portChanges),
    lists: new Map(j.lists ?? []),
  };
}

export const isEmptyTouched = (t: Touched): boolean =>
  t.slots.size === 0 && t.instances.size === 0 && t.ports.size === 0 && t.routers.size === 0 && t.ends.size === 0 && t.portChanges.size === 0 && t.lists.size === 0;

/** Adds what `t` touched to `into` (the earliest time of each key). */
export function mergeTouched(into: Touched, t: Touched): void {
  for (const [k, v] of t.slots) lowerTo(into.slots, k, v);
  for (const k of t.instances) into.instances.add(k);
  for (const k of t.ports) into.ports.add(k);
  for (const k of t.routers) into.routers.add(k);
  for (const [k, v] of t.ends) lowerTo(into.ends, k, v);
  for (const [k, v] of t.portChanges) lowerTo(into.portChanges, k, v);
  for (const [k, v] of t.lists) lowerTo(into.lists, k, v);
}

/** Records, inside the batch's transaction, what it touched in `cloud`, to be derived by a later pass. */
export async function recordPending(trx: Kysely<LedgerSchema>, cloud: string, t: Touched, recordedAt: number): Promise<void> {
  if (isEmptyTouched(t)) return;
  await trx.insertInto('derive_pending').values({ cloud, recorded_at: recordedAt, touched: encodeTouched(t) }).execute();
}

/** Rows per pass (each a batch of the intake, up to some hundreds of notifications): what a pass reads and derives at once after a long backlog stays bounded, as the operator's memory must. */
const PASS_ROWS = 25;

export interface PassResult {
  /** Pending rows derived and deleted. */
  rows: number;
  /** Slots derived again: what those rows touched that could read differently (rederive). */
  slots: number;
}

/**
 * Derives what is pending (of one cloud, or of all), at most PASS_ROWS rows
 * in one transaction, and deletes those rows in it. Returns 0 rows when
 * nothing was pending.
 */
export async function derivePass(db: Kysely<LedgerSchema>, options: { cloud?: string | undefined } = {}): Promise<PassResult> {
  // Nothing pending is the usual answer for a reader that asks first: no transaction for it.
  if (!(await hasPending(db, options.cloud))) return { rows: 0, slots: 0 };
  return db.transaction().execute(async (trx) => {
    // Before reading the pending rows: two passes must not take the same ones (derive.ts).
    await lockDerivation(trx);
    let q = trx.selectFrom('derive_pending').select(['id', 'cloud', 'touched']).orderBy('id').limit(PASS_ROWS);
    if (options.cloud !== undefined) q = q.where('cloud', '=', options.cloud);
    const rows = await q.execute();
    if (rows.length === 0) return { rows: 0, slots: 0 };
    const byCloud = new Map<string, Touched>();
    for (const r of rows) {
      let t = byCloud.get(r.cloud);
      if (t === undefined) byCloud.set(r.cloud, (t = touched()));
      mergeTouched(t, parseTouched(r.touched));
    }
    let slots = 0;
    for (const [cloud, t] of byCloud) slots += await rederive(trx, cloud, t);
    await trx.deleteFrom('derive_pending').where('id', 'in', rows.map((r) => r.id)).execute();
    return { rows: rows.length, slots };
  });
}

/** Derives until nothing (of the cloud) is pending. */
export async function deriveAll(db: Kysely<LedgerSchema>, options: { cloud?: string | undefined } = {}): Promise<number> {
  let total = 0;
  for (;;) {
    const { rows } = await derivePass(db, options);
    if (rows === 0) return total;
    total += rows;
  }
}

async function hasPending(db: Kysely<LedgerSchema>, cloud: string | undefined): Promise<boolean> {
  let q = db.selectFrom('derive_pending').select('id').limit(1);
  if (cloud !== undefined) q = q.where('cloud', '=', cloud);
  return (await q.executeTakeFirst()) !== undefined;
}

/** What is waiting to be derived: rows, and when the oldest was recorded (null when none). */
export async function pendingDerivation(db: Kysely<LedgerSchema>, cloud?: string): Promise<{ rows: number; oldestAt: number | null }> {
  let q = db.selectFrom('derive_pending').select((eb) => [eb.fn.countAll<number | string>().as('n'), eb.fn.min<number | string | null>('recorded_at').as('oldest')]);
  if (cloud !== undefined) q = q.where('cloud', '=', cloud);
  const r = await q.executeTakeFirst();
  return { rows: Number(r?.n ?? 0), oldestAt: r?.oldest === null || r?.oldest === undefined ? null : Number(r.oldest) };
}
