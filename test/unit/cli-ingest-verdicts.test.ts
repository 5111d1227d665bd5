// One path, one verdict: `quarantine ingest` decodes the bytes exactly as the
// consumer does, applies every good file whatever the bad ones hold, and
// names each bad one (exit 3). User mistakes are one line and exit 2, never a
// stack trace.
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, writeFileSync, rmSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cli } from '../support/cli-ledger.ts';
import { EXIT } from '../../operator/cli/errors.ts';
import { decodeNotification } from '../../operator/intake/decode/index.ts';
import { neutronFloatingIp } from '../sim/openstack-messages.ts';

const dir = mkdtempSync(join(tmpdir(), 'qop-verdicts-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const MALFORMED = join(import.meta.dirname, '..', 'fixtures', 'malformed');

const good = (i: number) => neutronFloatingIp({ id: `fip-${i}`, address: `192.0.2.${i}`, network: 'ext', project: 'p' }, 'update.end', new Date(), { portId: `port-${i}`, fixedAddress: `10.0.0.${i}` }, `good-${i}`);

describe('quarantine ingest verdicts', () => {
  test('good files are applied around bad ones; each bad one is named with the consumer\'s reason; exit 3', async () => {
    const db = `sqlite:${join(dir, 'a.db')}`;
    const files: string[] = [];
    const expected = new Map<string, string>();
    let i = 0;
    for (const f of readdirSync(MALFORMED).filter((f) => f.includes('--') && !f.endsWith('.xml') && !f.endsWith('.b64')).sort()) {
      const g = join(dir, `good-${++i}.json`);
      writeFileSync(g, good(i));
      files.push(g, join(MALFORMED, f));
      expected.set(join(MALFORMED, f), f.slice(0, f.indexOf('--')));
    }
    // A body of ≥ 5 MB of base64-shaped characters: once a stack overflow that ended the whole run with exit 4.
    const big = join(dir, 'big.txt');
    writeFileSync(big, 'A'.repeat(5 * 1024 * 1024 + 1));
    expected.set(big, 'too-large');
    const missing = join(dir, 'missing.json');
    expected.set(missing, 'unreadable');
    const last = join(dir, `good-${++i}.json`);
    writeFileSync(last, good(i));
    files.push(big, missing, last);

    const r = await cli(['--db', db, 'ingest', '--cloud', 'c1', ...files]);
    assert.equal(r.code, EXIT.partial, r.err);
    assert.equal(r.out, `applied ${i}, duplicate 0, ignored 0, rejected ${expected.size}\n`);
    const lines = r.err.trim().split('\n');
    assert.equal(lines.length, expected.size);
    for (const [file, reason] of expected) assert.ok(lines.some((l) => l.startsWith(`${file}: rejected (${reason}):`)), `${file} ${reason}\n${r.err}`);
    assert.doesNotMatch(r.err, /\n\s+at /);
  });

  test('--max-body-bytes raises the size limit as spec.amqp.maxBodyBytes does for the consumer', async () => {
    const db = `sqlite:${join(dir, 'e.db')}`;
    const file = join(dir, 'padded.json');
    writeFileSync(file, good(20) + ' '.repeat(2048));
    const refused = await cli(['--db', db, 'ingest', '--cloud', 'c1', '--max-body-bytes', '1024', file]);
    assert.equal(refused.code, EXIT.partial);
    assert.match(refused.err, /rejected \(too-large\)/);
    const taken = await cli(['--db', db, 'ingest', '--cloud', 'c1', '--max-body-bytes', '65536', file]);
    assert.equal(taken.code, EXIT.ok, taken.err);
    const bad = await cli(['--db', db, 'ingest', '--max-body-bytes', 'lots', file]);
    assert.equal(bad.code, EXIT.usage);
  });

  test('--max-event-age-days widens the plausible window as spec.amqp.maxEventAgeDays does, for replaying an old archive', async () => {
    const db = `sqlite:${join(dir, 'age.db')}`;
    const file = join(dir, 'old.json');
    const tenDaysAgo = new Date(Date.now() - 10 * 86_400_000);
    writeFileSync(file, neutronFloatingIp({ id: 'fip-old', address: '192.0.2.99', network: 'ext', project: 'p' }, 'update.end', tenDaysAgo, { portId: 'port-old', fixedAddress: '10.0.0.99' }, 'old-1'));
    const refused = await cli(['--db', db, 'ingest', '--cloud', 'c1', '--max-event-age-days', '5', file]);
    assert.equal(refused.code, EXIT.partial);
    assert.match(refused.err, /rejected \(implausible-time\)/);
    const taken = await cli(['--db', db, 'ingest', '--cloud', 'c1', '--max-event-age-days', '30', file]);
    assert.equal(taken.code, EXIT.ok, taken.err);
    assert.match(taken.out, /applied 1,/);
    const future = join(dir, 'future.json');
    writeFileSync(future, neutronFloatingIp({ id: 'fip-new', address: '192.0.2.98', network: 'ext', project: 'p' }, 'update.end', new Date(Date.now() + 3_600_000), { portId: 'port-new', fixedAddress: '10.0.0.98' }, 'new-1'));
    const ahead = await cli(['--db', db, 'ingest', '--cloud', 'c1', '--max-event-lead-seconds', '60', future]);
    assert.equal(ahead.code, EXIT.partial);
    assert.match(ahead.err, /rejected \(implausible-time\)/);
    const bad = await cli(['--db', db, 'ingest', '--max-event-age-days', '0', file]);
    assert.equal(bad.code, EXIT.usage);
  });

  test('invalid UTF-8 is rejected exactly as the consumer rejects it, never stored with replacement characters', async () => {
    const db = `sqlite:${join(dir, 'b.db')}`;
    const bytes = Buffer.concat([Buffer.from(good(7).slice(0, 40)), Buffer.from([0xc3, 0x28]), Buffer.from(good(7).slice(40))]);
    const file = join(dir, 'latin.json');
    writeFileSync(file, bytes);
    const consumer = decodeNotification(bytes, { cloud: 'c1', receivedAt: new Date() });
    assert.ok(!consumer.ok);
    const r = await cli(['--db', db, 'ingest', '--cloud', 'c1', file]);
    assert.equal(r.code, EXIT.partial);
    assert.equal(r.err, `${file}: rejected (${consumer.error.reason}): ${consumer.error.message}\n`);
    // Line by line in .jsonl as well, with line numbers; the good line is applied.
    const jsonl = join(dir, 'mixed.jsonl');
    writeFileSync(jsonl, Buffer.concat([Buffer.from(`${good(8)}\n`), bytes, Buffer.from(`\n\n${good(9)}\n`)]));
    const j = await cli(['--db', db, 'ingest', '--cloud', 'c1', jsonl]);
    assert.equal(j.code, EXIT.partial);
    assert.equal(j.out, 'applied 2, duplicate 0, ignored 0, rejected 1\n');
    assert.match(j.err, new RegExp(`^${jsonl.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}:2: rejected \\(bad-encoding\\)`));
  });

  test('user mistakes are one line and exit 2', async () => {
    const manifests = join(dir, 'manifests');
    mkdirSync(manifests);
    const cases: Array<{ args: string[]; match: RegExp }> = [
      { args: ['--db', `sqlite:${tmpdir()}`, 'trace', 'ip', '192.0.2.1', '--at', '2026-01-01T00:00:00Z'], match: /cannot open the SQLite ledger/ },
      { args: ['--db', 'postgres://nobody@127.0.0.1:1/none', 'trace', 'ip', '192.0.2.1', '--at', '2026-01-01T00:00:00Z'], match: /ledger database postgres:\/\/nobody@127\.0\.0\.1:1\/none is unreachable/ },
    ];
    const bomb = join(manifests, 'bomb.yaml');
    const lines = ['a: &a ["x","x","x","x","x","x","x","x","x"]'];
    for (let k = 1; k < 12; k++) lines.push(`${String.fromCharCode(97 + k)}: &${String.fromCharCode(97 + k)} [${Array(9).fill(`*${String.fromCharCode(96 + k)}`).join(',')}]`);
    writeFileSync(bomb, `${lines.join('\n')}\n`);
    cases.push({ args: ['--db', `sqlite:${join(dir, 'c.db')}`, 'run', '--manifests', bomb], match: /bomb\.yaml: document 1: .*alias/i });
    const typo = join(manifests, 'typo.yaml');
    const cloud = readFileSync(join(import.meta.dirname, '..', '..', 'examples', 'standalone', 'cloud.yaml'), 'utf8');
    writeFileSync(typo, cloud.replace(/^(\s+)prefetch:.*$/m, '$1prefech: 5').replace(/^(\s+)type: openstack$/m, '$1type: openstack\n$1typo: true'));
    cases.push({ args: ['--db', `sqlite:${join(dir, 'd.db')}`, 'run', '--manifests', typo], match: /typo\.yaml: Cloud \S+: unknown fields? .*spec\.typo/ });
    for (const c of cases) {
      const r = await cli(c.args);
      assert.equal(r.code, EXIT.usage, `${c.args.join(' ')}: ${r.err}`);
      assert.equal(r.err.trim().split('\n').length, 1, r.err);
      assert.match(r.err, c.match);
    }
  });
});
