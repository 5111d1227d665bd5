// Nova versioned notifications (`instance.*`): the payload is an oslo
// versioned-object primitive; the fields live under `nova_object.data`, and
// nested objects (IPs, flavor) are primitives of their own.
import { z } from 'zod';
import type { InstanceAction, InstanceAddress, InstanceEvent } from '../../domain/events.ts';
import { addressesAreCurrent, deleteHints, ipVersion } from './nova-rules.ts';
import type { OsloMessage } from './oslo.ts';
import { lenientTimestamp } from './time.ts';
import { parseWith } from './validate.ts';
import { compact, nonEmpty } from './values.ts';

const text = z.string().nullish();

function primitive<T extends z.ZodType>(data: T) {
  return z.object({ 'nova_object.data': data });
}

const IpData = z.object({
  address: z.string().min(1),
  version: z.number().int().nullish(),
  mac: text,
  port_uuid: text,
  label: text,
});

const FlavorData = z.object({ name: text, flavorid: text });

const InstanceData = z.object({
  uuid: z.string().min(1),
  display_name: text,
  user_id: text,
  tenant_id: text,
  host: text,
  node: text,
  image_uuid: text,
  state: text,
  task_state: text,
  power_state: text,
  created_at: text,
  launched_at: text,
  deleted_at: text,
  terminated_at: text,
  action_initiator_user: text,
  action_initiator_project: text,
  request_id: text,
  ip_addresses: z.array(primitive(IpData)).nullish(),
  flavor: primitive(FlavorData).nullish(),
});

const Payload = primitive(InstanceData);

type TimeField = 'created_at' | 'launched_at' | 'deleted_at' | 'terminated_at';

export function decodeNovaVersioned(action: InstanceAction, message: OsloMessage, warnings: string[]): InstanceEvent {
  const data = parseWith(Payload, message.payload, 'bad-payload', 'payload', message.eventType)['nova_object.data'];
  const time = (field: TimeField) => lenientTimestamp(data[field], `payload.nova_object.data.${field}`, warnings);

  const host = nonEmpty(data.host);
  const launchedAt = time('launched_at');
  const state = nonEmpty(data.state);
  const addresses = data.ip_addresses?.map(({ 'nova_object.data': ip }): InstanceAddress =>
    compact({
      address: ip.address,
      version: ipVersion(ip.address, ip.version),
      mac: nonEmpty(ip.mac),
      portId: nonEmpty(ip.port_uuid),
      network: nonEmpty(ip.label),
      kind: 'fixed' as const,
    }),
  );
  const actor = compact({
    user: nonEmpty(data.action_initiator_user),
    project: nonEmpty(data.action_initiator_project),
    requestId: nonEmpty(data.request_id),
  });

  return compact({
    type: 'instance' as const,
    action,
    format: 'versioned' as const,
    instance: compact({
      id: data.uuid,
      name: nonEmpty(data.display_name),
      project: nonEmpty(data.tenant_id),
      user: nonEmpty(data.user_id),
      host,
      node: nonEmpty(data.node),
      image: nonEmpty(data.image_uuid),
      flavor: nonEmpty(data.flavor?.['nova_object.data'].name),
      createdAt: time('created_at'),
      launchedAt,
      deletedAt: time('deleted_at'),
      terminatedAt: time('terminated_at'),
      state,
      taskState: nonEmpty(data.task_state),
      powerState: nonEmpty(data.power_state),
    }),
    actor: Object.keys(actor).length > 0 ? actor : undefined,
    addresses,
    addressesAuthoritative: addresses !== undefined && addressesAreCurrent(action, state),
    ...deleteHints({
      action,
      host,
      launched: launchedAt !== undefined,
      announcedByApi: message.publisher.startsWith('nova-api:'),
    }),
  });
}
