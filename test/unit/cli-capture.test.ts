// The quarantine commands that need only the ledger: images, holds, audit.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { cli } from '../support/cli-ledger.ts';
import { EXIT } from '../../operator/cli/errors.ts';
import { openLedgerDb, migrateToLatest } from '../../operator/ledger/db.ts';
import { CaptureEngine } from '../../operator/capture/engine.ts';
import { silentLogger } from '../../operator/log.ts';
import { FakeBlockStore } from '../support/fake-block-store.ts';

const VM = (i: number) => `00000000-0000-4000-8000-00000000000${i}`;

describe('quarantine images / hold / audit', () => {
  const dir = mkdtempSync(join(tmpdir(), 'qop-clicap-'));
  const db = `sqlite:${join(dir, 'ledger.db')}`;
  const ids: string[] = [];
  after(() => rmSync(dir, { recursive: true, force: true }));

  before(async () => {
    const ledger = openLedgerDb(db);
    await migrateToLatest(ledger);
    const blocks = new FakeBlockStore();
    const engine = new CaptureEngine({ db: ledger.db, blocks, quarantine: { pool: 'quarantine' }, logger: silentLogger });
    for (const i of [1, 2]) {
      const image = { pool: 'vms', image: `${VM(i)}_disk` };
      await blocks.importImage({ stream: Readable.from([Buffer.from(`disk ${i}`)]) }, image);
      const row = await engine.capture({
        cloud: 'cern', instanceId: VM(i), disk: 'disk', mode: 'trash', policy: { name: 'default', retentionMs: 86_400_000, flatten: false }, source: { kind: 'live', image },
        provenance: { cloud: 'cern', instance: { id: VM(i), name: `vm${i}`, project: i === 1 ? 'hep' : 'astro', user: 'alice', host: 'h', image: null, flavor: null, createdAt: null }, addresses: [], deletedAt: null, deletedBy: 'alice', messageId: null },
      });
      ids.push(row.id);
    }
    await ledger.close();
  });

  test('images ls lists quarantines; show gives provenance; an unknown id exits 1', async () => {
    const ls = await cli(['--db', db, 'images', 'ls', '-o', 'json']);
    assert.equal(ls.code, EXIT.ok);
    assert.deepEqual(JSON.parse(ls.out).map((q: { id: string; state: string }) => [q.id, q.state]), ids.map((id) => [id, 'quarantined']));
    const show = await cli(['--db', db, 'images', 'show', ids[0] ?? '', '-o', 'json']);
    assert.equal(JSON.parse(show.out).provenance.instance.name, 'vm1');
    assert.equal((await cli(['--db', db, 'images', 'show', 'qnope'])).code, EXIT.notFound);
    const table = await cli(['--db', db, 'images', 'ls']);
    assert.match(table.out, /ID\s+CLOUD\s+INSTANCE/);
  });

  test('hold add covers matching quarantines, shows in ls and images; hold rm --case releases', async () => {
    const add = await cli(['--db', db, 'hold', 'add', 'flood', '--case', 'CERT-42', '--reason', 'outbound flood', '--project', 'hep', '--actor', 'sec-team']);
    assert.equal(add.code, EXIT.ok, add.err);
    assert.match(add.out, /covers 1 quarantine/);
    const ls = JSON.parse((await cli(['--db', db, 'hold', 'ls', '-o', 'json'])).out);
    assert.deepEqual(ls.map((h: { name: string; matched: number; caseId: string }) => [h.name, h.caseId, h.matched]), [['cli/flood', 'CERT-42', 1]]);
    const imgs = JSON.parse((await cli(['--db', db, 'images', 'ls', '-o', 'json'])).out);
    assert.deepEqual(imgs.map((q: { heldBy: string[] }) => q.heldBy), [['cli/flood'], []]);
    const asked = await cli(['--db', db, 'hold', 'rm', '--case', 'CERT-42']);
    assert.equal(asked.code, EXIT.usage);
    assert.match(asked.err, new RegExp(`would stop holding 1 quarantine\\(s\\): ${ids[0] ?? ''}; give --yes`));
    const dry = await cli(['--db', db, 'hold', 'rm', '--case', 'CERT-42', '--dry-run']);
    assert.equal(dry.code, EXIT.ok);
    assert.match(dry.out, new RegExp(`would release cli/flood; retention would apply again to 1 quarantine\\(s\\): ${ids[0] ?? ''}`));
    assert.equal(JSON.parse((await cli(['--db', db, 'hold', 'ls', '-o', 'json'])).out).length, 1, 'neither asking nor a dry run releases');
    const rm = await cli(['--db', db, 'hold', 'rm', '--case', 'CERT-42', '--yes']);
    assert.match(rm.out, /released cli\/flood/);
    assert.equal((await cli(['--db', db, 'hold', 'rm', '--case', 'CERT-42', '--yes'])).code, EXIT.notFound);
  });

  test('hold add over a standing hold needs --replace, and a narrowing names what it releases and needs --yes', async () => {
    const add = (...extra: string[]) => cli(['--db', db, 'hold', 'add', 'case7', '--case', 'C-7', '--reason', 'r', ...extra]);
    assert.equal((await add('--project', 'hep')).code, EXIT.ok);
    const again = await add('--project', 'astro');
    assert.equal(again.code, EXIT.usage);
    assert.equal(again.err, 'quarantine: hold cli/case7 exists already (case C-7); give --replace to change it\n');
    const narrowing = await add('--project', 'astro', '--replace');
    assert.equal(narrowing.code, EXIT.usage);
    assert.match(narrowing.err, new RegExp(`would stop holding 1 quarantine\\(s\\): ${ids[0] ?? ''}; give --yes`));
    const dry = await add('--project', 'astro', '--replace', '--dry-run');
    assert.match(dry.out, new RegExp(`would replace hold cli/case7; it would stop holding 1 quarantine\\(s\\): ${ids[0] ?? ''}`));
    let held = JSON.parse((await cli(['--db', db, 'images', 'ls', '-o', 'json'])).out);
    assert.deepEqual(held.map((q: { heldBy: string[] }) => q.heldBy), [['cli/case7'], []], 'unchanged until confirmed');
    const widening = await add('--project', 'hep', 'astro', '--replace');
    assert.equal(widening.code, EXIT.ok, 'widening releases nothing and needs no --yes');
    assert.equal((await add('--project', 'astro', '--replace', '--yes')).code, EXIT.ok);
    held = JSON.parse((await cli(['--db', db, 'images', 'ls', '-o', 'json'])).out);
    assert.deepEqual(held.map((q: { heldBy: string[] }) => q.heldBy), [[], ['cli/case7']]);
    assert.equal((await cli(['--db', db, 'hold', 'rm', 'case7', '--yes'])).code, EXIT.ok);
    assert.equal((await add('--project', 'hep')).code, EXIT.ok, 'a released name can be placed again');
    assert.equal((await cli(['--db', db, 'hold', 'rm', 'case7', '--yes'])).code, EXIT.ok);
  });

  test('bad hold arguments: one line, exit 2', async () => {
    const empty = await cli(['--db', db, 'hold', 'add', 'x', '--case', 'c', '--reason', 'r']);
    assert.equal(empty.code, EXIT.usage);
    assert.match(empty.err, /selects nothing/);
    const window = await cli(['--db', db, 'hold', 'add', 'x', '--case', 'c', '--reason', 'r', '--from', '2026-01-01T00:00:00Z', '--project', 'p']);
    assert.equal(window.code, EXIT.usage);
    assert.match(window.err, /--from\/--to go with --address/);
    const backwards = await cli(['--db', db, 'hold', 'add', 'x', '--case', 'c', '--reason', 'r', '--address', '192.0.2.1', '--from', '2026-01-02T00:00:00Z', '--to', '2026-01-01T00:00:00Z']);
    assert.equal(backwards.code, EXIT.usage);
    assert.equal(backwards.err, 'quarantine: hold cli/x: the window on 192.0.2.1 starts (2026-01-02T00:00:00.000Z) after it ends (2026-01-01T00:00:00.000Z)\n');
    const past = await cli(['--db', db, 'hold', 'add', 'x', '--case', 'c', '--reason', 'r', '--project', 'p', '--until', '2020-01-01T00:00:00Z']);
    assert.equal(past.code, EXIT.usage);
    assert.equal(past.err, 'quarantine: hold cli/x: until 2020-01-01T00:00:00.000Z is not in the future\n');
    assert.equal(JSON.parse((await cli(['--db', db, 'hold', 'ls', '--all', '-o', 'json'])).out).some((h: { name: string }) => h.name === 'cli/x'), false, 'nothing recorded');
  });

  test('audit verify passes on an intact trail and names a tampered row', async () => {
    const ok = await cli(['--db', db, 'audit', 'verify', '-o', 'json']);
    assert.equal(ok.code, EXIT.ok);
    const head = JSON.parse(ok.out).head as string;
    assert.match(head, /^\d+:[0-9a-f]{64}$/);
    const ledger = openLedgerDb(db);
    await ledger.db.updateTable('audit').set({ actor: 'someone-else' }).where('seq', '=', 1).execute();
    await ledger.close();
    const bad = await cli(['--db', db, 'audit', 'verify']);
    assert.equal(bad.code, EXIT.evidence);
    assert.match(bad.out, /row 1: modified/);
    const withHead = await cli(['--db', db, 'audit', 'verify', '--expect-head', head]);
    assert.equal(withHead.code, EXIT.evidence);
  });

  test('audit ls, show and export read the trail; an export is audited with its absolute destination, a failed one too', async () => {
    const ls = await cli(['--db', db, 'audit', 'ls', '--subject', ids[0] ?? '', '-o', 'json']);
    assert.equal(ls.code, EXIT.ok);
    const entries = JSON.parse(ls.out) as Array<{ seq: number; action: string; subject: string }>;
    assert.ok(entries.some((e) => e.action === 'capture') && entries.every((e) => e.subject === ids[0]));
    const first = entries[0]?.seq ?? 0;
    const show = await cli(['--db', db, 'audit', 'show', String(first), '-o', 'json']);
    assert.equal(JSON.parse(show.out).action, 'quarantine.planned');
    assert.equal((await cli(['--db', db, 'audit', 'show', '999999'])).code, EXIT.notFound);
    assert.equal((await cli(['--db', db, 'audit', 'ls', '--limit', 'x'])).code, EXIT.usage);
    const cwd = process.cwd();
    process.chdir(dir);
    try {
      const ok = await cli(['--db', db, 'audit', 'export', '--file', 'trail.jsonl', '--case', 'C-9']);
      assert.equal(ok.code, EXIT.ok, ok.err);
      const lines = readFileSync(join(dir, 'trail.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { seq: number; hash: string });
      assert.equal(lines[0]?.seq, 1);
      const again = await cli(['--db', db, 'audit', 'export', '--file', 'trail.jsonl']);
      assert.equal(again.code, EXIT.usage);
      const nowhere = await cli(['--db', db, 'audit', 'export', '--file', 'no/such/dir/trail.jsonl']);
      assert.equal(nowhere.code, EXIT.usage);
    } finally {
      process.chdir(cwd);
    }
    const exports = JSON.parse((await cli(['--db', db, 'audit', 'ls', '--limit', '3', '-o', 'json'])).out) as Array<{ action: string; details: { destination: string } }>;
    assert.deepEqual(exports.map((e) => [e.action, e.details.destination]), [
      ['audit.export', join(dir, 'trail.jsonl')], ['audit.export.failed', join(dir, 'trail.jsonl')], ['audit.export.failed', join(dir, 'no/such/dir/trail.jsonl')],
    ]);
  });
});
