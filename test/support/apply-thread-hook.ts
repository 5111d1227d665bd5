// A hook for the apply thread's tests (test/unit/ledger-apply-thread.test.ts):
// records, in the apply's own transaction, each applied notification with the
// configuration the thread had for its batch, and fails the batch or ends the
// thread when told to.
import { sql } from 'kysely';
import type { InTransaction } from '../../operator/ledger/apply.ts';

export function hook(init: unknown, config: unknown): InTransaction {
  return async (trx, n) => {
    if (config === 'fail') throw new RangeError(`told to fail at ${n.messageId}`);
    // Ends the thread itself, as an error it cannot catch would.
    if (config === 'exit') process.exit(3);
    await sql`CREATE TABLE IF NOT EXISTS hook_seen (message_id TEXT, init TEXT, config TEXT)`.execute(trx);
    await sql`INSERT INTO hook_seen VALUES (${n.messageId}, ${String(init)}, ${JSON.stringify(config)})`.execute(trx);
  };
}
