// `quarantine ledger`: upkeep of the ledger itself. Expiring notification
// bodies changes evidence, so it is recorded in the audit trail and asks for
// --yes unless it is a dry run.
import { Option, type Command } from 'commander';
import type { LedgerDb } from '../ledger/db.ts';
import { UsageError } from './errors.ts';
import type { Io } from './program.ts';
import { os } from './os-user.ts';

type WithLedger = <T>(fn: (l: LedgerDb) => Promise<T>) => Promise<T>;

export function addLedgerCommands(program: Command, io: Io, withLedger: WithLedger): void {
  const ledger = program.command('ledger').description('upkeep of the ledger: notification body retention');
  ledger.command('prune-bodies')
    .description('delete notification bodies received more than DAYS ago (PostgreSQL: whole months, by dropping their partitions); ' +
      'notifications rows, their body digests and everything derived stay, bodies a standing hold concerns are kept, and the pruning is an audit record')
    .requiredOption('--older-than-days <days>', 'retention of bodies, in days (at least 1)')
    .option('--dry-run', 'count what would go; change nothing')
    .option('--yes', 'really delete (without it, only a dry run)')
    .addOption(new Option('--actor <name>', 'who prunes, for the audit trail').default(os.user()))
    .action(async (o: { olderThanDays: string; dryRun?: boolean; yes?: boolean; actor: string }) => {
      const days = Number(o.olderThanDays);
      const { pruneBodies, retentionFromDays, BodyRetentionError } = await import('../ledger/body-retention.ts');
      let keepMs: number;
      try {
        keepMs = retentionFromDays(days);
      } catch (err) {
        throw err instanceof BodyRetentionError ? new UsageError(`--older-than-days: ${err.message}`) : err;
      }
      const dryRun = o.dryRun === true || o.yes !== true;
      await withLedger(async (l) => {
        const r = await pruneBodies(l.db, l.engine, { keepMs, now: new Date(), actor: o.actor, dryRun });
        const what = `${r.removed} notification bodies received before ${r.cutoff.toISOString()}${r.keptUnderHold > 0 ? ` (${r.keptUnderHold} more kept under hold)` : ''}`;
        if (dryRun) io.out(`would delete ${what}${o.yes === true || o.dryRun === true ? '' : '; pass --yes to delete'}\n`);
        else io.out(`deleted ${what}${r.partitionsDropped.length > 0 ? `; partitions dropped: ${r.partitionsDropped.join(', ')}` : ''}\n`);
      });
    });
}
