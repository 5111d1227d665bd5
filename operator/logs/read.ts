// Reading a log: its format chosen (or recognised from its first lines), then
// every line turned into an address and an instant, or a reason.
import type { LineParser, LogOptions, ParserFactory } from './line.ts';
import { batchSite } from './batch-site.ts';
import { zeekJson, zeekTsv } from './zeek.ts';
import { nfdumpCsv, plainCsv } from './csv.ts';
import { combined, syslog } from './text-logs.ts';
import { isLogFormat, type LogFormat } from './formats.ts';

export { isLogFormat, type LogFormat };

/** In the order detection prefers them: the more specific first. */
export const LOG_FORMATS = {
  'zeek-tsv': zeekTsv,
  'zeek-json': zeekJson,
  nfdump: nfdumpCsv,
  combined,
  batch: batchSite,
  syslog,
  csv: plainCsv,
} satisfies Record<LogFormat, ParserFactory>;

export interface LogLine {
  source: string;
  lineNo: number;
  text: string;
  address: string;
  at: Date;
}

export interface UnreadLine {
  source: string;
  lineNo: number;
  text: string;
  reason: string;
}

export interface ReadLog {
  format: LogFormat | null;
  lines: LogLine[];
  unread: UnreadLine[];
}

const SAMPLE = 50;

/** The format that recognises most of the first lines, or null. */
export function detectFormat(lines: readonly string[], opts: LogOptions): LogFormat | null {
  const sample = lines.filter((l) => l.trim() !== '').slice(0, SAMPLE);
  let best: { format: LogFormat; score: number } | null = null;
  for (const [name, factory] of Object.entries(LOG_FORMATS)) {
    const p: LineParser = factory(opts);
    let score = 0;
    for (const l of sample) {
      const o = p.line(l);
      if (o.kind === 'ok' || (o.kind === 'error' && o.recognized)) score += 1;
    }
    if (score > 0 && (best === null || score > best.score) && isLogFormat(name)) best = { format: name, score };
  }
  return best?.format ?? null;
}

export function readLog(text: string, source: string, opts: LogOptions, format?: LogFormat): ReadLog {
  const raw = text.split(/\r?\n/);
  const chosen = format ?? detectFormat(raw, opts);
  const out: ReadLog = { format: chosen, lines: [], unread: [] };
  const parser = chosen === null ? null : LOG_FORMATS[chosen](opts);
  raw.forEach((t, i) => {
    if (t.trim() === '') return;
    if (parser === null) {
      out.unread.push({ source, lineNo: i + 1, text: t, reason: 'format not recognised (choose one with --format)' });
      return;
    }
    const o = parser.line(t);
    if (o.kind === 'ok') out.lines.push({ source, lineNo: i + 1, text: t, address: o.address, at: o.at });
    else if (o.kind === 'error') out.unread.push({ source, lineNo: i + 1, text: t, reason: o.reason });
  });
  return out;
}
