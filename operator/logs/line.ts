// What every log-line parser produces: the source address a line names and the
// instant it happened, or why the line cannot be read. Pure, so each format is
// tested on its own.
import { isIP } from 'node:net';

export interface LogOptions {
  /** The day of logs that carry only a time of day (YYYY-MM-DD). */
  date?: string | undefined;
  /** The zone of times written without one: UTC, ±HH:MM or an IANA name. */
  tz?: string | undefined;
  /** Which named field holds the address (Zeek field, CSV header, syslog KEY=). */
  field?: string | undefined;
  /** Which column (1-based) or which address of the line, when it has several. */
  column?: number | undefined;
}

/** `recognized`: the line is of this format but a value in it is wrong (detection counts it). */
export type LineOutcome =
  | { kind: 'ok'; address: string; at: Date }
  | { kind: 'skip' }
  | { kind: 'error'; reason: string; recognized: boolean };

export interface LineParser {
  line(text: string): LineOutcome;
}

export type ParserFactory = (opts: LogOptions) => LineParser;

export const ok = (address: string, at: Date): LineOutcome => ({ kind: 'ok', address, at });
export const skip: LineOutcome = { kind: 'skip' };
export const bad = (reason: string, recognized = true): LineOutcome => ({ kind: 'error', reason, recognized });
export const foreign = (reason: string): LineOutcome => ({ kind: 'error', reason, recognized: false });

/**
 * The address as the ledger stores it: lower case, and an IPv4-mapped IPv6
 * address (how dual-stack servers log IPv4 clients) as plain IPv4.
 */
export function normalAddress(raw: string): string | null {
  let a = raw.trim();
  if (a.startsWith('[') && a.endsWith(']')) a = a.slice(1, -1);
  if (isIP(a) === 0) return null;
  a = a.toLowerCase();
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(a);
  return mapped?.[1] ?? a;
}

/** An `ADDRESS:PORT`, `[V6]:PORT` or bare address token, without its port. */
export function addressOfEndpoint(token: string): string | null {
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(token);
  if (bracketed !== null) return normalAddress(bracketed[1] ?? '');
  const direct = normalAddress(token);
  if (direct !== null) return direct;
  const v4port = /^(\d+\.\d+\.\d+\.\d+)[:.](\d+)$/.exec(token);
  if (v4port !== null) return normalAddress(v4port[1] ?? '');
  // IPv6 with the port after a last dot, as tcpdump and some connection loggers write it.
  const v6dot = /^([0-9a-fA-F:]+)\.(\d+)$/.exec(token);
  if (v6dot !== null) return normalAddress(v6dot[1] ?? '');
  return null;
}

/** Every address in free text, in order (ports stripped). */
export function addressesIn(text: string): string[] {
  const found: string[] = [];
  for (const tok of text.split(/[^0-9A-Fa-f:.[\]]+/)) {
    const t = tok.replace(/^[:.]+|[:.]+$/g, '');
    if (t === '' || !/[.:]/.test(t)) continue;
    const a = addressOfEndpoint(t);
    if (a !== null) found.push(a);
  }
  return found;
}
