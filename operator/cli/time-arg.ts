import { UsageError } from './errors.ts';
import { parseOffsetTime } from '../domain/instant.ts';

export function parseInstant(value: string, option: string): Date {
  const d = parseOffsetTime(value);
  if (d === undefined) {
    throw new UsageError(`${option} "${value}" is not an ISO 8601 time with an offset, or names an impossible date or time (e.g. 2026-05-01T18:13:16+02:00 or …Z)`);
  }
  return d;
}
