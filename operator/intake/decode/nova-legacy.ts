// Nova legacy notifications (`compute.instance.*`): a flat payload built by
// nova/notifications/base.py info_from_instance. The actor is the request
// context; addresses appear only when the emitter passed network info.
import { z } from 'zod';
import type { InstanceAction, InstanceAddress, InstanceEvent } from '../../domain/events.ts';
import { addressesAreCurrent, deleteHints, ipVersion } from './nova-rules.ts';
import type { OsloMessage } from './oslo.ts';
import { lenientTimestamp } from './time.ts';
import { parseWith } from './validate.ts';
import { compact, nonEmpty } from './values.ts';

const text = z.string().nullish();

const FloatingIp = z.object({ address: z.string().min(1), version: z.number().int().nullish() });

const FixedIp = z.object({
  address: z.string().min(1),
  version: z.number().int().nullish(),
  label: text,
  vif_mac: text,
  floating_ips: z.array(FloatingIp).nullish(),
});

const Payload = z.object({
  instance_id: z.string().min(1),
  display_name: text,
  user_id: text,
  tenant_id: text,
  host: text,
  node: text,
  state: text,
  state_description: text,
  power_state: text,
  created_at: text,
  launched_at: text,
  deleted_at: text,
  terminated_at: text,
  instance_type: text,
  image_ref: text,
  image_meta: z.object({ base_image_ref: text }).nullish(),
  fixed_ips: z.array(FixedIp).nullish(),
});

type FixedIpData = z.output<typeof FixedIp>;

function addressesOf(fixed: FixedIpData): InstanceAddress[] {
  const mac = nonEmpty(fixed.vif_mac);
  const network = nonEmpty(fixed.label);
  const own: InstanceAddress = compact({
    address: fixed.address,
    version: ipVersion(fixed.address, fixed.version),
    mac,
    network,
    kind: 'fixed' as const,
  });
  const floating = (fixed.floating_ips ?? []).map(
    (fip): InstanceAddress =>
      compact({
        address: fip.address,
        version: ipVersion(fip.address, fip.version),
        network,
        kind: 'floating' as const,
        fixedAddress: fixed.address,
      }),
  );
  return [own, ...floating];
}

/** `compute.<host>` → host; the legacy publisher names the node that emitted the event. */
function publisherHost(publisher: string): string | undefined {
  return publisher.startsWith('compute.') ? nonEmpty(publisher.slice('compute.'.length)) : undefined;
}

type TimeField = 'created_at' | 'launched_at' | 'deleted_at' | 'terminated_at';

export function decodeNovaLegacy(action: InstanceAction, message: OsloMessage, warnings: string[]): InstanceEvent {
  const p = parseWith(Payload, message.payload, 'bad-payload', 'payload', message.eventType);
  const time = (field: TimeField) => lenientTimestamp(p[field], `payload.${field}`, warnings);

  const host = nonEmpty(p.host);
  const launchedAt = time('launched_at');
  const state = nonEmpty(p.state);
  const addresses = p.fixed_ips?.flatMap(addressesOf);
  const emitter = publisherHost(message.publisher);
  const actor = compact({
    user: message.context.userId,
    project: message.context.projectId,
    requestId: message.context.requestId,
  });

  return compact({
    type: 'instance' as const,
    action,
    format: 'legacy' as const,
    instance: compact({
      id: p.instance_id,
      name: nonEmpty(p.display_name),
      project: nonEmpty(p.tenant_id),
      user: nonEmpty(p.user_id),
      host,
      node: nonEmpty(p.node),
      image: nonEmpty(p.image_meta?.base_image_ref) ?? nonEmpty(p.image_ref),
      flavor: nonEmpty(p.instance_type),
      createdAt: time('created_at'),
      launchedAt,
      deletedAt: time('deleted_at'),
      terminatedAt: time('terminated_at'),
      state,
      taskState: nonEmpty(p.state_description),
      powerState: nonEmpty(p.power_state),
    }),
    actor: Object.keys(actor).length > 0 ? actor : undefined,
    addresses,
    addressesAuthoritative: addresses !== undefined && addressesAreCurrent(action, state),
    ...deleteHints({
      action,
      host,
      launched: launchedAt !== undefined,
      announcedByApi:
        action.startsWith('force_delete.') || (emitter !== undefined && host !== undefined && emitter !== host),
    }),
  });
}
