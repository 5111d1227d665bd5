// Zeek (Bro) conn.log, as TSV with its `#fields` header or as JSON lines. `ts`
// is epoch seconds (or ISO 8601 with JSON::TS_ISO8601); the source address is
// `id.orig_h` unless --field names another.
import { z } from 'zod';
import { bad, foreign, normalAddress, ok, skip, type LineParser, type LogOptions } from './line.ts';
import { parseTime } from './time.ts';

export function zeekTsv(opts: LogOptions): LineParser {
  let separator = '\t';
  let fields: string[] | null = null;
  return {
    line(text) {
      if (text.startsWith('#')) {
        const sep = /^#separator\s+(\S+)/.exec(text);
        if (sep !== null) {
          const s = sep[1] ?? '\\x09';
          separator = s.replace(/\\x([0-9a-fA-F]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16)));
        } else if (text.startsWith('#fields')) {
          fields = text.split(separator).slice(1);
        }
        return skip;
      }
      if (fields === null) return foreign('no Zeek #fields header before this line');
      const cells = text.split(separator);
      const name = opts.field ?? 'id.orig_h';
      const ai = fields.indexOf(name);
      const ti = fields.indexOf('ts');
      if (ai < 0) return bad(`the #fields header has no ${name}`);
      if (ti < 0) return bad('the #fields header has no ts');
      if (cells.length !== fields.length) return bad(`${cells.length} fields where #fields names ${fields.length}`);
      const address = normalAddress(cells[ai] ?? '');
      if (address === null) return bad(`${name} "${cells[ai] ?? ''}" is not an address`);
      const at = parseTime(cells[ti] ?? '', opts.tz);
      return typeof at === 'string' ? bad(`ts: ${at}`) : ok(address, at);
    },
  };
}

const ZeekJson = z.record(z.string(), z.unknown());

export function zeekJson(opts: LogOptions): LineParser {
  return {
    line(text) {
      if (!text.trimStart().startsWith('{')) return foreign('not a JSON object');
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch {
        return bad('not valid JSON');
      }
      const r = ZeekJson.safeParse(parsed);
      if (!r.success) return bad('not a JSON object');
      const name = opts.field ?? 'id.orig_h';
      // Zeek writes `id.orig_h` flat; some shippers nest it as id: {orig_h}.
      const nested = ZeekJson.safeParse(r.data['id']);
      const raw = r.data[name] ?? (name.startsWith('id.') && nested.success ? nested.data[name.slice(3)] : undefined);
      const ts = r.data['ts'];
      if (raw === undefined && ts === undefined) return foreign(`no ${name} and no ts`);
      if (typeof raw !== 'string') return bad(`no ${name}`);
      const address = normalAddress(raw);
      if (address === null) return bad(`${name} "${raw}" is not an address`);
      if (typeof ts !== 'number' && typeof ts !== 'string') return bad('no ts');
      const at = parseTime(String(ts), opts.tz);
      return typeof at === 'string' ? bad(`ts: ${at}`) : ok(address, at);
    },
  };
}
