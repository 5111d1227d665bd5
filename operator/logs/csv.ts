// Comma-separated logs: nfdump's `-o csv` (header `ts,te,td,sa,da,…`, times
// in the collector's local zone, so --tz) and plain `ADDRESS,TIME` lists.
import { bad, foreign, normalAddress, ok, skip, type LineParser, type LogOptions } from './line.ts';
import { parseTime } from './time.ts';

const cellsOf = (text: string): string[] => text.split(',').map((c) => c.trim().replace(/^"(.*)"$/, '$1'));

export function nfdumpCsv(opts: LogOptions): LineParser {
  let header: string[] | null = null;
  let summary = false;
  return {
    line(text) {
      const cells = cellsOf(text);
      if (header === null) {
        if (cells.includes('ts') && (cells.includes('sa') || (opts.field !== undefined && cells.includes(opts.field)))) {
          header = cells;
          return skip;
        }
        return foreign('no nfdump CSV header (ts,te,td,sa,da,…) before this line');
      }
      // nfdump ends its CSV with a "Summary" block of totals.
      if (summary || cells[0] === 'Summary' || text.startsWith('Summary')) { summary = true; return skip; }
      if (text.startsWith('ts,')) return skip;
      const name = opts.field ?? 'sa';
      const ai = header.indexOf(name);
      if (ai < 0) return bad(`the CSV header has no ${name}`);
      const address = normalAddress(cells[ai] ?? '');
      if (address === null) return bad(`${name} "${cells[ai] ?? ''}" is not an address`);
      const at = parseTime(cells[header.indexOf('ts')] ?? '', opts.tz);
      return typeof at === 'string' ? bad(`ts: ${at}`) : ok(address, at);
    },
  };
}

/** `ADDRESS,TIME` (or TIME,ADDRESS with --column 2); a header line is skipped. */
export function plainCsv(opts: LogOptions): LineParser {
  let first = true;
  return {
    line(text) {
      const cells = cellsOf(text);
      const wasFirst = first;
      first = false;
      if (cells.length < 2) return foreign('not ADDRESS,TIME');
      const ai = (opts.column ?? 1) - 1;
      const ti = ai === 0 ? 1 : 0;
      const address = normalAddress(cells[ai] ?? '');
      if (address === null) {
        if (wasFirst && !/\d/.test(cells[ti] ?? '')) return skip;
        return normalAddress(cells[ti] ?? '') === null ? foreign('no address in the address column') : bad(`column ${ai + 1} "${cells[ai] ?? ''}" is not an address`);
      }
      const at = parseTime(cells[ti] ?? '', opts.tz);
      return typeof at === 'string' ? bad(at) : ok(address, at);
    },
  };
}
