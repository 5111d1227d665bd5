// The three ways an oslo.messaging notification arrives, reduced to one shape:
// the 2.0 envelope (a JSON string inside JSON), the bare v1 message with
// `_context_*` keys, and the listener shape (`ctxt` + `metadata`) that oslo
// hands to callbacks and that tools such as searchlight stored.
import { z } from 'zod';
import type { RequestContext, WireFormat } from '../../domain/events.ts';
import { DecodeError } from './errors.ts';
import { parseWith } from './validate.ts';
import { compact, nonEmpty } from './values.ts';

export interface OsloMessage {
  wire: Extract<WireFormat, 'oslo-v2' | 'oslo-v1' | 'oslo-listener'>;
  eventType: string;
  publisher: string;
  priority?: string;
  messageId?: string;
  /** Raw timestamp text; parsed by the caller, which decides what a bad one means. */
  timestamp?: string;
  context: RequestContext;
  payload: unknown;
}

const Envelope = z.object({
  'oslo.version': z.literal('2.0'),
  'oslo.message': z.string(),
});

const present = z.unknown().refine((value) => value !== undefined, { message: 'Required' });

const Message = z.object({
  event_type: z.string().min(1),
  publisher_id: z.string().min(1),
  priority: z.string().nullish(),
  message_id: z.string().min(1).nullish(),
  timestamp: z.string().nullish(),
  payload: present,
});

const Listener = Message.extend({
  ctxt: z.record(z.string(), z.unknown()).nullish(),
  metadata: z
    .looseObject({ message_id: z.string().min(1).nullish(), timestamp: z.string().nullish() })
    .nullish(),
});

type JsonObject = Record<string, unknown>;

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return `a ${typeof value}`;
}

/** Maps oslo.context keys (any release) to ours; non-string values are ignored. */
export function contextFrom(entries: JsonObject): RequestContext {
  const text = (key: string): string | undefined => {
    const value = entries[key];
    return typeof value === 'string' ? nonEmpty(value) : undefined;
  };
  return compact({
    userId: text('user_id') ?? text('user'),
    projectId: text('project_id') ?? text('tenant_id') ?? text('project') ?? text('tenant'),
    requestId: text('request_id'),
    userName: text('user_name'),
    projectName: text('project_name') ?? text('tenant_name'),
  });
}

function prefixedContext(message: JsonObject): RequestContext {
  // No prototype: a key `_context___proto__` is an entry like any other, not the object's prototype, whose
  // properties contextFrom would otherwise read as the request's user and project.
  const entries: JsonObject = Object.create(null) as JsonObject;
  // for…in over a parsed object (no prototype keys): no array of pairs per message.
  for (const key in message) {
    if (key.startsWith('_context_')) entries[key.slice('_context_'.length)] = message[key];
  }
  return contextFrom(entries);
}

function flatMessage(message: JsonObject, wire: 'oslo-v2' | 'oslo-v1', what: string): OsloMessage {
  const m = parseWith(Message, message, 'bad-envelope', '', what);
  return compact({
    wire,
    eventType: m.event_type,
    publisher: m.publisher_id,
    priority: nonEmpty(m.priority)?.toUpperCase(),
    messageId: nonEmpty(m.message_id),
    timestamp: nonEmpty(m.timestamp),
    context: prefixedContext(message),
    payload: m.payload,
  });
}

function listenerMessage(message: JsonObject): OsloMessage {
  const m = parseWith(Listener, message, 'bad-envelope', '', 'oslo listener message');
  return compact({
    wire: 'oslo-listener' as const,
    eventType: m.event_type,
    publisher: m.publisher_id,
    priority: nonEmpty(m.priority)?.toUpperCase(),
    messageId: nonEmpty(m.metadata?.message_id) ?? nonEmpty(m.message_id),
    timestamp: nonEmpty(m.metadata?.timestamp) ?? nonEmpty(m.timestamp),
    context: contextFrom(m.ctxt ?? {}),
    payload: m.payload,
  });
}

/** Recognises the shape of a parsed JSON body and returns the message inside. Throws DecodeError. */
export function readOsloMessage(json: unknown): OsloMessage {
  if (!isObject(json)) throw new DecodeError('unknown-shape', `JSON body is ${describe(json)}, not an object`);
  if ('oslo.version' in json || 'oslo.message' in json) {
    const envelope = parseWith(Envelope, json, 'bad-envelope', '', 'oslo 2.0 envelope');
    let inner: unknown;
    try {
      inner = JSON.parse(envelope['oslo.message']);
    } catch (err) {
      const detail = err instanceof Error ? err.message : String(err);
      throw new DecodeError('bad-envelope', `oslo.message is not JSON: ${detail}`, { cause: err });
    }
    if (!isObject(inner)) throw new DecodeError('bad-envelope', `oslo.message holds ${describe(inner)}, not an object`);
    return flatMessage(inner, 'oslo-v2', 'oslo message inside the 2.0 envelope');
  }
  if ('ctxt' in json || 'metadata' in json) return listenerMessage(json);
  if ('event_type' in json || 'publisher_id' in json || 'payload' in json) {
    return flatMessage(json, 'oslo-v1', 'oslo v1 message');
  }
  throw new DecodeError(
    'unknown-shape',
    'JSON object is neither an oslo 2.0 envelope nor an oslo message (no event_type, publisher_id or payload)',
  );
}
