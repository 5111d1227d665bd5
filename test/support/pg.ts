// Each integration test gets a PostgreSQL database of its own, named after the
// run's database so that test/env/down.sh drops any a crashed test left.
import pg from 'pg';
import { requireEnv, uniqueSuffix } from './env.ts';
import { migrateToLatest, openLedgerDb, type LedgerDb } from '../../operator/ledger/db.ts';

export interface TestDatabase {
  url: string;
  drop(): Promise<void>;
}

export async function createTestDatabase(): Promise<TestDatabase> {
  const base = new URL(requireEnv('QTEST_PG_URL'));
  const admin = requireEnv('QTEST_PG_ADMIN_URL');
  const name = `${base.pathname.slice(1)}_${uniqueSuffix()}`.toLowerCase().replace(/[^a-z0-9_]/g, '_');
  const client = new pg.Client({ connectionString: admin });
  await client.connect();
  try {
    await client.query(`CREATE DATABASE "${name}"`);
  } finally {
    await client.end();
  }
  const url = new URL(base);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    async drop() {
      const c = new pg.Client({ connectionString: admin });
      await c.connect();
      try {
        await c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      } finally {
        await c.end();
      }
    },
  };
}

/** A migrated ledger on a database of its own while `run` runs; closed and dropped after. */
export async function withPgLedger(run: (ledger: LedgerDb) => Promise<void>): Promise<void> {
  const database = await createTestDatabase();
  const ledger = openLedgerDb(database.url);
  try {
    await migrateToLatest(ledger);
    await run(ledger);
  } finally {
    await ledger.close();
    await database.drop();
  }
}
