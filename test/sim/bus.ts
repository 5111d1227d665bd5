// The simulated clouds' side of RabbitMQ: exchanges declared the way
// oslo.messaging declares them, and every notification published with a
// broker confirm awaited before the service goes on, so that the order on the
// bus is the order of the steps and a step's time is after its publish.
//
// The connection runs with TCP_NODELAY: with Nagle's algorithm on, every
// second confirmed publish waits ~40 ms for a delayed ACK, which would swamp
// the timings a race benchmark measures.
import * as amqp from 'amqplib';
import type { ChannelModel, ConfirmChannel } from 'amqplib';
import { ensureExchange } from '../../operator/intake/amqp.ts';

export interface OsloExchangeOptions {
  /** oslo: amqp_durable_queues OR rabbit_quorum_queue, both off by default. */
  durable?: boolean;
  autoDelete?: boolean;
}

export class SimBus {
  readonly #model: ChannelModel;
  readonly #ch: ConfirmChannel;
  readonly #declared = new Set<string>();
  readonly #defaultQueues = new Map<string, string>();
  #tail: Promise<void> = Promise.resolve();
  #closed = false;
  /**
   * Lost in transit: a message this returns true for is never published (the
   * service goes on as if it had been). For tests of what the ledger does
   * when a cloud's notifications are lost.
   */
  drop: ((exchange: string, routingKey: string, body: string) => boolean) | undefined;
  /** Messages published and lost (see drop), per exchange. */
  readonly published = new Map<string, number>();
  readonly dropped = new Map<string, number>();

  private constructor(model: ChannelModel, ch: ConfirmChannel) {
    this.#model = model;
    this.#ch = ch;
    model.on('error', () => undefined);
    model.on('close', () => {
      this.#closed = true;
    });
    ch.on('error', () => undefined);
  }

  static async connect(url: string): Promise<SimBus> {
    const model = await amqp.connect(url, { noDelay: true });
    return new SimBus(model, await model.createConfirmChannel());
  }

  get model(): ChannelModel {
    return this.#model;
  }

  /**
   * Declares the exchange unless it exists already: whoever created it first
   * (the operator, another simulator) keeps its flags, as oslo does after a
   * flag mismatch.
   */
  async exchange(name: string, options: OsloExchangeOptions = {}): Promise<void> {
    if (this.#declared.has(name)) return;
    await ensureExchange(this.#model, { name, type: 'topic', durable: options.durable ?? false, autoDelete: options.autoDelete ?? false });
    this.#declared.add(name);
  }

  /**
   * oslo's notifier declares a queue named like the routing key on its first
   * publish, so that notifications wait for a listener that pools on it.
   */
  async defaultQueue(exchange: string, routingKey: string, options: OsloExchangeOptions = {}): Promise<void> {
    const key = `${exchange} ${routingKey}`;
    if (this.#defaultQueues.has(key)) return;
    const ch = await this.#model.createChannel();
    try {
      await ch.assertQueue(routingKey, { durable: options.durable ?? false, autoDelete: options.autoDelete ?? false });
      await ch.bindQueue(routingKey, exchange, routingKey);
    } finally {
      await ch.close().catch(() => undefined);
    }
    this.#defaultQueues.set(key, routingKey);
  }

  /**
   * Publishes and resolves once the broker has confirmed. Calls are queued,
   * so concurrent publishers keep the order in which they called.
   */
  publish(exchange: string, routingKey: string, body: string | Buffer, properties: { contentType?: string; contentEncoding?: string; headers?: Record<string, unknown> } = {}): Promise<void> {
    const text = typeof body === 'string' ? body : body.toString('utf8');
    if (this.drop?.(exchange, routingKey, text) === true) {
      this.dropped.set(exchange, (this.dropped.get(exchange) ?? 0) + 1);
      return this.#tail;
    }
    this.published.set(exchange, (this.published.get(exchange) ?? 0) + 1);
    const run = this.#tail.then(async () => {
      this.#ch.publish(exchange, routingKey, typeof body === 'string' ? Buffer.from(body) : body, {
        persistent: true,
        contentType: properties.contentType ?? 'application/json',
        contentEncoding: properties.contentEncoding ?? 'utf-8',
        ...(properties.headers === undefined ? {} : { headers: properties.headers }),
      });
      await this.#ch.waitForConfirms();
    });
    this.#tail = run.catch(() => undefined);
    return run;
  }

  /** Deletes exchanges (test cleanup; a real cloud never does). */
  async deleteExchanges(names: readonly string[]): Promise<void> {
    await this.#withChannel(async (ch) => {
      for (const name of names) await ch.deleteExchange(name);
    });
  }

  /** Deletes the queues `defaultQueue` declared (test cleanup). */
  async deleteDefaultQueues(): Promise<void> {
    await this.#withChannel(async (ch) => {
      for (const queue of new Set(this.#defaultQueues.values())) await ch.deleteQueue(queue);
    });
    this.#defaultQueues.clear();
  }

  async #withChannel(fn: (ch: amqp.Channel) => Promise<void>): Promise<void> {
    const ch = await this.#model.createChannel();
    ch.on('error', () => undefined);
    try {
      await fn(ch);
    } finally {
      await ch.close().catch(() => undefined);
    }
  }

  async close(): Promise<void> {
    await this.#tail;
    if (this.#closed) return;
    this.#closed = true;
    await this.#ch.close().catch(() => undefined);
    await this.#model.close().catch(() => undefined);
  }
}
