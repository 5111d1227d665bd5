// A PostgreSQL outage is a state, not a crash. On a private PostgreSQL server
// (the shared one is never stopped): the operator started while the database
// is down waits for it; stopped during ingest and restarted, the operator
// stays up, /readyz flips to not-ready and back, and every notification
// published meanwhile is applied exactly once. With --no-wait-db a database
// that is down at start is one line and exit code 2.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runStandalone } from '../../operator/main.ts';
import { runCli } from '../../operator/cli/program.ts';
import { openLedgerDb } from '../../operator/ledger/db.ts';
import { AmqpPublisher } from '../../operator/intake/amqp.ts';
import { silentLogger } from '../../operator/log.ts';
import { requireEnv, uniqueSuffix } from '../support/env.ts';
import { freePort, privatePostgres } from '../support/private-pg.ts';
import { neutronFloatingIp } from '../sim/openstack-messages.ts';

const amqpUrl = requireEnv('QTEST_AMQP_URL');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const cleanups: Array<() => Promise<void> | void> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

async function until(cond: () => Promise<boolean>, what: string, ms = 60_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

function standaloneConfig(cloud: string, exchange: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'qop-outage-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'cloud.yaml'), [
    'apiVersion: quarantine.forensics.dev/v1alpha1', 'kind: Cloud', 'metadata:', `  name: ${cloud}`, 'spec:', '  type: openstack', '  amqp:',
    '    urlSecretRef: {name: rabbit, key: url}', `    exchanges: [{name: ${exchange}}]`, '    prefetch: 50',
  ].join('\n'));
  execFileSync('mkdir', ['-p', join(dir, 'secrets', 'rabbit')]);
  writeFileSync(join(dir, 'secrets', 'rabbit', 'url'), amqpUrl);
  return dir;
}

test('run --no-wait-db with the database down: one line, exit 2', async () => {
  const port = await freePort();
  const dir = standaloneConfig(`cloud-${uniqueSuffix()}`, `neutron-${uniqueSuffix()}`);
  const out: string[] = [];
  const err: string[] = [];
  const code = await runCli(['--db', `postgres://postgres@127.0.0.1:${port}/nothing`, '--log-level', 'silent', 'run', '--no-wait-db', '--manifests', join(dir, 'cloud.yaml'), '--secrets', join(dir, 'secrets')], {
    out: (s: string) => void out.push(s), err: (s: string) => void err.push(s), env: {},
  });
  assert.equal(code, 2);
  const text = err.join('');
  assert.equal(text.trim().split('\n').length, 1, text);
  assert.match(text, /^quarantine: ledger database postgres:\/\/postgres@127\.0\.0\.1:\d+\/nothing is unreachable: .*ECONNREFUSED/);
});

test('PostgreSQL down at start, stopped during ingest and restarted: operator up, readiness flips, 0 lost, 0 applied twice', async () => {
  const pg = await privatePostgres();
  cleanups.push(() => pg.destroy());
  const s = uniqueSuffix();
  const cloud = `cloud-${s}`;
  const neutron = `neutron-${s}`;
  const dir = standaloneConfig(cloud, neutron);
  const httpPort = await freePort();
  const readyz = async (): Promise<number> => (await fetch(`http://127.0.0.1:${httpPort}/readyz`).catch(() => ({ status: 0 }))).status;

  // Start with the database down: the operator waits instead of failing.
  const ac = new AbortController();
  let started = false;
  const run = runStandalone({
    dbUrl: pg.url, manifests: join(dir, 'cloud.yaml'), secretsDir: join(dir, 'secrets'), logger: silentLogger, signal: ac.signal,
    listen: `127.0.0.1:${httpPort}`, onReady: () => { started = true; },
  });
  let finished = false;
  const runDone = run.then(() => { finished = true; }, (err: unknown) => { finished = true; throw err; });
  cleanups.push(async () => { ac.abort(); await runDone.catch(() => undefined); });
  await sleep(1_500);
  assert.equal(finished, false, 'the operator gave up while the database was down');
  assert.equal(started, false);
  pg.start();
  await until(async () => started, 'the operator to start once the database answers');
  await until(async () => (await readyz()) === 200, '/readyz ready');

  const pub = await AmqpPublisher.connect(amqpUrl);
  cleanups.push(() => pub.close());
  const TOTAL = 3_000;
  const now = new Date();
  let published = 0;
  const publish = async (upTo: number) => {
    for (; published < upTo; published++) {
      const i = published;
      pub.publish(neutron, 'notifications.info', neutronFloatingIp(
        { id: `fip-${i}`, address: `198.51.${(i >> 8) & 255}.${i & 255}`, network: 'public', project: 'p' }, 'update.end', now,
        { portId: `port-${i}`, fixedAddress: `10.2.${(i >> 8) & 255}.${i & 255}` }, `m-${s}-${i}`,
      ));
      if (i % 100 === 99) {
        await pub.confirmed();
        await sleep(20);
      }
    }
    await pub.confirmed();
  };
  await publish(1_000);
  // Down in the middle of ingest, connections terminated.
  pg.stop();
  const ready: number[] = [];
  await until(async () => { const st = await readyz(); ready.push(st); return st === 503; }, '/readyz to report the outage', 20_000);
  await publish(2_000);
  await sleep(2_000);
  assert.equal(finished, false, 'the operator stopped during the outage');
  assert.equal(await readyz(), 503);
  pg.start();
  await until(async () => (await readyz()) === 200, '/readyz ready again', 30_000);
  await publish(TOTAL);

  const ledger = openLedgerDb(pg.url);
  cleanups.push(() => ledger.close());
  const count = async () => Number((await ledger.db.selectFrom('notifications').select((eb) => eb.fn.countAll<number>().as('n')).where('cloud', '=', cloud).executeTakeFirstOrThrow()).n);
  await until(async () => (await count()) >= TOTAL, `all ${TOTAL} notifications applied`, 90_000);
  await sleep(500);
  const rows = await ledger.db.selectFrom('notifications').select(['message_id']).where('cloud', '=', cloud).execute();
  assert.equal(rows.length, TOTAL, 'applied twice');
  assert.equal(new Set(rows.map((r) => r.message_id)).size, TOTAL);
  const ch = await pub.model.createChannel();
  assert.equal((await ch.checkQueue(`quarantine-operator.${cloud}.dead-letter`)).messageCount, 0);
  assert.equal((await ch.checkQueue(`quarantine-operator.${cloud}`)).messageCount, 0);
  await ch.close();
  assert.equal(finished, false);
});
