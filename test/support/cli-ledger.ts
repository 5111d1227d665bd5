// The CLI run in-process with its output captured, and a temporary ledger
// for it: a directory holding an SQLite ledger file, which a test seeds
// through the ledger API, questions through the CLI, and removes.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openLedgerDb, migrateToLatest, type LedgerDb } from '../../operator/ledger/db.ts';

export interface CliRun {
  code: number;
  out: string;
  err: string;
}

/** `quarantine ARGS` with logging silenced; the program is loaded on first use, as the CLI loads it. */
export async function cli(args: string[]): Promise<CliRun> {
  const { runCli } = await import('../../operator/cli/program.ts');
  let out = '';
  let err = '';
  const code = await runCli(args, { out: (s) => { out += s; }, err: (s) => { err += s; }, env: { LOG_LEVEL: 'silent' } });
  return { code, out, err };
}

export interface TempLedger {
  dir: string;
  /** The ledger's URL, as `--db` takes it. */
  db: string;
  /** `quarantine --db DB ARGS`. */
  cli(args: string[]): Promise<CliRun>;
  /** The ledger opened and migrated, to seed or read it; the caller closes it (before the CLI runs, as another process would). */
  open(): Promise<LedgerDb>;
}

/** Runs `fn` with a fresh ledger file in a directory of its own (named after `prefix`), removed afterwards whatever `fn` does. */
export async function withTempLedger<T>(prefix: string, fn: (t: TempLedger) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const db = `sqlite:${join(dir, 'ledger.db')}`;
  try {
    return await fn({
      dir, db,
      cli: (args) => cli(['--db', db, ...args]),
      open: async () => {
        const ledger = openLedgerDb(db);
        await migrateToLatest(ledger);
        return ledger;
      },
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
