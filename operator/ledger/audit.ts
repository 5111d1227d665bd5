// The audit trail: append-only and hash-chained. Each row's hash covers its
// own fields and the previous row's hash, so changing or deleting any row
// breaks the chain at that row, and `verify` can name it.
import { createHash } from 'node:crypto';
import type { Kysely, Transaction } from 'kysely';
import type { AuditTable, LedgerSchema } from './schema.ts';

export const GENESIS = '0'.repeat(64);

export interface AuditEntry {
  actor: string;
  action: string;
  subject?: string | undefined;
  details?: Record<string, unknown> | undefined;
  at?: Date | undefined;
}

/** Canonical JSON: keys sorted at every level, so equal content hashes equally on every engine. */
export function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    return `{${Object.keys(value as object).sort().map((k) => `${JSON.stringify(k)}:${canonical((value as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  return JSON.stringify(value ?? null);
}

export function rowHash(r: Omit<AuditTable, 'hash'>): string {
  return createHash('sha256').update(canonical([r.seq, r.at, r.actor, r.action, r.subject, r.details, r.prev_hash])).digest('hex');
}

/**
 * Appends within the caller's transaction. Concurrent writers (several
 * replicas on PostgreSQL) race for the next seq; the primary key makes the
 * loser's transaction fail and retry, so the chain never forks.
 */
export async function appendAudit(trx: Transaction<LedgerSchema> | Kysely<LedgerSchema>, e: AuditEntry): Promise<AuditTable> {
  const last = await trx.selectFrom('audit').select(['seq', 'hash']).orderBy('seq', 'desc').limit(1).executeTakeFirst();
  const row: Omit<AuditTable, 'hash'> = {
    seq: (last?.seq ?? 0) + 1,
    at: (e.at ?? new Date()).getTime(),
    actor: e.actor,
    action: e.action,
    subject: e.subject ?? null,
    details: canonical(e.details ?? {}),
    prev_hash: last?.hash ?? GENESIS,
  };
  const full = { ...row, hash: rowHash(row) };
  await trx.insertInto('audit').values(full).execute();
  return full;
}

export interface AuditProblem {
  seq: number;
  problem: 'modified' | 'missing-before' | 'broken-link';
  detail: string;
}

export interface AuditVerification {
  ok: boolean;
  rows: number;
  lastSeq: number;
  problems: AuditProblem[];
}

/** Walks the whole chain in order; every row whose content or link does not check out is named. */
export async function verifyAudit(db: Kysely<LedgerSchema>): Promise<AuditVerification> {
  const problems: AuditProblem[] = [];
  let prevHash = GENESIS;
  let expectedSeq = 1;
  let rows = 0;
  let lastSeq = 0;
  const page = 5000;
  for (let after = 0; ; ) {
    const batch = await db.selectFrom('audit').selectAll().where('seq', '>', after).orderBy('seq').limit(page).execute();
    for (const r of batch) {
      rows += 1;
      if (r.seq !== expectedSeq) problems.push({ seq: r.seq, problem: 'missing-before', detail: `rows ${expectedSeq}..${r.seq - 1} are missing (deleted)` });
      if (r.prev_hash !== prevHash) problems.push({ seq: r.seq, problem: 'broken-link', detail: 'prev_hash does not match the previous row' });
      const { hash, ...rest } = r;
      if (rowHash(rest) !== hash) problems.push({ seq: r.seq, problem: 'modified', detail: `content does not match its hash (action ${r.action}, subject ${r.subject ?? '-'})` });
      prevHash = hash;
      expectedSeq = r.seq + 1;
      lastSeq = r.seq;
    }
    if (batch.length < page) break;
    after = batch[batch.length - 1]?.seq ?? after;
  }
  return { ok: problems.length === 0, rows, lastSeq, problems };
}
