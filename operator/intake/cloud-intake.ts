// One cloud's notification intake: its queue on its broker, decoded and
// applied to the ledger in batches, acknowledged after commit.
import type { Kysely } from 'kysely';
import type { LedgerSchema } from '../ledger/schema.ts';
import type { InTransaction } from '../ledger/apply.ts';
import { AmqpConsumer } from './amqp.ts';
import { BatchingApplier, deliveryHandler, type DeferredDerivation, type LedgerAvailability, type PipelineObserver } from './pipeline.ts';
import { deriveAll } from '../ledger/derive-pending.ts';
import { isPostgres } from '../ledger/pg-sets.ts';
import type { Engine } from '../ledger/migrations.ts';
import { defaultExchanges, queueName, type Cloud } from '../resources/cloud.ts';
import { childLogger, type Logger } from '../log.ts';

export interface CloudIntake {
  readonly consumer: AmqpConsumer;
  stop(): Promise<void>;
}

/**
 * The prefetch of a Cloud that sets none, by ledger engine. A batch of 1,600
 * costs less per notification than one of 800 (into PostgreSQL on a 2-core
 * machine, about a tenth more notifications per second: bench/notes/ingest.md),
 * and every delivery of the prefetch is held until its batch commits. With a
 * SQLite ledger the operator's process also holds the ledger's page cache and
 * its checkpoint thread, and the memory target (256 MiB through a million
 * notifications) leaves no room for the larger prefetch there.
 */
export const DEFAULT_PREFETCH: Readonly<Record<Engine, number>> = { sqlite: 1600, postgres: 3200 };

/** The prefetch the Cloud's intake consumes with: its own, or the default for the ledger's engine. */
export function intakePrefetch(cloud: Cloud, db: Kysely<LedgerSchema>): number {
  return cloud.spec.amqp.prefetch ?? DEFAULT_PREFETCH[isPostgres(db) ? 'postgres' : 'sqlite'];
}

/** The apply batch for a consumer prefetch: two batches in flight at once. */
export const applyBatchSize = (prefetch: number): number => Math.max(1, Math.ceil(prefetch / 2));

/**
 * How long a batch that is not full waits for the next delivery before it is
 * applied, and how long its first delivery waits at most. A commit writes each
 * page the batch dirtied once, and most are leaves of random-key indexes that
 * many of the batch's keys share, so a fuller batch costs less per
 * notification; right after a commit the broker is still sending what the
 * commit's acks made room for, and the thread is still decoding it. At a
 * trickle, a notification is committed 10 ms after it arrived.
 */
export const APPLY_LINGER_MS = 10;
export const APPLY_MAX_LINGER_MS = 100;

/**
 * How far the intervals may lag behind what the intake has acknowledged
 * while it is busy (derivation passes, see pipeline.ts): about a second of
 * batches is derived at once. Once deliveries pause for DERIVE_IDLE_MS, a
 * pass runs at once.
 */
export const DERIVE_MAX_LAG_MS = 1000;
export const DERIVE_IDLE_MS = 50;

/** The intake's derivation passes for `cloud` (all clouds when undefined), a failed pass reported to `onError`. */
export function intakeDerivation(db: Kysely<LedgerSchema>, cloud: string | undefined, onError?: (err: unknown) => void): DeferredDerivation {
  return { maxLagMs: DERIVE_MAX_LAG_MS, idleMs: DERIVE_IDLE_MS, pass: () => deriveAll(db, { cloud }), ...(onError === undefined ? {} : { onError }) };
}

export async function startCloudIntake(cloud: Cloud, amqpUrl: string, db: Kysely<LedgerSchema>, logger: Logger, observer: PipelineObserver = {}, ledger?: LedgerAvailability, inTransaction?: InTransaction): Promise<CloudIntake> {
  const name = cloud.metadata.name;
  const log = childLogger(logger, { cloud: name });
  const queue = queueName(cloud);
  const prefetch = intakePrefetch(cloud, db);
  // Half the prefetch per transaction: while one batch commits, the broker
  // delivers and we decode the next one, instead of the broker waiting for the
  // commit's acks before it sends anything (a batch of the whole prefetch
  // leaves nothing in flight during a commit, so delivery, decode and apply
  // took turns).
  const applier = new BatchingApplier(db, {
    maxBatch: applyBatchSize(prefetch),
    lingerMs: APPLY_LINGER_MS,
    maxLingerMs: APPLY_MAX_LINGER_MS,
    inTransaction,
    derivation: intakeDerivation(db, name, (err) =>
      log.warn({ err: err instanceof Error ? err.message : String(err) }, 'deriving the intervals of applied notifications failed; they stay pending and are derived again')),
  });
  // What batches committed before a stop or crash left to derive.
  void applier.derivePending();
  const consumer = new AmqpConsumer({
    url: amqpUrl,
    prefetch,
    logger: log,
    topology: {
      queue,
      deadLetterQueue: `${queue}.dead-letter`,
      exchanges: (cloud.spec.amqp.exchanges ?? defaultExchanges(cloud.spec.type)).map((e) => ({ ...e, type: 'topic' as const })),
      bindingKeys: cloud.spec.amqp.topics.map((t) => `${t}.*`),
      ...(cloud.spec.amqp.alternateExchange === '' ? {} : { alternateExchange: cloud.spec.amqp.alternateExchange }),
    },
    handler: deliveryHandler(name, applier, log, observer, {
      limits: {
        maxBodyBytes: cloud.spec.amqp.maxBodyBytes,
        maxEventAgeMs: cloud.spec.amqp.maxEventAgeDays * 86_400_000,
        maxEventLeadMs: cloud.spec.amqp.maxEventLeadSeconds * 1000,
      },
      maxAttempts: cloud.spec.amqp.maxApplyAttempts,
      ...(ledger === undefined ? {} : { ledger }),
    }),
  });
  await consumer.start();
  return {
    consumer,
    async stop() {
      await consumer.stop();
      await applier.drain();
    },
  };
}
