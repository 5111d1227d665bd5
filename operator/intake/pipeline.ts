// Decode-and-apply, shared by the AMQP consumer and `quarantine ingest`, so
// that a file fed by hand takes exactly the path a delivery takes.
import type { Kysely } from 'kysely';
import type { LedgerSchema } from '../ledger/schema.ts';
import { applyBatch, type ApplyOutcome, type Recorded } from '../ledger/apply.ts';
import { decodeNotification, type DeliveryMeta } from './decode/index.ts';
import type { DecodeError } from './decode/errors.ts';
import type { DecodedNotification } from '../domain/events.ts';
import type { Delivery } from './amqp.ts';
import type { Logger } from '../log.ts';

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
  const result = decodeNotification(body, meta);
  if (!result.ok) return result;
  const text = typeof body === 'string' ? body : Buffer.from(body).toString('utf8');
  return { ok: true, recorded: { notification: result.notification, body: text } };
}

export interface PipelineObserver {
  onOutcome?(cloud: string, source: string, outcome: IngestOutcome): void;
  /** After the notification's effects are committed (not for duplicates): the capture side reacts here. */
  onApplied?(notification: DecodedNotification): void;
}

interface Pending {
  recorded: Recorded;
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
  #pending: Pending[] = [];
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> = Promise.resolve();

  constructor(db: Kysely<LedgerSchema>, options: { maxBatch?: number; lingerMs?: number } = {}) {
    this.#db = db;
    this.#maxBatch = options.maxBatch ?? 200;
    this.#lingerMs = options.lingerMs ?? 5;
  }

  apply(recorded: Recorded): Promise<ApplyOutcome> {
    return new Promise((resolve, reject) => {
      this.#pending.push({ recorded, resolve, reject });
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
      const batch = this.#pending.splice(0, this.#maxBatch);
      if (batch.length === 0) return;
      // One transaction at a time: SQLite has one writer, and ordering keeps
      // a redelivered message behind its first copy.
      this.#running = this.#running.then(() => this.#commit(batch));
      if (this.#pending.length > 0) this.#flushSoon(this.#lingerMs);
    }, delay);
  }

  async #commit(batch: Pending[]): Promise<void> {
    try {
      const outcomes = await applyBatch(this.#db, batch.map((p) => p.recorded));
      batch.forEach((p, i) => p.resolve(outcomes[i] ?? 'applied'));
    } catch (err) {
      for (const p of batch) p.reject(err);
    }
  }

  async drain(): Promise<void> {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
      const batch = this.#pending.splice(0);
      if (batch.length > 0) this.#running = this.#running.then(() => this.#commit(batch));
    }
    await this.#running;
  }
}

/** The consumer's handler: decode, apply (batched), then ack; undecodable → dead-letter. */
export function deliveryHandler(cloud: string, applier: BatchingApplier, logger: Logger, observer: PipelineObserver = {}) {
  return async (d: Delivery): Promise<void> => {
    const meta: DeliveryMeta = {
      cloud, exchange: d.info.exchange, routingKey: d.info.routingKey, receivedAt: d.info.receivedAt, headers: d.info.headers,
      ...(d.info.messageId === undefined ? {} : { messageId: d.info.messageId }),
      ...(d.info.timestamp === undefined ? {} : { timestamp: d.info.timestamp }),
    };
    const prepared = prepare(d.body, meta);
    if (!prepared.ok) {
      logger.warn({ cloud, reason: prepared.error.reason, detail: prepared.error.message, exchange: d.info.exchange }, 'undecodable notification dead-lettered');
      await d.deadLetter(prepared.error.reason, prepared.error.message);
      observer.onOutcome?.(cloud, 'unknown', 'rejected');
      return;
    }
    const outcome = await applier.apply(prepared.recorded);
    d.ack();
    observer.onOutcome?.(cloud, prepared.recorded.notification.source, outcome);
    if (outcome === 'applied') observer.onApplied?.(prepared.recorded.notification);
  };
}
