// Applies batches through the operator's own intake applier
// (operator/intake/pipeline.ts, BatchingApplier) with the intake's derivation
// passes (intakeDerivation): a bench that feeds batches back to back never
// pauses, so the lag bound is what starts its passes, and the end derives
// what is left.
import type { Kysely } from 'kysely';
import type { LedgerSchema } from '../../operator/ledger/schema.ts';
import type { ApplyOutcome, Recorded } from '../../operator/ledger/apply.ts';
import { BatchingApplier } from '../../operator/intake/pipeline.ts';
import { intakeDerivation } from '../../operator/intake/cloud-intake.ts';

export interface IntakeApply {
  /** One batch in one transaction (`batch` is at most the applier's maxBatch). */
  apply(batch: readonly Recorded[]): Promise<ApplyOutcome[]>;
  /** Derives what is left. */
  finish(): Promise<void>;
}

export function intakeApply(db: Kysely<LedgerSchema>, maxBatch: number): IntakeApply {
  const applier = new BatchingApplier(db, { maxBatch, derivation: intakeDerivation(db, undefined) });
  return {
    apply: (batch) => Promise.all(batch.map((r) => applier.apply(r))),
    finish: () => applier.drain(),
  };
}
