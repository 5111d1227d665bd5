// The two engines the ledger runs on, for tests that run the same suite on
// both: an in-memory SQLite ledger, and a PostgreSQL database of the test's
// own (test/support/pg.ts), dropped afterwards.
import { openLedgerDb, migrateToLatest, type LedgerDb } from '../../operator/ledger/db.ts';
import { createTestDatabase } from './pg.ts';

export interface LedgerEngine {
  name: string;
  /** A fresh, empty database: its ledger URL and how to remove it. */
  open(): Promise<{ url: string; cleanup(): Promise<void> }>;
}

export const ledgerEngines: readonly LedgerEngine[] = [
  { name: 'sqlite', open: async () => ({ url: 'sqlite::memory:', cleanup: async () => undefined }) },
  { name: 'postgres', open: async () => { const t = await createTestDatabase(); return { url: t.url, cleanup: () => t.drop() }; } },
];

export interface OpenLedger {
  ledger: LedgerDb;
  url: string;
  /** Closes the ledger, then removes its database. */
  close(): Promise<void>;
}

/**
 * Opens a ledger on a fresh database of the engine, migrated to the latest
 * schema unless `migrate` is false. If the migration fails, the ledger is
 * closed and the database removed before the error is thrown.
 */
export async function openLedger(engine: LedgerEngine, options: { migrate?: boolean } = {}): Promise<OpenLedger> {
  const t = await engine.open();
  const ledger = openLedgerDb(t.url);
  const close = async () => {
    await ledger.close();
    await t.cleanup();
  };
  if (options.migrate ?? true) {
    try {
      await migrateToLatest(ledger);
    } catch (err) {
      await close().catch(() => undefined);
      throw err;
    }
  }
  return { ledger, url: t.url, close };
}
