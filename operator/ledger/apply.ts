// Applies decoded notifications to the ledger. Idempotent per (cloud, message
// id): a notification already recorded changes nothing. Each notification's
// facts are recorded as they are; at the end of the batch every slot they touch
// is re-derived from all facts known so far (derive.ts), so the ledger is the
// same whatever order, batching and duplication the facts arrived in.
//
// A batch is applied as a set: the instances, ports and routers it names are
// read in one statement per table, changed in memory notification by
// notification (so each sees the ones before it, as a row-by-row apply would),
// and written back with one multi-row upsert per table; facts are written in
// multi-row inserts. The statements per batch are bounded by the number of
// tables, not the number of notifications.
import { sql, type Insertable, type Kysely, type Transaction } from 'kysely';
import { hash } from 'node:crypto';
import type { LedgerSchema, InstancesTable, PortsTable, RoutersTable } from './schema.ts';
import type {
  DecodedNotification, FloatingIpEvent, InstanceEvent, InstanceSnapshot, OneVmEvent, PortEvent, RouterEvent, RouterInterfaceEvent,
} from '../domain/events.ts';
import type { ChangeOp, HolderAttrs } from '../domain/intervals.ts';
import { storedIp } from '../domain/ip.ts';
import { vmDocumentOrder } from '../domain/opennebula-states.ts';
import { EVER, lockDerivation, lowerTo, rederive, releaseOf, touchSlot, touched, type Touched } from './derive.ts';
import type { NameSource } from '../domain/owner-names.ts';
import * as pgSets from './pg-sets.ts';
import { addHolderSlots, moveHolderSlots } from './holder-slots.ts';
import * as sqliteSets from './sqlite-sets.ts';
import { pieces } from './pieces.ts';
import { recordPending } from './derive-pending.ts';

export type ApplyOutcome = 'applied' | 'duplicate' | 'ignored';

type Tx = Transaction<LedgerSchema>;

export interface Recorded {
  notification: DecodedNotification;
  /** The body as received, kept as evidence. */
  body: string;
  /** The body's SHA-256 (hex), when worked out ahead of the batch (withBodyDigest). */
  bodySha256?: string;
}

/**
 * SHA-256 of the body as received: stays with the notification after the body
 * itself has expired. One call, no Hash object per body (crypto.hash): a
 * quarter less CPU per digest than createHash's three.
 */
const digest = (body: string) => hash('sha256', body, 'hex');

/**
 * The body's digest worked out ahead of the batch. The intake does it as each
 * delivery is decoded, while the previous batch's statements run; inside the
 * batch's transaction, on PostgreSQL, every millisecond of this thread's work
 * is one more that the transaction stays open.
 */
export function withBodyDigest(r: Recorded): Recorded {
  return { ...r, bodySha256: digest(r.body) };
}

/**
 * Runs inside the transaction that applies a notification, after its effects:
 * whatever it writes commits (or not) together with them. The capture side
 * records its intents here.
 */
export type InTransaction = (trx: Kysely<LedgerSchema>, n: DecodedNotification) => Promise<unknown>;

export interface ApplyOptions {
  /**
   * Record what the batch touched for a later derivation pass
   * (derive-pending.ts), stamped with this time, instead of deriving it in
   * the batch's transaction. The intake's way: a pass derives the union of
   * many batches once.
   */
  deferDerivation?: { at: number } | undefined;
}

/** Applies a batch in one transaction; outcomes are in input order. */
export async function applyBatch(db: Kysely<LedgerSchema>, batch: readonly Recorded[], inTransaction?: InTransaction, options: ApplyOptions = {}): Promise<ApplyOutcome[]> {
  if (!pgSets.isPostgres(db) || db.isTransaction) return applyInTransaction(db, batch, inTransaction, options);
  return inTurn(db, batch.map((r) => r.notification.cloud), () => applyInTransaction(db, batch, inTransaction, options));
}

/**
 * PostgreSQL: batches of one cloud on one pool take turns before they take a
 * connection of it. Inside, the transaction takes the cloud's lock
 * (lockClouds), which only a batch on another pool (another process) can then
 * hold: were a pool's batches to wait for it inside their transactions, each
 * would hold a connection, and the batch holding the lock could find none
 * left for its bodies (writeBodiesBeside).
 */
const turnsByPool = new WeakMap<object, Map<string, Promise<void>>>();

async function inTurn<T>(db: Kysely<LedgerSchema>, clouds: readonly string[], run: () => Promise<T>): Promise<T> {
  const pool = db.getExecutor().adapter;
  let turns = turnsByPool.get(pool);
  if (turns === undefined) turnsByPool.set(pool, (turns = new Map()));
  const releases: Array<() => void> = [];
  // In one order, as the locks: two batches of the same clouds cannot each wait for the other.
  for (const cloud of [...new Set(clouds)].sort()) {
    const before = turns.get(cloud) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((resolve) => { release = resolve; });
    const last = before.then(() => mine);
    turns.set(cloud, last);
    await before;
    releases.push(() => {
      release();
      if (turns.get(cloud) === last) turns.delete(cloud);
    });
  }
  try {
    return await run();
  } finally {
    for (const r of releases) r();
  }
}

async function applyInTransaction(db: Kysely<LedgerSchema>, batch: readonly Recorded[], inTransaction: InTransaction | undefined, options: ApplyOptions): Promise<ApplyOutcome[]> {
  // On PostgreSQL the bodies, the batch's largest statement, go on a connection of their own while the batch's
  // other statements run: see writeBodiesBeside.
  const beside = pgSets.isPostgres(db) && !db.isTransaction && besideInUse < MAX_BESIDE;
  if (beside) besideInUse += 1;
  try {
    return await db.transaction().execute(async (trx) => {
      await lockClouds(trx, batch);
      // Deriving in this transaction: the lock comes before the first write (derive.ts).
      if (options.deferDerivation === undefined) await lockDerivation(trx);
      const { fresh, bodies } = await recordNotifications(trx, batch);
      const bodiesWritten = beside ? writeBodiesBeside(db, bodies) : undefined;
      // Handled from now on: failing while the batch's statements still run, it is no unhandled rejection (which
      // ends the process); it is thrown where it is awaited below.
      bodiesWritten?.catch(() => undefined);
      try {
        if (!beside) await writeBodies(trx, bodies);
        const out = await applyRecorded(trx, batch, fresh, inTransaction, options);
        // Before this transaction commits: a notification is never recorded without its body.
        await bodiesWritten;
        return out;
      } catch (err) {
        // The bodies' statement is over before the transaction rolls back; the error thrown is the first one met.
        await bodiesWritten?.catch(() => undefined);
        throw err;
      }
    });
  } finally {
    if (beside) besideInUse -= 1;
  }
}

/**
 * PostgreSQL: takes, for the rest of the transaction, an advisory lock per
 * cloud the batch's notifications come from, in one order. A batch reads the
 * instances, ports and routers it names, merges its events into them and
 * writes them back whole (Entities): two batches of one cloud at once (the
 * intake's, and `quarantine ingest` beside the operator) would each merge into
 * what they read, and the one committing last would undo the other's change
 * (an end recorded, a name); and a report naming a port only by its MAC would
 * miss the port a concurrent batch records, its facts left outside the port's
 * slots (adoptMacSlots). With the lock, batches of one cloud take turns, as
 * the intake's own do anyway; clouds, which share no row, still apply side
 * by side. One lock per cloud rather than per row: a batch names a thousand
 * rows or more, and every lock held takes a slot of the server's shared lock
 * table (max_locks_per_transaction per connection). Taken before the
 * derivation lock, as every writer of instances takes that one (its
 * trigger) only after this: no two transactions wait for each other
 * crosswise. SQLite has one writer at a time and needs none.
 */
async function lockClouds(trx: Tx, batch: readonly Recorded[]): Promise<void> {
  if (!pgSets.isPostgres(trx)) return;
  const clouds = [...new Set(batch.map((r) => r.notification.cloud))];
  if (clouds.length === 0) return;
  // In the order of the locks' ids: the select list is evaluated after the sort.
  await sql`SELECT pg_advisory_xact_lock(h) FROM (SELECT DISTINCT hashtextextended(c, ${APPLY_LOCK_SEED}) AS h FROM unnest(${clouds}::text[]) AS c) AS l ORDER BY h`.execute(trx);
}

/** Seed of the clouds' lock ids: clear of the derivation lock's (DERIVATION_LOCK, a small number) but for a chance of one in 2^64. */
const APPLY_LOCK_SEED = 0x71_6f_70_61;

/**
 * How many batches of the process may write their bodies beside their
 * transaction at once. Such a batch holds one connection of the pool and
 * waits for a second: were every connection held by one, none would get its
 * second. With at most two of them, the pool's other connections (POOL_SIZE
 * in db.ts) are held by work that waits for no further connection, and come
 * back. A batch that finds no slot free (more clouds than two applying at
 * once) writes its bodies in its transaction, as SQLite does.
 */
const MAX_BESIDE = 2;
let besideInUse = 0;

async function applyRecorded(trx: Tx, batch: readonly Recorded[], fresh: ReadonlySet<number>, inTransaction: InTransaction | undefined, options: ApplyOptions): Promise<ApplyOutcome[]> {
  const out: ApplyOutcome[] = [];
  const byCloud = new Map<string, Touched>();
  const applied: Recorded[] = [];
  for (const [i, r] of batch.entries()) {
    const n = r.notification;
    if (!fresh.has(i)) out.push('duplicate');
    else if (n.ignored) out.push('ignored');
    else {
      applied.push(r);
      out.push('applied');
    }
  }
  const rows = await Entities.load(trx, applied.map((r) => r.notification), (cloud) => {
    let t = byCloud.get(cloud);
    if (t === undefined) byCloud.set(cloud, (t = touched()));
    return t;
  });
  const buf: Buffered = { changes: [], snapshots: [], links: [], macs: [] };
  for (const { notification: n } of applied) applyEvents({ rows, t: rows.touched(n.cloud), buf }, n);
  await rows.write(trx);
  await flush(trx, buf);
  // Legacy reports placed by MAC join their port's slots once both are recorded.
  await adoptMacSlots(trx, buf.macs, byCloud);
  const deferred = options.deferDerivation;
  for (const [cloud, t] of byCloud) {
    if (deferred === undefined) await rederive(trx, cloud, t);
    else await recordPending(trx, cloud, t, deferred.at);
  }
  // After the batch's effects (derived intervals included, unless deferred): capture intents read instances.
  if (inTransaction !== undefined) for (const r of applied) await inTransaction(trx, r.notification);
  return out;
}

const CHUNK = 400;
function chunks<T>(xs: readonly T[], size = CHUNK): T[][] {
  return pieces(xs, size);
}

type BodyRow = { notification_id: number; received_at: number; body: string };

/**
 * Inserts the batch's notifications in a few statements; returns the indexes
 * that were new (the first of in-batch duplicates) and the bodies to write
 * for them (writeBodies).
 */
async function recordNotifications(trx: Tx, batch: readonly Recorded[]): Promise<{ fresh: Set<number>; bodies: BodyRow[] }> {
  const rows = batch.map(({ notification: n, body, bodySha256 }) => ({
    cloud: n.cloud, source: n.source, message_id: n.messageId, id_kind: n.idKind, event_type: n.eventType,
    publisher: n.publisher ?? null, occurred_at: n.occurredAt.getTime(), received_at: n.receivedAt.getTime(),
    outcome: n.ignored ? 'ignored' : 'applied', body_sha256: bodySha256 ?? digest(body),
  }));
  const ids = pgSets.isPostgres(trx) ? await insertReturningIds(trx, rows) : await insertWithIds(trx, rows);
  const fresh = new Set<number>();
  const bodies: BodyRow[] = [];
  for (const [i, { notification: n, body }] of batch.entries()) {
    const id = ids[i];
    if (id === undefined) continue;
    fresh.add(i);
    bodies.push({ notification_id: id, received_at: n.receivedAt.getTime(), body });
  }
  return { fresh, bodies };
}

type NotificationRow = { cloud: string; message_id: string } & Record<string, string | number | null>;
const notificationKey = (r: { cloud: string; message_id: string }) => `${r.cloud}\u0000${r.message_id}`;

/** PostgreSQL: the new rows' ids, by index in `rows` (undefined: already recorded, or a later copy in the batch). */
async function insertReturningIds(trx: Tx, rows: readonly NotificationRow[]): Promise<Array<number | undefined>> {
  const got = await pgSets.insertRows<'notifications', { id: number; cloud: string; message_id: string }>(trx, 'notifications', rows, sql`ON CONFLICT (cloud, message_id) DO NOTHING RETURNING id, cloud, message_id`);
  const inserted = new Map<string, number>();
  for (const g of got) inserted.set(notificationKey(g), g.id);
  return rows.map((r) => {
    const k = notificationKey(r);
    const id = inserted.get(k);
    inserted.delete(k);
    return id;
  });
}

/**
 * SQLite: the ids are drawn here, above any the table ever had (as
 * AUTOINCREMENT draws them), and inserted with the rows, so the statement
 * needs no RETURNING: SQLite keeps RETURNING's rows in a table of its own
 * before the first is read, about a third of the insert's cost. A message
 * recorded before is skipped by the unique key; only when the rows inserted
 * are fewer than those given (a redelivery) are the ids read back. One
 * writer at a time (sqlite-driver.ts): nothing draws ids between the read
 * and the insert.
 */
async function insertWithIds(trx: Tx, rows: readonly NotificationRow[]): Promise<Array<number | undefined>> {
  const ids = new Array<number | undefined>(rows.length);
  const first = new Set<string>();
  const unique: Array<Record<string, string | number | null>> = [];
  let next = (await sqliteSets.topId(trx, 'notifications')) + 1;
  for (const [i, r] of rows.entries()) {
    const k = notificationKey(r);
    if (first.has(k)) continue;
    first.add(k);
    ids[i] = next;
    unique.push({ id: next, ...r });
    next += 1;
  }
  let inserted = 0;
  for (const part of chunks(unique)) inserted += await sqliteSets.insertCounted(trx, 'notifications', part, 'on conflict ("cloud", "message_id") do nothing');
  if (inserted === unique.length) return ids;
  const drawn = ids.filter((id): id is number => id !== undefined);
  const present = new Set<number>();
  for (const part of chunks(drawn)) for (const r of await sqliteSets.byIds<{ id: number }>(trx, 'notifications', ['id'], part)) present.add(r.id);
  return ids.map((id) => (id !== undefined && present.has(id) ? id : undefined));
}

async function writeBodies(trx: Tx, bodies: readonly BodyRow[]): Promise<void> {
  if (pgSets.isPostgres(trx)) await pgSets.insertBodies(trx, bodies);
  // Bodies are large: fewer per statement keeps each statement's text and parameters small.
  else for (const part of chunks(bodies, 100)) await sqliteSets.insertRows(trx, 'notification_bodies', part);
}

/**
 * PostgreSQL: the batch's bodies as one statement of their own, on another
 * connection of the pool, committed before the batch's transaction commits.
 * A batch's statements run one after another on its connection, each sent
 * when the one before has answered; the bodies' statement, about a fifth of
 * a batch's time there, now runs beside the rest. The body rows carry the ids
 * the batch's transaction drew for its notifications. If that transaction
 * then fails, its bodies stay without a notification: copies of a message
 * that is delivered again, recorded again under a new id (ids are never
 * reused) with its body, and removed with their month by the body retention.
 * The other way round, a notification without its body, cannot happen.
 */
function writeBodiesBeside(db: Kysely<LedgerSchema>, bodies: readonly BodyRow[]): Promise<void> {
  return pgSets.insertBodies(db, bodies);
}

/** Fact rows collected while applying a batch and written together before deriving. */
interface Buffered {
  changes: Array<Insertable<LedgerSchema['address_changes']>>;
  snapshots: Array<Insertable<LedgerSchema['slot_snapshots']>>;
  links: Array<Insertable<LedgerSchema['instance_events']>>;
  macs: Array<{ cloud: string; portId: string; mac: string }>;
}

async function flush(trx: Tx, buf: Buffered): Promise<void> {
  await addHolderSlots(trx, buf.changes);
  if (pgSets.isPostgres(trx)) {
    await pgSets.insertRows(trx, 'address_changes', buf.changes);
    await pgSets.insertRows(trx, 'slot_snapshots', buf.snapshots);
    await pgSets.insertRows(trx, 'instance_events', buf.links, sql`ON CONFLICT (cloud, instance_id, message_id) DO NOTHING`);
    return;
  }
  for (const part of chunks(buf.changes)) await sqliteSets.insertRows(trx, 'address_changes', part);
  for (const part of chunks(buf.snapshots)) await sqliteSets.insertRows(trx, 'slot_snapshots', part);
  for (const part of chunks(buf.links)) await sqliteSets.insertRows(trx, 'instance_events', part, 'on conflict ("cloud", "instance_id", "message_id") do nothing');
}

// ---------------------------------------------------------------------------
// The batch's view of instances, ports and routers

type InstanceRow = Insertable<InstancesTable> & {
  ended_at: number | null; user_name: string | null; project_name: string | null;
  user_name_source: string | null; user_name_at: number | null; project_name_source: string | null; project_name_at: number | null;
};
type PortRow = Insertable<PortsTable> & { device_id: string | null; device_owner: string | null; network: string | null; mac: string | null; project: string | null; deleted_at: number | null };
type RouterRow = Insertable<RoutersTable> & { name: string | null; project: string | null; deleted_at: number | null };

const key = (cloud: string, id: string) => `${cloud}\u0000${id}`;

// Every column of the table, as a row read back must have them (the upsert writes rows whole).
const INSTANCE_COLUMNS = [
  'cloud', 'instance_id', 'name', 'project', 'user_id', 'host', 'image', 'flavor', 'state', 'created_at', 'deleted_at', 'deleted_by', 'first_seen_at',
  'last_event_at', 'ended_at', 'user_name', 'project_name', 'user_name_source', 'user_name_at', 'project_name_source', 'project_name_at', 'gone_after', 'gone_by',
] as const;
const PORT_COLUMNS = ['cloud', 'port_id', 'device_id', 'device_owner', 'network', 'mac', 'project', 'deleted_at', 'last_event_at'] as const;
const ROUTER_COLUMNS = ['cloud', 'router_id', 'name', 'project', 'deleted_at', 'last_event_at'] as const;

// The columns an upsert overwrites with the batch's row (the key columns stay).
const INSTANCE_UPDATED = [
  'name', 'project', 'user_id', 'host', 'image', 'flavor', 'state', 'created_at', 'deleted_at', 'deleted_by', 'first_seen_at', 'last_event_at', 'ended_at',
  'user_name', 'project_name', 'user_name_source', 'user_name_at', 'project_name_source', 'project_name_at',
] as const;
const PORT_UPDATED = ['device_id', 'device_owner', 'network', 'mac', 'project', 'deleted_at', 'last_event_at'] as const;
const ROUTER_UPDATED = ['name', 'project', 'deleted_at', 'last_event_at'] as const;
const upsertTail = (keys: readonly string[], updated: readonly string[]): string =>
  `on conflict (${keys.map((k) => `"${k}"`).join(', ')}) do update set ${updated.map((c) => `"${c}" = "excluded"."${c}"`).join(', ')}`;

/** Rows read once for the batch, changed in memory, written back once. */
class Entities {
  readonly instances = new Map<string, InstanceRow>();
  readonly ports = new Map<string, PortRow>();
  readonly routers = new Map<string, RouterRow>();
  readonly #dirty = { instances: new Set<string>(), ports: new Set<string>(), routers: new Set<string>() };
  /** What the batch touched in a cloud: changes of ends, port deletions and MACs are noted there. */
  readonly touched: (cloud: string) => Touched;

  constructor(touchedIn: (cloud: string) => Touched) {
    this.touched = touchedIn;
  }

  /** Reads every row the batch's events may name: by id, and ports also by MAC (legacy reports name only that). */
  static async load(trx: Tx, ns: readonly DecodedNotification[], touchedIn: (cloud: string) => Touched): Promise<Entities> {
    const want = new Map<string, { instances: Set<string>; ports: Set<string>; macs: Set<string>; routers: Set<string> }>();
    for (const n of ns) {
      let w = want.get(n.cloud);
      if (w === undefined) want.set(n.cloud, (w = { instances: new Set(), ports: new Set(), macs: new Set(), routers: new Set() }));
      for (const e of n.events) {
        switch (e.type) {
          case 'instance':
            w.instances.add(e.instance.id);
            for (const a of e.addresses ?? []) {
              if (a.portId !== undefined) w.ports.add(a.portId);
              else if (a.mac !== undefined) w.macs.add(a.mac);
            }
            break;
          case 'port': w.ports.add(e.port.id); break;
          case 'router_interface': w.ports.add(e.portId); break;
          case 'router': w.routers.add(e.router.id); break;
          case 'one_vm': w.instances.add(String(e.vm.id)); break;
          case 'floatingip': break;
        }
      }
    }
    const rows = new Entities(touchedIn);
    if (pgSets.isPostgres(trx)) {
      for (const [cloud, w] of want) {
        for (const r of await pgSets.byKeys(trx, 'instances', 'instance_id', cloud, w.instances, INSTANCE_COLUMNS)) rows.instances.set(key(cloud, r.instance_id), r);
        for (const r of await pgSets.byKeys(trx, 'ports', 'port_id', cloud, w.ports, PORT_COLUMNS)) rows.ports.set(key(cloud, r.port_id), r);
        for (const r of await pgSets.byKeys(trx, 'ports', 'mac', cloud, w.macs, PORT_COLUMNS)) rows.ports.set(key(cloud, r.port_id), r);
        for (const r of await pgSets.byKeys(trx, 'routers', 'router_id', cloud, w.routers, ROUTER_COLUMNS)) rows.routers.set(key(cloud, r.router_id), r);
      }
      return rows;
    }
    for (const [cloud, w] of want) {
      for (const part of chunks([...w.instances])) {
        for (const r of await sqliteSets.byKeys<InstanceRow>(trx, 'instances', INSTANCE_COLUMNS, cloud, 'instance_id', part)) rows.instances.set(key(cloud, r.instance_id), r);
      }
      for (const part of chunks([...w.ports])) {
        for (const r of await sqliteSets.byKeys<PortRow>(trx, 'ports', PORT_COLUMNS, cloud, 'port_id', part)) rows.ports.set(key(cloud, r.port_id), r);
      }
      for (const part of chunks([...w.macs])) {
        for (const r of await sqliteSets.byKeys<PortRow>(trx, 'ports', PORT_COLUMNS, cloud, 'mac', part)) rows.ports.set(key(cloud, r.port_id), r);
      }
      for (const part of chunks([...w.routers])) {
        for (const r of await sqliteSets.byKeys<RouterRow>(trx, 'routers', ROUTER_COLUMNS, cloud, 'router_id', part)) rows.routers.set(key(cloud, r.router_id), r);
      }
    }
    return rows;
  }

  instance(cloud: string, id: string): InstanceRow | undefined {
    return this.instances.get(key(cloud, id));
  }
  setInstance(row: InstanceRow): void {
    const k = key(row.cloud, row.instance_id);
    const before = this.instances.get(k)?.ended_at ?? null;
    if (before !== row.ended_at) {
      const t = this.touched(row.cloud);
      lowerTo(t.ends, row.instance_id, Math.min(before ?? Infinity, row.ended_at ?? Infinity));
      // An end bounds every address the instance holds.
      t.instances.add(row.instance_id);
    }
    this.instances.set(k, row);
    this.#dirty.instances.add(k);
  }
  port(cloud: string, id: string): PortRow | undefined {
    return this.ports.get(key(cloud, id));
  }
  setPort(row: PortRow): void {
    const k = key(row.cloud, row.port_id);
    const before = this.ports.get(k);
    const changes = this.touched(row.cloud).portChanges;
    if ((before?.mac ?? null) !== row.mac) lowerTo(changes, row.port_id, EVER);
    const deleted = before?.deleted_at ?? null;
    if (deleted !== row.deleted_at) {
      lowerTo(changes, row.port_id, Math.min(deleted ?? Infinity, row.deleted_at ?? Infinity));
      // A deletion ends every address of the port.
      this.touched(row.cloud).ports.add(row.port_id);
    }
    this.ports.set(k, row);
    this.#dirty.ports.add(k);
  }
  /** The port last seen with this MAC (every port the ledger has with it was read for the batch). */
  portByMac(cloud: string, mac: string): PortRow | undefined {
    let best: PortRow | undefined;
    for (const p of this.ports.values()) {
      if (p.cloud === cloud && p.mac === mac && (best === undefined || p.last_event_at > best.last_event_at)) best = p;
    }
    return best;
  }
  router(cloud: string, id: string): RouterRow | undefined {
    return this.routers.get(key(cloud, id));
  }
  setRouter(row: RouterRow): void {
    const k = key(row.cloud, row.router_id);
    this.routers.set(k, row);
    this.#dirty.routers.add(k);
  }

  async write(trx: Tx): Promise<void> {
    const instances = [...this.#dirty.instances].map((k) => this.instances.get(k) as InstanceRow);
    const ports = [...this.#dirty.ports].map((k) => this.ports.get(k) as PortRow);
    const routers = [...this.#dirty.routers].map((k) => this.routers.get(k) as RouterRow);
    if (!pgSets.isPostgres(trx)) {
      for (const part of chunks(instances, 200)) await sqliteSets.insertRows(trx, 'instances', part, upsertTail(['cloud', 'instance_id'], INSTANCE_UPDATED));
      for (const part of chunks(ports, 300)) await sqliteSets.insertRows(trx, 'ports', part, upsertTail(['cloud', 'port_id'], PORT_UPDATED));
      for (const part of chunks(routers, 300)) await sqliteSets.insertRows(trx, 'routers', part, upsertTail(['cloud', 'router_id'], ROUTER_UPDATED));
      return;
    }
    // Each row with exactly the key and the updated columns: a bulk insert takes its columns from the first row.
    const upsert = async <T extends 'instances' | 'ports' | 'routers'>(table: T, rows: ReadonlyArray<Readonly<Record<string, unknown>>>, keys: readonly string[], updated: readonly string[]) => {
      const columns = [...keys, ...updated];
      const shaped = rows.map((r) => {
        const out: Record<string, string | number | null> = {};
        for (const c of columns) out[c] = (r[c] ?? null) as string | number | null;
        return out;
      });
      await pgSets.insertRows(trx, table, shaped, sql.raw(upsertTail(keys, updated)));
    };
    await upsert('instances', instances, ['cloud', 'instance_id'], INSTANCE_UPDATED);
    await upsert('ports', ports, ['cloud', 'port_id'], PORT_UPDATED);
    await upsert('routers', routers, ['cloud', 'router_id'], ROUTER_UPDATED);
  }
}

/** The batch's rows, what the batch touched in the notification's cloud, and the facts not yet written. */
interface Ctx {
  rows: Entities;
  t: Touched;
  buf: Buffered;
}

function applyEvents(ctx: Ctx, n: DecodedNotification): void {
  for (const e of n.events) {
    switch (e.type) {
      case 'instance': applyInstance(ctx, n, e); break;
      case 'port': applyPort(ctx, n, e); break;
      case 'floatingip': applyFloatingIp(ctx, n, e); break;
      case 'router_interface': applyRouterInterface(ctx, n, e); break;
      case 'router': applyRouter(ctx, n, e); break;
      case 'one_vm': applyOneVm(ctx, n, e); break;
    }
  }
}

// ---------------------------------------------------------------------------
// Facts

interface Change {
  op: ChangeOp;
  holderKey: string;
  holder: HolderAttrs;
}

function addChange(ctx: Ctx, cloud: string, slot: string, at: number, change: Change, ord?: number): void {
  const h = change.holder;
  ctx.buf.changes.push({
    cloud, slot, at, op: change.op, holder_key: change.holderKey, address: h.address, kind: h.kind, instance_id: h.instanceId,
    port: h.port, mac: h.mac, network: h.network, project: h.project, message_id: h.messageId, ord: ord ?? 0,
  });
  touchSlot(ctx.t, slot, at);
}

/** A complete list reported by an owner (see slot_snapshots). */
function addSnapshot(ctx: Ctx, cloud: string, owner: string, at: number, messageId: string, members: readonly string[], ord?: number): void {
  ctx.buf.snapshots.push({ cloud, owner, at, message_id: messageId, members: JSON.stringify([...new Set(members)].sort()), ord: ord ?? 0 });
  // What the list leaves out of the owner's slots is released from `at` on (derive.ts, omittedByLists).
  lowerTo(ctx.t.lists, owner, at);
}

// ---------------------------------------------------------------------------
// Instances

interface InstanceFields {
  name?: string | undefined;
  project?: string | undefined;
  user?: string | undefined;
  host?: string | undefined;
  image?: string | undefined;
  flavor?: string | undefined;
  state?: string | undefined;
  createdAt?: Date | undefined;
  /** `null` clears (a restore after soft delete); undefined leaves as is. */
  deletedAt?: Date | null | undefined;
  deletedBy?: string | undefined;
  userName?: string | undefined;
  projectName?: string | undefined;
  /** Where userName and projectName come from (required with either). */
  namesFrom?: NameSource | undefined;
  /** End of life reported now; the earliest one reported wins. */
  endedAt?: number | undefined;
}

function upsertInstance(rows: Entities, cloud: string, id: string, at: number, f: InstanceFields): void {
  const row = rows.instance(cloud, id);
  const ms = (d: Date | undefined) => (d === undefined ? undefined : d.getTime());
  if (row === undefined) {
    rows.setInstance({
      cloud, instance_id: id, name: f.name ?? null, project: f.project ?? null, user_id: f.user ?? null, host: f.host ?? null,
      image: f.image ?? null, flavor: f.flavor ?? null, state: f.state ?? null, created_at: ms(f.createdAt) ?? null,
      deleted_at: f.deletedAt === null ? null : ms(f.deletedAt) ?? null, deleted_by: f.deletedBy ?? null,
      first_seen_at: at, last_event_at: at, ended_at: f.endedAt ?? null, user_name: f.userName ?? null, project_name: f.projectName ?? null,
      user_name_source: f.userName === undefined ? null : f.namesFrom ?? null, user_name_at: f.userName === undefined ? null : at,
      project_name_source: f.projectName === undefined ? null : f.namesFrom ?? null, project_name_at: f.projectName === undefined ? null : at,
    });
    return;
  }
  // A newer event overwrites; an older one only fills what is still unknown.
  const newer = at >= row.last_event_at;
  const pick = <T>(value: T | undefined, current: T | null | undefined): T | null => (value !== undefined && (newer || current === null || current === undefined) ? value : current ?? null);
  // A name taken from this event is read at the event's time, from the event's source.
  const name = (value: string | undefined, current: { name: string | null; source: string | null; at: number | null }) => (value !== undefined && (newer || current.name === null)
    ? { name: value, source: f.namesFrom ?? null, at }
    : current);
  const user = name(f.userName, { name: row.user_name ?? null, source: row.user_name_source ?? null, at: row.user_name_at ?? null });
  const project = name(f.projectName, { name: row.project_name ?? null, source: row.project_name_source ?? null, at: row.project_name_at ?? null });
  let deletedAt = row.deleted_at ?? null;
  if (f.deletedAt === null && newer) deletedAt = null;
  else if (f.deletedAt instanceof Date && (newer || deletedAt === null)) deletedAt = f.deletedAt.getTime();
  rows.setInstance({
    cloud, instance_id: id,
    name: pick(f.name, row.name), project: pick(f.project, row.project), user_id: pick(f.user, row.user_id), host: pick(f.host, row.host),
    image: pick(f.image, row.image), flavor: pick(f.flavor, row.flavor), state: pick(f.state, row.state),
    created_at: pick(ms(f.createdAt), row.created_at), deleted_at: deletedAt,
    // The first deleter named wins: a reclaim's periodic context names nobody.
    deleted_by: row.deleted_by ?? f.deletedBy ?? null,
    first_seen_at: Math.min(row.first_seen_at, at), last_event_at: Math.max(row.last_event_at, at),
    ended_at: f.endedAt === undefined ? row.ended_at : Math.min(row.ended_at ?? f.endedAt, f.endedAt),
    user_name: user.name, user_name_source: user.source, user_name_at: user.at,
    project_name: project.name, project_name_source: project.source, project_name_at: project.at,
  });
}

const DELETING = new Set(['delete.start', 'delete.end', 'soft_delete.start', 'soft_delete.end', 'force_delete.start', 'force_delete.end']);
const GONE = new Set(['delete.end', 'force_delete.end']);

function instanceFields(e: InstanceEvent, n: DecodedNotification): InstanceFields {
  const i: InstanceSnapshot = e.instance;
  const deleter = e.actor?.user ?? (e.format === 'legacy' ? n.context.userId : undefined);
  let deletedAt: Date | null | undefined = i.deletedAt;
  if (GONE.has(e.action) || e.action === 'soft_delete.end') deletedAt = i.deletedAt ?? i.terminatedAt ?? n.occurredAt;
  if (e.action === 'restore.end') deletedAt = null;
  return {
    name: i.name, project: i.project, user: i.user, host: i.host, image: i.image, flavor: i.flavor, state: i.state,
    createdAt: i.createdAt, deletedAt, deletedBy: DELETING.has(e.action) ? deleter : undefined,
  };
}

/** The slot of an instance's fixed address: its port when known, so Nova's and Neutron's reports of it coincide. */
function fixedSlot(rows: Entities, cloud: string, instanceId: string, a: { address: string; portId?: string | undefined; mac?: string | undefined }): { slot: string; port: string | null } {
  if (a.portId !== undefined) return { slot: `port:${a.portId}|${a.address}`, port: a.portId };
  if (a.mac !== undefined) {
    const p = rows.portByMac(cloud, a.mac);
    if (p !== undefined) return { slot: `port:${p.port_id}|${a.address}`, port: p.port_id };
    return { slot: `mac:${a.mac}|${a.address}`, port: null };
  }
  return { slot: `instance:${instanceId}|${a.address}`, port: null };
}

function linkEvent(ctx: Ctx, n: DecodedNotification, instanceId: string, action: string): void {
  ctx.buf.links.push({ cloud: n.cloud, instance_id: instanceId, message_id: n.messageId, at: n.occurredAt.getTime(), event_type: n.eventType, action });
}

function applyInstance(ctx: Ctx, n: DecodedNotification, e: InstanceEvent): void {
  const { rows } = ctx;
  const at = n.occurredAt.getTime();
  const id = e.instance.id;
  const gone = GONE.has(e.action) || e.instance.state === 'deleted';
  // The request context names its user and project; they are the owner's only when the owner made the request.
  const ownRequest = (ctxId: string | undefined, owner: string | undefined) => ctxId !== undefined && ctxId === owner;
  upsertInstance(rows, n.cloud, id, at, {
    ...instanceFields(e, n), endedAt: gone ? at : undefined,
    userName: ownRequest(n.context.userId, e.instance.user) ? n.context.userName : undefined,
    projectName: ownRequest(n.context.projectId, e.instance.project) ? n.context.projectName : undefined,
    namesFrom: 'notification',
  });
  linkEvent(ctx, n, id, e.action);
  const addresses = (e.addresses ?? []).map((a) => ({ ...a, address: storedIp(a.address) }));
  for (const a of addresses) {
    if (a.portId !== undefined && a.mac !== undefined) recordPortMac(ctx, n.cloud, a.portId, a.mac);
    let slot: string;
    let port: string | null = null;
    if (a.kind === 'fixed') ({ slot, port } = fixedSlot(rows, n.cloud, id, a));
    else slot = `nova-floating:${id}|${a.address}`;
    addChange(ctx, n.cloud, slot, at, {
      op: 'bind', holderKey: id,
      holder: { address: a.address, kind: a.kind, instanceId: id, port, mac: a.mac ?? null, network: a.network ?? null, project: e.instance.project ?? null, messageId: n.messageId },
    });
  }
  // Floating IPs from Neutron belong to the port, not the instance: the full list bounds only Nova's own slots.
  if (e.addressesAuthoritative && !gone) addSnapshot(ctx, n.cloud, `instance:${id}`, at, n.messageId, addresses.map((a) => `${a.kind}|${a.address}`));
}

// ---------------------------------------------------------------------------
// Neutron

function upsertPort(rows: Entities, cloud: string, at: number, p: { id: string; deviceId?: string | undefined; deviceOwner?: string | undefined; networkId?: string | undefined; mac?: string | undefined; project?: string | undefined }, deleted: boolean): void {
  const row = rows.port(cloud, p.id);
  if (row === undefined) {
    rows.setPort({
      cloud, port_id: p.id, device_id: p.deviceId ?? null, device_owner: p.deviceOwner ?? null, network: p.networkId ?? null,
      mac: p.mac ?? null, project: p.project ?? null, deleted_at: deleted ? at : null, last_event_at: at,
    });
    return;
  }
  const newer = at >= row.last_event_at;
  rows.setPort({
    cloud, port_id: p.id,
    device_id: newer && !deleted ? p.deviceId ?? null : row.device_id ?? p.deviceId ?? null,
    device_owner: newer && !deleted ? p.deviceOwner ?? null : row.device_owner ?? p.deviceOwner ?? null,
    network: row.network ?? p.networkId ?? null, mac: row.mac ?? p.mac ?? null, project: row.project ?? p.project ?? null,
    deleted_at: deleted ? Math.min(row.deleted_at ?? at, at) : row.deleted_at,
    last_event_at: Math.max(row.last_event_at, at),
  });
}

function applyPort(ctx: Ctx, n: DecodedNotification, e: PortEvent): void {
  const at = n.occurredAt.getTime();
  const p = e.port;
  const deleted = e.action === 'delete.end';
  upsertPort(ctx.rows, n.cloud, at, p, deleted);
  if (p.deviceOwner?.startsWith('compute:') === true && p.deviceId !== undefined) linkEvent(ctx, n, p.deviceId, `port.${e.action}`);
  if (p.mac !== undefined) ctx.buf.macs.push({ cloud: n.cloud, portId: p.id, mac: p.mac });
  // A deletion ends every address of the port and every floating IP association
  // with it (Neutron sends no floatingip notification for that): the port's
  // deleted_at bounds them when they are derived.
  if (deleted) return;
  const fixedIps = p.fixedIps.map((ip) => storedIp(ip.address));
  const onInstance = p.deviceOwner?.startsWith('compute:') === true && p.deviceId !== undefined;
  const holderKey = onInstance ? (p.deviceId as string) : `device:${p.deviceId ?? ''}`;
  for (const address of fixedIps) {
    addChange(ctx, n.cloud, `port:${p.id}|${address}`, at, {
      op: 'bind', holderKey,
      holder: { address, kind: 'fixed', instanceId: onInstance ? (p.deviceId ?? null) : null, port: p.id, mac: p.mac ?? null, network: p.networkId ?? null, project: p.project ?? null, messageId: n.messageId },
    });
  }
  if (!e.idOnly) addSnapshot(ctx, n.cloud, `port:${p.id}`, at, n.messageId, fixedIps);
}

/**
 * Nova's legacy payloads name a port only by its MAC: facts recorded under
 * `mac:MAC|ADDR` before the port was known move to the port's own slots, so
 * the result does not depend on which arrived first.
 */
async function adoptMacSlots(trx: Tx, macs: Buffered['macs'], byCloud: ReadonlyMap<string, Touched>): Promise<void> {
  const perCloud = new Map<string, Map<string, string>>();
  for (const m of macs) {
    let c = perCloud.get(m.cloud);
    if (c === undefined) perCloud.set(m.cloud, (c = new Map()));
    // The last port named with a MAC in the batch adopts, as when each was applied in turn.
    c.set(m.mac, m.portId);
  }
  for (const [cloud, ports] of perCloud) {
    const t = byCloud.get(cloud) ?? touched();
    const pg = pgSets.isPostgres(trx);
    for (const part of chunks([...ports.keys()], pg ? Infinity : 100)) {
      const ranges = part.map((mac) => [`mac:${mac}|`, `mac:${mac}}`] as const);
      // Every batch with port events asks this, and almost always finds nothing: a statement text kept per shape (sqlite-sets.ts).
      const rows = pg
        ? await pgSets.inSlotRanges(trx, 'address_changes', cloud, ranges, ['slot', 'address', 'holder_key'], true)
        : await sqliteSets.inSlotRanges<{ slot: string; address: string; holder_key: string }>(trx, 'address_changes', ['slot', 'address', 'holder_key'], cloud, ranges, '', true);
      // A row per holder of a slot's facts: the slot moves once, each holder's pair with it.
      const moved = new Map<string, { to: string; portId: string }>();
      for (const r of rows) {
        const portId = ports.get(r.slot.slice('mac:'.length, r.slot.lastIndexOf('|'))) as string;
        moved.set(r.slot, { to: `port:${portId}|${r.address}`, portId });
      }
      for (const [from, { to, portId }] of moved) {
        await trx.updateTable('address_changes').set({ slot: to, port: portId }).where('cloud', '=', cloud).where('slot', '=', from).execute();
        // Facts of any time move: both slots are re-derived whole.
        touchSlot(t, from, EVER);
        touchSlot(t, to, EVER);
      }
      await moveHolderSlots(trx, cloud, rows.map((r) => ({ holder_key: r.holder_key, from: r.slot, to: moved.get(r.slot)?.to as string })));
    }
  }
}

/** Nova's versioned payload names a port and its MAC: enough to place legacy reports of the same port even when Neutron's events were lost. */
function recordPortMac(ctx: Ctx, cloud: string, portId: string, mac: string): void {
  const row = ctx.rows.port(cloud, portId);
  if (row?.mac === mac) return;
  // Event time 0: any Neutron event about the port is newer and overrides.
  if (row === undefined) ctx.rows.setPort({ cloud, port_id: portId, device_id: null, device_owner: null, network: null, mac, project: null, deleted_at: null, last_event_at: 0 });
  else if (row.mac === null) ctx.rows.setPort({ ...row, mac });
  ctx.buf.macs.push({ cloud, portId, mac });
}

function applyFloatingIp(ctx: Ctx, n: DecodedNotification, e: FloatingIpEvent): void {
  if (e.action === 'update.start') return;
  const at = n.occurredAt.getTime();
  const f = e.floatingIp;
  const slot = `fip:${f.id}`;
  const address = f.address === undefined ? '' : storedIp(f.address);
  if (e.action === 'delete.end' || f.portId === null) {
    addChange(ctx, n.cloud, slot, at, { op: 'release_any', holderKey: '', holder: releaseOf(address, 'floating', n.messageId) });
    return;
  }
  if (f.portId === undefined || f.address === undefined) return;
  addChange(ctx, n.cloud, slot, at, {
    op: 'bind', holderKey: f.portId,
    holder: { address, kind: 'floating', instanceId: f.instanceId ?? null, port: f.portId, mac: null, network: f.networkId ?? null, project: f.project ?? null, messageId: n.messageId },
  });
  // port_details says which instance had the port then: a fact about the port's fixed address too.
  if (f.instanceId !== undefined && typeof f.fixedAddress === 'string') {
    const fixedAddress = storedIp(f.fixedAddress);
    addChange(ctx, n.cloud, `port:${f.portId}|${fixedAddress}`, at, {
      op: 'bind', holderKey: f.instanceId,
      holder: { address: fixedAddress, kind: 'fixed', instanceId: f.instanceId, port: f.portId, mac: null, network: null, project: null, messageId: n.messageId },
    });
  }
}

function applyRouterInterface(ctx: Ctx, n: DecodedNotification, e: RouterInterfaceEvent): void {
  const at = n.occurredAt.getTime();
  upsertPort(ctx.rows, n.cloud, at, { id: e.portId, deviceId: e.routerId, deviceOwner: 'network:router_interface', networkId: e.networkId, project: e.project }, e.action === 'delete');
  ctx.t.ports.add(e.portId);
}

/**
 * A router's gateway addresses are held by the router (kind `router-gateway`,
 * the router's project): the SNAT address of every instance behind it.
 */
function applyRouter(ctx: Ctx, n: DecodedNotification, e: RouterEvent): void {
  const at = n.occurredAt.getTime();
  const r = e.router;
  const deleted = e.action === 'delete.end';
  const row = ctx.rows.router(n.cloud, r.id);
  if (row === undefined) {
    ctx.rows.setRouter({ cloud: n.cloud, router_id: r.id, name: r.name ?? null, project: r.project ?? null, deleted_at: deleted ? at : null, last_event_at: at });
  } else {
    const newer = at >= row.last_event_at;
    ctx.rows.setRouter({
      cloud: n.cloud, router_id: r.id,
      name: r.name !== undefined && (newer || row.name === null) ? r.name : row.name,
      project: row.project ?? r.project ?? null,
      deleted_at: deleted ? Math.min(row.deleted_at ?? at, at) : row.deleted_at,
      last_event_at: Math.max(row.last_event_at, at),
    });
  }
  const ips = deleted ? [] : r.gatewayIps === null ? [] : r.gatewayIps?.map(storedIp);
  if (ips === undefined) return;
  for (const address of ips) {
    addChange(ctx, n.cloud, `router-gw:${r.id}|${address}`, at, {
      op: 'bind', holderKey: r.id,
      holder: { address, kind: 'router-gateway', instanceId: null, port: null, mac: null, network: r.gatewayNetworkId ?? null, project: r.project ?? null, messageId: n.messageId },
    });
  }
  addSnapshot(ctx, n.cloud, `router:${r.id}`, at, n.messageId, ips);
  // The list bounds every gateway address the router ever had, including ones recorded later.
  ctx.t.routers.add(r.id);
}

// ---------------------------------------------------------------------------
// OpenNebula

const ONE_DONE = 6;

function applyOneVm(ctx: Ctx, n: DecodedNotification, e: OneVmEvent): void {
  const at = n.occurredAt.getTime();
  const vm = e.vm;
  const id = String(vm.id);
  const done = vm.state.code === ONE_DONE;
  const stateName = vm.state.name === 'ACTIVE' ? `ACTIVE/${vm.lcmState.name ?? vm.lcmState.code}` : vm.state.name ?? String(vm.state.code);
  const actor = vm.historyAction?.uid;
  linkEvent(ctx, n, id, stateName);
  upsertInstance(ctx.rows, n.cloud, id, at, {
    name: vm.name, project: vm.gname, user: vm.uname, userName: vm.uname, projectName: vm.gname, namesFrom: 'opennebula', host: vm.host, state: stateName, createdAt: vm.stime,
    deletedAt: done ? (vm.etime ?? n.occurredAt) : undefined,
    deletedBy: done && actor !== undefined ? String(actor) : undefined,
    endedAt: done ? at : undefined,
  });
  if (done) return;
  // Every state event lists all NICs: a NIC missing from a later one was detached.
  // Times are whole seconds: the VM's own sequence orders documents of one second.
  const ord = vmDocumentOrder(vm);
  const members: string[] = [];
  for (const nic of vm.nics) {
    for (const given of [nic.ip, nic.ip6, nic.ip6Global, nic.ip6Ula]) {
      if (given === undefined) continue;
      const address = storedIp(given);
      members.push(`nic|${address}`);
      addChange(ctx, n.cloud, `one-nic:${id}/${nic.nicId}|${address}`, at, {
        op: 'bind', holderKey: id,
        holder: { address, kind: 'nic', instanceId: id, port: nic.target ?? null, mac: nic.mac ?? null, network: nic.network ?? (nic.networkId === undefined ? null : String(nic.networkId)), project: vm.gname, messageId: n.messageId },
      }, ord);
    }
  }
  addSnapshot(ctx, n.cloud, `instance:${id}`, at, n.messageId, members, ord);
}
