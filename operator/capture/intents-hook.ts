// Capture intents recorded from the SQLite ledger's apply thread
// (ledger/apply-thread.ts): the thread loads this module and runs its hook in
// every apply's transaction, as the operator's thread does with
// recordCaptureIntents. The policies come with the batches, whenever the
// operator's list is another one.
import type { InTransaction } from '../ledger/apply.ts';
import type { ThreadHook } from '../ledger/apply-thread.ts';
import type { Policy } from '../domain/policy.ts';
import { recordCaptureIntents } from './intents.ts';

/** The thread's end: `init` is the cloud's name, `config` the policies (both made by captureIntentsHook). */
export function hook(init: unknown, config: unknown): InTransaction {
  if (typeof init !== 'string' || !Array.isArray(config)) throw new TypeError('capture intents hook: expected a cloud name and a list of policies');
  const cloud = init;
  const policies = config as Policy[];
  return (trx, n) => recordCaptureIntents(trx, n, { cloud, policies: () => policies });
}

/** The operator's end: the hook for `cloud`, reading the policies at each batch. */
export function captureIntentsHook(cloud: string, policies: () => readonly Policy[]): ThreadHook {
  return { module: new URL('./intents-hook.ts', import.meta.url).href, init: cloud, config: policies };
}
