// The log formats `trace log` reads: each parser on real-shaped lines (table
// driven), then generated lines of every format round-tripped and recognised.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { LOG_FORMATS, detectFormat, readLog, type LogFormat } from '../../operator/logs/read.ts';
import { addressesIn, normalAddress, type LogOptions } from '../../operator/logs/line.ts';
import { parseTime, wallToInstant } from '../../operator/logs/time.ts';
import { LOG_FORMAT_NAMES } from '../../operator/logs/formats.ts';
import { rng } from '../support/histories.ts';

const one = (format: LogFormat, lines: string[], opts: LogOptions = {}) => {
  const r = readLog(lines.join('\n'), 'f', opts, format);
  return { ok: r.lines.map((l) => [l.address, l.at.toISOString()]), bad: r.unread.map((u) => u.reason) };
};

const ZEEK_HEADER = [
  '#separator \\x09', '#set_separator\t,', '#empty_field\t(empty)', '#unset_field\t-', '#path\tconn', '#open\t2026-05-01-16-00-00',
  '#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tservice\tduration',
  '#types\ttime\tstring\taddr\tport\taddr\tport\tenum\tstring\tinterval',
];

test('the format names the CLI offers are the parsers, in detection order', () => {
  assert.deepEqual(Object.keys(LOG_FORMATS), [...LOG_FORMAT_NAMES]);
});

describe('log line parsers', () => {
  const cases: Array<{ name: string; format: LogFormat; opts?: LogOptions; lines: string[]; ok: string[][]; bad?: RegExp[] }> = [
    {
      name: 'batch-site connection log, --date, source by default',
      format: 'batch', opts: { date: '2026-05-01' },
      lines: ['18:13:16.877067+02:00 b635182c75 p:14022 s:7081 pp:13944 u:51234 g:1399 eu:51234 eg:1399 t:NULL /cvmfs/sft.cern.ch/lcg/python2.7 TCP 188.185.194.218:60045 -> 192.0.2.80:80'],
      ok: [['188.185.194.218', '2026-05-01T16:13:16.877Z']],
    },
    {
      name: 'batch-site: --field dst, IPv6 in brackets',
      format: 'batch', opts: { date: '2026-05-01', field: 'dst' },
      lines: ['09:00:00Z ab p:1 TCP [2001:db8::7]:443 -> [2001:DB8::1]:80'],
      ok: [['2001:db8::1', '2026-05-01T09:00:00.000Z']],
    },
    {
      name: 'batch-site: past midnight the day advances',
      format: 'batch', opts: { date: '2026-05-01' },
      lines: ['23:59:59+00:00 x TCP 10.0.0.5:1 -> 10.0.0.6:2', '00:00:01+00:00 x TCP 10.0.0.5:1 -> 10.0.0.6:2'],
      ok: [['10.0.0.5', '2026-05-01T23:59:59.000Z'], ['10.0.0.5', '2026-05-02T00:00:01.000Z']],
    },
    {
      name: 'batch-site without --date',
      format: 'batch', lines: ['18:13:16+02:00 x TCP 10.0.0.5:1 -> 10.0.0.6:2'], ok: [], bad: [/--date/],
    },
    {
      name: 'Zeek conn.log TSV',
      format: 'zeek-tsv',
      lines: [...ZEEK_HEADER, '1777652596.877067\tCHhAvVGS1DHFjwGM9\t188.185.194.218\t60045\t192.0.2.80\t80\ttcp\thttp\t0.2', '#close\t2026-05-01-17-00-00'],
      ok: [['188.185.194.218', '2026-05-01T16:23:16.877Z']],
    },
    {
      name: 'Zeek TSV: wrong field count and bad address are reasons',
      format: 'zeek-tsv',
      lines: [...ZEEK_HEADER, '1777652596.8\tC1\t188.185.194.218', '1777652596.8\tC1\tnot-an-ip\t1\t192.0.2.80\t80\ttcp\t-\t-'],
      ok: [], bad: [/3 fields where #fields names 9/, /id.orig_h "not-an-ip" is not an address/],
    },
    {
      name: 'Zeek JSON, epoch and ISO ts, --field id.resp_h',
      format: 'zeek-json', opts: { field: 'id.resp_h' },
      lines: ['{"ts":1777652596.5,"uid":"C1","id.orig_h":"10.0.0.5","id.orig_p":1,"id.resp_h":"::ffff:192.0.2.80","id.resp_p":80}', '{"ts":"2026-05-01T16:23:16.500000Z","id.resp_h":"192.0.2.81"}', '{"ts":1,'],
      ok: [['192.0.2.80', '2026-05-01T16:23:16.500Z'], ['192.0.2.81', '2026-05-01T16:23:16.500Z']], bad: [/not valid JSON/],
    },
    {
      name: 'nfdump CSV with --tz, Summary block skipped',
      format: 'nfdump', opts: { tz: 'Europe/Zurich' },
      lines: ['ts,te,td,sa,da,sp,dp,pr,flg,fwd,stos,ipkt,ibyt', '2026-05-01 18:13:16.123,2026-05-01 18:13:17.000,0.877,188.185.194.218,192.0.2.80,60045,80,TCP,.AP.S.,0,0,5,420', 'Summary', 'flows,bytes,packets,avg_bps,avg_pps,avg_bpp', '1,420,5,0,0,84'],
      ok: [['188.185.194.218', '2026-05-01T16:13:16.123Z']],
    },
    {
      name: 'nfdump CSV without --tz',
      format: 'nfdump', lines: ['ts,te,td,sa,da', '2026-05-01 18:13:16,2026-05-01 18:13:17,1,10.0.0.5,10.0.0.6'], ok: [], bad: [/no zone: pass --tz/],
    },
    {
      name: 'Apache/Nginx combined',
      format: 'combined',
      lines: ['188.185.194.218 - - [01/May/2026:18:13:16 +0200] "GET /index.html HTTP/1.1" 200 5120 "-" "curl/8.0"', 'host.example - frank [01/May/2026:18:13:16 +0200] "GET / HTTP/1.1" 200 1 "-" "-"'],
      ok: [['188.185.194.218', '2026-05-01T16:13:16.000Z']], bad: [/client "host.example" is not an address/],
    },
    {
      name: 'RFC 3339 syslog: iptables SRC= preferred over the first address, host never taken',
      format: 'syslog',
      lines: ['2026-05-01T18:13:16.877+02:00 10.9.9.9 kernel: IN=eth0 OUT= DST=192.0.2.80 SRC=188.185.194.218 PROTO=TCP', '<34>1 2026-05-01T16:13:16Z fw01 sshd 123 - - Failed password for root from 2001:db8::5 port 22 ssh2', '2026-05-01T16:13:16Z fw01 app: nothing here'],
      ok: [['188.185.194.218', '2026-05-01T16:13:16.877Z'], ['2001:db8::5', '2026-05-01T16:13:16.000Z']], bad: [/no address in the message/],
    },
    {
      name: 'plain ADDRESS,TIME with a header, offsets, epoch and a zone-less time',
      format: 'csv', opts: { tz: '+02:00' },
      lines: ['address,time', '188.185.194.218,2026-05-01T18:13:16+02:00', '10.0.0.5,1777652596', '10.0.0.6,2026-05-01 18:13:16', '10.0.0.7,yesterday'],
      ok: [['188.185.194.218', '2026-05-01T16:13:16.000Z'], ['10.0.0.5', '2026-05-01T16:23:16.000Z'], ['10.0.0.6', '2026-05-01T16:13:16.000Z']], bad: [/"yesterday" is not a time/],
    },
    {
      name: 'plain CSV with --column 2 (TIME,ADDRESS)',
      format: 'csv', lines: ['2026-05-01T16:13:16Z,188.185.194.218'], opts: { column: 2 }, ok: [['188.185.194.218', '2026-05-01T16:13:16.000Z']],
    },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const r = one(c.format, c.lines, c.opts);
      assert.deepEqual(r.ok, c.ok);
      assert.equal(r.bad.length, (c.bad ?? []).length, `reasons: ${r.bad.join(' | ')}`);
      (c.bad ?? []).forEach((re, i) => assert.match(r.bad[i] ?? '', re));
    });
  }

  test('detection picks each format from its own lines', () => {
    for (const c of cases) {
      if (c.ok.length === 0) continue;
      assert.equal(detectFormat(c.lines, c.opts ?? {}), c.format, c.name);
    }
    assert.equal(detectFormat(['hello world', 'nothing to see'], {}), null);
  });

  test('an unrecognised file: every line unreadable, with the reason', () => {
    const r = readLog('hello\n\nworld\n', 'x.log', {});
    assert.equal(r.format, null);
    assert.deepEqual(r.unread.map((u) => [u.lineNo, u.reason]), [[1, 'format not recognised (choose one with --format)'], [3, 'format not recognised (choose one with --format)']]);
  });
});

describe('addresses and times', () => {
  test('normalAddress: lower case, IPv4-mapped as IPv4, brackets, rejects non-addresses', () => {
    assert.equal(normalAddress('2001:DB8::1'), '2001:db8::1');
    assert.equal(normalAddress('::FFFF:192.0.2.1'), '192.0.2.1');
    assert.equal(normalAddress('[::1]'), '::1');
    assert.equal(normalAddress('999.1.1.1'), null);
    assert.equal(normalAddress('18:13:16'), null);
  });
  test('addressesIn finds addresses with ports, never times', () => {
    assert.deepEqual(addressesIn('at 18:13:16 from 10.0.0.5:4431 to [2001:db8::2]:80, then 1.2.3.4.'), ['10.0.0.5', '2001:db8::2', '1.2.3.4']);
  });
  test('zone names follow daylight saving time', () => {
    assert.equal(wallToInstant({ year: 2026, month: 1, day: 15, hour: 12, minute: 0, second: 0, ms: 0 }, 'Europe/Zurich').toISOString(), '2026-01-15T11:00:00.000Z');
    assert.equal(wallToInstant({ year: 2026, month: 7, day: 15, hour: 12, minute: 0, second: 0, ms: 0 }, 'Europe/Zurich').toISOString(), '2026-07-15T10:00:00.000Z');
    assert.equal(parseTime('2026-05-01 12:00', undefined), '"2026-05-01 12:00" has no zone: pass --tz');
  });
});

// Generated lines: random addresses and instants written in every format come back as written.
// Seeded, and seeded again for every generated log, so that a failure names a log that fails every time.
let random = rng(1);
/** crypto.randomInt's contract ([min, max), or [0, max)) on the seeded generator. */
function randomInt(min: number, max?: number): number {
  return max === undefined ? Math.floor(random() * min) : min + Math.floor(random() * (max - min));
}
const pad = (n: number, w = 2) => String(n).padStart(w, '0');
const MON = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
function randomAddress(): string {
  if (randomInt(4) === 0) return `2001:db8:${randomInt(0xffff).toString(16)}::${randomInt(1, 0xffff).toString(16)}`;
  return [randomInt(1, 224), randomInt(256), randomInt(256), randomInt(1, 255)].join('.');
}
/** A wall clock in a fixed offset, for the formats that write one. */
function inOffset(t: number, offMin: number) {
  const d = new Date(t + offMin * 60_000);
  const sign = offMin < 0 ? '-' : '+';
  const a = Math.abs(offMin);
  return { d, colon: `${sign}${pad(Math.floor(a / 60))}:${pad(a % 60)}`, plain: `${sign}${pad(Math.floor(a / 60))}${pad(a % 60)}` };
}
const writers: Record<LogFormat, (addr: string, t: number, off: number) => { line: string; opts?: LogOptions; header?: string[] }> = {
  'zeek-tsv': (a, t) => ({ header: ZEEK_HEADER, line: `${(t / 1000).toFixed(6)}\tC${randomInt(1e9)}\t${a}\t${randomInt(1, 65535)}\t192.0.2.1\t80\ttcp\t-\t-` }),
  'zeek-json': (a, t) => ({ line: JSON.stringify({ ts: t / 1000, uid: 'C1', 'id.orig_h': a, 'id.orig_p': 1, 'id.resp_h': '192.0.2.1', 'id.resp_p': 80 }) }),
  nfdump: (a, t) => ({ header: ['ts,te,td,sa,da,sp,dp,pr'], opts: { tz: 'UTC' }, line: `${new Date(t).toISOString().replace('T', ' ').replace('Z', '')},${new Date(t).toISOString().replace('T', ' ').replace('Z', '')},0,${a},192.0.2.1,1,80,TCP` }),
  combined: (a, t, off) => {
    const { d, plain } = inOffset(t, off);
    return { line: `${a} - - [${pad(d.getUTCDate())}/${MON[d.getUTCMonth()] ?? ''}/${d.getUTCFullYear()}:${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} ${plain}] "GET / HTTP/1.1" 200 1 "-" "x"` };
  },
  batch: (a, t, off) => {
    const { d, colon } = inOffset(t, off);
    const date = d.toISOString().slice(0, 10);
    return { opts: { date }, line: `${d.toISOString().slice(11, 23)}${colon} ${randomInt(1e9).toString(16)} p:1 u:2 /bin/x TCP ${a.includes(':') ? `[${a}]` : a}:${randomInt(1, 65535)} -> 192.0.2.1:80` };
  },
  syslog: (a, t, off) => {
    const { d, colon } = inOffset(t, off);
    return { line: `${d.toISOString().slice(0, 23)}${colon} fw01 kernel: IN=eth0 SRC=${a} DST=192.0.2.1 PROTO=TCP` };
  },
  csv: (a, t) => ({ line: `${a},${new Date(t).toISOString()}` }),
};
const precision: Record<LogFormat, number> = { 'zeek-tsv': 1, 'zeek-json': 1, nfdump: 1, combined: 1000, batch: 1, syslog: 1, csv: 1 };

test('generated lines of every format: read back as written, and recognised', () => {
  for (const [f, format] of (Object.keys(LOG_FORMATS) as LogFormat[]).entries()) {
    for (let run = 0; run < 30; run++) {
      const seed = 100 * f + run + 1;
      random = rng(seed);
      const expected: Array<[string, number]> = [];
      const lines: string[] = [];
      let opts: LogOptions = {};
      const off = [0, 120, -300, 330, 60][randomInt(5)] ?? 0;
      let t = Date.UTC(2026, randomInt(12), randomInt(1, 28), randomInt(24), randomInt(60), randomInt(60), randomInt(1000));
      // The first log of each format starts a millisecond before midnight where it was written, and runs past it.
      if (run === 0) t = Math.ceil((t + off * 60_000) / 86_400_000) * 86_400_000 - off * 60_000 - 1;
      const count = run === 0 ? 2 + randomInt(7) : 1 + randomInt(8);
      for (let i = 0; i < count; i++) {
        // A log is written in time order: the batch format's lines carry no date, and a time going back is read as midnight.
        if (i > 0) t += randomInt(1, 60_000);
        const a = randomAddress();
        const w = writers[format](a, t, off);
        // The log's options are those of its first line: batch's --date is the day the log starts on.
        if (i === 0) {
          lines.push(...(w.header ?? []));
          opts = w.opts ?? {};
        }
        lines.push(w.line);
        expected.push([normalAddress(a) ?? a, Math.floor(t / precision[format]) * precision[format]]);
      }
      const r = readLog(lines.join('\n'), 'gen', opts);
      const what = `seed ${seed}, ${JSON.stringify(opts)}:\n${lines.join('\n')}`;
      assert.equal(r.format, format, `detected for ${what}`);
      assert.deepEqual(r.unread, [], what);
      assert.deepEqual(r.lines.map((l) => [l.address, l.at.getTime()]), expected, what);
    }
  }
});
