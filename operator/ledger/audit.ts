// The audit trail: append-only and chained. Each row's hash covers its own
// fields and the previous row's hash, so changing or deleting any row breaks
// the chain at that row, and `verify` can name it. Rows written with an audit
// key carry an HMAC-SHA256 instead of a bare SHA-256: whoever can write the
// database but does not hold the key cannot rewrite the trail and re-hash it.
// Truncating the tail is caught by the heads anchored outside the ledger
// (audit-anchor.ts), and edits to the quarantine and hold tables by comparing
// each row with the last value the trail recorded for it.
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { PostgresAdapter, sql, type Kysely, type Transaction } from 'kysely';
import type { AuditTable, LedgerSchema } from './schema.ts';

export const GENESIS = '0'.repeat(64);
const AUDIT_LOCK = 7_312_406_851;

export interface AuditEntry {
  actor: string;
  action: string;
  subject?: string | undefined;
  details?: Record<string, unknown> | undefined;
  at?: Date | undefined;
}

export class AuditKeyError extends Error {
  override name = 'AuditKeyError';
}

export interface AuditKey {
  /** A fingerprint of the key, stored with each row: never the key itself. */
  id: string;
  secret: Buffer;
}

/** The key rows are written with now, and older keys still needed to verify rows written before a rotation. */
export interface AuditKeyRing {
  current: AuditKey;
  byId: ReadonlyMap<string, AuditKey>;
}

export const MIN_KEY_LENGTH = 32;

export function auditKey(secret: string): AuditKey {
  if (secret.length < MIN_KEY_LENGTH) throw new AuditKeyError(`an audit key must be at least ${MIN_KEY_LENGTH} characters (e.g. \`openssl rand -base64 48\`)`);
  const buf = Buffer.from(secret, 'utf8');
  return { id: createHmac('sha256', buf).update('quarantine-operator audit key id').digest('hex').slice(0, 16), secret: buf };
}

/** The first secret is the current key; the others are kept for verifying older rows. */
export function auditKeyRing(secrets: readonly string[]): AuditKeyRing | undefined {
  const keys = secrets.map(auditKey);
  const current = keys[0];
  if (current === undefined) return undefined;
  return { current, byId: new Map(keys.map((k) => [k.id, k])) };
}

// The composition root registers the key ring with the database handle, so
// that every writer of audit rows (capture, sweep, holds, investigators)
// signs without each call site carrying the key.
const rings = new WeakMap<object, AuditKeyRing>();

export function useAuditKeys(db: Kysely<LedgerSchema>, ring: AuditKeyRing | undefined): void {
  if (ring === undefined) rings.delete(db);
  else rings.set(db, ring);
}

export function auditKeysOf(db: Kysely<LedgerSchema>): AuditKeyRing | undefined {
  return rings.get(db);
}

/** Canonical JSON: keys sorted at every level, so equal content hashes equally on every engine. */
export function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    return `{${Object.keys(value as object).sort().map((k) => `${JSON.stringify(k)}:${canonical((value as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  return JSON.stringify(value ?? null);
}

type RowContent = Omit<AuditTable, 'hash'>;

/** The row's hash: SHA-256 for rows of the unkeyed era, HMAC-SHA256 with the key named by key_id after it. */
export function rowHash(r: RowContent, key?: AuditKey): string {
  if (r.key_id === null) return createHash('sha256').update(canonical([r.seq, r.at, r.actor, r.action, r.subject, r.details, r.prev_hash])).digest('hex');
  if (key === undefined || key.id !== r.key_id) throw new AuditKeyError(`audit row ${r.seq} is keyed with key ${r.key_id}, which was not given`);
  return createHmac('sha256', key.secret).update(canonical([r.seq, r.at, r.actor, r.action, r.subject, r.details, r.prev_hash, r.key_id])).digest('hex');
}

type Executor = Transaction<LedgerSchema> | Kysely<LedgerSchema>;

function isPostgres(db: Executor): boolean {
  return db.getExecutor().adapter instanceof PostgresAdapter;
}

/**
 * Appends within the caller's transaction (or a transaction of its own).
 * Writers on PostgreSQL take an advisory lock for the rest of the
 * transaction, so concurrent replicas queue for the next seq instead of
 * forking the chain. With a key, the first row signed by a key that did not
 * sign the previous row is an `audit.keyed` entry naming the head it follows:
 * the start of the keyed era, or a key rotation, stands in the trail itself.
 */
export async function appendAudit(db: Executor, e: AuditEntry, opts: { keys?: AuditKeyRing | undefined } = {}): Promise<AuditTable> {
  const keys = opts.keys ?? rings.get(db);
  if (!db.isTransaction) return db.transaction().execute((trx) => appendIn(trx, e, keys));
  return appendIn(db, e, keys);
}

async function appendIn(trx: Executor, e: AuditEntry, keys: AuditKeyRing | undefined): Promise<AuditTable> {
  if (isPostgres(trx)) await sql`SELECT pg_advisory_xact_lock(${AUDIT_LOCK})`.execute(trx);
  const last = await trx.selectFrom('audit').select(['seq', 'hash', 'key_id']).orderBy('seq', 'desc').limit(1).executeTakeFirst();
  const key = keys?.current;
  if (key === undefined && last !== undefined && last.key_id !== null) {
    throw new AuditKeyError(`the audit trail is keyed (key ${last.key_id}): give the audit key (--audit-key-file or QUARANTINE_AUDIT_KEY_FILE)`);
  }
  let prev = last === undefined ? undefined : { seq: last.seq, hash: last.hash };
  const at = (e.at ?? new Date()).getTime();
  if (key !== undefined && last?.key_id !== key.id) {
    const marker = await insertRow(trx, prev, key, {
      at, actor: 'quarantine-operator', action: 'audit.keyed', subject: null,
      details: { keyId: key.id, previousKeyId: last?.key_id ?? null, previousHead: prev === undefined ? null : `${prev.seq}:${prev.hash}` },
    });
    prev = { seq: marker.seq, hash: marker.hash };
  }
  return insertRow(trx, prev, key, { at, actor: e.actor, action: e.action, subject: e.subject ?? null, details: e.details ?? {} });
}

async function insertRow(trx: Executor, prev: { seq: number; hash: string } | undefined, key: AuditKey | undefined,
  r: { at: number; actor: string; action: string; subject: string | null; details: Record<string, unknown> }): Promise<AuditTable> {
  const row: RowContent = {
    seq: (prev?.seq ?? 0) + 1, at: r.at, actor: r.actor, action: r.action, subject: r.subject,
    details: canonical(r.details), prev_hash: prev?.hash ?? GENESIS, key_id: key?.id ?? null,
  };
  const full = { ...row, hash: rowHash(row, key) };
  await trx.insertInto('audit').values(full).execute();
  return full;
}

// ---- the tables the trail vouches for -------------------------------------

/** What the trail records of a quarantine: its state, where its data is, when it expires, its digest. */
export function quarantineSnapshot(r: { state: string; location_pool: string; location_namespace: string | null; location_image: string; expires_at: number | null; digest: string | null; isolation?: string | null | undefined }) {
  return {
    state: r.state, location: { pool: r.location_pool, namespace: r.location_namespace, image: r.location_image }, expiresAt: r.expires_at, digest: r.digest,
    // Whether the data still depends on the cloud's pool; absent for rows older than isolation, whose entries never had it.
    ...(r.isolation === null || r.isolation === undefined ? {} : { isolation: r.isolation }),
  };
}

/** What the trail records of a hold: everything that decides what it protects and for how long. */
export function holdSnapshot(r: { case_id: string | null; reason: string | null; selector: string; until: number | null; released_at: number | null; created_by: string | null }) {
  return { caseId: r.case_id, reason: r.reason, selector: JSON.parse(r.selector) as unknown, until: r.until, releasedAt: r.released_at, createdBy: r.created_by };
}

export type AuditedTable = 'quarantines' | 'holds';

/** Details of an entry recording a table row's new value; `verify` compares the last one per row with the table. */
export function rowDetails(table: AuditedTable, row: unknown, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { ...extra, table, row };
}

// ---- verification ---------------------------------------------------------

export interface AuditAnchor {
  seq: number;
  hash: string;
  at: string;
  keyId: string | null;
  /** HMAC of the anchor by the key it names, so that an anchor cannot be forged without the key. */
  mac: string | null;
  /** Where the anchor was read from, for the report. */
  source?: string;
}

export function anchorMac(a: { seq: number; hash: string; at: string }, key: AuditKey): string {
  return createHmac('sha256', key.secret).update(canonical(['audit-anchor', a.seq, a.hash, a.at])).digest('hex');
}

export type AuditProblemKind = 'modified' | 'missing-before' | 'broken-link' | 'unkeyed-after-keyed' | 'unknown-key' | 'truncated' | 'anchor' | 'table';

export interface AuditProblem {
  seq: number;
  problem: AuditProblemKind;
  detail: string;
}

export interface AuditVerification {
  ok: boolean;
  rows: number;
  lastSeq: number;
  head: string | null;
  /** Seq of the first keyed row, null while the trail is unkeyed. */
  keyedFrom: number | null;
  anchorsChecked: number;
  quarantinesChecked: number;
  holdsChecked: number;
  problems: AuditProblem[];
}

function sameHex(a: string, b: string): boolean {
  return a.length === b.length && timingSafeEqual(Buffer.from(a), Buffer.from(b));
}

const iso = (ms: unknown): string => (typeof ms === 'number' ? new Date(ms).toISOString() : String(ms));

function describeDifference(audited: Record<string, unknown>, actual: Record<string, unknown>): string {
  const fields = [...new Set([...Object.keys(audited), ...Object.keys(actual)])].filter((k) => canonical(audited[k]) !== canonical(actual[k]));
  return fields.map((f) => {
    const show = (v: unknown) => (/At$|^until$|^expiresAt$/.test(f) && typeof v === 'number' ? iso(v) : canonical(v));
    return `${f} is ${show(actual[f])} in the table but ${show(audited[f])} in the audit trail`;
  }).join('; ');
}

/**
 * Walks the whole chain in order; every row whose content or link does not
 * check out is named. Then every anchored head must still be in the chain
 * with the same hash, and every quarantine and hold row must equal the last
 * value the trail recorded for it.
 */
export async function verifyAudit(db: Kysely<LedgerSchema>, opts: { keys?: AuditKeyRing | undefined; anchors?: readonly AuditAnchor[] } = {}): Promise<AuditVerification> {
  const keys = opts.keys ?? rings.get(db);
  const problems: AuditProblem[] = [];
  let prevHash = GENESIS;
  let expectedSeq = 1;
  let rows = 0;
  let lastSeq = 0;
  let lastHash: string | null = null;
  let keyedFrom: number | null = null;
  const lastRow = new Map<string, { seq: number; row: Record<string, unknown> }>();
  const page = 5000;
  for (let after = 0; ; ) {
    const batch = await db.selectFrom('audit').selectAll().where('seq', '>', after).orderBy('seq').limit(page).execute();
    for (const r of batch) {
      rows += 1;
      if (r.seq !== expectedSeq) problems.push({ seq: r.seq, problem: 'missing-before', detail: `rows ${expectedSeq}..${r.seq - 1} are missing (deleted)` });
      if (r.prev_hash !== prevHash) problems.push({ seq: r.seq, problem: 'broken-link', detail: 'prev_hash does not match the previous row' });
      const { hash, ...rest } = r;
      if (r.key_id === null) {
        if (keyedFrom !== null) problems.push({ seq: r.seq, problem: 'unkeyed-after-keyed', detail: `an unkeyed row after the keyed era began at row ${keyedFrom} (rewritten without the key)` });
        if (rowHash(rest) !== hash) problems.push({ seq: r.seq, problem: 'modified', detail: `content does not match its hash (action ${r.action}, subject ${r.subject ?? '-'})` });
      } else {
        keyedFrom ??= r.seq;
        const key = keys?.byId.get(r.key_id);
        if (keys === undefined) throw new AuditKeyError(`the audit trail is keyed (key ${r.key_id} from row ${r.seq}): verifying it needs the key (--audit-key-file or QUARANTINE_AUDIT_KEY_FILE)`);
        if (key === undefined) problems.push({ seq: r.seq, problem: 'unknown-key', detail: `keyed with ${r.key_id}, none of the given keys` });
        else if (!sameHex(rowHash(rest, key), hash)) problems.push({ seq: r.seq, problem: 'modified', detail: `content does not match its keyed hash (action ${r.action}, subject ${r.subject ?? '-'})` });
      }
      if (r.subject !== null && r.details.includes('"table":"')) {
        const d = JSON.parse(r.details) as { table?: unknown; row?: unknown };
        if ((d.table === 'quarantines' || d.table === 'holds') && d.row !== null && typeof d.row === 'object') {
          lastRow.set(`${d.table}\u0000${r.subject}`, { seq: r.seq, row: d.row as Record<string, unknown> });
        }
      }
      prevHash = hash;
      expectedSeq = r.seq + 1;
      lastSeq = r.seq;
      lastHash = hash;
    }
    if (batch.length < page) break;
    after = batch[batch.length - 1]?.seq ?? after;
  }

  let anchorsChecked = 0;
  for (const a of opts.anchors ?? []) {
    anchorsChecked += 1;
    const where = a.source === undefined ? '' : ` (${a.source})`;
    if (a.keyId !== null && a.mac !== null) {
      const key = keys?.byId.get(a.keyId);
      if (key !== undefined && !sameHex(anchorMac(a, key), a.mac)) {
        problems.push({ seq: a.seq, problem: 'anchor', detail: `the anchor of row ${a.seq} at ${a.at}${where} is not signed by its key (forged anchor)` });
        continue;
      }
    }
    if (a.seq > lastSeq) {
      problems.push({ seq: a.seq, problem: 'truncated', detail: `row ${a.seq} was anchored at ${a.at}${where} but the trail ends at row ${lastSeq} (its tail was truncated)` });
      continue;
    }
    const row = await db.selectFrom('audit').select(['hash']).where('seq', '=', a.seq).executeTakeFirst();
    if (row === undefined) problems.push({ seq: a.seq, problem: 'truncated', detail: `row ${a.seq}, anchored at ${a.at}${where}, is gone` });
    else if (!sameHex(row.hash, a.hash)) problems.push({ seq: a.seq, problem: 'anchor', detail: `row ${a.seq} no longer has the hash anchored at ${a.at}${where} (the trail was rewritten)` });
  }

  let quarantinesChecked = 0;
  let holdsChecked = 0;
  const seen = new Set<string>();
  const compare = (table: AuditedTable, id: string, actual: Record<string, unknown>) => {
    const key = `${table}\u0000${id}`;
    seen.add(key);
    const audited = lastRow.get(key);
    const what = table === 'quarantines' ? `quarantine ${id}` : `hold ${id}`;
    if (audited === undefined) problems.push({ seq: 0, problem: 'table', detail: `${what} has no entry in the audit trail (inserted behind its back)` });
    else if (canonical(audited.row) !== canonical(actual)) problems.push({ seq: audited.seq, problem: 'table', detail: `${what}: ${describeDifference(audited.row, actual)} (row ${audited.seq})` });
  };
  for (const q of await db.selectFrom('quarantines').select(['id', 'state', 'location_pool', 'location_namespace', 'location_image', 'expires_at', 'digest', 'isolation']).execute()) {
    quarantinesChecked += 1;
    compare('quarantines', q.id, quarantineSnapshot(q));
  }
  for (const h of await db.selectFrom('holds').select(['name', 'case_id', 'reason', 'selector', 'until', 'released_at', 'created_by']).execute()) {
    holdsChecked += 1;
    compare('holds', h.name, holdSnapshot(h));
  }
  for (const [key, audited] of lastRow) {
    if (seen.has(key)) continue;
    const [table, id] = key.split('\u0000');
    problems.push({ seq: audited.seq, problem: 'table', detail: `${table === 'quarantines' ? 'quarantine' : 'hold'} ${id ?? '?'} is in the audit trail (row ${audited.seq}) but its row is gone (deleted)` });
  }
  problems.sort((a, b) => a.seq - b.seq);
  return {
    ok: problems.length === 0, rows, lastSeq, head: lastHash === null ? null : `${lastSeq}:${lastHash}`, keyedFrom,
    anchorsChecked, quarantinesChecked, holdsChecked, problems,
  };
}
