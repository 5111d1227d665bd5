// Every fenced block marked `sh runnable` in README.md and docs/*.md is run,
// command by command, against a ledger holding the docs' own example (the
// instance 6f1b7a52-… behind 188.185.194.218 on 2026-05-01), and must exit 0:
// a doc cannot drift from the CLI unnoticed. Blocks that need a cluster or
// Ceph are plain `sh` and are covered by the chart and capture tests.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runCli } from '../../operator/cli/program.ts';
import { neutronFloatingIp, neutronPort, novaInstance, type VmSpec } from '../sim/openstack-messages.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

export interface DocCommand {
  file: string;
  line: number;
  words: string[];
}

/** Shell words of one command line: quotes and backslashes as sh reads them, an unquoted `#` starts a comment. */
export function shellWords(line: string): string[] {
  const words: string[] = [];
  let word: string | undefined;
  let quote: '"' | "'" | undefined;
  for (let i = 0; i < line.length; i++) {
    const c = line[i] ?? '';
    if (quote !== undefined) {
      if (c === quote) quote = undefined;
      else if (c === '\\' && quote === '"' && i + 1 < line.length) word = (word ?? '') + line[++i];
      else word = (word ?? '') + c;
    } else if (c === '"' || c === "'") {
      quote = c;
      word = word ?? '';
    } else if (c === '\\' && i + 1 < line.length) word = (word ?? '') + line[++i];
    else if (/\s/.test(c)) {
      if (word !== undefined) words.push(word);
      word = undefined;
    } else if (c === '#' && word === undefined) break;
    else word = (word ?? '') + c;
  }
  if (quote !== undefined) throw new Error(`unterminated ${quote} in: ${line}`);
  if (word !== undefined) words.push(word);
  return words;
}

/** The commands of every `sh runnable` block, continuation lines joined. */
export function runnableCommands(file: string, text: string): DocCommand[] {
  const out: DocCommand[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    if (!/^\s*```sh runnable\s*$/.test(lines[i] ?? '')) continue;
    for (i++; i < lines.length && !/^\s*```\s*$/.test(lines[i] ?? ''); i++) {
      const start = i + 1;
      let command = lines[i] ?? '';
      while (command.trimEnd().endsWith('\\') && i + 1 < lines.length) command = `${command.trimEnd().slice(0, -1)} ${lines[++i] ?? ''}`;
      const words = shellWords(command);
      if (words.length > 0) out.push({ file, line: start, words });
    }
  }
  return out;
}

function docs(): Array<{ file: string; text: string }> {
  const files = ['README.md', ...readdirSync(join(root, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];
  return files.map((file) => ({ file, text: readFileSync(join(root, file), 'utf8') }));
}

const dir = mkdtempSync(join(tmpdir(), 'qop-docs-'));
const db = `sqlite:${join(dir, 'ledger.db')}`;

async function cli(args: string[]) {
  let out = '';
  let err = '';
  const code = await runCli(args, { out: (s) => { out += s; }, err: (s) => { err += s; }, env: { LOG_LEVEL: 'silent' } });
  return { code, out, err };
}

before(async () => {
  const t = (iso: string) => new Date(iso);
  const vm: VmSpec = {
    id: '6f1b7a52-3c1e-4d7b-9a57-0d9a5c1f2e11', name: 'batch-17', project: 'proj-hep', user: 'alice', host: 'cmp-04', createdAt: t('2026-05-01T15:00:00Z'),
    ports: [{ portId: 'port-aaaa', address: '10.0.0.5', mac: 'fa:16:3e:00:00:0a', network: 'private' }],
  };
  const bodies = [
    neutronPort({ ...vm.ports[0]!, project: vm.project, instanceId: vm.id }, 'create.end', t('2026-05-01T15:59:00Z')),
    novaInstance(vm, 'create.end', t('2026-05-01T16:00:00Z')),
    neutronFloatingIp({ id: 'fip-1', address: '188.185.194.218', network: 'ext-net', project: vm.project }, 'update.end', t('2026-05-01T16:05:00Z'), { portId: 'port-aaaa', fixedAddress: '10.0.0.5', instanceId: vm.id }),
  ];
  writeFileSync(join(dir, 'msgs.jsonl'), bodies.join('\n') + '\n');
  const r = await cli(['--db', db, 'ingest', '--cloud', 'lab', join(dir, 'msgs.jsonl')]);
  assert.equal(r.code, 0, r.err);
});
after(() => rmSync(dir, { recursive: true, force: true }));

test('every runnable command in the docs runs and exits 0', async () => {
  const commands = docs().flatMap((d) => runnableCommands(d.file, d.text));
  assert.ok(commands.length >= 6, `only ${commands.length} runnable commands found`);
  for (const c of commands) {
    const where = `${c.file}:${c.line}: ${c.words.join(' ')}`;
    assert.equal(c.words[0], 'quarantine', `${where}: a runnable block holds quarantine commands only`);
    const r = await cli(['--db', db, ...c.words.slice(1)]);
    assert.equal(r.code, 0, `${where}\nexit ${r.code}: ${r.err}${r.out}`);
  }
});

test('the extraction reads shell as sh does, and the runner is not vacuous', async () => {
  assert.deepEqual(shellWords(`quarantine hold add x --reason "outbound \\"flood\\"" --case 'A B'  # note`), ['quarantine', 'hold', 'add', 'x', '--reason', 'outbound "flood"', '--case', 'A B']);
  assert.deepEqual(runnableCommands('x.md', '```sh runnable\nquarantine a \\\n  b  # c\n\n```\n```sh\nquarantine d\n```\n').map((c) => c.words), [['quarantine', 'a', 'b']]);
  // A doc that drifted (an option that no longer exists) fails the way the test checks.
  assert.equal((await cli(['--db', db, 'trace', 'ip', '188.185.194.218', '--when', '2026-05-01T16:13:16Z'])).code, 2);
});
