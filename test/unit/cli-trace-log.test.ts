// `quarantine trace log` and `trace ip --from --to` on the embedded ledger: an
// abuse report in four formats, some lines unreadable, attributed line by line
// and summarised per owner.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { basename, join } from 'node:path';
import { cli } from '../support/cli-ledger.ts';
import { EXIT } from '../../operator/cli/errors.ts';
import { EXPECTED, FIP1, UNREADABLE, vmA, vmB, vmC, ingestedAbuseReport } from '../support/abuse-report.ts';

describe('quarantine trace log', () => {
  const report = ingestedAbuseReport('qop-tracelog-');
  const { dir, db } = report;

  test('every line attributed, owners summarised, unreadable lines named, exit 3', async () => {
    const r = await cli(['--db', db, 'trace', 'log', '--date', '2026-05-01', '-o', 'json', ...report.files]);
    assert.equal(r.code, EXIT.partial, r.err);
    const j = JSON.parse(r.out);
    assert.deepEqual(j.formats, Object.fromEntries(report.files.map((f) => [f, { 'batch.log': 'batch', 'conn.log': 'zeek-tsv', 'access.log': 'combined', 'report.csv': 'csv' }[basename(f)]])));
    const got = Object.fromEntries(j.lines.map((l: { source: string; line: number; holders: Array<{ instance: { id: string } | null }> }) =>
      [`${basename(l.source)}:${l.line}`, l.holders.length === 0 ? null : l.holders.map((h) => h.instance?.id).join('+')]));
    assert.deepEqual(got, EXPECTED);
    assert.deepEqual(j.unreadable.map((u: { source: string; lineNo: number }) => `${basename(u.source)}:${u.lineNo}`), UNREADABLE);
    assert.deepEqual(j.counts, { lines: 9, attributed: 6, unattributed: 1, unreadable: 2 });
    assert.deepEqual(j.owners, [
      {
        cloud: 'cern', project: 'proj-hep', user: 'alice', lines: 4, addresses: ['188.185.194.218', '188.185.194.219'],
        instances: [{ id: vmA.id, name: vmA.name }, { id: vmC.id, name: vmC.name }], hosts: ['cmp-04', 'cmp-05'],
        firstLine: '2026-05-01T16:10:00.000Z', lastLine: '2026-05-01T16:15:00.250Z',
      },
      {
        cloud: 'cern', project: 'proj-astro', user: 'bob', lines: 2, addresses: [FIP1],
        instances: [{ id: vmB.id, name: vmB.name }], hosts: ['cmp-07'], firstLine: '2026-05-01T16:21:00.000Z', lastLine: '2026-05-01T16:25:00.500Z',
      },
    ]);
    assert.match(r.err, /report\.csv:3: unreadable \(not ADDRESS,TIME\): this line is garbage/);
    assert.match(r.err, /report\.csv:4: unreadable \("not-a-time" is not a time\)/);
  });

  test('table output: a row per line and the owner summary', async () => {
    const r = await cli(['--db', db, 'trace', 'log', '--date', '2026-05-01', ...report.files]);
    assert.equal(r.code, EXIT.partial);
    assert.match(r.out, /batch\.log:1\s+2026-05-01T16:13:16\.877Z\s+188\.185\.194\.218\s+cern\s+a9b0c1d2-\S+\s+batch-17\s+proj-hep\s+alice\s+cmp-04/);
    assert.match(r.out, /conn\.log:5 .* nobody/);
    assert.match(r.out, /owners:\nCLOUD\s+PROJECT\s+USER\s+LINES.*\ncern\s+proj-hep\s+alice\s+4 /);
    assert.match(r.out, /9 lines: 6 attributed, 1 held by nobody, 2 unreadable/);
  });

  test('ndjson and csv carry the same attributions', async () => {
    const nd = await cli(['--db', db, 'trace', 'log', '--date', '2026-05-01', '-o', 'ndjson', ...report.files]);
    const recs = nd.out.trim().split('\n').map((l) => JSON.parse(l) as { type: string });
    assert.deepEqual(['line', 'unreadable', 'owner'].map((k) => recs.filter((r) => r.type === k).length), [7, 2, 2]);
    const csv = await cli(['--db', db, 'trace', 'log', '--date', '2026-05-01', '-o', 'csv', ...report.files]);
    const rows = csv.out.trim().split('\n');
    assert.equal(rows[0], 'source,line,at,address,cloud,kind,instance,name,project,user,host,network,from,to');
    assert.equal(rows.length, 1 + 7);
    assert.ok(rows.some((r) => r.includes(`,${vmB.id},web-2,proj-astro,bob,cmp-07,`)));
  });

  test('a clean log exits 0; bad options exit 2 with one line', async () => {
    const clean = await cli(['--db', db, 'trace', 'log', '--date', '2026-05-01', report.files[0]!]);
    assert.equal(clean.code, EXIT.ok, clean.err);
    const noDate = await cli(['--db', db, 'trace', 'log', '--date', '1 May', report.files[0]!]);
    assert.equal(noDate.code, EXIT.usage);
    assert.match(noDate.err, /^quarantine: --date "1 May" is not YYYY-MM-DD\n$/);
    const tz = await cli(['--db', db, 'trace', 'log', '--tz', 'Mars/Olympus', report.files[0]!]);
    assert.equal(tz.code, EXIT.usage);
    const missing = await cli(['--db', db, 'trace', 'log', join(dir, 'nope.log')]);
    assert.equal(missing.code, EXIT.usage);
    assert.match(missing.err, /cannot read .*nope\.log/);
  });

  test('trace ip --from --to lists every holder during the window', async () => {
    const r = await cli(['--db', db, 'trace', 'ip', FIP1, '--from', '2026-05-01T16:00:00Z', '--to', '2026-05-01T17:00:00Z', '-o', 'json']);
    assert.equal(r.code, EXIT.ok, r.err);
    const j = JSON.parse(r.out);
    assert.deepEqual(j.holders.map((h: { instance: { id: string }; from: string; to: string | null }) => [h.instance.id, h.from, h.to]), [
      [vmA.id, '2026-05-01T16:05:00.000Z', '2026-05-01T16:20:00.000Z'],
      [vmB.id, '2026-05-01T16:20:00.000Z', null],
    ]);
    const before = await cli(['--db', db, 'trace', 'ip', FIP1, '--from', '2026-05-01T15:00:00Z', '--to', '2026-05-01T16:05:00Z']);
    assert.equal(before.code, EXIT.notFound);
    assert.match(before.out, /nobody held 188\.185\.194\.218 from 2026-05-01T15:00:00\.000Z to 2026-05-01T16:05:00\.000Z/);
    const both = await cli(['--db', db, 'trace', 'ip', FIP1, '--at', '2026-05-01T16:00:00Z', '--from', '2026-05-01T15:00:00Z', '--to', '2026-05-01T16:05:00Z']);
    assert.equal(both.code, EXIT.usage);
    const reversed = await cli(['--db', db, 'trace', 'ip', FIP1, '--from', '2026-05-01T17:00:00Z', '--to', '2026-05-01T16:00:00Z']);
    assert.equal(reversed.code, EXIT.usage);
  });
});
