// `quarantine export-intervals`: the address history of a window as JSON lines,
// plain or as Elastic Common Schema documents for an ELK stack.
import { Option, type Command } from 'commander';
import type { LedgerDb } from '../ledger/db.ts';
import { parseInstant } from './time-arg.ts';
import { UsageError } from './errors.ts';
import type { Io } from './program.ts';

type WithLedger = <T>(fn: (l: LedgerDb) => Promise<T>) => Promise<T>;

export function addExportIntervalsCommand(program: Command, io: Io, withLedger: WithLedger): void {
  program
    .command('export-intervals')
    .description('every address interval overlapping [from, to) as JSON lines (-o ecs: Elastic Common Schema)')
    .requiredOption('--from <time>', 'start of the window (ISO 8601 with offset)')
    .requiredOption('--to <time>', 'end of the window')
    .option('--cloud <name>', 'only this cloud')
    .addOption(new Option('-o, --output <format>', 'output format').choices(['ndjson', 'ecs']).default('ndjson'))
    .action(async (o: { from: string; to: string; cloud?: string; output: string }) => {
      const from = parseInstant(o.from, '--from');
      const to = parseInstant(o.to, '--to');
      if (to.getTime() <= from.getTime()) throw new UsageError('--to must be later than --from');
      const { intervalsDuring } = await import('../ledger/attribute.ts');
      const { intervalEcs } = await import('../report/ecs.ts');
      const rows = await withLedger((l) => intervalsDuring(l.db, from, to, o.cloud));
      for (const r of rows) io.out(`${JSON.stringify(o.output === 'ecs' ? intervalEcs(r.address, r.holder) : { address: r.address, ...r.holder })}\n`);
    });
}
