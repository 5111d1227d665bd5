// The quarantines table as the capture engine sees it: rows are planned
// before any Ceph call, and every state change is a conditional update, so
// two replicas (or a restarted one) never run the same step twice at once.
import type { Kysely, Selectable, Updateable } from 'kysely';
import type { LedgerSchema, QuarantinesTable } from '../ledger/schema.ts';

export const CAPTURE_STATES = ['planned', 'snapshotting', 'cloning', 'quarantined', 'flattening', 'expired', 'purged', 'failed'] as const;
export type CaptureState = (typeof CAPTURE_STATES)[number];

/** States from which the engine still has work to do to reach `quarantined`. */
export const IN_PROGRESS: readonly CaptureState[] = ['planned', 'snapshotting', 'cloning'];
/** A quarantine that holds evidence (and counts against capacity). */
export const HOLDING: readonly CaptureState[] = ['quarantined', 'flattening', 'expired'];

export type QuarantineRow = Selectable<QuarantinesTable>;
export type NewQuarantine = Omit<QuarantineRow, 'state' | 'failure' | 'flattened' | 'captured_at' | 'expires_at' | 'purged_at' | 'digest' | 'digest_at' | 'bytes' | 'updated_at' | 'anchor_trash_id'> & {
  anchor_trash_id?: string | null;
};

export class QuarantineStore {
  readonly db: Kysely<LedgerSchema>;
  constructor(db: Kysely<LedgerSchema>) {
    this.db = db;
  }

  /** Inserts a planned capture, or returns the existing one for the same source image: captures are idempotent per (cloud, image id). */
  async plan(q: NewQuarantine, now: Date): Promise<{ row: QuarantineRow; created: boolean }> {
    const res = await this.db.insertInto('quarantines').values({
      ...q, anchor_trash_id: q.anchor_trash_id ?? null, state: 'planned', failure: null, flattened: 0, captured_at: null, expires_at: null,
      purged_at: null, digest: null, digest_at: null, bytes: null, updated_at: now.getTime(),
    }).onConflict((oc) => oc.columns(['cloud', 'source_image_id']).doNothing()).executeTakeFirst();
    const created = Number(res.numInsertedOrUpdatedRows ?? 0n) > 0;
    const row = await this.db.selectFrom('quarantines').selectAll().where('cloud', '=', q.cloud).where('source_image_id', '=', q.source_image_id).executeTakeFirstOrThrow();
    return { row, created };
  }

  async get(id: string): Promise<QuarantineRow | undefined> {
    return this.db.selectFrom('quarantines').selectAll().where('id', '=', id).executeTakeFirst();
  }

  async bySource(cloud: string, sourceImageId: string): Promise<QuarantineRow | undefined> {
    return this.db.selectFrom('quarantines').selectAll().where('cloud', '=', cloud).where('source_image_id', '=', sourceImageId).executeTakeFirst();
  }

  /** Moves a row on only if it is still in one of `from`; false means someone else moved it. */
  async transition(id: string, from: readonly CaptureState[], to: CaptureState, now: Date, fields: Updateable<QuarantinesTable> = {}): Promise<boolean> {
    const r = await this.db.updateTable('quarantines').set({ ...fields, state: to, updated_at: now.getTime() })
      .where('id', '=', id).where('state', 'in', [...from]).executeTakeFirst();
    return Number(r.numUpdatedRows) > 0;
  }

  async update(id: string, now: Date, fields: Updateable<QuarantinesTable>): Promise<void> {
    await this.db.updateTable('quarantines').set({ ...fields, updated_at: now.getTime() }).where('id', '=', id).execute();
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
