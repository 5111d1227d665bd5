// No gap across a broker restart. On a private RabbitMQ node (the shared one
// is never restarted), a simulated Nova keeps publishing with oslo's default
// flags (non-durable exchange, no mandatory, publisher-side retry of what the
// broker did not confirm) while the broker is stopped and started again.
// With the alternate-exchange policy in place, every notification the broker
// confirmed is in the ledger, once. Without it, the operator reports the
// missing policy as a condition.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as amqp from 'amqplib';
import { runStandalone } from '../../operator/main.ts';
import type { Operator } from '../../operator/operator.ts';
import { openLedgerDb } from '../../operator/ledger/db.ts';
import { silentLogger } from '../../operator/log.ts';
import { uniqueSuffix } from '../support/env.ts';
import { privateRabbit } from '../support/private-rabbit.ts';
import { novaInstance, type VmSpec } from '../sim/openstack-messages.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const cleanups: Array<() => Promise<void> | void> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

async function until(cond: () => Promise<boolean> | boolean, what: string, ms = 60_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

function vm(i: number): VmSpec {
  const hex = i.toString(16).padStart(12, '0');
  return {
    id: `00000000-0000-4000-8000-${hex}`, name: `gap-${i}`, project: 'p', user: 'u', host: 'cmp-1', createdAt: new Date(),
    ports: [{ portId: `port-${hex}`, address: `10.9.${(i >> 8) & 255}.${i & 255}`, mac: `fa:16:3e:00:${hex.slice(8, 10)}:${hex.slice(10, 12)}`, network: 'private' }],
  };
}

/**
 * What oslo's notifier does: declare the exchange with its default flags on
 * every (re)connection, publish without mandatory, and resend what was not
 * confirmed (same message id) after reconnecting.
 */
async function simulatedNova(url: string, exchange: string, total: number, ms: number, messageId: (i: number) => string): Promise<{ confirmed: Set<string>; retries: number }> {
  const confirmed = new Set<string>();
  let conn: amqp.ChannelModel | undefined;
  let ch: amqp.ConfirmChannel | undefined;
  let retries = 0;
  const drop = async () => {
    ch = undefined;
    const c = conn;
    conn = undefined;
    await c?.close().catch(() => undefined);
  };
  for (let i = 0; i < total; i++) {
    for (;;) {
      try {
        if (ch === undefined) {
          conn = await amqp.connect(url);
          conn.on('error', () => undefined);
          conn.on('close', () => { ch = undefined; });
          ch = await conn.createConfirmChannel();
          ch.on('error', () => undefined);
          await ch.assertExchange(exchange, 'topic', { durable: false, autoDelete: false });
        }
        ch.publish(exchange, 'versioned_notifications.info', Buffer.from(novaInstance(vm(i), 'create.end', new Date(), { messageId: messageId(i) })), { persistent: true, contentType: 'application/json' });
        await ch.waitForConfirms();
        confirmed.add(messageId(i));
        break;
      } catch {
        retries += 1;
        await drop();
        await sleep(100);
      }
    }
    await sleep(ms);
  }
  await drop();
  return { confirmed, retries };
}

test('broker restart while Nova publishes with default oslo flags: 0 lost with the alternate-exchange policy; its absence reported', async () => {
  const rabbit = await privateRabbit();
  cleanups.push(() => rabbit.destroy());
  await rabbit.start();
  const s = uniqueSuffix();
  const cloud = `cloud-${s}`;
  const nova = `nova-${s}`;
  const dir = mkdtempSync(join(tmpdir(), 'qop-gap-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'cloud.yaml'), [
    'apiVersion: quarantine.forensics.dev/v1alpha1', 'kind: Cloud', 'metadata:', `  name: ${cloud}`, 'spec:', '  type: openstack', '  amqp:',
    '    urlSecretRef: {name: rabbit, key: url}', `    exchanges: [{name: ${nova}}]`, '    prefetch: 100',
  ].join('\n'));
  execFileSync('mkdir', ['-p', join(dir, 'secrets', 'rabbit')]);
  writeFileSync(join(dir, 'secrets', 'rabbit', 'url'), rabbit.url);
  const db = `sqlite:${join(dir, 'ledger.db')}`;

  const ac = new AbortController();
  let operator: Operator | undefined;
  const run = runStandalone({ dbUrl: db, manifests: join(dir, 'cloud.yaml'), secretsDir: join(dir, 'secrets'), logger: silentLogger, signal: ac.signal, onReady: (o) => { operator = o; } });
  cleanups.push(async () => { ac.abort(); await run.catch(() => undefined); });
  await until(() => operator !== undefined, 'the operator to start');
  const consumer = () => operator?.clouds.get(cloud)?.intake.consumer;

  // Without the policy the operator says so.
  await until(() => consumer()?.alternateExchange !== undefined, 'the alternate-exchange check');
  assert.deepEqual(consumer()?.alternateExchange?.missing, [nova]);

  // The cloud operator sets the documented policy; the next check (after a reconnect) sees it.
  rabbit.ctl(['set_policy', '-p', '/', 'quarantine-operator-ae', `^${nova}$`, '{"alternate-exchange":"quarantine-operator.unroutable"}', '--apply-to', 'exchanges']);

  const TOTAL = 2_000;
  const id = (i: number) => `gap-${s}-${i}`;
  const publishing = simulatedNova(rabbit.url, nova, TOTAL, 3, id);
  const ledger = openLedgerDb(db);
  cleanups.push(() => ledger.close());
  const count = async () => Number((await ledger.db.selectFrom('notifications').select((eb) => eb.fn.countAll<number>().as('n')).where('cloud', '=', cloud).executeTakeFirstOrThrow()).n);
  await until(async () => (await count()) >= 300, 'intake under way');
  const connectsBefore = consumer()?.connects ?? 0;
  rabbit.stop();
  await sleep(1_000);
  await rabbit.start();
  await until(() => (consumer()?.connects ?? 0) > connectsBefore, 'the operator to reconnect', 120_000);
  const { confirmed, retries } = await publishing;
  assert.ok(retries > 0, 'the publisher never saw the broker go away');
  assert.equal(confirmed.size, TOTAL);
  await until(async () => (await count()) >= TOTAL, `all ${TOTAL} confirmed notifications in the ledger`, 180_000);
  await sleep(500);
  const rows = await ledger.db.selectFrom('notifications').select(['message_id']).where('cloud', '=', cloud).execute();
  assert.equal(rows.length, TOTAL);
  assert.deepEqual(new Set(rows.map((r) => r.message_id)), confirmed);
  assert.deepEqual(consumer()?.alternateExchange?.missing, []);
});
