// `quarantine case`: open an investigation from an abuse report's log lines
// (attribution, legal hold, audit), list cases, and write a case's report.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Option, type Command } from 'commander';
import type { LedgerDb } from '../ledger/db.ts';
import { renderTable } from './table.ts';
import { writeJsonFile } from './json-out.ts';
import { EXIT, NotFoundError, UsageError } from './errors.ts';
import type { Io, Status } from './program.ts';
import { os } from './os-user.ts';
import { attributeReading, logInputOptions, readLogFiles, reportUnread, type LogInputOptions } from './trace-log.ts';

type WithLedger = <T>(fn: (l: LedgerDb) => Promise<T>) => Promise<T>;

export function addCaseCommands(program: Command, io: Io, status: Status, withLedger: WithLedger): void {
  const cases = program.command('case').description('investigations: an abuse report\'s lines attributed, the instances\' disks held, a report');

  logInputOptions(cases.command('open')
    .description('open a case from log lines: attribute them, place a legal hold on every matching instance\'s quarantines (now and later), record it in the audit trail')
    .argument('<name>', 'case name, e.g. CERT-2026-042')
    .requiredOption('--from-log <file...>', 'log files (any format trace log reads); - for stdin'))
    .option('--reason <text>', 'why, for the hold and the audit trail')
    .option('--cloud <name>', 'only this cloud')
    .addOption(new Option('--actor <name>', 'who is doing this, for the audit trail').default(os.user()))
    .addOption(new Option('-o, --output <format>', 'output format').choices(['table', 'json']).default('table'))
    .action(async (name: string, o: LogInputOptions & { fromLog: string[]; reason?: string; cloud?: string; actor: string; output: string }) => {
      const reading = await readLogFiles(o.fromLog, o);
      const { openCase, CaseError } = await import('../capture/cases.ts');
      const { opened, owners } = await withLedger(async (l) => {
        const a = await attributeReading(l, reading, o.cloud);
        try {
          return { opened: await openCase(l.db, { name, reason: o.reason, lines: a.lines, unreadable: a.unread, actor: o.actor }, new Date()), owners: a.owners };
        } catch (err) {
          if (err instanceof CaseError) throw new UsageError(err.message);
          throw err;
        }
      });
      const attributedIds = new Set(owners.flatMap((w) => w.instances.map((i) => i.id)));
      if (o.output === 'json') {
        io.out(`${JSON.stringify({ name: opened.name, hold: opened.hold, lines: opened.lines.length, unreadable: opened.unreadable.length, instances: [...attributedIds].sort(), owners }, null, 2)}\n`);
      } else {
        io.out(`case ${opened.name} opened: ${opened.lines.length} lines read, ${opened.unreadable.length} unreadable, ${attributedIds.size} instances, hold ${opened.hold ?? 'none (no instance matched)'}\n\n`);
        io.out(renderTable(['CLOUD', 'PROJECT', 'USER', 'LINES', 'FIRST', 'LAST', 'INSTANCES', 'HOSTS'],
          owners.map((w) => [w.cloud, w.project, w.user, w.lines, w.firstLine, w.lastLine, w.instances.map((i) => (i.name === null ? i.id : `${i.name} (${i.id})`)).join(', '), w.hosts.join(', ')])));
      }
      reportUnread(io, opened.unreadable);
      if (opened.unreadable.length > 0) status.code = EXIT.partial;
    });

  cases.command('ls')
    .description('list cases')
    .addOption(new Option('-o, --output <format>', 'output format').choices(['table', 'json']).default('table'))
    .action(async (o: { output: string }) => {
      const { listCases } = await import('../capture/cases.ts');
      const all = await withLedger((l) => listCases(l.db));
      if (o.output === 'json') io.out(`${JSON.stringify(all, null, 2)}\n`);
      else io.out(renderTable(['CASE', 'OPENED', 'BY', 'HOLD', 'REASON'], all.map((c) => [c.name, c.createdAt.toISOString(), c.createdBy, c.hold, c.reason])));
    });

  cases.command('report')
    .description('write the case\'s report: report.md, report.json and a self-contained report.html with a timeline')
    .argument('<name>', 'case name')
    .option('--dir <dir>', 'directory to write into (default ./case-NAME, a / in NAME as _)')
    .option('--misp', 'also write misp-event.json: the case as a MISP event (core format) for sharing with a SOC')
    .action(async (name: string, o: { dir?: string; misp?: boolean }) => {
      const { caseReport } = await import('../capture/case-report.ts');
      const { CaseError, UnknownCaseError } = await import('../capture/cases.ts');
      const { caseMarkdown } = await import('../report/case-markdown.ts');
      const { caseHtml } = await import('../report/case-html.ts');
      const report = await withLedger(async (l) => {
        try {
          return await caseReport(l.db, name, new Date());
        } catch (err) {
          if (err instanceof UnknownCaseError) throw new NotFoundError(err.message);
          if (err instanceof CaseError) throw new UsageError(err.message);
          throw err;
        }
      });
      const misp = o.misp === true ? (await import('../report/misp.ts')).caseMisp(report) : undefined;
      const dir = resolve(o.dir ?? `case-${name.replace(/\//g, '_')}`);
      try {
        mkdirSync(dir, { recursive: true });
        writeJsonFile(join(dir, 'report.json'), report);
        writeFileSync(join(dir, 'report.md'), caseMarkdown(report));
        writeFileSync(join(dir, 'report.html'), caseHtml(report));
        if (misp !== undefined) writeJsonFile(join(dir, 'misp-event.json'), misp);
      } catch (err) {
        throw new UsageError(`cannot write the report into ${dir}: ${err instanceof Error ? err.message : String(err)}`);
      }
      io.out(`wrote ${join(dir, 'report.md')}, report.json, report.html${o.misp === true ? ', misp-event.json' : ''} (${report.counts.lines} lines, ${report.counts.instances} instances, ${report.counts.quarantines} quarantined disks)\n`);
    });
}
