// The operator's intake end to end on the real RabbitMQ: real-format Nova and
// Neutron notifications in, `trace ip` answered from the ledger; a malformed
// message dead-lettered with its reason; a connection killed mid-stream loses
// nothing and applies nothing twice; SIGTERM drains and exits cleanly.
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { runStandalone } from '../../operator/main.ts';
import { openLedgerDb } from '../../operator/ledger/db.ts';
import { traceAddress } from '../../operator/ledger/trace.ts';
import { untilDerived } from '../support/derived.ts';
import { AmqpPublisher, REASON_HEADER } from '../../operator/intake/amqp.ts';
import { silentLogger } from '../../operator/log.ts';
import { requireEnv, uniqueSuffix } from '../support/env.ts';
import { neutronFloatingIp, novaInstance, type VmSpec } from '../sim/openstack-messages.ts';

const amqpUrl = requireEnv('QTEST_AMQP_URL');
const vhost = requireEnv('QTEST_AMQP_VHOST');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Setup {
  dir: string;
  db: string;
  cloud: string;
  nova: string;
  neutron: string;
  queue: string;
  env: NodeJS.ProcessEnv;
}

function setup(): Setup {
  const s = uniqueSuffix();
  const dir = mkdtempSync(join(tmpdir(), 'qop-intake-'));
  dirs.push(dir);
  const cloud = `cloud-${s}`;
  const nova = `nova-${s}`;
  const neutron = `neutron-${s}`;
  writeFileSync(join(dir, 'cloud.yaml'), [
    'apiVersion: quarantine.forensics.dev/v1alpha1',
    'kind: Cloud',
    'metadata:',
    `  name: ${cloud}`,
    'spec:',
    '  type: openstack',
    '  amqp:',
    '    urlSecretRef: {name: rabbit, key: url}',
    `    exchanges: [{name: ${nova}}, {name: ${neutron}}]`,
    '    prefetch: 50',
  ].join('\n'));
  const secrets = join(dir, 'secrets', 'rabbit');
  execFileSync('mkdir', ['-p', secrets]);
  writeFileSync(join(secrets, 'url'), amqpUrl);
  return { dir, db: `sqlite:${join(dir, 'ledger.db')}`, cloud, nova, neutron, queue: `quarantine-operator.${cloud}`, env: {} };
}

async function until(cond: () => Promise<boolean>, what: string, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

async function notificationCount(db: string): Promise<number> {
  const l = openLedgerDb(db);
  try {
    const r = await l.db.selectFrom('notifications').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
    return Number(r.n);
  } catch {
    return 0;
  } finally {
    await l.close();
  }
}

const t0 = Date.parse('2026-05-01T16:00:00Z');
const at = (s: number) => new Date(t0 + s * 1000);
function vm(i: number): VmSpec {
  const hex = i.toString(16).padStart(12, '0');
  return {
    id: `00000000-0000-4000-8000-${hex}`, name: `batch-${i}`, project: `proj-${i % 7}`, user: `user-${i % 13}`, host: `cmp-${i % 5}`, createdAt: at(0),
    ports: [{ portId: `port-${hex}`, address: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, mac: `fa:16:3e:${hex.slice(6, 8)}:${hex.slice(8, 10)}:${hex.slice(10, 12)}`, network: 'private' }],
  };
}

const running: Array<() => Promise<void>> = [];
const dirs: string[] = [];
after(async () => {
  for (const stop of running) await stop().catch(() => undefined);
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('intake from the real broker', () => {
  test('published notifications answer trace ip; a malformed one is dead-lettered with its reason', async () => {
    const s = setup();
    const ac = new AbortController();
    let ready!: () => void;
    const isReady = new Promise<void>((r) => { ready = r; });
    const run = runStandalone({ dbUrl: s.db, manifests: join(s.dir, 'cloud.yaml'), secretsDir: join(s.dir, 'secrets'), logger: silentLogger, signal: ac.signal, onReady: () => ready() });
    running.push(async () => { ac.abort(); await run; });
    await isReady;

    const pub = await AmqpPublisher.connect(amqpUrl);
    const a = vm(1);
    const b = vm(2);
    const fip = { id: 'fip-1', address: '188.185.194.218', network: 'ext-net', project: a.project };
    pub.publish(s.nova, 'versioned_notifications.info', novaInstance(a, 'create.end', at(0)));
    pub.publish(s.nova, 'versioned_notifications.info', novaInstance(b, 'create.end', at(5)));
    pub.publish(s.neutron, 'notifications.info', neutronFloatingIp(fip, 'update.end', at(60), { portId: a.ports[0]!.portId, fixedAddress: a.ports[0]!.address, instanceId: a.id }));
    pub.publish(s.neutron, 'notifications.info', neutronFloatingIp(fip, 'update.end', at(120), { portId: b.ports[0]!.portId, fixedAddress: b.ports[0]!.address, instanceId: b.id }));
    pub.publish(s.nova, 'notifications.error', '{"oslo.version": "2.0", "oslo.message": "{\\"event_type\\": 42"}', { messageId: 'broken-1' });
    await pub.confirmed();

    await until(async () => (await notificationCount(s.db)) === 4, 'four notifications in the ledger');
    const l = openLedgerDb(s.db);
    try {
      await untilDerived(l.db);
      const t = await traceAddress(l.db, '188.185.194.218', at(90));
      assert.deepEqual(t.holders.map((h) => [h.cloud, h.kind, h.instance?.id, h.instance?.user]), [[s.cloud, 'floating', a.id, a.user]]);
      const later = await traceAddress(l.db, '188.185.194.218', at(121));
      assert.equal(later.holders[0]?.instance?.id, b.id);
    } finally {
      await l.close();
    }
    const ch = await pub.model.createChannel();
    let parked: Awaited<ReturnType<typeof ch.get>> = false;
    for (let i = 0; i < 100 && parked === false; i++) {
      parked = await ch.get(`${s.queue}.dead-letter`, { noAck: true });
      if (parked === false) await sleep(50);
    }
    assert.ok(parked, 'the malformed message is in the dead-letter queue');
    assert.equal(parked.properties.messageId, 'broken-1');
    assert.equal(parked.properties.headers?.[REASON_HEADER], 'bad-envelope');
    assert.match(String(parked.properties.headers?.['x-quarantine-detail']), /oslo\.message/);
    assert.equal((await ch.checkQueue(s.queue)).messageCount, 0);
    await ch.close();
    await pub.close();
  });

  test('a broker connection killed mid-stream loses nothing and applies nothing twice', async () => {
    const s = setup();
    const ac = new AbortController();
    let ready!: () => void;
    const isReady = new Promise<void>((r) => { ready = r; });
    const run = runStandalone({ dbUrl: s.db, manifests: join(s.dir, 'cloud.yaml'), secretsDir: join(s.dir, 'secrets'), logger: silentLogger, signal: ac.signal, onReady: () => ready() });
    running.push(async () => { ac.abort(); await run; });
    await isReady;
    const N = 600;
    const pub = await AmqpPublisher.connect(amqpUrl);
    for (let i = 0; i < N / 2; i++) pub.publish(s.nova, 'versioned_notifications.info', novaInstance(vm(i), 'create.end', at(i), { messageId: `m-${i}` }));
    await pub.confirmed();
    await until(async () => (await notificationCount(s.db)) > 20, 'some notifications applied before the cut');
    execFileSync('rabbitmqctl', ['-q', 'close_all_connections', '-p', vhost, 'test: cut mid-stream']);
    for (let i = 0; i < 100 && !pub.closed; i++) await sleep(20);
    await pub.close();
    const pub2 = await AmqpPublisher.connect(amqpUrl);
    for (let i = N / 2; i < N; i++) pub2.publish(s.nova, 'versioned_notifications.info', novaInstance(vm(i), 'create.end', at(i), { messageId: `m-${i}` }));
    // A resend by the publisher (oslo reuses the message id) is applied once.
    pub2.publish(s.nova, 'versioned_notifications.info', novaInstance(vm(7), 'create.end', at(7), { messageId: 'm-7' }));
    await pub2.confirmed();
    await until(async () => (await notificationCount(s.db)) === N, `${N} notifications in the ledger`);
    const l = openLedgerDb(s.db);
    try {
      await untilDerived(l.db);
      const intervals = await l.db.selectFrom('address_intervals').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
      assert.equal(Number(intervals.n), N, 'one fixed-address interval per instance, none doubled');
      const instances = await l.db.selectFrom('instances').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
      assert.equal(Number(instances.n), N);
    } finally {
      await l.close();
    }
    const ch = await pub2.model.createChannel();
    await until(async () => (await ch.checkQueue(s.queue)).messageCount === 0, 'the queue drained');
    await ch.close();
    await pub2.close();
  });

  test('the quarantine process drains in-flight work on SIGTERM and exits 0', async () => {
    const s = setup();
    const child = spawn(join(process.cwd(), 'bin/quarantine'), ['--db', s.db, '--log-level', 'info', 'run', '--manifests', join(s.dir, 'cloud.yaml'), '--secrets', join(s.dir, 'secrets')], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { out += d.toString(); });
    running.push(async () => { if (child.exitCode === null) child.kill('SIGKILL'); });
    await until(async () => out.includes('operator running'), 'the operator to start', 30_000);
    const pub = await AmqpPublisher.connect(amqpUrl);
    for (let i = 0; i < 300; i++) pub.publish(s.nova, 'versioned_notifications.info', novaInstance(vm(i), 'create.end', at(i)));
    await pub.confirmed();
    await until(async () => (await notificationCount(s.db)) > 0, 'work in flight');
    child.kill('SIGTERM');
    const [code] = await once(child, 'exit');
    assert.equal(code, 0, out);
    assert.match(out, /draining in-flight/);
    // Whatever was applied was acknowledged and vice versa: applied + still queued = published.
    const applied = await notificationCount(s.db);
    const ch = await pub.model.createChannel();
    const queued = (await ch.checkQueue(s.queue)).messageCount;
    await ch.close();
    await pub.close();
    assert.equal(applied + queued, 300, `applied ${applied} + queued ${queued}`);
  });
});
