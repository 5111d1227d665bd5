// The decoding entry point: a raw message body plus what the broker told us
// about its delivery, to a DecodedNotification or a typed DecodeError. Pure:
// no I/O, no clock (the receive time comes in `meta`).
import type { DecodedNotification } from '../../domain/events.ts';
import { bodyText, decodeStrictBase64, hasBom, sha256Hex } from './body.ts';
import { headerText, isOpenNebulaDelivery, occurred, PUBLISHER_ID_HEADER, publishedAt, type DeliveryMeta } from './delivery.ts';
import { DecodeError } from './errors.ts';
import { decodeOpenNebula } from './opennebula.ts';
import { readOsloMessage } from './oslo.ts';
import { route } from './route.ts';
import { parseTimestamp } from './time.ts';
import { compact } from './values.ts';
import { checkBodySize, checkFieldLengths, limitsOf } from './limits.ts';

export { OPENNEBULA_EXCHANGE, OPENNEBULA_HEADER, type DeliveryMeta } from './delivery.ts';
export { DecodeError, type DecodeErrorReason } from './errors.ts';
export { DEFAULT_LIMITS, type DecodeLimits } from './limits.ts';

export type DecodeResult = { ok: true; notification: DecodedNotification } | { ok: false; error: DecodeError };

/**
 * An OpenNebula body that is not plain XML must be strict base64 of XML.
 * Outside an OpenNebula delivery a failure here is not final (returns
 * undefined): the body may still be JSON, and JSON gives the better error.
 */
function base64Xml(trimmed: string, openNebula: boolean): string | undefined {
  const reject = (error: DecodeError): undefined => {
    if (openNebula) throw error;
    return undefined;
  };
  const bytes = decodeStrictBase64(trimmed);
  if (bytes === undefined) return reject(new DecodeError('bad-base64', 'OpenNebula body is neither XML nor strict base64'));
  let text: string;
  try {
    text = bodyText(bytes).trim();
  } catch (err) {
    return reject(new DecodeError('bad-encoding', 'base64 content is not valid UTF-8', { cause: err }));
  }
  if (!text.startsWith('<')) return reject(new DecodeError('bad-xml', 'base64 content is not an XML document'));
  return text;
}

function fromOpenNebula(xml: string, meta: DeliveryMeta): DecodedNotification {
  const warnings: string[] = [];
  const decoded = decodeOpenNebula(xml, warnings);
  const messageId = (meta.messageId !== '' ? meta.messageId : undefined) ?? headerText(meta, PUBLISHER_ID_HEADER);
  return {
    cloud: meta.cloud,
    source: 'opennebula',
    wire: decoded.wire,
    messageId: messageId ?? sha256Hex(xml),
    idKind: messageId === undefined ? 'content-hash' : 'message-id',
    eventType: decoded.eventType,
    publisher: 'opennebula',
    ...occurred(
      [
        { date: meta.timestamp, source: 'delivery' },
        { date: publishedAt(meta, warnings), source: 'delivery' },
        { date: decoded.stateSince, source: 'history' },
      ],
      meta,
    ),
    receivedAt: meta.receivedAt,
    context: {},
    events: decoded.events,
    ignored: decoded.ignored,
    warnings,
  };
}

function fromOslo(text: string, meta: DeliveryMeta): DecodedNotification {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    const detail = err instanceof Error ? err.message : String(err);
    throw new DecodeError('not-json', `body is not JSON (nor OpenNebula XML): ${detail}`, { cause: err });
  }
  const message = readOsloMessage(json);
  const warnings: string[] = [];
  const routed = route(message, warnings);

  let sent: Date | undefined;
  if (message.timestamp !== undefined) {
    const parsed = parseTimestamp(message.timestamp);
    if (parsed.ok) sent = parsed.date;
    else throw new DecodeError('implausible-time', `timestamp: ${parsed.reason}`);
  }
  const givenId = message.messageId ?? (meta.messageId !== '' ? meta.messageId : undefined);
  return compact({
    cloud: meta.cloud,
    source: routed.source,
    wire: message.wire,
    messageId: givenId ?? sha256Hex(text),
    idKind: givenId === undefined ? ('content-hash' as const) : ('message-id' as const),
    eventType: message.eventType,
    publisher: message.publisher,
    priority: message.priority,
    ...occurred(
      [
        { date: sent, source: 'message' },
        { date: meta.timestamp, source: 'delivery' },
      ],
      meta,
    ),
    receivedAt: meta.receivedAt,
    context: message.context,
    events: routed.events ?? [],
    ignored: routed.events === undefined,
    warnings,
  });
}

/** Decodes or throws DecodeError (any other exception is a bug), within the size, field and time limits. */
export function decodeNotificationOrThrow(body: Uint8Array | string, meta: DeliveryMeta): DecodedNotification {
  return decodeOrThrow(body, meta).notification;
}

function decodeOrThrow(body: Uint8Array | string, meta: DeliveryMeta): { notification: DecodedNotification; text: string } {
  const limits = limitsOf(meta.limits);
  checkBodySize(typeof body === 'string' ? Buffer.byteLength(body, 'utf8') : body.byteLength, limits);
  const text = bodyText(body);
  const notification = decodeWithinLimits(text, meta);
  checkFieldLengths(notification, limits);
  return { notification, text };
}

function decodeWithinLimits(text: string, meta: DeliveryMeta): DecodedNotification {
  const trimmed = text.trim();
  if (trimmed === '') throw new DecodeError('empty-body', 'body is empty');
  const openNebula = isOpenNebulaDelivery(meta);
  if (trimmed.startsWith('<')) return fromOpenNebula(trimmed, meta);
  if (!openNebula && (trimmed.startsWith('{') || trimmed.startsWith('['))) return fromOslo(text, meta);
  const xml = base64Xml(trimmed, openNebula);
  if (xml !== undefined) return fromOpenNebula(xml, meta);
  return fromOslo(text, meta);
}

/**
 * Decodes one delivery. OpenStack bodies are JSON (oslo 2.0 envelope, bare v1
 * message, or listener shape); OpenNebula bodies are XML, plain or base64,
 * recognised by content, and expected when the delivery comes from the
 * `opennebula` exchange or carries the `x-opennebula-hook` header.
 */
export function decodeNotification(body: Uint8Array | string, meta: DeliveryMeta): DecodeResult {
  const r = decodeWithText(body, meta);
  return r.ok ? { ok: true, notification: r.notification } : r;
}

/**
 * decodeNotification, and the body as text as it was received (a leading BOM
 * kept), for the evidence: the bytes are read as UTF-8 once, by the decoder.
 */
export function decodeWithText(body: Uint8Array | string, meta: DeliveryMeta): { ok: true; notification: DecodedNotification; text: string } | { ok: false; error: DecodeError } {
  try {
    const { notification, text } = decodeOrThrow(body, meta);
    return { ok: true, notification, text: typeof body === 'string' ? body : hasBom(body) ? `\uFEFF${text}` : text };
  } catch (err) {
    if (err instanceof DecodeError) return { ok: false, error: err };
    // Whatever else was thrown (a stack overflow, a defect in a decoder) ends
    // the message too: retrying cannot make a pure function succeed.
    const detail = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
    return { ok: false, error: new DecodeError('decoder-failure', `the decoder failed: ${detail}`, { cause: err }) };
  }
}
