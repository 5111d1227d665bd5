// Turning the times logs write into instants. A time without a zone is only
// read with an explicit --tz: guessing the machine's zone would move every
// attribution by hours without a word.

const OFFSET = /^(?:Z|UTC|GMT|([+-])(\d{2}):?(\d{2}))$/i;

/** Minutes east of UTC for a fixed offset, or null when `zone` is not one. */
export function fixedOffset(zone: string): number | null {
  const m = OFFSET.exec(zone.trim());
  if (m === null) return null;
  if (m[1] === undefined) return 0;
  const mins = Number(m[2]) * 60 + Number(m[3]);
  return m[1] === '-' ? -mins : mins;
}

/** Whether a --tz value is usable: a fixed offset or a zone name the runtime knows. */
export function validZone(zone: string): boolean {
  if (fixedOffset(zone) !== null) return true;
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

function zoneOffsetAt(zone: string, utcMs: number): number {
  const parts = new Intl.DateTimeFormat('en-US', {
    timeZone: zone, hourCycle: 'h23', year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit',
  }).formatToParts(new Date(utcMs));
  const get = (t: string) => Number(parts.find((p) => p.type === t)?.value ?? 0);
  const wall = Date.UTC(get('year'), get('month') - 1, get('day'), get('hour'), get('minute'), get('second'));
  return Math.round((wall - Math.floor(utcMs / 1000) * 1000) / 60_000);
}

export interface Wall {
  year: number; month: number; day: number; hour: number; minute: number; second: number; ms: number;
}

/** The instant of a wall-clock time in `zone` (fixed offset or IANA name). */
export function wallToInstant(w: Wall, zone: string): Date {
  const asUtc = Date.UTC(w.year, w.month - 1, w.day, w.hour, w.minute, w.second, w.ms);
  const fixed = fixedOffset(zone);
  if (fixed !== null) return new Date(asUtc - fixed * 60_000);
  // The zone's offset at the guessed instant, then again at the corrected one (DST edges).
  let off = zoneOffsetAt(zone, asUtc);
  off = zoneOffsetAt(zone, asUtc - off * 60_000);
  return new Date(asUtc - off * 60_000);
}

/** Fractional seconds as milliseconds ("877067" → 877). */
export const fractionMs = (frac: string | undefined): number => (frac === undefined || frac === '' ? 0 : Math.floor(Number(`0.${frac}`) * 1000));

const ISO = /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?\s*(Z|[+-]\d{2}:?\d{2})?$/i;

/**
 * An ISO 8601 / RFC 3339 time, or epoch seconds. Without a zone it needs
 * `tz`; the returned string is the reason when it cannot be read.
 */
export function parseTime(text: string, tz: string | undefined): Date | string {
  const s = text.trim();
  if (/^\d{9,10}(\.\d+)?$/.test(s)) return new Date(Math.round(Number(s) * 1000));
  if (/^\d{12,13}$/.test(s)) return new Date(Number(s));
  const m = ISO.exec(s);
  if (m === null) return `"${s}" is not a time`;
  const wall: Wall = {
    year: Number(m[1]), month: Number(m[2]), day: Number(m[3]), hour: Number(m[4]), minute: Number(m[5]),
    second: Number(m[6] ?? 0), ms: fractionMs(m[7]),
  };
  if (wall.month < 1 || wall.month > 12 || wall.day < 1 || wall.day > 31 || wall.hour > 23 || wall.minute > 59 || wall.second > 60) return `"${s}" is not a valid time`;
  const zone = m[8] ?? tz;
  if (zone === undefined) return `"${s}" has no zone: pass --tz`;
  return wallToInstant(wall, zone);
}
