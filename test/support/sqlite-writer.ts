// Another process writing to a SQLite ledger, as the operator does while the
// CLI runs: it takes the write lock, changes a row, and commits after `ms`.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';

export interface Writer {
  /** Resolves once the process has committed and exited. */
  done: Promise<void>;
  /** Whether it has exited yet. */
  exited(): boolean;
}

/** Resolves once the other process holds the lock, with its change not yet committed. */
export async function writerHolding(file: string, ms: number): Promise<Writer> {
  const script = `
    const { DatabaseSync } = require('node:sqlite');
    const db = new DatabaseSync(process.argv[1]);
    db.exec('BEGIN IMMEDIATE');
    db.exec('UPDATE kysely_migration_lock SET is_locked = is_locked');
    process.stdout.write('locked\\n');
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, Number(process.argv[2]));
    db.exec('COMMIT');
    db.close();`;
  const child = spawn(process.execPath, ['-e', script, file, String(ms)], { stdio: ['ignore', 'pipe', 'inherit'] });
  let gone = false;
  const exited = once(child, 'exit').then(([code]) => {
    gone = true;
    return code as number | null;
  });
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (b: Buffer) => (b.toString().includes('locked') ? resolve() : undefined));
    child.once('exit', (code) => reject(new Error(`the writer exited (${code}) before it held the lock`)));
  });
  return { done: exited.then((code) => assert.equal(code, 0, 'the writer committed')), exited: () => gone };
}
