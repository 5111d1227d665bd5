// Applies batches as the operator's intake does (operator/intake/pipeline.ts):
// derivation left to passes, one once the oldest batch not yet derived is
// DERIVE_MAX_LAG_MS old (the bound the intake keeps while deliveries do not
// pause), and one at the end. A bench that feeds batches back to back never
// pauses, so the lag bound is what starts its passes.
import { performance } from 'node:perf_hooks';
import type { Kysely } from 'kysely';
import type { LedgerSchema } from '../../operator/ledger/schema.ts';
import { applyBatch, type ApplyOutcome, type Recorded } from '../../operator/ledger/apply.ts';
import { deriveAll } from '../../operator/ledger/derive-pending.ts';
import { DERIVE_MAX_LAG_MS } from '../../operator/intake/cloud-intake.ts';

export interface IntakeApply {
  apply(batch: readonly Recorded[]): Promise<ApplyOutcome[]>;
  /** Derives what is left. */
  finish(): Promise<void>;
  /** Passes run so far. */
  readonly passes: number;
}

export function intakeApply(db: Kysely<LedgerSchema>): IntakeApply {
  let since: number | undefined;
  let passes = 0;
  const pass = async () => {
    since = undefined;
    passes += 1;
    await deriveAll(db);
  };
  return {
    async apply(batch) {
      const out = await applyBatch(db, batch, undefined, { deferDerivation: { at: Date.now() } });
      since ??= performance.now();
      if (performance.now() - since >= DERIVE_MAX_LAG_MS) await pass();
      return out;
    },
    async finish() {
      if (since !== undefined) await pass();
    },
    get passes() {
      return passes;
    },
  };
}
