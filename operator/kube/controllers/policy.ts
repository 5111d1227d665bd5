// QuarantinePolicy status: what it holds now and when it sweeps.
import type { Kysely } from 'kysely';
import type { LedgerSchema } from '../../ledger/schema.ts';
import type { Operator } from '../../operator.ts';
import type { QuarantinePolicy } from '../../resources/policy.ts';
import type { Controller } from '../runtime/index.ts';
import { HOLDING } from '../../capture/quarantine-store.ts';

export function policyController(operator: Operator, db: Kysely<LedgerSchema>, everyMs = 60_000): Controller<QuarantinePolicy> {
  return {
    kind: 'QuarantinePolicy',
    async reconcile(p, ctx) {
      const name = p.metadata.name;
      const row = await db.selectFrom('quarantines').select([(eb) => eb.fn.countAll<number>().as('n'), (eb) => eb.fn.sum<number>('bytes').as('b')])
        .where('policy', '=', name).where('state', 'in', [...HOLDING]).executeTakeFirstOrThrow();
      const sweep = operator.scheduler.status(name);
      const active = operator.policies.some((x) => x.name === name);
      await ctx.status({
        conditions: [{ type: 'Ready', status: active ? 'True' : 'False', reason: active ? 'Active' : 'Loading', message: active ? `mode ${p.spec.capture.mode}, retention ${p.spec.retention.duration}, sweep "${p.spec.sweep.schedule}" ${p.spec.sweep.timeZone}${p.spec.sweep.dryRun ? ' (dry run)' : ''}` : 'not yet loaded by the operator' }],
        fields: {
          quarantinedCount: Number(row.n), quarantinedBytes: Number(row.b ?? 0),
          ...(sweep?.lastSweep === undefined ? {} : { lastSweep: sweep.lastSweep.toISOString() }),
          ...(sweep?.nextSweep === undefined ? {} : { nextSweep: sweep.nextSweep.toISOString() }),
        },
      });
      return { requeueAfterMs: everyMs };
    },
  };
}
