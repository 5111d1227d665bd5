// `quarantine hold`: legal holds for the security team. A hold cannot be lost
// by a typo: adding over a standing hold needs --replace, and whatever a
// removal or a narrowing gives back to retention is named first and needs --yes.
// The ledger loads inside the actions; a HoldError maps to exit 2 by its name
// (errors.ts), so nothing here needs its class.
import { Option, type Command } from 'commander';
import type { LedgerDb } from '../ledger/db.ts';
import type { HoldInput } from '../capture/holds.ts';
import { parseInstant } from './time-arg.ts';
import { EXIT, UsageError } from './errors.ts';
import { emitList, withOutput, type Column, type OutputOptions } from './output.ts';
import type { Io, Status } from './program.ts';
import { os } from './os-user.ts';

type WithLedger = <T>(fn: (l: LedgerDb) => Promise<T>) => Promise<T>;

const qualified = (name: string) => (name.includes('/') ? name : `cli/${name}`);

function listed(ids: readonly string[]): string {
  return ids.length === 0 ? 'no quarantine' : `${ids.length} quarantine(s): ${ids.join(', ')}`;
}

interface HoldView {
  name: string;
  caseId: string | null;
  reason: string | null;
  selector: unknown;
  until: string | null;
  createdAt: string;
  createdBy: string | null;
  releasedAt: string | null;
  matched: number;
}

const holdColumns: Array<Column<HoldView>> = [
  { header: 'NAME', value: (v) => v.name },
  { header: 'CASE', value: (v) => v.caseId },
  { header: 'MATCHED', value: (v) => v.matched },
  { header: 'UNTIL', value: (v) => v.until },
  { header: 'CREATED', value: (v) => v.createdAt },
  { header: 'BY', value: (v) => v.createdBy },
  { header: 'RELEASED', value: (v) => v.releasedAt },
  { header: 'REASON', value: (v) => v.reason, wide: true },
];

export function addHoldCommands(program: Command, io: Io, status: Status, withLedger: WithLedger): void {
  const hold = program.command('hold').description('legal holds: matching quarantines never expire while a hold stands');
  hold.command('add')
    .description('place a hold (an existing standing hold is changed only with --replace)')
    .argument('<name>')
    .requiredOption('--case <id>', 'case or ticket id').requiredOption('--reason <text>')
    .option('--instance <id...>').option('--project <id...>').option('--user <id...>').option('--quarantine <id...>').option('--cloud <name...>')
    .option('--address <ip...>', 'instances that held this address (with --from/--to)')
    .option('--from <time>').option('--to <time>').option('--until <time>', 'the hold lapses then (must be in the future)')
    .option('--replace', 'replace the standing hold of this name')
    .option('--yes', 'confirm a replacement that stops holding some quarantines')
    .option('--dry-run', 'show what the hold would cover and release, change nothing')
    .addOption(new Option('--actor <name>').default(os.user()))
    .action(async (name: string, o: { case: string; reason: string; instance?: string[]; project?: string[]; user?: string[]; quarantine?: string[]; cloud?: string[]; address?: string[]; from?: string; to?: string; until?: string; replace?: boolean; yes?: boolean; dryRun?: boolean; actor: string }) => {
      const from = o.from === undefined ? undefined : parseInstant(o.from, '--from').toISOString();
      const to = o.to === undefined ? undefined : parseInstant(o.to, '--to').toISOString();
      const until = o.until === undefined ? undefined : parseInstant(o.until, '--until');
      if ((o.from !== undefined || o.to !== undefined) && o.address === undefined) throw new UsageError('--from/--to go with --address');
      const selector = {
        instances: o.instance, projects: o.project, users: o.user, quarantines: o.quarantine, clouds: o.cloud,
        addresses: o.address?.map((address) => ({ address, from, to })),
      };
      const input: HoldInput = { name: qualified(name), caseId: o.case, reason: o.reason, selector, until, actor: o.actor };
      const { getHold, holdsCovering, releasedBy, upsertHold, validateHold } = await import('../capture/holds.ts');
      const { QuarantineStore, HOLDING } = await import('../capture/quarantine-store.ts');
      await withLedger(async (l) => {
        const now = new Date();
        const existing = await getHold(l.db, input.name);
        const standing = existing !== undefined && existing.releasedAt === null ? existing : undefined;
        validateHold(input, existing, now);
        if (standing !== undefined && o.replace !== true) {
          throw new UsageError(`hold ${input.name} exists already (case ${standing.caseId ?? '-'}); give --replace to change it`);
        }
        const released = standing === undefined ? [] : await releasedBy(l.db, { replaced: { name: input.name, caseId: o.case, selector, until } }, now);
        if (o.dryRun === true) {
          io.out(`would ${standing === undefined ? 'place' : 'replace'} hold ${input.name}; it would stop holding ${listed(released)}\n`);
          return;
        }
        if (released.length > 0 && o.yes !== true) {
          throw new UsageError(`replacing hold ${input.name} would stop holding ${listed(released)}; give --yes to confirm`);
        }
        const h = await upsertHold(l.db, input, now, { ifExists: o.replace === true ? 'replace' : 'refuse' });
        const rows = await new QuarantineStore(l.db).list({ states: HOLDING });
        const covered = [...(await holdsCovering(l.db, rows, now)).entries()].filter(([, names]) => names.includes(h.name)).length;
        io.out(`hold ${h.name} (case ${o.case}) stands; it covers ${covered} quarantine(s) now and every matching capture to come${released.length > 0 ? `; no longer held: ${released.join(', ')}` : ''}\n`);
      });
    });
  hold.command('rm')
    .description('release a hold (by name) or every hold of a case (--case); names the quarantines it releases and needs --yes')
    .argument('[name]').option('--case <id>')
    .option('--yes', 'confirm the release')
    .option('--dry-run', 'show the quarantines the release would give back to retention, change nothing')
    .addOption(new Option('--actor <name>').default(os.user()))
    .action(async (name: string | undefined, o: { case?: string; yes?: boolean; dryRun?: boolean; actor: string }) => {
      if ((name === undefined) === (o.case === undefined)) throw new UsageError('give a hold name or --case, not both');
      const by = name === undefined ? { caseId: o.case ?? '' } : { name: qualified(name) };
      const what = name === undefined ? `the holds of case ${o.case ?? ''}` : `hold ${by.name ?? ''}`;
      const { listHolds, releaseHolds, releasedBy } = await import('../capture/holds.ts');
      await withLedger(async (l) => {
        const now = new Date();
        const names = (await listHolds(l.db)).filter((h) => (by.name !== undefined ? h.name === by.name : h.caseId === by.caseId)).map((h) => h.name);
        if (names.length === 0) {
          io.err(`quarantine: no standing hold ${name ?? `of case ${o.case ?? ''}`}\n`);
          status.code = EXIT.notFound;
          return;
        }
        const released = await releasedBy(l.db, { removed: names }, now);
        if (o.dryRun === true) {
          io.out(`would release ${names.join(', ')}; retention would apply again to ${listed(released)}\n`);
          return;
        }
        if (o.yes !== true) throw new UsageError(`releasing ${what} (${names.join(', ')}) would stop holding ${listed(released)}; give --yes to confirm`);
        const done = await releaseHolds(l.db, by, o.actor, now);
        io.out(`released ${done.join(', ')}; retention applies again to ${listed(released)}\n`);
      });
    });
  withOutput(hold.command('ls')
    .description('list standing holds')
    .option('--all', 'include released holds'))
    .action(async (o: OutputOptions & { all?: boolean }) => {
      const { holdsCovering, listHolds } = await import('../capture/holds.ts');
      const { QuarantineStore, HOLDING } = await import('../capture/quarantine-store.ts');
      await withLedger(async (l) => {
        const holds = await listHolds(l.db, { includeReleased: o.all === true });
        const rows = await new QuarantineStore(l.db).list({ states: HOLDING });
        const covered = await holdsCovering(l.db, rows, new Date());
        const count = (n: string) => [...covered.values()].filter((names) => names.includes(n)).length;
        const views = holds.map((h): HoldView => ({ name: h.name, caseId: h.caseId ?? null, reason: h.reason, selector: h.selector, until: h.until?.toISOString() ?? null, createdAt: h.createdAt.toISOString(), createdBy: h.createdBy, releasedAt: h.releasedAt?.toISOString() ?? null, matched: count(h.name) }));
        await emitList(io, o, holdColumns, views);
      });
    });
}
