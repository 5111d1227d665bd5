// Decode-and-apply, shared by the AMQP consumer and `quarantine ingest`, so
// that a file fed by hand takes exactly the path a delivery takes.
import type { Kysely } from 'kysely';
import type { LedgerSchema } from '../ledger/schema.ts';
import { applyBatch, withBodyDigest, type ApplyOutcome, type InTransaction, type Recorded } from '../ledger/apply.ts';
import { decodeWithText, type DecodeLimits, type DeliveryMeta } from './decode/index.ts';
import type { DecodeError } from './decode/errors.ts';
import type { DecodedNotification } from '../domain/events.ts';
import type { Delivery } from './amqp.ts';
import type { Logger } from '../log.ts';
import { performance } from 'node:perf_hooks';

export type IngestOutcome = ApplyOutcome | 'rejected';

export interface IngestCounts {
  applied: number;
  duplicate: number;
  ignored: number;
  rejected: number;
}

export const emptyCounts = (): IngestCounts => ({ applied: 0, duplicate: 0, ignored: 0, rejected: 0 });

export type Prepared = { ok: true; recorded: Recorded } | { ok: false; error: DecodeError };

export function prepare(body: Uint8Array | string, meta: DeliveryMeta): Prepared {
  // The decoder's own text of the body: reading a delivery's bytes as UTF-8 again cost a copy of every body.
  const result = decodeWithText(body, meta);
  if (!result.ok) return result;
  return { ok: true, recorded: withBodyDigest({ notification: result.notification, body: result.text }) };
}

export interface PipelineObserver {
  onOutcome?(cloud: string, source: string, outcome: IngestOutcome): void;
  /** After the notification's effects are committed (not for duplicates): the capture side reacts here. */
  onApplied?(notification: DecodedNotification): void;
}

/**
 * Derivation left to passes of its own (operator/ledger/derive-pending.ts):
 * each batch records what it touched, and a pass derives the union of all
 * batches since the last one. A pass runs, between batches, once no delivery
 * has arrived for `idleMs`, or once the oldest batch not yet derived is
 * `maxLagMs` old however busy the intake is: that bounds how far the
 * intervals lag behind what has been acknowledged.
 */
export interface DeferredDerivation {
  maxLagMs: number;
  idleMs: number;
  /** Derives everything pending for this intake's cloud. */
  pass: () => Promise<unknown>;
  /** Epoch milliseconds: the batches' recorded time and the lag. */
  now?: () => number;
  /** A pass that failed; what it had to derive stays pending for the next. */
  onError?: (err: unknown) => void;
}

const MAX_DERIVE_RETRY_MS = 60_000;

interface Pending {
  recorded: Recorded;
  /** performance.now() at arrival: the linger's clock, not the injected one (the timers are real). */
  arrived: number;
  resolve: (o: ApplyOutcome) => void;
  reject: (e: unknown) => void;
}

/**
 * Groups concurrent deliveries into one transaction: a message is acknowledged
 * only after the transaction holding its effects has committed.
 */
export class BatchingApplier {
  readonly #db: Kysely<LedgerSchema>;
  readonly #maxBatch: number;
  readonly #lingerMs: number;
  readonly #maxLingerMs: number;
  #pending: Pending[] = [];
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> = Promise.resolve();
  readonly #inTransaction: InTransaction | undefined;
  readonly #derivation: DeferredDerivation | undefined;
  readonly #now: () => number;
  /** When the oldest batch not yet derived committed; undefined when every batch is derived. */
  #underivedSince: number | undefined;
  #lastArrival = 0;
  #idleTimer: NodeJS.Timeout | undefined;
  #retryMs = 0;

  /**
   * A batch that is not full is applied once no delivery has arrived for
   * `lingerMs`, or once its first delivery has waited `maxLingerMs` (ten
   * lingers unless given).
   */
  constructor(db: Kysely<LedgerSchema>, options: { maxBatch?: number; lingerMs?: number; maxLingerMs?: number; inTransaction?: InTransaction | undefined; derivation?: DeferredDerivation | undefined } = {}) {
    this.#db = db;
    this.#inTransaction = options.inTransaction;
    this.#maxBatch = options.maxBatch ?? 200;
    this.#lingerMs = options.lingerMs ?? 5;
    this.#maxLingerMs = options.maxLingerMs ?? 10 * this.#lingerMs;
    this.#derivation = options.derivation;
    this.#now = options.derivation?.now ?? Date.now;
  }

  apply(recorded: Recorded): Promise<ApplyOutcome> {
    this.#lastArrival = this.#now();
    return new Promise((resolve, reject) => {
      this.#pending.push({ recorded, resolve, reject, arrived: performance.now() });
      if (this.#pending.length >= this.#maxBatch) this.#flushSoon(0);
      else this.#flushSoon(this.#lingerMs);
    });
  }

  #flushSoon(delay: number): void {
    if (this.#timer !== undefined) {
      if (delay > 0) return;
      clearTimeout(this.#timer);
    }
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      // Deliveries still arriving: the batch waits for more, as long as its
      // first has not waited maxLingerMs. Measured from the first delivery
      // instead, the linger cut batches while the thread was still decoding
      // what the broker had sent after a commit (20,000 notifications into
      // SQLite at a prefetch of 1,600: 40 transactions of 500 on average,
      // where 800 fit; 26 to 31 since), and a fuller batch costs less per
      // notification.
      const first = this.#pending[0];
      const last = this.#pending.at(-1);
      if (first !== undefined && last !== undefined && this.#pending.length < this.#maxBatch) {
        const now = performance.now();
        const wait = Math.min(this.#lingerMs - (now - last.arrived), this.#maxLingerMs - (now - first.arrived));
        if (wait >= 1) {
          this.#flushSoon(wait);
          return;
        }
      }
      // One transaction at a time: SQLite has one writer, and ordering keeps
      // a redelivered message behind its first copy.
      this.#running = this.#running.then(() => this.#next());
    }, delay);
  }

  /**
   * The batch is taken when the writer is free, not when the timer fired:
   * whatever arrived while the previous transaction committed goes into the
   * next one (up to maxBatch), so a slow commit makes batches larger instead
   * of queueing many small ones, and a batch costs about the same whatever
   * its size (applyBatch is set-based).
   */
  async #next(): Promise<void> {
    const batch = this.#pending.splice(0, this.#maxBatch);
    if (batch.length === 0) return;
    // A full batch more goes next; fewer wait for the linger, which lets what
    // arrives during this commit join them.
    if (this.#pending.length >= this.#maxBatch) this.#running = this.#running.then(() => this.#next());
    else if (this.#pending.length > 0) this.#flushSoon(this.#lingerMs);
    await this.#commit(batch);
    await this.#afterBatch();
  }

  async #commit(batch: Pending[]): Promise<void> {
    try {
      const deferred = this.#derivation === undefined ? {} : { deferDerivation: { at: this.#now() } };
      const outcomes = await applyBatch(this.#db, batch.map((p) => p.recorded), this.#inTransaction, deferred);
      if (this.#derivation !== undefined) this.#underivedSince ??= this.#now();
      batch.forEach((p, i) => p.resolve(outcomes[i] ?? 'applied'));
    } catch (err) {
      if (batch.length === 1) {
        batch[0]?.reject(err);
        return;
      }
      // One message that makes apply throw must not fail the others it shared
      // a transaction with: each gets its own transaction and its own verdict.
      for (const p of batch) await this.#commit([p]);
    }
  }

  /** Between batches: a pass when the lag reached its bound, else one once deliveries pause. */
  async #afterBatch(): Promise<void> {
    const d = this.#derivation;
    if (d === undefined || this.#underivedSince === undefined) return;
    if (this.#now() - this.#underivedSince >= d.maxLagMs) await this.#derive();
    else this.#armIdle(d.idleMs);
  }

  #armIdle(delay: number): void {
    if (this.#idleTimer !== undefined) clearTimeout(this.#idleTimer);
    this.#idleTimer = setTimeout(() => {
      this.#idleTimer = undefined;
      if (this.#underivedSince === undefined) return;
      const quiet = this.#now() - this.#lastArrival;
      const idleMs = this.#derivation?.idleMs ?? 0;
      // A batch waiting, or deliveries still arriving: the batch's end arms this again.
      if (this.#pending.length > 0) return;
      if (quiet < idleMs) {
        this.#armIdle(idleMs - quiet);
        return;
      }
      this.#running = this.#running.then(() => this.#derive());
    }, delay);
  }

  /**
   * Derives what the batches so far left pending. A failure leaves it
   * pending and is tried again after maxLagMs, then after twice as long each
   * time up to a minute (a ledger outage is reported, not once a second).
   */
  async #derive(): Promise<void> {
    const d = this.#derivation;
    if (d === undefined) return;
    const since = this.#underivedSince;
    this.#underivedSince = undefined;
    try {
      await d.pass();
      this.#retryMs = 0;
    } catch (err) {
      this.#underivedSince = since ?? this.#now();
      d.onError?.(err);
      this.#retryMs = Math.min(MAX_DERIVE_RETRY_MS, Math.max(d.maxLagMs, this.#retryMs * 2));
      this.#armIdle(this.#retryMs);
    }
  }

  /** Schedules a pass over whatever is pending, e.g. batches committed before a restart. */
  derivePending(): Promise<void> {
    this.#underivedSince ??= this.#now();
    this.#running = this.#running.then(() => this.#derive());
    return this.#running;
  }

  /** Applies what is waiting, then, with deferred derivation, derives everything pending. */
  async drain(): Promise<void> {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    if (this.#idleTimer !== undefined) {
      clearTimeout(this.#idleTimer);
      this.#idleTimer = undefined;
    }
    this.#running = this.#running.then(async () => {
      while (this.#pending.length > 0) await this.#commit(this.#pending.splice(0, this.#maxBatch));
      if (this.#underivedSince !== undefined) await this.#derive();
      // A failed pass re-armed its retry: at the end nothing may keep the process alive.
      if (this.#idleTimer !== undefined) {
        clearTimeout(this.#idleTimer);
        this.#idleTimer = undefined;
      }
    });
    await this.#running;
  }
}

/** What the handler needs to know about the ledger: whether a failure was an outage rather than the message's fault. */
export interface LedgerAvailability {
  readonly up: boolean;
  isOutage(err: unknown): Promise<boolean>;
}

export interface HandlerOptions {
  limits?: Partial<DecodeLimits>;
  /** A message whose apply failed this many times (the ledger answering) is dead-lettered. */
  maxAttempts?: number;
  ledger?: LedgerAvailability;
}

export const DEFAULT_MAX_ATTEMPTS = 5;

function errorText(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}

/**
 * The consumer's handler: decode, apply (batched), then ack. Every message
 * ends: undecodable → dead-letter; apply failing while the ledger is down →
 * back to the broker uncounted (intake pauses); apply failing with the
 * ledger up → retried with a counted header, dead-lettered at the limit.
 */
export function deliveryHandler(cloud: string, applier: Pick<BatchingApplier, 'apply'>, logger: Logger, observer: PipelineObserver = {}, options: HandlerOptions = {}) {
  const maxAttempts = options.maxAttempts ?? DEFAULT_MAX_ATTEMPTS;
  return async (d: Delivery): Promise<void> => {
    if (options.ledger !== undefined && !options.ledger.up) {
      // Arrived before the pause took effect: leave it to the broker.
      d.requeue();
      return;
    }
    const meta: DeliveryMeta = {
      cloud, exchange: d.info.exchange, routingKey: d.info.routingKey, receivedAt: d.info.receivedAt, headers: d.info.headers,
      ...(d.info.messageId === undefined ? {} : { messageId: d.info.messageId }),
      ...(d.info.timestamp === undefined ? {} : { timestamp: d.info.timestamp }),
      ...(options.limits === undefined ? {} : { limits: options.limits }),
    };
    const prepared = prepare(d.body, meta);
    if (!prepared.ok) {
      const fields = { cloud, reason: prepared.error.reason, detail: prepared.error.message.slice(0, 500), exchange: d.info.exchange };
      if (prepared.error.reason === 'decoder-failure') logger.error(fields, 'the decoder failed; notification dead-lettered');
      else logger.warn(fields, 'undecodable notification dead-lettered');
      await d.deadLetter(prepared.error.reason, prepared.error.message);
      observer.onOutcome?.(cloud, 'unknown', 'rejected');
      return;
    }
    let outcome: ApplyOutcome;
    try {
      outcome = await applier.apply(prepared.recorded);
    } catch (err) {
      if (options.ledger !== undefined && (await options.ledger.isOutage(err))) {
        d.requeue();
        return;
      }
      const attempts = d.info.attempts + 1;
      const detail = errorText(err);
      if (attempts >= maxAttempts) {
        logger.error({ cloud, attempts, err: detail, messageId: prepared.recorded.notification.messageId }, 'notification failed to apply; dead-lettered');
        await d.deadLetter('apply-failed', `apply failed ${attempts} times; last error: ${detail}`);
        observer.onOutcome?.(cloud, prepared.recorded.notification.source, 'rejected');
      } else {
        logger.warn({ cloud, attempts, maxAttempts, err: detail, messageId: prepared.recorded.notification.messageId }, 'notification failed to apply; retrying');
        await d.retry(detail);
      }
      return;
    }
    d.ack();
    observer.onOutcome?.(cloud, prepared.recorded.notification.source, outcome);
    if (outcome === 'applied') observer.onApplied?.(prepared.recorded.notification);
  };
}
