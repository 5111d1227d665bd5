// The prefetch a Cloud's intake asks the broker for, read back from the broker
// itself: a Cloud without one gets its ledger engine's default.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as amqp from 'amqplib';
import { DEFAULT_PREFETCH, startCloudIntake } from '../../operator/intake/cloud-intake.ts';
import { openLedgerDb, migrateToLatest, type LedgerDb } from '../../operator/ledger/db.ts';
import { silentLogger } from '../../operator/log.ts';
import { Cloud, queueName } from '../../operator/resources/cloud.ts';
import { requireEnv, uniqueSuffix } from '../support/env.ts';
import { createTestDatabase } from '../support/pg.ts';

const url = requireEnv('QTEST_AMQP_URL');
const vhost = requireEnv('QTEST_AMQP_VHOST');
const cleanups: Array<() => Promise<void>> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
});

/** The broker's prefetch_count for every consumer of `queue`. */
function brokerPrefetch(queue: string): number[] {
  const out = execFileSync('rabbitmqctl', ['-q', 'list_consumers', '-p', vhost, 'queue_name', 'prefetch_count'], { encoding: 'utf8' });
  return out.split('\n').map((l) => l.split('\t')).filter(([q]) => q === queue).map(([, n]) => Number(n));
}

async function consumedWith(ledger: LedgerDb, prefetch: number | undefined): Promise<number[]> {
  const s = uniqueSuffix();
  const cloud = Cloud.parse({
    apiVersion: 'quarantine.forensics.dev/v1alpha1',
    kind: 'Cloud',
    metadata: { name: `prefetch-${s}` },
    spec: {
      type: 'openstack',
      amqp: { urlSecretRef: { name: 'amqp', key: 'url' }, exchanges: [{ name: `nova.${s}` }], alternateExchange: '', ...(prefetch === undefined ? {} : { prefetch }) },
    },
  });
  const queue = queueName(cloud);
  cleanups.push(async () => {
    const conn = await amqp.connect(url);
    try {
      const ch = await conn.createChannel();
      for (const q of [queue, `${queue}.dead-letter`]) await ch.deleteQueue(q);
      await ch.deleteExchange(`nova.${s}`);
    } finally {
      await conn.close();
    }
  });
  const intake = await startCloudIntake(cloud, url, ledger.db, silentLogger);
  try {
    return brokerPrefetch(queue);
  } finally {
    await intake.stop();
  }
}

test('with a SQLite ledger a Cloud without a prefetch consumes 1,600 ahead; its own prefetch is kept', async () => {
  const ledger = openLedgerDb('sqlite::memory:');
  cleanups.push(() => ledger.close());
  await migrateToLatest(ledger);
  assert.deepEqual(await consumedWith(ledger, undefined), [DEFAULT_PREFETCH.sqlite]);
  assert.equal(DEFAULT_PREFETCH.sqlite, 1600);
  assert.deepEqual(await consumedWith(ledger, 40), [40]);
});

test('with a PostgreSQL ledger a Cloud without a prefetch consumes 3,200 ahead; its own prefetch is kept', async () => {
  const database = await createTestDatabase();
  cleanups.push(() => database.drop());
  const ledger = openLedgerDb(database.url);
  cleanups.push(() => ledger.close());
  await migrateToLatest(ledger);
  assert.deepEqual(await consumedWith(ledger, undefined), [DEFAULT_PREFETCH.postgres]);
  assert.equal(DEFAULT_PREFETCH.postgres, 3200);
  assert.deepEqual(await consumedWith(ledger, 40), [40]);
});
