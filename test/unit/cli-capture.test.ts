// The quarantine commands that need only the ledger: images, holds, audit.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { runCli } from '../../operator/cli/program.ts';
import { EXIT } from '../../operator/cli/errors.ts';
import { openLedgerDb, migrateToLatest } from '../../operator/ledger/db.ts';
import { CaptureEngine } from '../../operator/capture/engine.ts';
import { silentLogger } from '../../operator/log.ts';
import { FakeBlockStore } from '../support/fake-block-store.ts';

async function cli(args: string[]) {
  let out = '';
  let err = '';
  const code = await runCli(args, { out: (s) => { out += s; }, err: (s) => { err += s; }, env: { LOG_LEVEL: 'silent' } });
  return { code, out, err };
}

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
    const rm = await cli(['--db', db, 'hold', 'rm', '--case', 'CERT-42']);
    assert.match(rm.out, /released cli\/flood/);
    assert.equal((await cli(['--db', db, 'hold', 'rm', '--case', 'CERT-42'])).code, EXIT.notFound);
  });

  test('bad hold arguments: one line, exit 2', async () => {
    const empty = await cli(['--db', db, 'hold', 'add', 'x', '--case', 'c', '--reason', 'r']);
    assert.equal(empty.code, EXIT.usage);
    assert.match(empty.err, /selects nothing/);
    const window = await cli(['--db', db, 'hold', 'add', 'x', '--case', 'c', '--reason', 'r', '--from', '2026-01-01T00:00:00Z', '--project', 'p']);
    assert.equal(window.code, EXIT.usage);
    assert.match(window.err, /--from\/--to go with --address/);
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
    assert.equal(bad.code, EXIT.failure);
    assert.match(bad.out, /row 1: modified/);
    const withHead = await cli(['--db', db, 'audit', 'verify', '--expect-head', head]);
    assert.equal(withHead.code, EXIT.failure);
  });
});
