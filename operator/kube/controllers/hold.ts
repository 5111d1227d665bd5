// QuarantineHold: mirrors each hold into the ledger (where the sweep and new
// captures see it) and releases it when the resource is deleted. A finalizer
// makes sure the release is not missed while the operator is down.
import type { Kysely } from 'kysely';
import type { LedgerSchema } from '../../ledger/schema.ts';
import type { QuarantineHold } from '../../resources/hold.ts';
import { holdFromResource, holdName } from '../../resources/mapping.ts';
import { upsertHold, releaseHolds, holdsCovering } from '../../capture/holds.ts';
import { QuarantineStore, HOLDING } from '../../capture/quarantine-store.ts';
import { holdActive } from '../../domain/holds.ts';
import { PermanentError, type Controller } from '../runtime/index.ts';
import { isDeleting } from '../runtime/status.ts';

export const HOLD_FINALIZER = 'quarantine.forensics.dev/release-hold';
export const KUBE_ACTOR = 'kubernetes';

export function holdController(db: Kysely<LedgerSchema>, everyMs = 60_000): Controller<QuarantineHold> {
  return {
    kind: 'QuarantineHold',
    async reconcile(h, ctx) {
      const name = holdName(h);
      if (isDeleting(ctx.raw)) {
        const released = await releaseHolds(db, { name }, `${KUBE_ACTOR}:${name}`, ctx.clock.now());
        await ctx.event('Normal', 'Released', released.length > 0 ? `hold released; its quarantines follow their retention again` : 'hold was not standing');
        await ctx.removeFinalizer(HOLD_FINALIZER);
        return;
      }
      await ctx.addFinalizer(HOLD_FINALIZER);
      const hold = holdFromResource(h);
      try {
        await upsertHold(db, { ...hold, actor: KUBE_ACTOR }, ctx.clock.now());
      } catch (err) {
        throw new PermanentError(err instanceof Error ? err.message : String(err), { reason: 'InvalidHold' });
      }
      const rows = await new QuarantineStore(db).list({ states: HOLDING });
      const covered = await holdsCovering(db, rows, ctx.clock.now());
      const matched = [...covered.values()].filter((names) => names.includes(name)).length;
      const active = holdActive(hold, ctx.clock.now());
      await ctx.status({
        conditions: [{ type: 'Active', status: active ? 'True' : 'False', reason: active ? 'Holding' : 'Lapsed', message: active ? `case ${h.spec.caseId}: ${matched} quarantine(s) held; matching captures to come are held too` : `lapsed at ${h.spec.until ?? ''}` }],
        fields: { matchedCount: matched },
      });
      return { requeueAfterMs: everyMs };
    },
  };
}
