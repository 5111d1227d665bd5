// Applies batches through the operator's own intake applier
// (operator/intake/pipeline.ts, BatchingApplier) with the intake's derivation
// passes (intakeDerivation), fed as the broker feeds the intake: the next
// batch is handed over while one applies (the other half of the prefetch), so
// the applier always has one pending, its rule for a pause in deliveries
// does not start a pass after every batch, and the process holds two
// batches, as the operator does. A feed that never pauses leaves the lag
// bound to start the passes, and the end derives what is left.
import type { Kysely } from 'kysely';
import type { LedgerSchema } from '../../operator/ledger/schema.ts';
import type { Recorded } from '../../operator/ledger/apply.ts';
import { BatchingApplier } from '../../operator/intake/pipeline.ts';
import { intakeDerivation } from '../../operator/intake/cloud-intake.ts';

export interface IntakeApply {
  /**
   * Hands over one batch (at most the applier's maxBatch, applied in one
   * transaction); resolves once the batch before it is applied, when the next
   * may be handed over.
   */
  apply(batch: readonly Recorded[]): Promise<void>;
  /** Applies what was handed over and derives what is left. */
  finish(): Promise<void>;
}

export function intakeApply(db: Kysely<LedgerSchema>, maxBatch: number): IntakeApply {
  const applier = new BatchingApplier(db, { maxBatch, derivation: intakeDerivation(db, undefined) });
  let ahead: Promise<unknown> = Promise.resolve();
  return {
    async apply(batch) {
      const next = Promise.all(batch.map((r) => applier.apply(r)));
      const before = ahead;
      ahead = next;
      await before;
    },
    async finish() {
      await ahead;
      await applier.drain();
    },
  };
}
