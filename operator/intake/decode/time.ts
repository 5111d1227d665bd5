// Every time format the clouds put in their messages, to a Date.
// Python's str(datetime) and isoformat() variants (naive = UTC, because oslo
// and Nova use utcnow()), and OpenNebula's epoch seconds (0 = unset).

/** `{ ok: true, date: undefined }` means the field is deliberately empty. */
export type TimeParse = { ok: true; date: Date | undefined } | { ok: false; reason: string };

/** The character codes of `0` and `9`. */
const ZERO = 48;
const NINE = 57;

/** The number written by the digits text[from, to), or -1 if any is not an ASCII digit. */
function digitsAt(text: string, from: number, to: number): number {
  let n = 0;
  for (let i = from; i < to; i++) {
    const c = text.charCodeAt(i);
    // Negated so that NaN (past the end) is no digit either.
    if (!(c >= ZERO && c <= NINE)) return -1;
    n = n * 10 + (c - ZERO);
  }
  return n;
}

const unrecognised = (text: string): TimeParse => ({ ok: false, reason: `unrecognised timestamp ${JSON.stringify(text)}` });

const daysIn = (year: number, month: number): number =>
  month === 2 ? (year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 29 : 28) : month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31;

/**
 * Accepts `2016-06-14 19:45:48.649772` (oslo envelope), `2012-10-29T13:42:11Z`
 * (Nova versioned), `2016-08-17 15:10:12+00:00` (Nova legacy created_at),
 * `2016-08-17T15:10:33.000000` and `2016-03-21T16:36:56` (naive ISO). The
 * fraction may have 1 to 9 digits; below milliseconds it is truncated. An
 * empty string (Nova legacy for "unset") yields no date.
 *
 * Read character by character, in the grammar of
 * `YYYY-MM-DD[T ]hh:mm:ss(.f{1,9})?(Z|[+-]hh:?mm)?`: several stamps per
 * delivery, and a regular expression's match array and the Date made only
 * to check the day cost a tenth of decoding one.
 */
export function parseTimestamp(text: string): TimeParse {
  if (text === '') return { ok: true, date: undefined };
  const sep = text.charCodeAt(10);
  if (
    text.length < 19 || text.charCodeAt(4) !== 0x2d || text.charCodeAt(7) !== 0x2d || (sep !== 0x54 && sep !== 0x20) ||
    text.charCodeAt(13) !== 0x3a || text.charCodeAt(16) !== 0x3a
  ) return unrecognised(text);
  const year = digitsAt(text, 0, 4);
  const month = digitsAt(text, 5, 7);
  const day = digitsAt(text, 8, 10);
  const hour = digitsAt(text, 11, 13);
  const minute = digitsAt(text, 14, 16);
  const second = digitsAt(text, 17, 19);
  if (year < 0 || month < 0 || day < 0 || hour < 0 || minute < 0 || second < 0) return unrecognised(text);
  let i = 19;
  let millis = 0;
  if (text.charCodeAt(i) === 0x2e) {
    const from = i + 1;
    let to = from;
    while (to < text.length && to - from < 10) {
      const c = text.charCodeAt(to);
      if (c < ZERO || c > NINE) break;
      to += 1;
    }
    const digits = to - from;
    if (digits === 0 || digits > 9) return unrecognised(text);
    // The first three digits, as milliseconds (1 → 100, 12 → 120).
    millis = digitsAt(text, from, Math.min(to, from + 3)) * 10 ** Math.max(0, 3 - digits);
    i = to;
  }
  let offset = 0;
  let badZone = false;
  if (i < text.length) {
    const c = text.charCodeAt(i);
    if (c === 0x5a) i += 1;
    else if (c === 0x2b || c === 0x2d) {
      // hh:mm or hhmm, then the end
      const colon = text.charCodeAt(i + 3) === 0x3a ? 1 : 0;
      const hours = digitsAt(text, i + 1, i + 3);
      const minutes = digitsAt(text, i + 3 + colon, i + 5 + colon);
      if (hours < 0 || minutes < 0) return unrecognised(text);
      badZone = hours > 23 || minutes > 59;
      offset = (c === 0x2d ? -1 : 1) * (hours * 60 + minutes);
      i += 5 + colon;
    }
    if (i !== text.length) return unrecognised(text);
  }
  // Date.UTC reads years 0-99 as 1900-1999 (and rolls 2016-02-30 over to March): those are impossible here.
  if (year < 100 || month < 1 || month > 12 || day < 1 || day > daysIn(year, month) || hour > 23 || minute > 59 || second > 59) {
    return { ok: false, reason: `impossible date/time ${JSON.stringify(text)}` };
  }
  if (badZone) return { ok: false, reason: `bad zone offset in ${JSON.stringify(text)}` };
  return { ok: true, date: new Date(Date.UTC(year, month - 1, day, hour, minute, second, millis) - offset * 60_000) };
}

/** OpenNebula times: decimal epoch seconds; `0` means unset. */
export function parseEpochSeconds(text: string): TimeParse {
  if (!/^\d{1,12}$/.test(text)) return { ok: false, reason: `not epoch seconds: ${JSON.stringify(text)}` };
  const seconds = Number(text);
  return { ok: true, date: seconds === 0 ? undefined : new Date(seconds * 1000) };
}

/**
 * For payload fields that are informative rather than essential: a malformed
 * value becomes a warning, not a rejected notification (a delete event must
 * not be dead-lettered over a garbled `launched_at`).
 */
export function lenientTimestamp(text: string | null | undefined, field: string, warnings: string[]): Date | undefined {
  if (text === null || text === undefined) return undefined;
  const parsed = parseTimestamp(text);
  if (parsed.ok) return parsed.date;
  warnings.push(`${field}: ${parsed.reason}`);
  return undefined;
}
