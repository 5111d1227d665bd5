// Which decoder handles an oslo message, chosen by event type prefix.
import type { DomainEvent, NotificationSource } from '../../domain/events.ts';
import { decodeNeutron } from './neutron.ts';
import { decodeNovaLegacy } from './nova-legacy.ts';
import { isInstanceAction } from './nova-rules.ts';
import { decodeNovaVersioned } from './nova-versioned.ts';
import type { OsloMessage } from './oslo.ts';

export interface Routed {
  source: NotificationSource;
  /** undefined: a type nobody handles (the notification is ignored, not rejected). */
  events: DomainEvent[] | undefined;
}

const VERSIONED = 'instance.';
const LEGACY = 'compute.instance.';
const NEUTRON_RESOURCES = ['port.', 'floatingip.', 'router.', 'network.', 'subnet.', 'security_group'];

function sourceOfPublisher(publisher: string): NotificationSource {
  if (/^(nova-|compute\.|scheduler\.|conductor\.)/.test(publisher)) return 'nova';
  if (/^(network\.|neutron)/.test(publisher)) return 'neutron';
  return 'unknown';
}

export function route(message: OsloMessage, warnings: string[]): Routed {
  const { eventType } = message;
  if (eventType.startsWith(VERSIONED)) {
    const action = eventType.slice(VERSIONED.length);
    return { source: 'nova', events: isInstanceAction(action) ? [decodeNovaVersioned(action, message, warnings)] : undefined };
  }
  if (eventType.startsWith(LEGACY)) {
    const action = eventType.slice(LEGACY.length);
    return { source: 'nova', events: isInstanceAction(action) ? [decodeNovaLegacy(action, message, warnings)] : undefined };
  }
  if (NEUTRON_RESOURCES.some((prefix) => eventType.startsWith(prefix))) {
    return { source: 'neutron', events: decodeNeutron(message) };
  }
  return { source: sourceOfPublisher(message.publisher), events: undefined };
}
