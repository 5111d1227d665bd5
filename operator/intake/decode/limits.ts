// Bounds on what a notification may be, so that no single message can stall
// the intake or put absurd facts in the ledger: a body too large to read, a
// field too long to be a name or an id, an event time that cannot be true.
import type { DecodedNotification } from '../../domain/events.ts';
import { DecodeError } from './errors.ts';

export interface DecodeLimits {
  /** Larger bodies are rejected before they are read. */
  maxBodyBytes: number;
  /** Longest string any decoded field (name, id, address, context entry) may hold. */
  maxFieldChars: number;
  /** How far before the receive time an event time may lie. */
  maxEventAgeMs: number;
  /** How far after the receive time an event time may lie (publisher clock skew). */
  maxEventLeadMs: number;
}

const DAY_MS = 86_400_000;

export const DEFAULT_LIMITS: DecodeLimits = {
  maxBodyBytes: 4 * 1024 * 1024,
  maxFieldChars: 4096,
  // OpenStack's first release was 2010; 25 years still catches epoch-zero (1970) and year-0 stamps.
  maxEventAgeMs: 25 * 365 * DAY_MS,
  maxEventLeadMs: DAY_MS,
};

export function limitsOf(given: Partial<DecodeLimits> | undefined): DecodeLimits {
  return { ...DEFAULT_LIMITS, ...given };
}

export function checkBodySize(size: number, limits: DecodeLimits): void {
  if (size > limits.maxBodyBytes) {
    throw new DecodeError('too-large', `body of ${size} bytes exceeds the limit of ${limits.maxBodyBytes} bytes; not read`);
  }
}

/** Throws `implausible-time` unless `date` is a real time inside the window around `receivedAt`. */
export function checkEventTime(date: Date, receivedAt: Date, limits: DecodeLimits, what: string): void {
  const t = date.getTime();
  if (Number.isNaN(t)) throw new DecodeError('implausible-time', `${what} is not a time`);
  const received = receivedAt.getTime();
  if (t < received - limits.maxEventAgeMs || t > received + limits.maxEventLeadMs) {
    throw new DecodeError('implausible-time', `${what} ${date.toISOString()} lies outside the accepted window around the receive time ${receivedAt.toISOString()}`);
  }
}

/** Walks every string of the decoded notification; the first one over the limit is named by its path. */
export function checkFieldLengths(n: DecodedNotification, limits: DecodeLimits): void {
  const long = longString(n, limits.maxFieldChars);
  if (long === undefined) return;
  const named = long.path.reduce<string>((s, p) => (typeof p === 'number' ? `${s}[${p}]` : s === '' ? p : `${s}.${p}`), '');
  throw new DecodeError('field-too-long', `${named} holds ${long.length} characters; the limit is ${limits.maxFieldChars}`);
}

/**
 * The first string inside `value` longer than `max`: its length and its path.
 * The path is built on the way back from that string, so a walk that finds
 * none (almost every delivery) allocates nothing.
 */
function longString(value: unknown, max: number): { path: Array<string | number>; length: number } | undefined {
  if (typeof value === 'string') return value.length > max ? { path: [], length: value.length } : undefined;
  if (typeof value !== 'object' || value === null || value instanceof Date) return undefined;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const found = longString(value[i], max);
      if (found !== undefined) {
        found.path.unshift(i);
        return found;
      }
    }
    return undefined;
  }
  const fields = value as Record<string, unknown>;
  for (const k in fields) {
    const found = longString(fields[k], max);
    if (found !== undefined) {
      found.path.unshift(k);
      return found;
    }
  }
  return undefined;
}
