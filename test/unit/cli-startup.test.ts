// What the `quarantine` command loads before it knows what it is asked: help
// and a mistyped argument must not pull in the ledger (kysely), the drivers,
// the logger, Kubernetes, AMQP or zod, which cost about a second to load on a
// busy machine (BENCHMARKS.md, "cli"). A child process records every module
// it resolves, so the test sees what loads, not how long it takes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const program = pathToFileURL(fileURLToPath(new URL('../../operator/cli/program.ts', import.meta.url))).href;

/** Runs each argv through runCli in one fresh process; per argv, the URLs resolved so far and the exit code. */
function loadedBy(argvs: string[][]): Array<{ argv: string[]; code: number; urls: string[] }> {
  const script = `
    import { registerHooks } from 'node:module';
    const seen = new Set();
    registerHooks({ resolve(spec, ctx, next) { const r = next(spec, ctx); seen.add(r.url); return r; } });
    const { runCli } = await import(${JSON.stringify(program)});
    const out = [];
    for (const argv of ${JSON.stringify(argvs)}) {
      const code = await runCli(argv, { out: () => {}, err: () => {}, env: { LOG_LEVEL: 'silent' } });
      out.push({ argv, code, urls: [...seen] });
    }
    process.stdout.write(JSON.stringify(out));
  `;
  const text = execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
  return JSON.parse(text) as Array<{ argv: string[]; code: number; urls: string[] }>;
}

const packageOf = (url: string): string | undefined => /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url)?.[1];

// What an action loads when it runs: none of it may load for help or a usage error.
const HEAVY = ['kysely', 'pg', 'pino', 'prom-client', '@kubernetes/client-node', 'amqplib', 'zod', 'yaml', 'node-cron'];
const HEAVY_DIRS = ['/operator/ledger/', '/operator/kube/', '/operator/capture/', '/operator/clouds/', '/operator/http/'];

test('help of every command, and a usage error, load commander and the CLI modules only', () => {
  const commands = ['run', 'migrate', 'ingest', 'trace', 'trace ip', 'trace instance', 'trace log', 'case open', 'case ls', 'case report',
    'export-intervals', 'hold add', 'hold rm', 'hold ls', 'audit verify', 'audit ls', 'audit show', 'audit export', 'completion'];
  const argvs = [['--help'], ...commands.map((c) => [...c.split(' '), '--help']), ['trace', 'ip', '10.0.0.5', '--at', 'not-a-time']];
  const results = loadedBy(argvs);
  assert.equal(results.length, argvs.length);
  for (const r of results) {
    const packages = new Set(r.urls.map(packageOf).filter((p): p is string => p !== undefined));
    assert.deepEqual([...packages], ['commander'], `quarantine ${r.argv.join(' ')} loaded ${[...packages].join(', ')}`);
    for (const h of HEAVY) assert.ok(!packages.has(h), `quarantine ${r.argv.join(' ')} loaded ${h}`);
    const heavyFiles = r.urls.filter((u) => HEAVY_DIRS.some((d) => u.includes(d)));
    assert.deepEqual(heavyFiles, [], `quarantine ${r.argv.join(' ')} loaded ${heavyFiles.join(', ')}`);
  }
  // The calls ran: help exits 0, the bad time exits 2.
  assert.deepEqual(results.map((r) => r.code), [...argvs.slice(0, -1).map(() => 0), 2]);
});

test('trace ip on a ledger that is not there yet loads the ledger (kysely, the SQLite driver is node:sqlite) to make it, and nothing else: no logger, no zod', () => {
  const [r] = loadedBy([['--db', 'sqlite::memory:', 'trace', 'ip', '10.0.0.5', '--at', '2026-05-01T16:10:00Z']]);
  assert.ok(r !== undefined);
  // Exit 1: nobody held the address in an empty ledger, so the query ran.
  assert.equal(r.code, 1);
  const packages = new Set(r.urls.map(packageOf).filter((p): p is string => p !== undefined));
  assert.deepEqual([...packages].sort(), ['commander', 'kysely']);
});

test('trace ip on an existing, migrated ledger loads no query builder: commander and node:sqlite only', () => {
  const dir = mkdtempSync(join(tmpdir(), 'qop-startup-'));
  try {
    const db = `sqlite:${join(dir, 'ledger.db')}`;
    const [made] = loadedBy([['--db', db, 'migrate']]);
    assert.equal(made?.code, 0);
    // In a process of its own, so that what `migrate` loaded does not count.
    const [alone] = loadedBy([['--db', db, 'trace', 'ip', '10.0.0.5', '--at', '2026-05-01T16:10:00Z']]);
    assert.ok(alone !== undefined);
    assert.equal(alone.code, 1);
    const packages = new Set(alone.urls.map(packageOf).filter((p): p is string => p !== undefined));
    assert.deepEqual([...packages], ['commander']);
    assert.ok(alone.urls.includes('node:sqlite'), alone.urls.join(', '));
    const ledgerFiles = alone.urls.filter((u) => u.includes('/operator/ledger/'));
    // bounds.ts: how observed bounds read in an answer, free of database code; owner-names.ts: how the owner's names read, likewise;
    // trace-holder.ts: a holder from its row, and iso-time.ts its times, likewise; trace-index.ts: the trace query's SQL, as strings,
    // and prepared.ts the mark it carries for PostgreSQL; trace-packed.ts: PostgreSQL's packed rows read apart, as strings, likewise.
    assert.deepEqual(ledgerFiles.map((u) => u.replace(/^.*\/operator\//, '')).sort(),
      ['ledger/bounds.ts', 'ledger/iso-time.ts', 'ledger/owner-names.ts', 'ledger/prepared.ts', 'ledger/trace-direct.ts', 'ledger/trace-holder.ts', 'ledger/trace-index.ts', 'ledger/trace-packed.ts']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
