// `quarantine case open` and `case report` on the embedded ledger: the abuse
// report attributed, a legal hold on the instances' quarantines captured before
// and after the case was opened, the audit trail, and the report's three files.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cli } from '../support/cli-ledger.ts';
import { EXIT } from '../../operator/cli/errors.ts';
import { openLedgerDb, type LedgerDb } from '../../operator/ledger/db.ts';
import { QuarantineStore } from '../../operator/capture/quarantine-store.ts';
import { holdsCovering } from '../../operator/capture/holds.ts';
import { verifyAudit } from '../../operator/ledger/audit.ts';
import { PALETTE } from '../../operator/report/case-html.ts';
import { FIP1, FIP2, vmA, vmB, vmC, writeAbuseReport } from '../support/abuse-report.ts';
import { mispProblems } from '../support/misp.ts';

async function quarantine(l: LedgerDb, instance: string, disk: string, digest: string | null): Promise<string> {
  const store = new QuarantineStore(l.db);
  const { row } = await store.plan({
    id: `q${instance.slice(0, 4)}${disk.replace(/\W/g, '')}`, cloud: 'cern', instance_id: instance, disk, mode: 'onDelete', policy: 'default',
    source_pool: 'vms', source_namespace: null, source_image: `${instance}_${disk}`, source_image_id: `${instance}-${disk}`, anchor_image: null,
    snapshot: 'quarantine', location_pool: 'quarantine', location_namespace: null, location_image: `${instance}_${disk}`, planned_at: Date.now(), provenance: '{}',
  }, new Date());
  await store.update(row.id, new Date(), { state: 'quarantined', digest, bytes: 4 << 20, captured_at: Date.now(), expires_at: Date.now() + 86_400_000 });
  return row.id;
}

describe('quarantine case', () => {
  const dir = mkdtempSync(join(tmpdir(), 'qop-case-'));
  const dbUrl = `sqlite:${join(dir, 'ledger.db')}`;
  let files: string[] = [];
  let ledger: LedgerDb;
  let before1 = '';
  after(async () => {
    await ledger.close();
    rmSync(dir, { recursive: true, force: true });
  });
  before(async () => {
    const w = writeAbuseReport(join(dir, 'report'));
    files = w.files;
    assert.equal((await cli(['--db', dbUrl, 'ingest', '--cloud', 'cern', w.notifications])).code, EXIT.ok);
    ledger = openLedgerDb(dbUrl);
    before1 = await quarantine(ledger, vmA.id, 'disk', 'a'.repeat(64));
  });

  test('case open: owners, a hold on every matching instance, unreadable lines → exit 3', async () => {
    const r = await cli(['--db', dbUrl, 'case', 'open', 'CERT-2026-042', '--reason', 'flood of 192.0.2.80', '--actor', 'investigator', '--date', '2026-05-01', '--from-log', ...files, '-o', 'json']);
    assert.equal(r.code, EXIT.partial, r.err);
    const j = JSON.parse(r.out);
    assert.equal(j.hold, 'case-CERT-2026-042');
    assert.deepEqual(j.instances, [vmA.id, vmB.id, vmC.id].sort());
    assert.equal(j.unreadable, 2);
    assert.match(r.err, /report\.csv:3: unreadable/);
    const again = await cli(['--db', dbUrl, 'case', 'open', 'CERT-2026-042', '--date', '2026-05-01', '--from-log', files[0]!]);
    assert.equal(again.code, EXIT.usage);
    assert.match(again.err, /^quarantine: case CERT-2026-042 exists already\n$/);
  });

  test('the hold covers the instances\' quarantines captured before and after the case, not others', async () => {
    const later = await quarantine(ledger, vmC.id, 'disk', null);
    const other = await quarantine(ledger, 'd9b0c1d2-0000-4000-8000-00000000000d', 'disk', null);
    const rows = await new QuarantineStore(ledger.db).list({});
    const covered = await holdsCovering(ledger.db, rows, new Date());
    assert.deepEqual(covered.get(before1), ['case-CERT-2026-042']);
    assert.deepEqual(covered.get(later), ['case-CERT-2026-042']);
    assert.equal(covered.get(other), undefined);
  });

  test('the audit trail records the hold and the case, and still verifies', async () => {
    const rows = await ledger.db.selectFrom('audit').selectAll().where('subject', 'in', ['case/CERT-2026-042', 'case-CERT-2026-042']).orderBy('seq').execute();
    assert.deepEqual(rows.map((r) => [r.action, r.actor]), [['hold.add', 'investigator'], ['case.open', 'investigator']]);
    const details = JSON.parse(rows[1]!.details);
    assert.equal(details.lines, 7);
    assert.equal(details.unreadable, 2);
    assert.equal((await verifyAudit(ledger.db)).ok, true);
  });

  test('case report writes report.md, report.json and a self-contained report.html', async () => {
    const out = join(dir, 'out');
    const r = await cli(['--db', dbUrl, 'case', 'report', 'CERT-2026-042', '--dir', out]);
    assert.equal(r.code, EXIT.ok, r.err);
    const j = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8'));
    assert.deepEqual(j.counts, { lines: 9, attributed: 6, unattributed: 1, unreadable: 2, instances: 3, quarantines: 2 });
    assert.deepEqual(j.instances.map((i: { name: string; host: string; deletedAt: string | null }) => [i.name, i.host, i.deletedAt]),
      [['batch-17', 'cmp-04', '2026-05-01T16:30:09.000Z'], ['web-2', 'cmp-07', null], ['batch-18', 'cmp-05', null]]);
    assert.deepEqual(j.quarantines.map((q: { instance: string; sha256: string | null; location: string; heldBy: string[] }) => [q.instance, q.sha256, q.location, q.heldBy]), [
      [vmA.id, 'a'.repeat(64), `quarantine/${vmA.id}_disk`, ['case-CERT-2026-042']],
      [vmC.id, null, `quarantine/${vmC.id}_disk`, ['case-CERT-2026-042']],
    ]);
    assert.deepEqual(j.holds.map((h: { name: string }) => h.name), ['case-CERT-2026-042']);
    // The case's own entries, and the audited lifecycle of the quarantines it holds.
    assert.deepEqual(j.audit.map((a: { action: string }) => a.action), ['quarantine.planned', 'quarantine.changed', 'hold.add', 'case.open', 'quarantine.planned', 'quarantine.changed']);
    assert.deepEqual(j.timeline.addresses.map((a: { address: string; holders: Array<{ instance: { name: string } }> }) => [a.address, a.holders.map((h) => h.instance.name)]),
      [[FIP1, ['batch-17', 'web-2']], [FIP2, ['batch-18']]]);
    const md = readFileSync(join(out, 'report.md'), 'utf8');
    assert.match(md, /^# Case CERT-2026-042/);
    assert.match(md, /\| cern \| proj-hep \| alice \| 4 \|/);
    const html = readFileSync(join(out, 'report.html'), 'utf8');
    // Self-contained: nothing fetched from anywhere.
    assert.doesNotMatch(html, /(src|href)=["']?(https?:|\/\/)/i);
    assert.doesNotMatch(html, /<script/i);
    assert.match(html, /<svg [^>]*id="timeline"/);
    for (const colour of PALETTE.slice(0, 3)) assert.match(html, new RegExp(`fill="${colour}"`));
    assert.equal((html.match(/<circle /g) ?? []).length, 7);
    assert.ok(existsSync(join(out, 'report.md')));
  });

  test('case report --misp: the case as a MISP event that MISP\'s format and object templates accept', async () => {
    const out = join(dir, 'misp');
    const r = await cli(['--db', dbUrl, 'case', 'report', 'CERT-2026-042', '--misp', '--dir', out]);
    assert.equal(r.code, EXIT.ok, r.err);
    assert.match(r.out, /misp-event\.json/);
    const e = JSON.parse(readFileSync(join(out, 'misp-event.json'), 'utf8'));
    assert.deepEqual(mispProblems(e), []);
    // An ip-src attribute per address, the owner in its comment.
    assert.deepEqual(e.Event.Attribute.map((a: { type: string; value: string }) => [a.type, a.value]), [['ip-src', FIP1], ['ip-src', FIP2]]);
    assert.match(e.Event.Attribute[0].comment, /batch-17 .*proj-hep, user alice, host cmp-04/);
    assert.match(e.Event.Attribute[0].comment, /web-2 .*proj-astro, user bob, host cmp-07/);
    const objects = e.Event.Object as Array<{ uuid: string; name: string; Attribute: Array<{ object_relation: string; value: string }>; ObjectReference: Array<{ referenced_uuid: string }> }>;
    const devices = objects.filter((o) => o.name === 'device');
    assert.deepEqual(devices.map((d) => d.Attribute.find((a) => a.object_relation === 'alias')?.value), [vmA.id, vmB.id, vmC.id]);
    const deviceA = devices[0]!;
    assert.match(deviceA.Attribute.find((a) => a.object_relation === 'description')!.value, new RegExp(`sha256 ${'a'.repeat(64)}`));
    // Each holder of an address is attributed to its instance; each line to the holder of its address then.
    const holders = objects.filter((o) => o.name === 'ip-port');
    assert.equal(holders.length, 3);
    for (const h of holders) assert.equal(h.ObjectReference.length, 1);
    const lines = objects.filter((o) => o.name === 'network-connection');
    assert.equal(lines.length, 7);
    assert.equal(lines.filter((l) => l.ObjectReference.length === 1).length, 6);
    // Exporting again gives the same identities, so MISP updates the event instead of making a second one.
    const again = await cli(['--db', dbUrl, 'case', 'report', 'CERT-2026-042', '--misp', '--dir', out]);
    assert.equal(again.code, EXIT.ok);
    const e2 = JSON.parse(readFileSync(join(out, 'misp-event.json'), 'utf8'));
    assert.equal(e2.Event.uuid, e.Event.uuid);
    assert.deepEqual(e2.Event.Object.map((o: { uuid: string }) => o.uuid), objects.map((o) => o.uuid));
  });

  test('case report of an unknown case: exit 1, nothing found, nothing written', async () => {
    const r = await cli(['--db', dbUrl, 'case', 'report', 'NOPE', '--dir', join(dir, 'nope')]);
    assert.equal(r.code, EXIT.notFound);
    assert.match(r.err, /no case NOPE/);
    assert.equal(existsSync(join(dir, 'nope')), false);
  });

  test('a case whose lines nobody held is recorded without a hold', async () => {
    const lonely = join(dir, 'lonely.csv');
    writeFileSync(lonely, '192.0.2.99,2026-05-01T16:10:00Z\n');
    const r = await cli(['--db', dbUrl, 'case', 'open', 'CERT-EMPTY', '--from-log', lonely, '--actor', 'investigator']);
    assert.equal(r.code, EXIT.ok, r.err);
    assert.match(r.out, /case CERT-EMPTY opened: 1 lines read, 0 unreadable, 0 instances, hold none \(no instance matched\)/);
    const audit = await ledger.db.selectFrom('audit').select(['action', 'details']).where('subject', '=', 'case/CERT-EMPTY').execute();
    assert.deepEqual(audit.map((a) => [a.action, JSON.parse(a.details).hold]), [['case.open', null]]);
    const bad = await cli(['--db', dbUrl, 'case', 'open', '../etc', '--from-log', lonely]);
    assert.equal(bad.code, EXIT.usage);
    assert.match(bad.err, /case name "\.\.\/etc" must be/);
  });

  test('case ls lists the case with its hold', async () => {
    const r = await cli(['--db', dbUrl, 'case', 'ls', '-o', 'json']);
    assert.deepEqual(JSON.parse(r.out).map((c: { name: string; hold: string | null }) => [c.name, c.hold]), [['CERT-2026-042', 'case-CERT-2026-042'], ['CERT-EMPTY', null]]);
  });
});
