// A listener on the simulated clouds' exchanges for tests: its own exclusive
// queue (so it competes with nobody), every delivery kept with its decoded
// form from the operator's own decoder.
import * as amqp from 'amqplib';
import type { ChannelModel } from 'amqplib';
import type { DecodedNotification } from '../../operator/domain/events.ts';
import { decodeNotification } from '../../operator/intake/decode/index.ts';

export interface TappedMessage {
  exchange: string;
  routingKey: string;
  body: Buffer;
  headers: Record<string, unknown>;
  contentType: string | undefined;
  receivedAt: Date;
  /** undefined when the operator's decoder rejected it (see `error`). */
  decoded: DecodedNotification | undefined;
  error: string | undefined;
}

export class NotificationTap {
  readonly messages: TappedMessage[] = [];
  readonly #model: ChannelModel;
  readonly #waiters = new Set<() => void>();

  private constructor(model: ChannelModel) {
    this.#model = model;
  }

  /** Binds a fresh exclusive queue to each exchange with `#` (or the keys given). */
  static async open(url: string, bindings: Array<{ exchange: string; keys?: string[] }>, cloud = 'sim'): Promise<NotificationTap> {
    const model = await amqp.connect(url);
    const tap = new NotificationTap(model);
    const ch = await model.createChannel();
    const { queue } = await ch.assertQueue('', { exclusive: true, autoDelete: true });
    for (const b of bindings) {
      for (const key of b.keys ?? ['#']) await ch.bindQueue(queue, b.exchange, key);
    }
    await ch.consume(queue, (msg) => {
      if (msg === null) return;
      const headers = { ...(msg.properties.headers ?? {}) } as Record<string, unknown>;
      const receivedAt = new Date();
      const result = decodeNotification(msg.content, {
        exchange: msg.fields.exchange, routingKey: msg.fields.routingKey, headers, receivedAt, cloud,
        ...(typeof msg.properties.messageId === 'string' ? { messageId: msg.properties.messageId } : {}),
      });
      tap.messages.push({
        exchange: msg.fields.exchange, routingKey: msg.fields.routingKey, body: msg.content, headers,
        contentType: typeof msg.properties.contentType === 'string' ? msg.properties.contentType : undefined, receivedAt,
        decoded: result.ok ? result.notification : undefined, error: result.ok ? undefined : `${result.error.reason}: ${result.error.message}`,
      });
      for (const wake of [...tap.#waiters]) wake();
    }, { noAck: true });
    return tap;
  }

  /** Messages whose decoded event type is `eventType`. */
  ofType(eventType: string): TappedMessage[] {
    return this.messages.filter((m) => m.decoded?.eventType === eventType);
  }

  /** Resolves with the first message matching, waiting up to `timeoutMs`. */
  waitFor(predicate: (m: TappedMessage) => boolean, timeoutMs = 15_000, what = 'a matching message'): Promise<TappedMessage> {
    const found = this.messages.find(predicate);
    if (found !== undefined) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const wake = () => {
        const m = this.messages.find(predicate);
        if (m === undefined) return;
        clearTimeout(timer);
        this.#waiters.delete(wake);
        resolve(m);
      };
      const timer = setTimeout(() => {
        this.#waiters.delete(wake);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; got ${this.messages.map((m) => m.decoded?.eventType ?? m.error).join(', ')}`));
      }, timeoutMs);
      this.#waiters.add(wake);
    });
  }

  async close(): Promise<void> {
    await this.#model.close().catch(() => undefined);
  }
}
