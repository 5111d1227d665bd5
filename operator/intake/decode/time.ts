// Every time format the clouds put in their messages, to a Date.
// Python's str(datetime) and isoformat() variants (naive = UTC, because oslo
// and Nova use utcnow()), and OpenNebula's epoch seconds (0 = unset).

/** `{ ok: true, date: undefined }` means the field is deliberately empty. */
export type TimeParse = { ok: true; date: Date | undefined } | { ok: false; reason: string };

const ISO_LIKE =
  /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:?\d{2})?$/;

/**
 * Accepts `2016-06-14 19:45:48.649772` (oslo envelope), `2012-10-29T13:42:11Z`
 * (Nova versioned), `2016-08-17 15:10:12+00:00` (Nova legacy created_at),
 * `2016-08-17T15:10:33.000000` and `2016-03-21T16:36:56` (naive ISO). The
 * fraction may have 1 to 9 digits; below milliseconds it is truncated. An
 * empty string (Nova legacy for "unset") yields no date.
 */
export function parseTimestamp(text: string): TimeParse {
  if (text === '') return { ok: true, date: undefined };
  const m = ISO_LIKE.exec(text);
  if (m === null) return { ok: false, reason: `unrecognised timestamp ${JSON.stringify(text)}` };
  const [, y, mo, d, h, mi, s, frac, zone] = m;
  const year = Number(y);
  const month = Number(mo);
  const day = Number(d);
  const hour = Number(h);
  const minute = Number(mi);
  const second = Number(s);
  const millis = frac === undefined ? 0 : Number(frac.padEnd(3, '0').slice(0, 3));
  const utc = Date.UTC(year, month - 1, day, hour, minute, second, millis);
  const probe = new Date(utc);
  // Date.UTC rolls 2016-02-30 over to March; a round trip catches impossible dates.
  if (
    probe.getUTCFullYear() !== year ||
    probe.getUTCMonth() !== month - 1 ||
    probe.getUTCDate() !== day ||
    hour > 23 ||
    minute > 59 ||
    second > 59
  ) {
    return { ok: false, reason: `impossible date/time ${JSON.stringify(text)}` };
  }
  const offset = zone === undefined || zone === 'Z' ? 0 : zoneOffsetMinutes(zone);
  if (offset === undefined) return { ok: false, reason: `bad zone offset in ${JSON.stringify(text)}` };
  return { ok: true, date: new Date(utc - offset * 60_000) };
}

function zoneOffsetMinutes(zone: string): number | undefined {
  const digits = zone.slice(1).replace(':', '');
  const hours = Number(digits.slice(0, 2));
  const minutes = Number(digits.slice(2));
  if (hours > 23 || minutes > 59) return undefined;
  const sign = zone.startsWith('-') ? -1 : 1;
  return sign * (hours * 60 + minutes);
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
