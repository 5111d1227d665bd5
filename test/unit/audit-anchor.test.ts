// Anchoring the audit head outside the ledger: written only when the head
// moved, signed by the audit key, read back from an anchor file or a saved
// log, and a forged anchor is caught.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openLedgerDb, migrateToLatest } from '../../operator/ledger/db.ts';
import { appendAudit, auditKeyRing, useAuditKeys, verifyAudit, AuditKeyError } from '../../operator/ledger/audit.ts';
import { AuditAnchorer, fileAnchorSink, parseAnchorArg, parseAnchors, readAnchorFile } from '../../operator/ledger/audit-anchor.ts';
import { loadAuditKeys } from '../../operator/ledger/audit-keys.ts';
import { silentLogger } from '../../operator/log.ts';

const KEY = 'an-audit-key-of-at-least-32-characters!';

describe('audit anchors', () => {
  test('the head is anchored when it moved, once, signed; a sink failure anchors nothing and is retried', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'qop-anchor-'));
    const ledger = openLedgerDb('sqlite::memory:');
    await migrateToLatest(ledger);
    const keys = auditKeyRing([KEY]);
    useAuditKeys(ledger.db, keys);
    const file = join(dir, 'anchors');
    let fail = false;
    const seen: number[] = [];
    const anchorer = new AuditAnchorer({
      db: ledger.db, keys, logger: silentLogger, clock: () => new Date('2026-05-01T12:00:00Z'),
      sinks: [fileAnchorSink(file), (a) => { if (fail) throw new Error('disk full'); seen.push(a.seq); }],
    });
    assert.equal(await anchorer.anchorNow(), undefined, 'an empty trail has no head');
    await appendAudit(ledger.db, { actor: 'a', action: 'x' });
    const first = await anchorer.anchorNow();
    assert.equal(first?.seq, 2, 'the keyed-era marker, then the entry');
    assert.equal(await anchorer.anchorNow(), undefined, 'not again while the head has not moved');
    await appendAudit(ledger.db, { actor: 'a', action: 'y' });
    fail = true;
    assert.equal(await anchorer.anchorNow(), undefined);
    fail = false;
    assert.equal((await anchorer.anchorNow())?.seq, 3, 'retried at the next interval');
    assert.deepEqual(seen, [2, 3]);
    const anchors = readAnchorFile(file);
    assert.deepEqual(anchors.map((a) => [a.seq, a.keyId]), [[2, keys?.current.id], [3, keys?.current.id], [3, keys?.current.id]]);
    assert.equal((await verifyAudit(ledger.db, { anchors })).ok, true);
    // An anchor made up by someone without the key is named, not trusted.
    const forged = { ...anchors[1], seq: 9, mac: 'f'.repeat(64) };
    writeFileSync(join(dir, 'forged'), `${JSON.stringify({ auditAnchor: forged })}\n`);
    const v = await verifyAudit(ledger.db, { anchors: readAnchorFile(join(dir, 'forged')) });
    assert.deepEqual(v.problems.map((p) => p.problem), ['anchor']);
    assert.match(v.problems[0]?.detail ?? '', /not signed by its key/);
    await ledger.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('anchors are read from an operator log among other lines; SEQ:HASH from the command line', () => {
    const hash = 'a'.repeat(64);
    const log = [
      '{"level":30,"msg":"operator running"}',
      `{"level":30,"auditAnchor":{"seq":12,"hash":"${hash}","at":"2026-05-01T12:00:00.000Z","keyId":null,"mac":null},"msg":"audit head 12:${hash}"}`,
      'not json "auditAnchor"',
      '{"auditAnchor":{"seq":"x"}}',
    ].join('\n');
    assert.deepEqual(parseAnchors(log, 'op.log').map((a) => [a.seq, a.hash, a.source]), [[12, hash, 'op.log']]);
    assert.equal(parseAnchorArg(`12:${hash}`)?.seq, 12);
    assert.equal(parseAnchorArg('12:xyz'), undefined);
  });

  test('audit keys come from a file (current first, older ones after) or the environment, and must be long enough', () => {
    const dir = mkdtempSync(join(tmpdir(), 'qop-keys-'));
    const f = join(dir, 'key');
    writeFileSync(f, `# rotated 2026-05\n${KEY}-new\n\n${KEY}\n`);
    const ring = loadAuditKeys({}, f);
    assert.equal(ring?.byId.size, 2);
    assert.equal(ring?.current.id, auditKeyRing([`${KEY}-new`])?.current.id);
    assert.equal(loadAuditKeys({ QUARANTINE_AUDIT_KEY: KEY })?.current.id, auditKeyRing([KEY])?.current.id);
    assert.equal(loadAuditKeys({}), undefined);
    assert.throws(() => loadAuditKeys({ QUARANTINE_AUDIT_KEY: 'short' }), AuditKeyError);
    assert.throws(() => loadAuditKeys({}, join(dir, 'missing')), /cannot read the audit key file/);
    writeFileSync(f, '# nothing\n');
    assert.throws(() => loadAuditKeys({}, f), /holds no key/);
    rmSync(dir, { recursive: true, force: true });
  });
});
