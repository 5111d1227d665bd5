import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Kysely, PostgresDialect } from 'kysely';
import { DEFAULT_PREFETCH, applyBatchSize, intakePrefetch } from '../../operator/intake/cloud-intake.ts';
import { openLedgerDb } from '../../operator/ledger/db.ts';
import type { LedgerSchema } from '../../operator/ledger/schema.ts';
import { Cloud } from '../../operator/resources/cloud.ts';

const cloud = (prefetch?: number) => Cloud.parse({
  apiVersion: 'quarantine.forensics.dev/v1alpha1',
  kind: 'Cloud',
  metadata: { name: 'c' },
  spec: { type: 'openstack', amqp: { urlSecretRef: { name: 'amqp', key: 'url' }, ...(prefetch === undefined ? {} : { prefetch }) } },
});

// A PostgreSQL Kysely that never connects: the engine is read from its adapter.
const postgres = () => new Kysely<LedgerSchema>({
  dialect: new PostgresDialect({ pool: () => Promise.reject(new Error('not connected in this test')) }),
});

test("a Cloud without a prefetch takes its ledger engine's default; one with its own keeps it on both", async () => {
  const sqlite = openLedgerDb('sqlite::memory:');
  const pg = postgres();
  try {
    assert.equal(intakePrefetch(cloud(), sqlite.db), DEFAULT_PREFETCH.sqlite);
    assert.equal(intakePrefetch(cloud(), pg), DEFAULT_PREFETCH.postgres);
    assert.equal(intakePrefetch(cloud(50), sqlite.db), 50);
    assert.equal(intakePrefetch(cloud(50), pg), 50);
  } finally {
    await sqlite.close();
    await pg.destroy();
  }
});

test('the defaults: 1,600 with SQLite, 3,200 with PostgreSQL, two apply batches in flight each', () => {
  assert.deepEqual(DEFAULT_PREFETCH, { sqlite: 1600, postgres: 3200 });
  assert.equal(applyBatchSize(DEFAULT_PREFETCH.sqlite), 800);
  assert.equal(applyBatchSize(DEFAULT_PREFETCH.postgres), 1600);
  assert.throws(() => cloud(0));
  assert.throws(() => cloud(10_001));
});
