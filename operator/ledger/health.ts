// Whether the ledger database answers. An outage is a state the operator
// lives through, not a crash: while it lasts, intake stops taking messages
// (they stay unacknowledged in the broker), readiness says why, and a probe
// with backoff notices the database coming back.
import { sql, type Kysely } from 'kysely';
import type { LedgerSchema } from './schema.ts';
import type { Logger } from '../log.ts';

export type LedgerState = { up: true } | { up: false; since: Date; error: string };

export interface LedgerHealthOptions {
  db: Kysely<LedgerSchema>;
  logger: Logger;
  initialDelayMs?: number;
  maxDelayMs?: number;
  /** Longest a probe may take before it counts as failed. */
  probeTimeoutMs?: number;
}

export function errorText(err: unknown): string {
  if (err instanceof AggregateError && err.errors.length > 0) return errorText(err.errors[0]);
  if (err instanceof Error) return err.message !== '' ? err.message : ('code' in err ? String(err.code) : err.name);
  return String(err);
}

export class LedgerHealth {
  readonly #o: LedgerHealthOptions;
  #state: LedgerState = { up: true };
  #timer: NodeJS.Timeout | undefined;
  #probing: Promise<boolean> | undefined;
  #delay: number;
  #stopped = false;
  readonly #listeners = new Set<(state: LedgerState) => void>();

  constructor(o: LedgerHealthOptions) {
    this.#o = o;
    this.#delay = o.initialDelayMs ?? 250;
  }

  get state(): LedgerState {
    return this.#state;
  }

  get up(): boolean {
    return this.#state.up;
  }

  /** Called on every change between up and down. */
  onChange(listener: (state: LedgerState) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** One round trip; true when the database answered. */
  async probe(): Promise<boolean> {
    this.#probing ??= (async () => {
      let timer: NodeJS.Timeout | undefined;
      try {
        await Promise.race([
          sql`select 1`.execute(this.#o.db),
          new Promise((_, reject) => {
            timer = setTimeout(() => reject(new Error('no answer within the probe timeout')), this.#o.probeTimeoutMs ?? 5_000);
          }),
        ]);
        this.#set({ up: true });
        return true;
      } catch (err) {
        this.#down(err);
        return false;
      } finally {
        clearTimeout(timer);
        this.#probing = undefined;
      }
    })();
    return this.#probing;
  }

  /**
   * A query failed: was it the database (true: an outage has begun, the
   * caller should not count it against the message) or the message?
   */
  async isOutage(err: unknown): Promise<boolean> {
    if (!this.#state.up) return true;
    const answered = await this.probe();
    if (!answered) this.#o.logger.warn({ err: errorText(err) }, 'ledger query failed and the database does not answer');
    return !answered;
  }

  /** A connection reported an error outside any query (the pool's 'error' event). */
  reportConnectionError(err: unknown): void {
    this.#o.logger.warn({ err: errorText(err) }, 'ledger connection error');
    void this.probe();
  }

  #down(err: unknown): void {
    if (this.#state.up) this.#set({ up: false, since: new Date(), error: errorText(err) });
    else this.#state = { ...this.#state, error: errorText(err) };
    this.#schedule();
  }

  #schedule(): void {
    if (this.#stopped || this.#timer !== undefined) return;
    const delay = this.#delay;
    this.#delay = Math.min(this.#delay * 2, this.#o.maxDelayMs ?? 10_000);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.probe();
    }, delay);
    this.#timer.unref();
  }

  #set(state: LedgerState): void {
    const changed = state.up !== this.#state.up;
    this.#state = state;
    if (!changed) return;
    if (state.up) {
      this.#delay = this.#o.initialDelayMs ?? 250;
      this.#o.logger.info('ledger database reachable again; resuming intake');
    } else {
      this.#o.logger.error({ err: state.error }, 'ledger database unreachable; intake paused until it answers');
    }
    for (const l of this.#listeners) l(state);
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}

export class LedgerUnavailableError extends Error {
  override name = 'LedgerUnavailableError';
}

/**
 * Start-up: waits (with backoff, logging each failure) until the database
 * answers, or with `wait: false` fails at once with one clear line.
 */
export async function waitForLedger(db: Kysely<LedgerSchema>, o: { wait: boolean; logger: Pick<Logger, 'warn'>; signal?: AbortSignal; where: string; maxDelayMs?: number; hint?: string }): Promise<void> {
  let delay = 250;
  for (;;) {
    try {
      await sql`select 1`.execute(db);
      return;
    } catch (err) {
      if (!o.wait) throw new LedgerUnavailableError(`ledger database ${o.where} is unreachable: ${errorText(err)}${o.hint ?? ' (without --no-wait-db the operator waits for it)'}`);
      o.logger.warn({ err: errorText(err), retryInMs: delay }, 'ledger database unreachable at start; waiting for it');
    }
    if (o.signal?.aborted) throw new LedgerUnavailableError(`stopped while waiting for the ledger database ${o.where}`);
    await new Promise((resolve) => setTimeout(resolve, delay));
    delay = Math.min(delay * 2, o.maxDelayMs ?? 10_000);
  }
}
