// Text logs with the time first: Apache/Nginx combined access logs (client
// address first, `[01/May/2026:18:13:16 +0200]`) and syslog with RFC 3339
// times (RFC 5424, or rsyslog's high-precision format).
import { addressesIn, bad, foreign, normalAddress, ok, type LineParser, type LogOptions } from './line.ts';
import { parseTime, wallToInstant } from './time.ts';

const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];
const COMBINED = /^(\S+) \S+ .*?\[(\d{2})\/([A-Za-z]{3})\/(\d{4}):(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))? ([+-]\d{4})\] "/;

export function combined(opts: LogOptions): LineParser {
  return {
    line(text) {
      const m = COMBINED.exec(text);
      if (m === null) return foreign('not a combined access log line');
      const month = MONTHS.indexOf((m[3] ?? '').toLowerCase());
      if (month < 0) return bad(`"${m[3] ?? ''}" is not a month`);
      // --column N: the Nth address of the line (e.g. an X-Forwarded-For logged at the end).
      const address = opts.column === undefined ? normalAddress(m[1] ?? '') : addressesIn(text)[opts.column - 1] ?? null;
      if (address === null) return bad(opts.column === undefined ? `client "${m[1] ?? ''}" is not an address` : `the line has no address number ${opts.column}`);
      const off = m[9] ?? '+0000';
      const at = wallToInstant({ year: Number(m[4]), month: month + 1, day: Number(m[2]), hour: Number(m[5]), minute: Number(m[6]), second: Number(m[7]), ms: 0 }, `${off.slice(0, 3)}:${off.slice(3)}`);
      return ok(address, at);
    },
  };
}

const SYSLOG = /^(?:<\d{1,3}>\d{0,2} ?)?(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2}))\s+(\S+)\s+(.*)$/i;

/**
 * The address is `KEY=ADDR` for --field KEY (iptables' SRC= by default when
 * present), else the --column'th address of the message (the first), never the
 * logging host.
 */
export function syslog(opts: LogOptions): LineParser {
  return {
    line(text) {
      const m = SYSLOG.exec(text);
      if (m === null) return foreign('not a syslog line with an RFC 3339 time');
      const message = m[3] ?? '';
      let address: string | null = null;
      const key = opts.field ?? (opts.column === undefined && /(?:^|\s)SRC=/.test(message) ? 'SRC' : undefined);
      if (key !== undefined) {
        const kv = new RegExp(`(?:^|[\\s,;])${key.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}=\\[?([0-9A-Fa-f:.]+)`).exec(message);
        if (kv === null) return bad(`no ${key}= in the message`);
        address = normalAddress(kv[1] ?? '');
        if (address === null) return bad(`${key}="${kv[1] ?? ''}" is not an address`);
      } else {
        address = addressesIn(message)[(opts.column ?? 1) - 1] ?? null;
        if (address === null) return bad(opts.column === undefined ? 'no address in the message' : `the message has no address number ${opts.column}`);
      }
      const at = parseTime(m[1] ?? '', opts.tz);
      return typeof at === 'string' ? bad(at) : ok(address, at);
    },
  };
}
