// Output in pieces. A report of 100,000 log lines at a busy site is some 1.75
// million (line, holder) pairs: as one JSON text it is longer than the
// longest string V8 can make ("Invalid string length"), and written a line at
// a time it costs a write each.
import { closeSync, openSync, writeSync } from 'node:fs';

export interface Batched {
  write(s: string): void;
  /** `s` and a line end. */
  line(s: string): void;
  end(): void;
}

/** Texts gathered into writes of about a mebibyte (a write per output line cost 1.4 s of 26 for such a report). */
export function batched(out: (s: string) => void): Batched {
  let pending: string[] = [];
  let size = 0;
  const flush = () => {
    if (pending.length > 0) out(pending.join(''));
    pending = [];
    size = 0;
  };
  const write = (s: string) => {
    pending.push(s);
    size += s.length;
    if (size >= 1 << 20) flush();
  };
  return { write, line: (s) => write(`${s}\n`), end: flush };
}

const isPlainObject = (v: object): v is Record<string, unknown> => {
  const proto: unknown = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
};

/** What JSON.stringify makes of a member: a toJSON's result, or undefined for what it leaves out. */
function jsonValue(v: unknown, key: string): unknown {
  if (v !== null && (typeof v === 'object' || typeof v === 'bigint') && typeof (v as { toJSON?: unknown }).toJSON === 'function') {
    return (v as { toJSON: (k: string) => unknown }).toJSON(key);
  }
  return v;
}

const omitted = (v: unknown) => v === undefined || typeof v === 'function' || typeof v === 'symbol';

/**
 * Writes the text JSON.stringify(value, null, 2) makes, byte for byte, in
 * pieces: the objects and arrays of the first `depth` levels member by member,
 * each member below them as JSON.stringify's own text.
 */
export function writeJson(write: (s: string) => void, value: unknown, depth = 2): void {
  const member = (v: unknown, indent: string, level: number): void => {
    if (level >= depth || v === null || typeof v !== 'object' || !(Array.isArray(v) || isPlainObject(v))) {
      const text = JSON.stringify(v, null, 2);
      write(indent === '' ? text : text.replaceAll('\n', `\n${indent}`));
      return;
    }
    const inner = `${indent}  `;
    if (Array.isArray(v)) {
      if (v.length === 0) return write('[]');
      write('[\n');
      for (let i = 0; i < v.length; i++) {
        write(inner);
        const m = jsonValue(v[i], String(i));
        if (omitted(m)) write('null');
        else member(m, inner, level + 1);
        write(i === v.length - 1 ? '\n' : ',\n');
      }
      return write(`${indent}]`);
    }
    const entries: Array<[string, unknown]> = [];
    for (const k of Object.keys(v)) {
      const m = jsonValue(v[k], k);
      if (!omitted(m)) entries.push([k, m]);
    }
    if (entries.length === 0) return write('{}');
    write('{\n');
    for (const [i, [k, m]] of entries.entries()) {
      write(`${inner}${JSON.stringify(k)}: `);
      member(m, inner, level + 1);
      write(i === entries.length - 1 ? '\n' : ',\n');
    }
    write(`${indent}}`);
  };
  const top = jsonValue(value, '');
  if (omitted(top)) throw new TypeError('writeJson: the value has no JSON text');
  member(top, '', 0);
}

/** `value` as JSON (two-space indent, a line end after it) in the file at `path`, written in pieces. */
export function writeJsonFile(path: string, value: unknown): void {
  const fd = openSync(path, 'w');
  try {
    const out = batched((s) => writeSync(fd, s));
    writeJson(out.write, value);
    out.write('\n');
    out.end();
  } finally {
    closeSync(fd);
  }
}
