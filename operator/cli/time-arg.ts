import { UsageError } from './errors.ts';

// An investigator's time must be unambiguous: a wall-clock time without an
// offset would silently be read in the machine's zone.
const ISO_WITH_OFFSET = /^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})$/i;

export function parseInstant(value: string, option: string): Date {
  if (!ISO_WITH_OFFSET.test(value)) {
    throw new UsageError(`${option} "${value}" is not an ISO 8601 time with an offset (e.g. 2026-05-01T18:13:16+02:00 or …Z)`);
  }
  const d = new Date(value.replace(' ', 'T'));
  if (Number.isNaN(d.getTime())) throw new UsageError(`${option} "${value}" is not a valid time`);
  return d;
}
