// The AMQP side of intake: one recovering connection, our own durable queue
// bound to the clouds' exchanges, manual acknowledgement, and a dead-letter
// queue for what cannot be decoded. Nothing here knows about message formats.
import * as amqp from 'amqplib';
import type { Channel, ChannelModel, ConfirmChannel, ConsumeMessage, RecoveringChannelModel } from 'amqplib';
import type { Logger } from '../log.ts';

export interface ExchangeSpec {
  name: string;
  type: 'topic';
  /** Flags used only when the exchange does not exist yet; oslo.messaging declares non-durable by default. */
  durable: boolean;
  autoDelete: boolean;
}

export interface ConsumerTopology {
  queue: string;
  deadLetterQueue: string;
  exchanges: ExchangeSpec[];
  bindingKeys: string[];
  /**
   * A durable exchange our queue is also bound to, named as `alternate-exchange`
   * by a broker policy on the cloud's exchanges. The clouds' exchanges are
   * non-durable by default: a broker restart drops them with our bindings, and
   * what the cloud publishes before we have re-bound is unroutable. Through
   * the policy it reaches this exchange, whose bindings are durable.
   */
  alternateExchange?: string;
}

/** Which cloud exchanges route what they cannot route to our alternate exchange. */
export interface AlternateExchangeCheck {
  checkedAt: Date;
  /** Exchanges whose unroutable messages do not reach our alternate exchange (no policy, or another one). */
  missing: string[];
}

export interface DeliveryInfo {
  exchange: string;
  routingKey: string;
  messageId: string | undefined;
  /** AMQP timestamp property (seconds on the wire), when the publisher set one. */
  timestamp: Date | undefined;
  headers: Record<string, unknown>;
  contentType: string | undefined;
  redelivered: boolean;
  receivedAt: Date;
  /** Failed attempts to apply this message so far (our counted retry header; 0 on first delivery). */
  attempts: number;
}

export interface Delivery {
  body: Buffer;
  info: DeliveryInfo;
  /** Acknowledge: call only after the message's effects are durable. False if the channel is gone (it will be redelivered). */
  ack(): boolean;
  /** Return to the queue for another try. */
  requeue(): boolean;
  /** Park in the dead-letter queue with the reason in a header, then acknowledge. */
  deadLetter(reason: string, detail: string): Promise<boolean>;
  /**
   * Put a copy at the back of our queue with the attempt counter raised and
   * the error in a header, then acknowledge this one: a message that keeps
   * failing is counted, and dead-lettered by the handler at its limit.
   */
  retry(error: string): Promise<boolean>;
}

export type DeliveryHandler = (delivery: Delivery) => Promise<void>;

export interface AmqpConsumerOptions {
  url: string;
  topology: ConsumerTopology;
  prefetch: number;
  handler: DeliveryHandler;
  logger: Logger;
  /** Attempts before the first connection counts as failed; after that, recovery never gives up. */
  initialRetries?: number;
  maxReconnectDelayMs?: number;
  /** Longest wait for in-flight messages on stop. */
  drainTimeoutMs?: number;
}

export const REASON_HEADER = 'x-quarantine-reason';
export const DETAIL_HEADER = 'x-quarantine-detail';
export const ATTEMPTS_HEADER = 'x-quarantine-attempts';
const PROBE_HEADER = 'x-quarantine-probe';
export const LAST_ERROR_HEADER = 'x-quarantine-last-error';
const ORIGINAL_EXCHANGE_HEADER = 'x-quarantine-original-exchange';
const ORIGINAL_ROUTING_KEY_HEADER = 'x-quarantine-original-routing-key';

function attemptsOf(headers: Record<string, unknown>): number {
  const v = headers[ATTEMPTS_HEADER];
  const n = typeof v === 'number' ? v : typeof v === 'string' ? Number(v) : 0;
  return Number.isInteger(n) && n > 0 ? n : 0;
}

function headerString(headers: Record<string, unknown>, name: string): string | undefined {
  const v = headers[name];
  return typeof v === 'string' ? v : v instanceof Uint8Array ? Buffer.from(v).toString('utf8') : undefined;
}

function isNotFound(err: unknown): boolean {
  return typeof err === 'object' && err !== null && 'code' in err && (err as { code: unknown }).code === 404;
}

/** A channel whose only job is one operation that may make the broker close it. */
async function withThrowawayChannel<T>(model: ChannelModel, fn: (ch: Channel) => Promise<T>): Promise<T> {
  const ch = await model.createChannel();
  ch.on('error', () => {
    // A 404 on a passive check closes this channel; the caller handles the rejection.
  });
  try {
    return await fn(ch);
  } finally {
    await ch.close().catch(() => undefined);
  }
}

/**
 * Declares an exchange without ever fighting its publisher: an existing
 * exchange is only checked (so differing flags cannot make the broker close
 * our channel), and a missing one is created with the publisher's flags.
 */
export async function ensureExchange(model: ChannelModel, ex: ExchangeSpec): Promise<'existed' | 'created'> {
  try {
    await withThrowawayChannel(model, (ch) => ch.checkExchange(ex.name));
    return 'existed';
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
  await withThrowawayChannel(model, (ch) => ch.assertExchange(ex.name, ex.type, { durable: ex.durable, autoDelete: ex.autoDelete }));
  return 'created';
}

function plainHeaders(h: unknown): Record<string, unknown> {
  return typeof h === 'object' && h !== null ? { ...(h as Record<string, unknown>) } : {};
}

/**
 * The acks of one channel, sent together. A batch's messages are acked one
 * after the other as its transaction commits; each ack was a frame of its own,
 * which the broker (on the same two cores as the operator) handled one by one.
 * Acks given in one turn of the event loop go out at the end of it: the
 * longest run of the oldest unsettled deliveries that are all acked as one
 * `multiple` ack, the rest one by one. A `multiple` ack settles every
 * unsettled delivery up to its tag, so the run only ever covers deliveries
 * acked here; a delivery settled otherwise (requeued) is no longer unsettled
 * at the broker and is skipped.
 */
class ChannelAcks {
  readonly #ch: ConfirmChannel;
  /** Deliveries not yet settled, by tag; insertion order is tag order (the broker numbers a channel's deliveries upwards). */
  readonly #open = new Map<number, ConsumeMessage>();
  #due = new Set<number>();
  #scheduled = false;

  constructor(ch: ConfirmChannel) {
    this.#ch = ch;
  }

  received(msg: ConsumeMessage): void {
    this.#open.set(msg.fields.deliveryTag, msg);
  }

  ack(msg: ConsumeMessage): void {
    this.#due.add(msg.fields.deliveryTag);
    if (this.#scheduled) return;
    this.#scheduled = true;
    queueMicrotask(() => this.#flush());
  }

  /** Settled by a nack: no longer covered by a `multiple` ack. Throws as the channel's nack does. */
  nack(msg: ConsumeMessage, requeue: boolean): void {
    this.#open.delete(msg.fields.deliveryTag);
    this.#ch.nack(msg, false, requeue);
  }

  #flush(): void {
    this.#scheduled = false;
    const due = this.#due;
    this.#due = new Set();
    // An ack on a channel that died with its connection throws; the broker redelivers such messages anyway, and apply is idempotent.
    try {
      let last: ConsumeMessage | undefined;
      let run = 0;
      for (const [tag, msg] of this.#open) {
        if (!due.has(tag)) break;
        last = msg;
        run += 1;
      }
      if (last !== undefined && run > 1) {
        for (const tag of this.#open.keys()) {
          if (tag > last.fields.deliveryTag) break;
          this.#open.delete(tag);
          due.delete(tag);
        }
        this.#ch.ack(last, true);
      }
      for (const tag of due) {
        const msg = this.#open.get(tag);
        if (msg === undefined) continue;
        this.#open.delete(tag);
        this.#ch.ack(msg);
      }
    } catch {
      // The channel is gone: nothing of it can be settled any more.
    }
  }
}

export class AmqpConsumer {
  readonly #opts: AmqpConsumerOptions;
  #conn: RecoveringChannelModel | undefined;
  #channel: ConfirmChannel | undefined;
  #acks: ChannelAcks | undefined;
  #consumerTag: string | undefined;
  #generation = 0;
  #stopping = false;
  #paused = false;
  #alternate: AlternateExchangeCheck | undefined;
  readonly #inflight = new Set<Promise<void>>();
  #connects = 0;

  constructor(opts: AmqpConsumerOptions) {
    this.#opts = opts;
  }

  /** Number of (re)connections so far; tests use it to see a recovery happen. */
  get connects(): number {
    return this.#connects;
  }

  get inFlight(): number {
    return this.#inflight.size;
  }

  async start(): Promise<void> {
    const log = this.#opts.logger;
    this.#conn = await amqp.connect(this.#opts.url, {
      // Acks and confirms are small frames; Nagle's algorithm would hold each back for a round trip.
      noDelay: true,
      recovery: {
        initialDelay: 200,
        maxDelay: this.#opts.maxReconnectDelayMs ?? 10_000,
        // The first attempt at once: a broker that restarted is often back by
        // then, and every moment without our bindings is a moment in which a
        // non-durable cloud exchange drops what it cannot route.
        calculateDelay: (attempt: number) => {
          if (attempt <= 1) return 0;
          const base = Math.min(this.#opts.maxReconnectDelayMs ?? 10_000, 200 * 2 ** (attempt - 2));
          return Math.round(base * (0.8 + Math.random() * 0.4));
        },
        maxRetries: Infinity,
        initialMaxRetries: this.#opts.initialRetries ?? 5,
        setup: (model: ChannelModel) => this.#setup(model),
      },
    });
    this.#conn.on('disconnect', (err: Error) => log.warn({ err: err.message }, 'AMQP connection lost; reconnecting'));
    this.#conn.on('reconnect-scheduled', (i: { attempt: number; delay: number }) => log.info(i, 'AMQP reconnect scheduled'));
    this.#conn.on('reconnect-failed', (err: Error) => log.error({ err: err.message }, 'AMQP reconnect gave up'));
    this.#conn.on('error', (err: Error) => log.error({ err: err.message }, 'AMQP connection error'));
  }

  async #setup(model: ChannelModel): Promise<void> {
    const { topology, prefetch, logger } = this.#opts;
    for (const ex of topology.exchanges) {
      const how = await ensureExchange(model, ex);
      logger.debug({ exchange: ex.name, how }, 'exchange ready');
    }
    const ch = await model.createConfirmChannel();
    ch.on('error', (err: Error) => logger.error({ err: err.message }, 'AMQP channel error'));
    ch.on('close', () => {
      // Settling on a dead channel is pointless: the broker requeues what it had not seen acked.
      if (this.#channel === ch) {
        this.#channel = undefined;
        this.#acks = undefined;
      }
    });
    await ch.assertQueue(topology.deadLetterQueue, { durable: true });
    await ch.assertQueue(topology.queue, { durable: true });
    const ae = topology.alternateExchange;
    if (ae !== undefined) {
      await ch.assertExchange(ae, 'topic', { durable: true, autoDelete: false });
      for (const key of [...topology.bindingKeys, this.#probeKey]) await ch.bindQueue(topology.queue, ae, key);
    }
    for (const ex of topology.exchanges) {
      for (const key of topology.bindingKeys) await ch.bindQueue(topology.queue, ex.name, key);
    }
    await ch.prefetch(prefetch);
    const generation = ++this.#generation;
    this.#channel = ch;
    this.#acks = new ChannelAcks(ch);
    this.#connects += 1;
    this.#consumerTag = undefined;
    await this.#consume();
    if (ae !== undefined) {
      this.#alternate = await this.#checkAlternate(model, ae).catch((err: unknown) => {
        logger.warn({ err: err instanceof Error ? err.message : String(err) }, 'cannot check the alternate-exchange policy');
        return undefined;
      });
    }
  }

  get #probeKey(): string {
    return `quarantine-operator.probe.${this.#opts.topology.queue}`;
  }

  /**
   * Publishes a probe to each cloud exchange with a routing key only our
   * alternate exchange binds, as mandatory: the broker returns it exactly when
   * the exchange has no alternate exchange routing it to us. The probe is
   * acknowledged and dropped by our consumer; nobody else binds its key.
   */
  async #checkAlternate(model: ChannelModel, ae: string): Promise<AlternateExchangeCheck> {
    const ch = await model.createConfirmChannel();
    ch.on('error', () => undefined);
    const returned = new Set<string>();
    ch.on('return', (msg: ConsumeMessage) => returned.add(msg.fields.exchange));
    try {
      for (const ex of this.#opts.topology.exchanges) {
        ch.publish(ex.name, this.#probeKey, Buffer.from('probe'), { mandatory: true, persistent: false, headers: { [PROBE_HEADER]: ae } });
      }
      await ch.waitForConfirms();
    } finally {
      await ch.close().catch(() => undefined);
    }
    const missing = this.#opts.topology.exchanges.map((e) => e.name).filter((n) => returned.has(n));
    const log = this.#opts.logger;
    if (missing.length > 0) {
      log.warn({ exchanges: missing, alternateExchange: ae }, 'no alternate-exchange policy routes these exchanges\' unroutable messages to us: notifications published while we are disconnected after a broker restart are lost (see docs/cloud-operators.md)');
    } else log.info({ alternateExchange: ae }, 'alternate-exchange policy in place');
    return { checkedAt: new Date(), missing };
  }

  /** The latest alternate-exchange check (after each connection); undefined when none is configured or it could not run. */
  get alternateExchange(): AlternateExchangeCheck | undefined {
    return this.#alternate;
  }

  async #consume(): Promise<void> {
    const ch = this.#channel;
    // Set together with the channel: the acks of this channel's deliveries.
    const acks = this.#acks;
    if (ch === undefined || acks === undefined || this.#stopping || this.#paused || this.#consumerTag !== undefined) return;
    const generation = this.#generation;
    const { topology, prefetch, logger } = this.#opts;
    const { consumerTag } = await ch.consume(topology.queue, (msg) => this.#onMessage(ch, acks, generation, msg), { noAck: false });
    this.#consumerTag = consumerTag;
    logger.info({ queue: topology.queue, exchanges: topology.exchanges.map((e) => e.name), prefetch }, 'consuming');
  }

  get paused(): boolean {
    return this.#paused;
  }

  /** Stops taking new messages (what is queued stays in the broker) until resume(); the connection stays up. */
  async pause(): Promise<void> {
    if (this.#paused) return;
    this.#paused = true;
    const ch = this.#channel;
    const tag = this.#consumerTag;
    this.#consumerTag = undefined;
    if (ch !== undefined && tag !== undefined) await ch.cancel(tag).catch(() => undefined);
    this.#opts.logger.warn({ queue: this.#opts.topology.queue }, 'consumption paused');
  }

  async resume(): Promise<void> {
    if (!this.#paused) return;
    this.#paused = false;
    // Without a channel now, the next connection's setup starts consuming.
    await this.#consume().catch((err: unknown) => this.#opts.logger.warn({ err: err instanceof Error ? err.message : String(err) }, 'cannot resume consuming yet; the reconnect will'));
  }

  #current(ch: ConfirmChannel, generation: number): boolean {
    return this.#channel === ch && this.#generation === generation;
  }

  #onMessage(ch: ConfirmChannel, acks: ChannelAcks, generation: number, msg: ConsumeMessage | null): void {
    if (msg === null) {
      this.#opts.logger.error({ queue: this.#opts.topology.queue }, 'the broker cancelled our consumer (queue deleted?)');
      return;
    }
    acks.received(msg);
    const props = msg.properties;
    const ts: unknown = props.timestamp;
    if (msg.fields.routingKey === this.#probeKey && plainHeaders(props.headers)[PROBE_HEADER] !== undefined) {
      // Our own alternate-exchange probe: nothing to record.
      if (this.#current(ch, generation)) acks.ack(msg);
      return;
    }
    const headers = plainHeaders(props.headers);
    // A copy we put back for another attempt came through the default
    // exchange; the decoders need where the cloud published it.
    const requeued = msg.fields.exchange === '' && headerString(headers, ORIGINAL_EXCHANGE_HEADER) !== undefined;
    const info: DeliveryInfo = {
      exchange: requeued ? (headerString(headers, ORIGINAL_EXCHANGE_HEADER) ?? '') : msg.fields.exchange,
      routingKey: requeued ? (headerString(headers, ORIGINAL_ROUTING_KEY_HEADER) ?? msg.fields.routingKey) : msg.fields.routingKey,
      messageId: typeof props.messageId === 'string' ? props.messageId : undefined,
      timestamp: typeof ts === 'number' ? new Date(ts * 1000) : undefined,
      headers,
      contentType: typeof props.contentType === 'string' ? props.contentType : undefined,
      redelivered: msg.fields.redelivered,
      receivedAt: new Date(),
      attempts: attemptsOf(headers),
    };
    let settled = false;
    // An ack on a channel that died with its connection would throw; the
    // broker redelivers such messages anyway, and apply is idempotent.
    const settle = (fn: () => void): boolean => {
      if (settled || !this.#current(ch, generation)) return false;
      settled = true;
      try {
        fn();
        return true;
      } catch {
        return false;
      }
    };
    const delivery: Delivery = {
      body: msg.content,
      info,
      ack: () => settle(() => acks.ack(msg)),
      requeue: () => settle(() => acks.nack(msg, true)),
      deadLetter: (reason, detail) => copyThenAck(this.#opts.topology.deadLetterQueue, {
        [REASON_HEADER]: reason,
        [DETAIL_HEADER]: detail.slice(0, 2000),
        'x-quarantine-rejected-at': new Date().toISOString(),
      }),
      retry: (error) => copyThenAck(this.#opts.topology.queue, {
        [ATTEMPTS_HEADER]: info.attempts + 1,
        [LAST_ERROR_HEADER]: error.slice(0, 2000),
      }),
    };
    // The copy is confirmed by the broker before the original is acknowledged:
    // a crash in between leaves two copies (apply is idempotent), never none.
    const copyThenAck = async (queue: string, extra: Record<string, unknown>): Promise<boolean> => {
      if (settled || !this.#current(ch, generation)) return false;
      ch.sendToQueue(queue, msg.content, {
        persistent: true,
        contentType: info.contentType,
        messageId: info.messageId,
        timestamp: typeof ts === 'number' ? ts : undefined,
        headers: {
          ...info.headers,
          [ORIGINAL_EXCHANGE_HEADER]: info.exchange,
          [ORIGINAL_ROUTING_KEY_HEADER]: info.routingKey,
          ...extra,
        },
      });
      try {
        await ch.waitForConfirms();
      } catch {
        return false;
      }
      return settle(() => acks.ack(msg));
    };
    const work = this.#opts
      .handler(delivery)
      .catch((err: unknown) => {
        this.#opts.logger.error({ err: err instanceof Error ? err.message : String(err), messageId: info.messageId }, 'handler failed; message requeued');
        delivery.requeue();
      })
      .finally(() => this.#inflight.delete(work));
    this.#inflight.add(work);
  }

  /** Messages waiting in our queue (consumer lag), asked of the broker on a short-lived channel. */
  async queueDepth(): Promise<number | undefined> {
    return this.#depthOf(this.#opts.topology.queue);
  }

  /** Messages in our dead-letter queue (rejected notifications nobody has handled). */
  async deadLetterDepth(): Promise<number | undefined> {
    return this.#depthOf(this.#opts.topology.deadLetterQueue);
  }

  async #depthOf(queue: string): Promise<number | undefined> {
    const conn = this.#conn;
    if (conn === undefined || this.#stopping) return undefined;
    const ch = await conn.createChannel();
    ch.on('error', () => undefined);
    try {
      return (await ch.checkQueue(queue)).messageCount;
    } finally {
      await ch.close().catch(() => undefined);
    }
  }

  get deadLetterQueue(): string {
    return this.#opts.topology.deadLetterQueue;
  }

  get queue(): string {
    return this.#opts.topology.queue;
  }

  /** Stops taking messages, waits for in-flight work to finish, closes. */
  async stop(): Promise<void> {
    this.#stopping = true;
    const ch = this.#channel;
    if (ch !== undefined && this.#consumerTag !== undefined) await ch.cancel(this.#consumerTag).catch(() => undefined);
    const deadline = this.#opts.drainTimeoutMs ?? 30_000;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.allSettled([...this.#inflight]),
      new Promise((resolve) => {
        timer = setTimeout(resolve, deadline);
      }),
    ]);
    clearTimeout(timer);
    if (this.#inflight.size > 0) this.#opts.logger.warn({ left: this.#inflight.size }, 'stopped with messages still in flight; the broker will redeliver them');
    // Acks are plain frames without a reply: a graceful channel close is what
    // makes sure the broker has seen them before the socket goes.
    await this.#channel?.close().catch(() => undefined);
    await this.#conn?.close().catch(() => undefined);
  }
}

/** Publishing with broker confirms: used by tests, the simulator and the benchmark. */
export class AmqpPublisher {
  readonly #model: ChannelModel;
  readonly #ch: ConfirmChannel;
  #closed = false;
  private constructor(model: ChannelModel, ch: ConfirmChannel) {
    this.#model = model;
    this.#ch = ch;
    // Closing a connection the broker already dropped never settles: remember it instead.
    model.on('close', () => {
      this.#closed = true;
    });
    model.on('error', () => {
      this.#closed = true;
    });
    ch.on('error', () => undefined);
  }
  static async connect(url: string): Promise<AmqpPublisher> {
    const model = await amqp.connect(url, { noDelay: true });
    const ch = await model.createConfirmChannel();
    return new AmqpPublisher(model, ch);
  }
  get model(): ChannelModel {
    return this.#model;
  }
  async ensureExchange(ex: ExchangeSpec): Promise<void> {
    await ensureExchange(this.#model, ex);
  }
  /** Publishes without waiting; call `confirmed()` to wait for every outstanding confirm. */
  publish(exchange: string, routingKey: string, body: Buffer | string, options: amqp.Options.Publish = {}): boolean {
    return this.#ch.publish(exchange, routingKey, typeof body === 'string' ? Buffer.from(body) : body, { persistent: true, ...options });
  }
  async confirmed(): Promise<void> {
    await this.#ch.waitForConfirms();
  }
  get closed(): boolean {
    return this.#closed;
  }
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    // A close handshake on a connection that is dying may never be answered.
    let timer: NodeJS.Timeout | undefined;
    const giveUp = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, 2_000);
    });
    await Promise.race([(async () => {
      await this.#ch.close().catch(() => undefined);
      await this.#model.close().catch(() => undefined);
    })(), giveUp]);
    clearTimeout(timer);
  }
}
