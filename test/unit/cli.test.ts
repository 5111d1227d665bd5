// The command line's contract: help works, a bad argument is one line and
// exit 2, and `run` fails clearly when no cloud is configured.
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../../operator/cli/program.ts';
import { EXIT } from '../../operator/cli/errors.ts';

async function cli(args: string[], env: NodeJS.ProcessEnv = {}) {
  let out = '';
  let err = '';
  const code = await runCli(args, { out: (s) => { out += s; }, err: (s) => { err += s; }, env: { LOG_LEVEL: 'silent', ...env } });
  return { code, out, err };
}

describe('quarantine CLI', () => {
  const dir = mkdtempSync(join(tmpdir(), 'qop-cli-'));
  const db = `sqlite:${join(dir, 'q.db')}`;
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('--help lists the commands and exits 0', async () => {
    const r = await cli(['--help']);
    assert.equal(r.code, EXIT.ok);
    assert.match(r.out, /Usage: quarantine/);
    assert.match(r.out, /run \[options\]/);
  });

  const bad: Array<[string, string[], RegExp]> = [
    ['an unknown option', ['--bogus'], /unknown option '--bogus'/],
    ['an unknown command', ['frobnicate'], /unknown command 'frobnicate'/],
    ['a database URL of an unsupported engine', ['--db', 'mysql://u:secret@h/d', 'migrate'], /unsupported database URL "mysql:\/\/u:\*\*\*@h\/d"/],
    ['a log level outside the choices', ['--log-level', 'loud', 'migrate'], /argument 'loud' is invalid/],
  ];
  for (const [what, args, message] of bad) {
    test(`${what} gets a one-line message and exit 2`, async () => {
      const r = await cli(args);
      assert.equal(r.code, EXIT.usage);
      assert.match(r.err, message);
      assert.equal(r.err.trim().split('\n').length, 1, `one line, got: ${r.err}`);
      assert.doesNotMatch(r.err, /secret/, 'a password never reaches the terminal');
    });
  }

  for (const mode of [[], ['--kubernetes']]) {
    for (const listen of ['9090', 'localhost:99999']) {
      test(`run${mode.map((m) => ` ${m}`).join('')} --listen ${listen} is a usage error (exit 2) before anything starts`, async () => {
        const r = await cli(['--db', db, 'run', ...mode, '--listen', listen]);
        assert.equal(r.code, EXIT.usage);
        assert.match(r.err, /--listen "[^"]+"/);
        assert.equal(r.err.trim().split('\n').length, 1);
      });
    }
  }

  test('run without any cloud configured says so and exits 2', async () => {
    const r = await cli(['--db', db, 'run']);
    assert.equal(r.code, EXIT.usage);
    assert.match(r.err, /no cloud configured: pass --manifests DIR/);
  });

  test('run with manifests that hold no Cloud says which directory and what is missing', async () => {
    const m = join(dir, 'manifests');
    rmSync(m, { recursive: true, force: true });
    mkdirSync(m, { recursive: true });
    writeFileSync(join(m, 'other.yaml'), 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n');
    const r = await cli(['--db', db, 'run', '--manifests', m]);
    assert.equal(r.code, EXIT.usage);
    assert.match(r.err, /holds no Cloud resource/);
  });

  test('a malformed manifest names the file and the field', async () => {
    const m = join(dir, 'broken');
    mkdirSync(m, { recursive: true });
    writeFileSync(join(m, 'cloud.yaml'), 'apiVersion: quarantine.forensics.dev/v1alpha1\nkind: Cloud\nmetadata: {}\n');
    const r = await cli(['--db', db, 'run', '--manifests', m]);
    assert.equal(r.code, EXIT.usage);
    assert.match(r.err, /cloud\.yaml: document 1: metadata\.name/);
  });

  test('migrate creates the embedded ledger and is idempotent', async () => {
    const first = await cli(['--db', db, 'migrate']);
    assert.equal(first.code, EXIT.ok);
    const second = await cli(['--db', db, 'migrate']);
    assert.equal(second.code, EXIT.ok);
    assert.match(second.out, /is up to date/);
  });
});
