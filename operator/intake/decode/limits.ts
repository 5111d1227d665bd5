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
  // Every delivery is walked and almost none fails: a walk that only looks,
  // and a second one that names the field when the first found one.
  if (!hasLongString(n, limits.maxFieldChars)) return;
  const path: Array<string | number> = [];
  const named = () => path.reduce<string>((s, p) => (typeof p === 'number' ? `${s}[${p}]` : s === '' ? p : `${s}.${p}`), '');
  const visit = (value: unknown): void => {
    if (typeof value === 'string') {
      if (value.length > limits.maxFieldChars) {
        throw new DecodeError('field-too-long', `${named()} holds ${value.length} characters; the limit is ${limits.maxFieldChars}`);
      }
    } else if (Array.isArray(value)) {
      for (let i = 0; i < value.length; i++) {
        path.push(i);
        visit(value[i]);
        path.pop();
      }
    } else if (typeof value === 'object' && value !== null && !(value instanceof Date)) {
      for (const k of Object.keys(value)) {
        path.push(k);
        visit(Reflect.get(value, k));
        path.pop();
      }
    }
  };
  visit(n);
}

/** Whether any string inside `value` is longer than `max`. */
function hasLongString(value: unknown, max: number): boolean {
  if (typeof value === 'string') return value.length > max;
  if (typeof value !== 'object' || value === null || value instanceof Date) return false;
  if (Array.isArray(value)) {
    for (const v of value) if (hasLongString(v, max)) return true;
    return false;
  }
  const fields = value as Record<string, unknown>;
  for (const k in fields) if (hasLongString(fields[k], max)) return true;
  return false;
}
