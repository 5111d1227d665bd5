// `quarantine trace log`: an abuse report's log lines, each attributed to the
// instance that held its source address then, in one query, with a summary
// per owner. Unreadable lines are listed with the reason and exit 3.
// The parsers and the ledger load inside the action (see program.ts).
import { readFileSync, statSync } from 'node:fs';
import { Option, type Command } from 'commander';
import type { LedgerDb } from '../ledger/db.ts';
import type { Holder } from '../ledger/trace.ts';
import type { LogLine, UnreadLine } from '../logs/read.ts';
import { LOG_FORMAT_NAMES, isLogFormat, type LogFormat } from '../logs/formats.ts';
import { validZone } from '../logs/time.ts';
import type { LogOptions } from '../logs/line.ts';
import { summarizeOwners, type Attributed, type OwnerSummary } from '../logs/owners.ts';
import { attributionEcs } from '../report/ecs.ts';
import { writeTable } from './table.ts';
import { batched, writeJson } from './json-out.ts';
import { EXIT, UsageError } from './errors.ts';
import type { Io, Status } from './program.ts';

type WithLedger = <T>(fn: (l: LedgerDb) => Promise<T>) => Promise<T>;

export interface LogInputOptions {
  format?: string;
  date?: string;
  tz?: string;
  field?: string;
  column?: string;
}

export interface LogReading {
  lines: LogLine[];
  unread: UnreadLine[];
  formats: Record<string, LogFormat | null>;
}

/** The options every command that reads log lines shares. */
export function logInputOptions(c: Command): Command {
  return c
    .addOption(new Option('--format <format>', 'log format (default: recognised from the first lines)').choices(LOG_FORMAT_NAMES))
    .option('--date <YYYY-MM-DD>', 'the day of logs that carry only a time of day')
    .option('--tz <zone>', 'zone of times written without one: UTC, +02:00 or a name like Europe/Zurich')
    .option('--field <name>', 'the field holding the address (Zeek field, CSV column name, syslog KEY=, or src/dst)')
    .option('--column <n>', 'the column (CSV) or the Nth address of a line holding the address');
}

function parseLogOptions(o: LogInputOptions): { opts: LogOptions; format: LogFormat | undefined } {
  if (o.date !== undefined && !/^\d{4}-\d{2}-\d{2}$/.test(o.date)) throw new UsageError(`--date "${o.date}" is not YYYY-MM-DD`);
  if (o.tz !== undefined && !validZone(o.tz)) throw new UsageError(`--tz "${o.tz}" is not a zone (UTC, +02:00, Europe/Zurich …)`);
  let column: number | undefined;
  if (o.column !== undefined) {
    column = Number(o.column);
    if (!Number.isInteger(column) || column < 1) throw new UsageError(`--column "${o.column}" is not a column number (1, 2, …)`);
  }
  if (o.format !== undefined && !isLogFormat(o.format)) throw new UsageError(`--format ${o.format} is not one of ${LOG_FORMAT_NAMES.join(', ')}`);
  return { opts: { date: o.date, tz: o.tz, field: o.field, column }, format: o.format !== undefined && isLogFormat(o.format) ? o.format : undefined };
}

function readInput(file: string): string {
  if (file === '-') return readFileSync(0, 'utf8');
  try {
    if (!statSync(file).isFile()) throw new UsageError(`${file} is not a file`);
    return readFileSync(file, 'utf8');
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new UsageError(`cannot read ${file}: ${err instanceof Error ? err.message : String(err)}`);
  }
}

/** Reads every file (or stdin for `-` / none), each with its own format unless --format. */
export async function readLogFiles(files: readonly string[], o: LogInputOptions): Promise<LogReading> {
  const { opts, format } = parseLogOptions(o);
  const { readLog } = await import('../logs/read.ts');
  const out: LogReading = { lines: [], unread: [], formats: {} };
  for (const file of files.length === 0 ? ['-'] : files) {
    const r = readLog(readInput(file), file === '-' ? 'stdin' : file, opts, format);
    out.formats[file === '-' ? 'stdin' : file] = r.format;
    out.lines.push(...r.lines);
    out.unread.push(...r.unread);
  }
  return out;
}

export interface Attribution {
  lines: Array<Attributed<Holder>>;
  owners: OwnerSummary[];
  unread: UnreadLine[];
  formats: Record<string, LogFormat | null>;
}

export async function attributeReading(l: LedgerDb, reading: LogReading, cloud?: string): Promise<Attribution> {
  const { attribute } = await import('../ledger/attribute.ts');
  const holders = await attribute(l.db, reading.lines, cloud);
  const lines = reading.lines.map((line, i) => ({ line, holders: holders[i] ?? [] }));
  return { lines, owners: summarizeOwners(lines), unread: reading.unread, formats: reading.formats };
}

const lineView = (a: Attributed<Holder>) => ({ source: a.line.source, line: a.line.lineNo, address: a.line.address, at: a.line.at.toISOString(), text: a.line.text, holders: a.holders });

export function attributionJson(a: Attribution) {
  return {
    formats: a.formats,
    counts: { lines: a.lines.length + a.unread.length, attributed: a.lines.filter((l) => l.holders.length > 0).length, unattributed: a.lines.filter((l) => l.holders.length === 0).length, unreadable: a.unread.length },
    owners: a.owners,
    lines: a.lines.map(lineView),
    unreadable: a.unread,
  };
}

const csvCell = (v: string | number | null | undefined): string => {
  const s = v === null || v === undefined ? '' : String(v);
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
};

function render(io: Io, a: Attribution, output: string): void {
  // Made only for the outputs of a row per holder (1.75 million pairs for a large report).
  const perHolder = () => a.lines.flatMap((l): Array<{ l: Attributed<Holder>; h: Holder | null }> => (l.holders.length === 0 ? [{ l, h: null }] : l.holders.map((h) => ({ l, h }))));
  const w = batched(io.out);
  if (output === 'json') {
    writeJson(w.write, attributionJson(a));
    w.write('\n');
  } else if (output === 'ndjson') {
    for (const l of a.lines) w.line(JSON.stringify({ type: 'line', ...lineView(l) }));
    for (const u of a.unread) w.line(JSON.stringify({ type: 'unreadable', ...u }));
    for (const o of a.owners) w.line(JSON.stringify({ type: 'owner', ...o }));
  } else if (output === 'ecs') {
    for (const { l, h } of perHolder()) w.line(JSON.stringify(attributionEcs(lineView(l), h)));
  } else if (output === 'csv') {
    const head = ['source', 'line', 'at', 'address', 'cloud', 'kind', 'instance', 'name', 'project', 'user', 'host', 'network', 'from', 'to'];
    w.line(head.join(','));
    for (const { l, h } of perHolder()) {
      w.line([l.line.source, l.line.lineNo, l.line.at.toISOString(), l.line.address, h?.cloud, h?.kind, h?.instance?.id, h?.instance?.name, h?.instance?.project ?? h?.project, h?.instance?.user, h?.instance?.host, h?.network, h?.from, h?.to].map(csvCell).join(','));
    }
  } else {
    writeTable(w.line, ['LINE', 'AT', 'ADDRESS', 'CLOUD', 'INSTANCE', 'NAME', 'PROJECT', 'USER', 'HOST'],
      perHolder().map(({ l, h }) => [`${l.line.source}:${l.line.lineNo}`, l.line.at.toISOString(), l.line.address, h?.cloud ?? 'nobody', h?.instance?.id, h?.instance?.name, h?.instance?.project ?? h?.project, h?.instance?.user, h?.instance?.host]));
    w.write('\nowners:\n');
    writeTable(w.line, ['CLOUD', 'PROJECT', 'USER', 'LINES', 'FIRST', 'LAST', 'INSTANCES', 'HOSTS'],
      a.owners.map((o) => [o.cloud, o.project, o.user, o.lines, o.firstLine, o.lastLine, o.instances.map((i) => (i.name === null ? i.id : `${i.name} (${i.id})`)).join(', '), o.hosts.join(', ')]));
    const j = attributionJson(a).counts;
    w.write(`\n${j.lines} lines: ${j.attributed} attributed, ${j.unattributed} held by nobody, ${j.unreadable} unreadable\n`);
  }
  w.end();
}

export function reportUnread(io: Io, unread: readonly UnreadLine[]): void {
  for (const u of unread) io.err(`${u.source}:${u.lineNo}: unreadable (${u.reason}): ${u.text.length > 160 ? `${u.text.slice(0, 160)}…` : u.text}\n`);
}

export function addTraceLogCommand(trace: Command, io: Io, status: Status, withLedger: WithLedger): void {
  logInputOptions(trace
    .command('log')
    .description('attribute every line of a log (abuse report, Zeek, nfdump, access log, syslog, ADDRESS,TIME) to its holder, with a summary per owner')
    .argument('[file...]', 'log files; - or none for stdin'))
    .option('--cloud <name>', 'only this cloud')
    .addOption(new Option('-o, --output <format>', 'output format').choices(['table', 'json', 'ndjson', 'csv', 'ecs']).default('table'))
    .action(async (files: string[], o: LogInputOptions & { cloud?: string; output: string }) => {
      const reading = await readLogFiles(files, o);
      const a = await withLedger((l) => attributeReading(l, reading, o.cloud));
      render(io, a, o.output);
      reportUnread(io, a.unread);
      if (a.unread.length > 0) status.code = EXIT.partial;
      else if (!a.lines.some((l) => l.holders.length > 0)) status.code = EXIT.notFound;
    });
}
