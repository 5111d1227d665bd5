// The README's first command, run for real: scripts/demo.sh brings up its own
// RabbitMQ vhost and Ceph cluster (next to the test environment's, which it
// must not touch), runs the story, and leaves the data and services in place.
// Its printed answers are checked here against the story it told, a second
// run starts afresh, and Ctrl-C, during the story or while the services come
// up, leaves nothing running.
import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const ROOT = resolve(import.meta.dirname, '../..');
const FIVE_MINUTES = 5 * 60_000;

/** The demo on its own: none of the test environment's settings may leak into it. */
function demoEnv(dir: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k.startsWith('QTEST_') || k.startsWith('QUARANTINE_') || k.startsWith('NODE_TEST') || k === 'CEPH_CONF') continue;
    env[k] = v;
  }
  return { ...env, QUARANTINE_DEMO_DIR: dir, NO_COLOR: '1' };
}

interface DemoRun {
  pid: number;
  output: () => string;
  waitFor: (text: string, ms?: number) => Promise<void>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number }>;
}

const runs: DemoRun[] = [];
const dirs: string[] = [];

function newDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'qop-demo-'));
  dirs.push(dir);
  return dir;
}

/** Starts `bash scripts/demo.sh` in a process group of its own, as a terminal would run it. */
function startDemo(dir: string): DemoRun {
  const t0 = Date.now();
  const child = spawn('bash', ['scripts/demo.sh'], { cwd: ROOT, env: demoEnv(dir), detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let text = '';
  const append = (d: string) => { text += d; };
  child.stdout.setEncoding('utf8').on('data', append);
  child.stderr.setEncoding('utf8').on('data', append);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number }>((done) => {
    child.on('close', (code, signal) => done({ code, signal, ms: Date.now() - t0 }));
  });
  let over = false;
  void exited.then(() => { over = true; });
  const run: DemoRun = {
    pid: child.pid ?? 0,
    output: () => text,
    exited,
    async waitFor(wanted, ms = 120_000) {
      const end = Date.now() + ms;
      while (!text.includes(wanted)) {
        if (over) throw new Error(`the demo ended without printing "${wanted}":\n${text}`);
        if (Date.now() > end) throw new Error(`no "${wanted}" after ${ms} ms:\n${text}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    },
  };
  runs.push(run);
  return run;
}

/** The Ceph directory test/env/up.sh derives from a state directory. */
function cephDirOf(dir: string): string {
  return `/tmp/qop-ceph-${createHash('sha256').update(join(dir, 'env')).digest('hex').slice(0, 10)}`;
}

/** Processes whose command line names this demo's Ceph cluster. */
function cephDaemonsOf(dir: string): number[] {
  const conf = join(cephDirOf(dir), 'ceph.conf');
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').includes(conf)) pids.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

function groupAlive(pid: number): boolean {
  try {
    process.kill(-pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function assertNothingLeft(run: DemoRun, dir: string): Promise<void> {
  // Daemons are asked to stop in order; the last may need a moment to be reaped.
  for (let i = 0; i < 50 && (groupAlive(run.pid) || cephDaemonsOf(dir).length > 0); i++) await new Promise((r) => setTimeout(r, 100));
  assert.equal(groupAlive(run.pid), false, 'no process of the run is left');
  assert.deepEqual(cephDaemonsOf(dir), [], 'its Ceph daemons are stopped');
  assert.equal(existsSync(cephDirOf(dir)), false, 'its Ceph directory is removed');
  assert.equal(existsSync(join(dir, 'env', 'env')), false, 'its services are torn down');
}

after(() => {
  for (const run of runs) {
    if (groupAlive(run.pid)) process.kill(-run.pid, 'SIGKILL');
  }
  for (const dir of dirs) {
    if (existsSync(join(dir, 'env'))) {
      spawnSync('bash', ['test/env/down.sh'], { cwd: ROOT, env: { ...demoEnv(dir), QTEST_STATE_DIR: join(dir, 'env') }, stdio: 'ignore' });
    }
    rmSync(dir, { recursive: true, force: true });
  }
});

/** The lines of the block printed under the first `$ bin/quarantine <what>` line. */
function commandBlock(output: string, what: string): string[] {
  const lines = output.split('\n');
  const start = lines.findIndex((l) => l.trim().startsWith(`$ bin/quarantine ${what}`));
  assert.ok(start >= 0, `the demo ran bin/quarantine ${what}`);
  const block: string[] = [];
  for (const l of lines.slice(start + 1)) {
    if (!l.startsWith('             ')) break;
    block.push(l.trim());
  }
  return block;
}

describe('scripts/demo.sh', { concurrency: false }, () => {
  test('tells the whole story, answers right, leaves the data in place; a second run starts afresh', { timeout: 2 * FIVE_MINUTES }, async () => {
    const dir = newDir();
    const first = startDemo(dir);
    const r = await first.exited;
    const out = first.output();
    assert.equal(r.code, 0, out);
    assert.ok(r.ms < FIVE_MINUTES, `the demo took ${r.ms} ms`);

    // The abuse report's time: alice's VM had the address, bob's had it after.
    const aliceId = /Booted hep-batch-07 for alice[^\n]*\n\s+id ([0-9a-f-]{36})/.exec(out)?.[1];
    const bobId = /Booted hep-web-02 for bob[^\n]*\n\s+id ([0-9a-f-]{36})/.exec(out)?.[1];
    assert.ok(aliceId !== undefined && bobId !== undefined, out);
    const trace = commandBlock(out, 'trace ip 188.185.194.218');
    assert.match(trace[0] ?? '', /^CLOUD\s+INSTANCE\s+NAME\s+USER\s+FROM\s+TO$/);
    assert.equal(trace.length, 2, `one holder at the reported time:\n${trace.join('\n')}`);
    assert.match(trace[1] ?? '', new RegExp(`^lab\\s+${aliceId}\\s+hep-batch-07\\s+alice\\s`));
    assert.ok(!(trace[1] ?? '').includes(bobId));
    assert.match(out, new RegExp(`OK answer: hep-batch-07 \\(${aliceId}\\) of user alice, project hep`));
    assert.match(out, new RegExp(`OK answer: hep-web-02 \\(${bobId}\\) of user bob, project hep`));

    // Two quarantines, bob's held; the export's digest is the disk's before deletion.
    const ls = commandBlock(out, 'images ls');
    assert.equal(ls.length, 3, ls.join('\n'));
    assert.ok(ls.some((l) => l.includes(bobId) && l.endsWith('security/cert-demo-001')), ls.join('\n'));
    const digests = [...out.matchAll(/sha256 (?:of the disk before deletion|reported by the export|of \S+\.raw)\s+([0-9a-f]{64})/g)].map((m) => m[1]);
    assert.equal(digests.length, 3, out);
    assert.equal(new Set(digests).size, 1, 'the three digests are equal');
    assert.match(out, /OK MATCH: /);

    // The commands to explore further work on what the run left behind.
    assert.match(out, /Explore further/);
    assert.match(out, /bin\/quarantine images ls --db sqlite:\S+ledger\.db/);
    assert.match(out, new RegExp(`QTEST_STATE_DIR=${join(dir, 'env')} bash test/env/down.sh`));
    const printed = /^\s+(bin\/quarantine trace ip 188\.185\.194\.218 --at \S+ --db \S+)$/m.exec(out)?.[1];
    assert.ok(printed !== undefined, 'the trace command is printed');
    const again = spawnSync('bash', ['-c', printed], { cwd: ROOT, env: demoEnv(dir), encoding: 'utf8' });
    assert.equal(again.status, 0, again.stderr);
    assert.match(again.stdout, new RegExp(`${aliceId}\\s+hep-batch-07\\s+alice`));
    assert.ok(existsSync(join(dir, 'hep-batch-07.raw')));
    assert.ok(existsSync(join(dir, 'env', 'env')), 'Ceph and the vhost stay up to explore');
    assert.ok(cephDaemonsOf(dir).length > 0);

    const second = startDemo(dir);
    const r2 = await second.exited;
    const out2 = second.output();
    assert.equal(r2.code, 0, out2);
    assert.match(out2, /Removing the previous run's data and services/);
    const vhost = (s: string) => /RabbitMQ vhost (\S+) on/.exec(s)?.[1];
    assert.notEqual(vhost(out2), vhost(out), 'a new vhost');
    assert.match(out2, /OK MATCH: /);
  });

  test('Ctrl-C during the story stops the operator, the simulators and the services', { timeout: FIVE_MINUTES }, async () => {
    const dir = newDir();
    const run = startDemo(dir);
    await run.waitFor('Deleting hep-batch-07');
    process.kill(-run.pid, 'SIGINT');
    const r = await run.exited;
    assert.equal(r.code, 130, run.output());
    assert.match(run.output(), /Interrupted \(SIGINT\): stopping the operator and the simulated cloud/);
    assert.match(run.output(), /Stopping the services this run started/);
    await assertNothingLeft(run, dir);
    assert.ok(existsSync(join(dir, 'ledger.db')), 'what was recorded stays');
  });

  test('Ctrl-C while the services come up tears down what was started', { timeout: FIVE_MINUTES }, async () => {
    const dir = newDir();
    const run = startDemo(dir);
    await run.waitFor('Bringing up RabbitMQ');
    await new Promise((r) => setTimeout(r, 1500));
    process.kill(-run.pid, 'SIGINT');
    const r = await run.exited;
    assert.equal(r.code, 130, run.output());
    await assertNothingLeft(run, dir);
  });
});
