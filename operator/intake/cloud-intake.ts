// One cloud's notification intake: its queue on its broker, decoded and
// applied to the ledger in batches, acknowledged after commit.
import type { Kysely } from 'kysely';
import type { LedgerSchema } from '../ledger/schema.ts';
import type { InTransaction } from '../ledger/apply.ts';
import { AmqpConsumer } from './amqp.ts';
import { BatchingApplier, deliveryHandler, type LedgerAvailability, type PipelineObserver } from './pipeline.ts';
import { defaultExchanges, queueName, type Cloud } from '../resources/cloud.ts';
import { childLogger, type Logger } from '../log.ts';

export interface CloudIntake {
  readonly consumer: AmqpConsumer;
  stop(): Promise<void>;
}

/** The apply batch for a consumer prefetch: two batches in flight at once. */
export const applyBatchSize = (prefetch: number): number => Math.max(1, Math.ceil(prefetch / 2));

export async function startCloudIntake(cloud: Cloud, amqpUrl: string, db: Kysely<LedgerSchema>, logger: Logger, observer: PipelineObserver = {}, ledger?: LedgerAvailability, inTransaction?: InTransaction): Promise<CloudIntake> {
  const name = cloud.metadata.name;
  const log = childLogger(logger, { cloud: name });
  const queue = queueName(cloud);
  // Half the prefetch per transaction: while one batch commits, the broker
  // delivers and we decode the next one, instead of the broker waiting for the
  // commit's acks before it sends anything (a batch of the whole prefetch
  // leaves nothing in flight during a commit, so delivery, decode and apply
  // took turns).
  const applier = new BatchingApplier(db, { maxBatch: applyBatchSize(cloud.spec.amqp.prefetch), inTransaction });
  const consumer = new AmqpConsumer({
    url: amqpUrl,
    prefetch: cloud.spec.amqp.prefetch,
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
