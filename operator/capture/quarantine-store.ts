// The quarantines table as the capture engine sees it: rows are planned
// before any Ceph call, and every state change is a conditional update, so
// two replicas (or a restarted one) never run the same step twice at once.
// Every change of a row's state, location, expiry or digest is written to the
// audit trail in the same transaction, so the trail can vouch for the table.
import type { Kysely, Selectable, Transaction, Updateable } from 'kysely';
import type { LedgerSchema, QuarantinesTable } from '../ledger/schema.ts';
import { appendAudit, auditKeysOf, canonical, quarantineSnapshot, rowDetails } from '../ledger/audit.ts';

export const CAPTURE_STATES = ['planned', 'snapshotting', 'cloning', 'quarantined', 'flattening', 'expired', 'purged', 'failed'] as const;
export type CaptureState = (typeof CAPTURE_STATES)[number];

/** States from which the engine still has work to do to reach `quarantined`. */
export const IN_PROGRESS: readonly CaptureState[] = ['planned', 'snapshotting', 'cloning'];
/** A quarantine that holds evidence (and counts against capacity). */
export const HOLDING: readonly CaptureState[] = ['quarantined', 'flattening', 'expired'];

export type QuarantineRow = Selectable<QuarantinesTable>;

/**
 * After capture: the digest of the capture snapshot is taken, then the bytes
 * are copied out of the cloud's pool and the anchor there released.
 *   digesting → isolating → isolated, or digesting → not-isolated (policy opt-out),
 *   or isolating → copy-differs (a copy resumed after a crash did not match the capture digest: not isolated, for a person to look at)
 */
export const ISOLATION_STEPS = ['digesting', 'isolating', 'isolated', 'not-isolated', 'copy-differs'] as const;
export type IsolationStep = (typeof ISOLATION_STEPS)[number];
export const ISOLATION_PENDING: readonly IsolationStep[] = ['digesting', 'isolating'];
export type NewQuarantine = Omit<QuarantineRow, 'state' | 'failure' | 'flattened' | 'captured_at' | 'expires_at' | 'purged_at' | 'digest' | 'digest_at' | 'bytes' | 'updated_at' | 'anchor_trash_id' | 'retention_ms' | 'intent_id' | 'owner' | 'claimed_until' | 'isolate' | 'isolation' | 'isolated_at'> & {
  anchor_trash_id?: string | null;
  /** Whether the quarantine is to be isolated once captured (default: yes). */
  isolate?: boolean;
  retention_ms?: number | null;
  intent_id?: string | null;
};

export const STORE_ACTOR = 'quarantine-operator';

export class QuarantineStore {
  readonly db: Kysely<LedgerSchema>;
  readonly #actor: string;
  constructor(db: Kysely<LedgerSchema>, actor = STORE_ACTOR) {
    this.db = db;
    this.#actor = actor;
  }

  /** Inserts a planned capture, or returns the existing one for the same source image: captures are idempotent per (cloud, image id). */
  async plan(q: NewQuarantine, now: Date): Promise<{ row: QuarantineRow; created: boolean }> {
    const { isolate, ...fields } = q;
    return this.db.transaction().execute(async (trx) => {
      const res = await trx.insertInto('quarantines').values({
        ...fields, isolate: isolate === false ? 0 : 1, isolation: null, isolated_at: null, anchor_trash_id: q.anchor_trash_id ?? null, retention_ms: q.retention_ms ?? null, intent_id: q.intent_id ?? null, owner: null, claimed_until: null, state: 'planned', failure: null, flattened: 0, captured_at: null, expires_at: null,
        purged_at: null, digest: null, digest_at: null, bytes: null, updated_at: now.getTime(),
      }).onConflict((oc) => oc.columns(['cloud', 'source_image_id']).doNothing()).executeTakeFirst();
      const created = Number(res.numInsertedOrUpdatedRows ?? 0n) > 0;
      const row = await trx.selectFrom('quarantines').selectAll().where('cloud', '=', q.cloud).where('source_image_id', '=', q.source_image_id).executeTakeFirstOrThrow();
      if (created) await this.#audit(trx, 'quarantine.planned', row, now, { cloud: row.cloud, instance: row.instance_id, disk: row.disk, mode: row.mode, policy: row.policy });
      return { row, created };
    });
  }

  async #audit(trx: Transaction<LedgerSchema>, action: string, row: QuarantineRow, now: Date, extra: Record<string, unknown>): Promise<void> {
    await appendAudit(trx, { actor: this.#actor, action, subject: row.id, at: now, details: rowDetails('quarantines', quarantineSnapshot(row), extra) }, { keys: auditKeysOf(this.db) });
  }

  /** Applies an update and audits it when it changed what the trail vouches for. */
  async #change(id: string, now: Date, fields: Updateable<QuarantinesTable>, from?: readonly CaptureState[], owner?: string, step?: { isolation: IsolationStep | null; note: Record<string, unknown> }): Promise<boolean> {
    return this.db.transaction().execute(async (trx) => {
      const before = await trx.selectFrom('quarantines').selectAll().where('id', '=', id).executeTakeFirst();
      if (before === undefined || (from !== undefined && !(from as readonly string[]).includes(before.state))) return false;
      if (owner !== undefined && before.owner !== owner) return false;
      if (step !== undefined && before.isolation !== step.isolation) return false;
      let q = trx.updateTable('quarantines').set({ ...fields, updated_at: now.getTime() }).where('id', '=', id);
      if (from !== undefined) q = q.where('state', 'in', [...from]);
      if (owner !== undefined) q = q.where('owner', '=', owner);
      if (step !== undefined) q = step.isolation === null ? q.where('isolation', 'is', null) : q.where('isolation', '=', step.isolation);
      const r = await q.executeTakeFirst();
      if (Number(r.numUpdatedRows) === 0) return false;
      const after = await trx.selectFrom('quarantines').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
      const was = quarantineSnapshot(before);
      const is = quarantineSnapshot(after);
      if (canonical(was) !== canonical(is)) {
        const changed = (Object.keys(is) as Array<keyof typeof is>).filter((k) => canonical(was[k]) !== canonical(is[k]));
        await this.#audit(trx, 'quarantine.changed', after, now, { changed, from: Object.fromEntries(changed.map((k) => [k, was[k]])), ...step?.note });
      }
      return true;
    });
  }

  async get(id: string): Promise<QuarantineRow | undefined> {
    return this.db.selectFrom('quarantines').selectAll().where('id', '=', id).executeTakeFirst();
  }

  async bySource(cloud: string, sourceImageId: string): Promise<QuarantineRow | undefined> {
    return this.db.selectFrom('quarantines').selectAll().where('cloud', '=', cloud).where('source_image_id', '=', sourceImageId).executeTakeFirst();
  }

  /** Moves a row on only if it is still in one of `from`; false means someone else moved it. */
  async transition(id: string, from: readonly CaptureState[], to: CaptureState, now: Date, fields: Updateable<QuarantinesTable> = {}): Promise<boolean> {
    return this.#change(id, now, { ...fields, state: to }, from);
  }

  /**
   * Takes the current step of a capture for `owner`: only while the row is
   * still in `state` and nobody else holds an unexpired claim on it. A crashed
   * owner's claim lapses at claimed_until; the same owner (a restarted
   * process with the same identity) may take it back at once.
   */
  // Not audited: who holds a step, and until when, is bookkeeping, not evidence.
  async claim(id: string, state: CaptureState, owner: string, now: Date, leaseMs: number): Promise<boolean> {
    const r = await this.db.updateTable('quarantines').set({ owner, claimed_until: now.getTime() + leaseMs, updated_at: now.getTime() })
      .where('id', '=', id).where('state', '=', state)
      .where((eb) => eb.or([eb('owner', 'is', null), eb('owner', '=', owner), eb('claimed_until', '<', now.getTime())]))
      .executeTakeFirst();
    return Number(r.numUpdatedRows) > 0;
  }

  /** A transition by the owner of the current step only: false means the step was taken over. */
  async transitionOwned(id: string, from: CaptureState, to: CaptureState, owner: string, now: Date, fields: Updateable<QuarantinesTable> = {}): Promise<boolean> {
    return this.#change(id, now, { ...fields, state: to }, [from], owner);
  }

  /**
   * Takes an isolation step (digest or copy) of a captured quarantine for
   * `owner`, on the same terms as `claim`: only while the row is still
   * quarantined at that step and nobody else holds an unexpired claim.
   */
  // Not audited, like claim.
  async claimIsolation(id: string, step: IsolationStep, owner: string, now: Date, leaseMs: number): Promise<boolean> {
    const r = await this.db.updateTable('quarantines').set({ owner, claimed_until: now.getTime() + leaseMs, updated_at: now.getTime() })
      .where('id', '=', id).where('state', '=', 'quarantined').where('isolation', '=', step)
      .where((eb) => eb.or([eb('owner', 'is', null), eb('owner', '=', owner), eb('claimed_until', '<', now.getTime())]))
      .executeTakeFirst();
    return Number(r.numUpdatedRows) > 0;
  }

  /** Ends an isolation step by its owner (audited with `note`); false means the step was taken over or the row moved on. */
  async isolationStepDone(id: string, step: IsolationStep, owner: string, now: Date, fields: Updateable<QuarantinesTable>, note: Record<string, unknown>, keep?: { leaseMs: number }): Promise<boolean> {
    // `keep`: the owner goes straight on with the next step, its claim renewed (no other worker can take it in between).
    const claim = keep === undefined ? { owner: null, claimed_until: null } : { owner, claimed_until: now.getTime() + keep.leaseMs };
    return this.#change(id, now, { ...fields, ...claim }, ['quarantined'], owner, { isolation: step, note });
  }

  /**
   * Records in the audit trail something a step did to the quarantine's image
   * that the row does not show, by the step's owner; false when the step was
   * taken over or the row moved on.
   */
  async isolationNote(id: string, step: IsolationStep, owner: string, now: Date, note: Record<string, unknown>): Promise<boolean> {
    return this.db.transaction().execute(async (trx) => {
      const row = await trx.selectFrom('quarantines').selectAll().where('id', '=', id).executeTakeFirst();
      if (row === undefined || row.owner !== owner || row.isolation !== step) return false;
      await this.#audit(trx, 'quarantine.isolation', row, now, note);
      return true;
    });
  }

  /**
   * Puts a quarantine captured before isolation existed (isolation null) on
   * the isolation path: its digest is taken again (a digest it already has is
   * kept, and a difference noted), then it is isolated. False when the row is
   * not such a quarantine any more.
   */
  async planLegacyIsolation(id: string, now: Date, note: Record<string, unknown>): Promise<boolean> {
    return this.#change(id, now, { isolate: 1, isolation: 'digesting', owner: null, claimed_until: null }, ['quarantined'], undefined, { isolation: null, note: { step: 'isolation planned', legacy: true, ...note } });
  }

  /** Quarantines captured before isolation existed, still holding evidence and never isolated. */
  async legacyUnisolated(cloud?: string): Promise<QuarantineRow[]> {
    let q = this.db.selectFrom('quarantines').selectAll().where('state', '=', 'quarantined').where('isolation', 'is', null);
    if (cloud !== undefined) q = q.where('cloud', '=', cloud);
    return q.orderBy('captured_at').execute();
  }

  /** Captured quarantines with isolation work left (digest or copy). */
  async isolationPending(cloud?: string): Promise<QuarantineRow[]> {
    let q = this.db.selectFrom('quarantines').selectAll().where('state', '=', 'quarantined').where('isolation', 'in', [...ISOLATION_PENDING]);
    if (cloud !== undefined) q = q.where('cloud', '=', cloud);
    return q.orderBy('captured_at').execute();
  }

  async update(id: string, now: Date, fields: Updateable<QuarantinesTable>): Promise<void> {
    await this.#change(id, now, fields);
  }

  async inState(states: readonly CaptureState[], cloud?: string): Promise<QuarantineRow[]> {
    let q = this.db.selectFrom('quarantines').selectAll().where('state', 'in', [...states]);
    if (cloud !== undefined) q = q.where('cloud', '=', cloud);
    return q.orderBy('planned_at').execute();
  }

  async list(filter: { cloud?: string; instanceId?: string; states?: readonly CaptureState[]; policy?: string } = {}): Promise<QuarantineRow[]> {
    let q = this.db.selectFrom('quarantines').selectAll();
    if (filter.cloud !== undefined) q = q.where('cloud', '=', filter.cloud);
    if (filter.instanceId !== undefined) q = q.where('instance_id', '=', filter.instanceId);
    if (filter.states !== undefined) q = q.where('state', 'in', [...filter.states]);
    if (filter.policy !== undefined) q = q.where('policy', '=', filter.policy);
    return q.orderBy('planned_at').execute();
  }
}
