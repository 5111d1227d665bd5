// QuarantineCase: opens the case in the ledger once — its log lines attributed,
// a legal hold on every matching instance's quarantines (those captured and
// those to come), the audit record — and reports the outcome in its status.
// Deleting the resource does not release the hold: evidence stays held until
// someone releases it on purpose (`quarantine hold rm --case NAMESPACE/NAME`).
import type { Kysely } from 'kysely';
import type { LedgerSchema } from '../../ledger/schema.ts';
import type { QuarantineCase } from '../../resources/case.ts';
import { attribute } from '../../ledger/attribute.ts';
import { deriveAll } from '../../ledger/derive-pending.ts';
import { readLog, type LogLine, type UnreadLine } from '../../logs/read.ts';
import { validZone } from '../../logs/time.ts';
import { summarizeOwners } from '../../logs/owners.ts';
import { CaseError, getCase, openCase } from '../../capture/cases.ts';
import { PermanentError, type Controller } from '../runtime/index.ts';
import { KUBE_ACTOR } from './hold.ts';

export const caseNameOf = (c: QuarantineCase): string => `${c.metadata.namespace ?? 'default'}/${c.metadata.name}`;

export function caseController(db: Kysely<LedgerSchema>): Controller<QuarantineCase> {
  return {
    kind: 'QuarantineCase',
    async reconcile(c, ctx) {
      const name = caseNameOf(c);
      // The attribution sees every notification acknowledged so far (derive-pending.ts).
      await deriveAll(db, { cloud: c.spec.cloud });
      let stored = await getCase(db, name);
      if (stored === undefined) {
        const lines: LogLine[] = [];
        const unread: UnreadLine[] = [];
        for (const log of c.spec.logs) {
          if (log.tz !== undefined && !validZone(log.tz)) throw new PermanentError(`logs ${log.name}: tz "${log.tz}" is not a zone`, { reason: 'InvalidCase' });
          const r = readLog(log.text, log.name, { date: log.date, tz: log.tz, field: log.field, column: log.column }, log.format);
          lines.push(...r.lines);
          unread.push(...r.unread);
        }
        const holders = await attribute(db, lines, c.spec.cloud);
        try {
          stored = await openCase(db, { name, reason: c.spec.reason, lines: lines.map((line, i) => ({ line, holders: holders[i] ?? [] })), unreadable: unread, actor: `${KUBE_ACTOR}:${name}` }, ctx.clock.now());
        } catch (err) {
          if (err instanceof CaseError) throw new PermanentError(err.message, { reason: 'InvalidCase' });
          throw err;
        }
        await ctx.event('Normal', 'Opened', `case ${name}: ${lines.length} lines read, ${unread.length} unreadable, hold ${stored.hold ?? 'none (no instance matched)'}`);
      }
      // The status is computed from the case as the ledger keeps it, attributed again (the ledger may know more now).
      const holders = await attribute(db, stored.lines, c.spec.cloud);
      const attributed = stored.lines.map((line, i) => ({ line, holders: holders[i] ?? [] }));
      const owners = summarizeOwners(attributed).map((o) => ({
        cloud: o.cloud, ...(o.project === null ? {} : { project: o.project }), ...(o.user === null ? {} : { user: o.user }), lines: o.lines, instances: o.instances.map((i) => i.id),
      }));
      await ctx.status({
        conditions: [{
          type: 'Opened', status: 'True', reason: stored.unreadable.length > 0 ? 'SomeLinesUnreadable' : 'Opened',
          message: `${stored.lines.length} lines read${stored.unreadable.length > 0 ? `, ${stored.unreadable.length} unreadable` : ''}; hold ${stored.hold ?? 'none (no instance matched)'}; changes to spec.logs after opening are not applied`,
        }],
        fields: {
          caseName: name, ...(stored.hold === null ? {} : { hold: stored.hold }), openedAt: stored.createdAt.toISOString(),
          lines: stored.lines.length + stored.unreadable.length, attributed: attributed.filter((a) => a.holders.length > 0).length, unreadable: stored.unreadable.length, owners,
        },
      });
    },
  };
}
