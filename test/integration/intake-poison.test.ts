// Every message ends, on the real broker and ledger: each shape of the
// malformed corpus, a body of several MiB of base64-shaped characters and a
// message whose apply throws are dead-lettered with their reasons, the good
// messages around them are applied, and nothing is left cycling.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { AmqpConsumer, AmqpPublisher, ATTEMPTS_HEADER, DETAIL_HEADER, REASON_HEADER, type ExchangeSpec } from '../../operator/intake/amqp.ts';
import { BatchingApplier, deliveryHandler } from '../../operator/intake/pipeline.ts';
import { openLedgerDb, migrateToLatest } from '../../operator/ledger/db.ts';
import type { Recorded } from '../../operator/ledger/apply.ts';
import { silentLogger } from '../../operator/log.ts';
import { requireEnv, uniqueSuffix } from '../support/env.ts';
import { createTestDatabase } from '../support/pg.ts';
import { neutronFloatingIp } from '../sim/openstack-messages.ts';

const url = requireEnv('QTEST_AMQP_URL');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const cleanups: Array<() => Promise<void>> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
});

const CORPUS = join(import.meta.dirname, '..', 'fixtures', 'malformed');

test('poison messages are dead-lettered with their reason; good ones around them applied; the queue goes quiet', async () => {
  const s = uniqueSuffix();
  const database = await createTestDatabase();
  cleanups.push(() => database.drop());
  const ledger = openLedgerDb(database.url);
  cleanups.push(() => ledger.close());
  await migrateToLatest(ledger);

  const neutron: ExchangeSpec = { name: `neutron.${s}`, type: 'topic', durable: false, autoDelete: false };
  const opennebula: ExchangeSpec = { name: 'opennebula', type: 'topic', durable: true, autoDelete: false };
  const queue = `q.poison.${s}`;
  const dlq = `${queue}.dead-letter`;
  const applier = new BatchingApplier(ledger.db, { maxBatch: 20 });
  // A notification whose apply throws, as a defect or a constraint would: its id marks it.
  const POISON_ID = `poison-${s}`;
  let poisonAttempts = 0;
  const throwing = {
    apply: (r: Recorded) => {
      if (r.notification.messageId === POISON_ID) {
        poisonAttempts += 1;
        return Promise.reject(new Error('apply exploded'));
      }
      return applier.apply(r);
    },
  };
  let handled = 0;
  const handler = deliveryHandler(`cloud-${s}`, throwing, silentLogger, {}, { maxAttempts: 3 });
  const consumer = new AmqpConsumer({
    url, prefetch: 20, logger: silentLogger,
    topology: { queue, deadLetterQueue: dlq, exchanges: [neutron, opennebula], bindingKeys: ['notifications.*', `poison-${s}.*`] },
    handler: async (d) => {
      handled += 1;
      await handler(d);
    },
  });
  await consumer.start();
  cleanups.push(() => consumer.stop());

  const pub = await AmqpPublisher.connect(url);
  cleanups.push(() => pub.close());
  const now = new Date();
  const good = (i: number) => neutronFloatingIp(
    { id: `fip-${s}-${i}`, address: `203.0.113.${i}`, network: 'public', project: 'p1' }, 'update.end', now,
    { portId: `port-${s}-${i}`, fixedAddress: `10.1.0.${i}` }, `good-${s}-${i}`,
  );
  const expected = new Map<string, string>();
  let n = 0;
  const bad = (body: Buffer | string, reason: string, openNebula: boolean) => {
    const id = `bad-${n++}`;
    expected.set(id, reason);
    // OpenNebula bodies go through the opennebula exchange, with a routing key only this test binds.
    if (openNebula) pub.publish(opennebula.name, `poison-${s}.info`, body, { messageId: id });
    else pub.publish(neutron.name, 'notifications.info', body, { messageId: id });
  };
  let goods = 0;
  const publishGood = () => pub.publish(neutron.name, 'notifications.info', good(++goods));
  for (const file of readdirSync(CORPUS).filter((f) => f.includes('--')).sort()) {
    publishGood();
    bad(readFileSync(join(CORPUS, file)), file.slice(0, file.indexOf('--')), file.endsWith('.xml') || file.endsWith('.b64'));
  }
  publishGood();
  // ≥ 5 MB of base64-shaped characters: once a stack overflow that looped for ever.
  bad('A'.repeat(5 * 1024 * 1024 + 3), 'too-large', true);
  publishGood();
  const poison = neutronFloatingIp({ id: `fip-${s}-poison`, address: '203.0.113.250', network: 'public', project: 'p1' }, 'update.end', now, { portId: `port-${s}-p` }, POISON_ID);
  pub.publish(neutron.name, 'notifications.info', poison, { messageId: 'bad-apply' });
  expected.set('bad-apply', 'apply-failed');
  for (let i = 0; i < 5; i++) publishGood();
  await pub.confirmed();

  const ch = await pub.model.createChannel();
  cleanups.push(() => ch.close().catch(() => undefined));
  const dead = new Map<string, { reason: string; detail: string; attempts: unknown }>();
  const end = Date.now() + 60_000;
  while (dead.size < expected.size && Date.now() < end) {
    const m = await ch.get(dlq, { noAck: true });
    if (m === false) {
      await sleep(50);
      continue;
    }
    const h = m.properties.headers ?? {};
    dead.set(String(m.properties.messageId), { reason: String(h[REASON_HEADER]), detail: String(h[DETAIL_HEADER]), attempts: h[ATTEMPTS_HEADER] });
  }
  assert.deepEqual(new Map([...dead].map(([id, d]) => [id, d.reason])), expected);
  for (const [id, d] of dead) assert.ok(d.detail.length > 0, `${id} has no detail`);
  assert.match(dead.get('bad-apply')?.detail ?? '', /apply failed 3 times; last error: Error: apply exploded/);
  assert.equal(poisonAttempts, 3);

  // Every good message applied, exactly once.
  const applied = () => ledger.db.selectFrom('notifications').select(['message_id']).where('cloud', '=', `cloud-${s}`).execute();
  for (const stop = Date.now() + 30_000; (await applied()).length < goods && Date.now() < stop;) await sleep(50);
  const rows = await applied();
  assert.equal(rows.length, goods);
  assert.equal(new Set(rows.map((r) => r.message_id)).size, goods);

  // Nothing cycles: the queue is empty and the handler is not called again.
  const settled = handled;
  await sleep(1_500);
  assert.equal(handled, settled, 'messages are still being redelivered');
  assert.equal((await ch.checkQueue(queue)).messageCount, 0);
  assert.equal(consumer.inFlight, 0);
});
