// Capture intents in the ledger: written in the transaction that applies
// what caused them, read and closed by the reconcilers.
import type { Kysely, Selectable } from 'kysely';
import type { CaptureIntentsTable, LedgerSchema } from '../ledger/schema.ts';
import type { DecodedNotification } from '../domain/events.ts';
import { policyFor, type Policy } from '../domain/policy.ts';
import { HOLDING } from './quarantine-store.ts';
import { instanceFacts } from './provenance.ts';
import { admission, capacityLimited, intentId, planFor, signalsOf, type Decision, type Holding, type IntentKind } from './lifecycle.ts';

export type IntentRow = Selectable<CaptureIntentsTable>;

export interface IntentSink {
  cloud: string;
  policies: () => readonly Policy[];
}

export async function holdingOf(db: Kysely<LedgerSchema>, policy: string): Promise<Holding> {
  const rows = await db.selectFrom('quarantines').select(['bytes']).where('policy', '=', policy).where('state', 'in', [...HOLDING]).execute();
  return { count: rows.length, bytes: rows.reduce((s, r) => s + (r.bytes ?? 0), 0) };
}

export async function admissionOf(db: Kysely<LedgerSchema>, p: Policy): Promise<'admitted' | 'full'> {
  return capacityLimited(p) ? admission(p, await holdingOf(db, p.name)) : 'admitted';
}

export interface NewIntent {
  cloud: string;
  kind: IntentKind;
  subject: string;
  instanceId: string;
  messageId: string | null;
  announcedAt: Date;
  decision: Decision | undefined;
}

/**
 * Records an intent, or reopens a closed one for the same subject (a second
 * soft delete after a restore); an open one is left as it is, so the second
 * warning of a cloud that publishes both formats adds nothing.
 */
export async function putIntent(db: Kysely<LedgerSchema>, i: NewIntent, now: Date): Promise<string> {
  const id = intentId(i.cloud, i.kind, i.subject);
  const decision = JSON.stringify(i.decision ?? {});
  await db.insertInto('capture_intents').values({
    id, cloud: i.cloud, kind: i.kind, subject: i.subject, instance_id: i.instanceId, message_id: i.messageId,
    announced_at: i.announcedAt.getTime(), decision, state: 'open', outcome: null, created_at: now.getTime(), updated_at: now.getTime(),
  }).onConflict((oc) => oc.column('id').doUpdateSet({
    state: 'open', outcome: null, decision, message_id: i.messageId, announced_at: i.announcedAt.getTime(), updated_at: now.getTime(),
  }).where('capture_intents.state', '!=', 'open')).execute();
  return id;
}

/**
 * The capture side of applying one notification, inside its transaction: a
 * warning is never acknowledged without the intent that acts on it. Returns
 * whether a trash scan is owed (trash-mode policies adopt from the trash).
 */
export async function recordCaptureIntents(trx: Kysely<LedgerSchema>, n: DecodedNotification, sink: IntentSink): Promise<boolean> {
  if (n.cloud !== sink.cloud) return false;
  let scan = false;
  for (const signal of signalsOf(n)) {
    let p: Policy | undefined;
    let capacity: 'admitted' | 'full' = 'admitted';
    if (signal.kind === 'warning' || signal.kind === 'soft') {
      const facts = await instanceFacts(trx, n.cloud, signal.instanceId);
      p = policyFor(sink.policies(), facts, n.receivedAt);
      if (p !== undefined) capacity = await admissionOf(trx, p);
    }
    const plan = planFor(signal, p, capacity);
    if (plan.do === 'scanTrash') scan = true;
    else if (plan.do === 'cancel') {
      await trx.updateTable('capture_intents').set({ state: 'cancelled', outcome: `${signal.kind} (${n.messageId})`, updated_at: n.receivedAt.getTime() })
        .where('cloud', '=', n.cloud).where('instance_id', '=', signal.instanceId).where('kind', 'in', plan.kinds).where('state', '=', 'open').execute();
    } else if (plan.do === 'intent') {
      await putIntent(trx, {
        cloud: n.cloud, kind: plan.kind, subject: signal.instanceId, instanceId: signal.instanceId, messageId: n.messageId,
        announcedAt: n.occurredAt, decision: plan.decision,
      }, n.receivedAt);
    }
  }
  return scan;
}

export class IntentStore {
  readonly #db: Kysely<LedgerSchema>;
  constructor(db: Kysely<LedgerSchema>) {
    this.#db = db;
  }

  get(id: string): Promise<IntentRow | undefined> {
    return this.#db.selectFrom('capture_intents').selectAll().where('id', '=', id).executeTakeFirst();
  }

  open(cloud: string, filter: { kinds?: readonly IntentKind[]; instanceId?: string } = {}): Promise<IntentRow[]> {
    let q = this.#db.selectFrom('capture_intents').selectAll().where('cloud', '=', cloud).where('state', '=', 'open');
    if (filter.kinds !== undefined) q = q.where('kind', 'in', [...filter.kinds]);
    if (filter.instanceId !== undefined) q = q.where('instance_id', '=', filter.instanceId);
    return q.orderBy('announced_at').orderBy('id').execute();
  }

  async subjects(cloud: string, kind: IntentKind): Promise<Set<string>> {
    const rows = await this.#db.selectFrom('capture_intents').select('subject').where('cloud', '=', cloud).where('kind', '=', kind).execute();
    return new Set(rows.map((r) => r.subject));
  }

  /**
   * Deletes intents closed before `closedBefore`; returns how many. Not
   * audited: an intent is bookkeeping, not evidence. What it decided that
   * matters later (policy, retention) is on the quarantine row, the warning
   * itself stays in notifications, and every change of a quarantine is in the
   * trail. A late copy of a warning is a duplicate notification and writes no
   * new intent; a trash entry already adopted is known by its quarantine.
   */
  async prune(cloud: string, closedBefore: Date): Promise<number> {
    const r = await this.#db.deleteFrom('capture_intents')
      .where('cloud', '=', cloud).where('state', 'in', ['done', 'cancelled']).where('updated_at', '<', closedBefore.getTime()).executeTakeFirst();
    return Number(r.numDeletedRows);
  }

  /** Closes an open intent; false when it was closed (or reopened and closed) by someone else. */
  async close(id: string, state: 'done' | 'cancelled', outcome: string, now: Date): Promise<boolean> {
    const r = await this.#db.updateTable('capture_intents').set({ state, outcome, updated_at: now.getTime() })
      .where('id', '=', id).where('state', '=', 'open').executeTakeFirst();
    return Number(r.numUpdatedRows) > 0;
  }
}
