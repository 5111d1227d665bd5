// Epoch milliseconds as Date.prototype.toISOString writes them, without a
// Date. A trace answer shows two or three times per holder, and a busy
// private address at 10M intervals has up to some 330 holders: there,
// toISOString was most of the time spent turning rows into the answer (about
// 0.8 µs a call against 0.1 µs here). No database code: the direct trace path
// uses it.

const DAY = 86_400_000;
/** 10000-01-01: from there on toISOString writes a six-digit year with a sign. */
const YEAR_10000 = 253_402_300_800_000;

const TWO: readonly string[] = Array.from({ length: 100 }, (_, n) => String(n).padStart(2, '0'));
const THREE: readonly string[] = Array.from({ length: 1000 }, (_, n) => String(n).padStart(3, '0'));
const two = (n: number): string => TWO[n] as string;

export function isoTime(ms: number): string {
  // Before 1970, past 9999 or not a whole millisecond: rare enough to leave to Date (which also throws on NaN).
  if (!(Number.isInteger(ms) && ms >= 0 && ms < YEAR_10000)) return new Date(ms).toISOString();
  const days = Math.floor(ms / DAY);
  let rest = ms - days * DAY;
  // The proleptic Gregorian date of a day number (H. Hinnant's civil_from_days), in eras of 400 years from 0000-03-01.
  const z = days + 719_468;
  const era = Math.floor(z / 146_097);
  const doe = z - era * 146_097;
  const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36_524) - Math.floor(doe / 146_096)) / 365);
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const day = doy - Math.floor((153 * mp + 2) / 5) + 1;
  const month = mp < 10 ? mp + 3 : mp - 9;
  const year = yoe + era * 400 + (month <= 2 ? 1 : 0);
  const hour = Math.floor(rest / 3_600_000);
  rest -= hour * 3_600_000;
  const minute = Math.floor(rest / 60_000);
  rest -= minute * 60_000;
  const second = Math.floor(rest / 1000);
  return `${year}-${two(month)}-${two(day)}T${two(hour)}:${two(minute)}:${two(second)}.${THREE[rest - second * 1000] as string}Z`;
}
