// What a delivery's envelope (exchange, AMQP properties, headers) tells the
// decoders: whether it is an OpenNebula delivery, the publisher's id and
// publish time, and which time to trust for the event.
import type { OccurredAtSource } from '../../domain/events.ts';
import { parseEpochSeconds, parseTimestamp } from './time.ts';
import { checkEventTime, limitsOf, type DecodeLimits } from './limits.ts';

/** What the broker says about a delivery (AMQP properties), plus our own facts. */
export interface DeliveryMeta {
  exchange?: string;
  routingKey?: string;
  /** AMQP message-id property (oslo does not set it; the OpenNebula hook publisher uses a header instead). */
  messageId?: string;
  /** AMQP timestamp property. */
  timestamp?: Date;
  headers?: Record<string, unknown>;
  receivedAt: Date;
  /** Name of the Cloud this delivery belongs to. */
  cloud: string;
  /** Size, field length and event-time bounds; defaults apply where not given. */
  limits?: Partial<DecodeLimits>;
}

export const OPENNEBULA_EXCHANGE = 'opennebula';
export const OPENNEBULA_HEADER = 'x-opennebula-hook';
/** Set by hooks/opennebula/quarantine-publish, which cannot set AMQP properties. */
export const PUBLISHER_ID_HEADER = 'x-message-id';
export const PUBLISHED_AT_HEADER = 'x-published-at';

/** A header's text, matched case-insensitively; AMQP clients may hand long strings over as bytes. */
export function headerText(meta: DeliveryMeta, name: string): string | undefined {
  const value = Object.entries(meta.headers ?? {}).find(([key]) => key.toLowerCase() === name)?.[1];
  const text =
    typeof value === 'string' ? value : value instanceof Uint8Array ? Buffer.from(value).toString('utf8') : undefined;
  const trimmed = text?.trim();
  return trimmed === '' ? undefined : trimmed;
}

export function isOpenNebulaDelivery(meta: DeliveryMeta): boolean {
  if (meta.exchange === OPENNEBULA_EXCHANGE) return true;
  return Object.keys(meta.headers ?? {}).some((key) => key.toLowerCase() === OPENNEBULA_HEADER);
}

/** The hook publisher's `x-published-at`: epoch seconds, or an ISO time. */
export function publishedAt(meta: DeliveryMeta, warnings: string[]): Date | undefined {
  const text = headerText(meta, PUBLISHED_AT_HEADER);
  if (text === undefined) return undefined;
  const parsed = /^\d+$/.test(text) ? parseEpochSeconds(text) : parseTimestamp(text);
  if (parsed.ok) return parsed.date;
  warnings.push(`${PUBLISHED_AT_HEADER} header: ${parsed.reason}`);
  return undefined;
}

const SOURCE_NAME: Readonly<Record<OccurredAtSource, string>> = {
  message: 'the message timestamp',
  delivery: 'the delivery timestamp',
  history: 'the VM history time',
  received: 'the receive time',
};

export function occurred(
  candidates: { date: Date | undefined; source: OccurredAtSource }[],
  meta: DeliveryMeta,
): { occurredAt: Date; occurredAtSource: OccurredAtSource } {
  const limits = limitsOf(meta.limits);
  // The best time given is the event time, and it must be plausible: an
  // implausible one is refused, never quietly replaced by the next best.
  for (const { date, source } of candidates) {
    if (date === undefined) continue;
    checkEventTime(date, meta.receivedAt, limits, SOURCE_NAME[source]);
    return { occurredAt: date, occurredAtSource: source };
  }
  return { occurredAt: meta.receivedAt, occurredAtSource: 'received' };
}
