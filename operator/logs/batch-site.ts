// Connection logs as a batch site's monitoring writes them: a time of day with
// its offset but no date, then process fields, then `PROTO SRC:PORT -> DST:PORT`:
//   18:13:16.877067+02:00 b635182c75 p:14022 … /usr/bin/python2.7 TCP 188.185.194.218:60045 -> 10.1.2.3:80
// The day comes from --date; a time that jumps back by more than twelve hours
// is read as the log running past midnight.
import { addressOfEndpoint, bad, foreign, ok, type LineParser, type LogOptions } from './line.ts';
import { fractionMs, wallToInstant } from './time.ts';

const LINE = /^(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})\s.*?\s(\S+)\s+->\s+(\S+)\s*$/;
const DAY = 86_400_000;

export function batchSite(opts: LogOptions): LineParser {
  let dayShift = 0;
  let previous: number | null = null;
  return {
    line(text) {
      const m = LINE.exec(text);
      if (m === null) return foreign('not a connection log line (TIME … SRC:PORT -> DST:PORT)');
      const which = opts.field ?? 'src';
      if (which !== 'src' && which !== 'dst') return bad(`--field ${which}: connection logs have src and dst`);
      const endpoint = which === 'src' ? m[6] ?? '' : m[7] ?? '';
      const address = addressOfEndpoint(endpoint);
      if (address === null) return bad(`"${endpoint}" is not an address`);
      if (opts.date === undefined) return bad('the line has a time of day only: pass --date YYYY-MM-DD');
      const d = /^(\d{4})-(\d{2})-(\d{2})$/.exec(opts.date);
      if (d === null) return bad(`--date "${opts.date}" is not YYYY-MM-DD`);
      const at = wallToInstant({
        year: Number(d[1]), month: Number(d[2]), day: Number(d[3]), hour: Number(m[1]), minute: Number(m[2]), second: Number(m[3]), ms: fractionMs(m[4]),
      }, m[5] ?? 'Z');
      if (Number.isNaN(at.getTime()) || Number(m[1]) > 23 || Number(m[2]) > 59 || Number(m[3]) > 60) return bad(`"${text.slice(0, 21)}" is not a valid time`);
      let t = at.getTime() + dayShift;
      if (previous !== null && previous - t > DAY / 2) { dayShift += DAY; t += DAY; }
      previous = t;
      return ok(address, new Date(t));
    },
  };
}
