// Notification bodies as Nova and Neutron put them on the bus (oslo.messaging
// 2.0 envelopes), built on the shapes of the upstream samples in
// test/fixtures/upstream. Used by tests, the simulator and the benchmark.
import { randomUUID } from 'node:crypto';

/** oslo's timestamp: str() of a naive UTC datetime. */
export function osloTimestamp(d: Date): string {
  return d.toISOString().replace('T', ' ').replace('Z', '').padEnd(26, '0');
}

export interface Envelope {
  messageId?: string;
  publisher: string;
  eventType: string;
  priority?: string;
  at: Date;
  payload: unknown;
  context?: { userId?: string; projectId?: string; requestId?: string };
}

export function osloEnvelope(e: Envelope): string {
  const inner: Record<string, unknown> = {
    message_id: e.messageId ?? randomUUID(),
    publisher_id: e.publisher,
    event_type: e.eventType,
    priority: e.priority ?? 'INFO',
    payload: e.payload,
    timestamp: osloTimestamp(e.at),
    _unique_id: randomUUID().replace(/-/g, ''),
    _context_user_id: e.context?.userId ?? null,
    _context_project_id: e.context?.projectId ?? null,
    _context_request_id: e.context?.requestId ?? `req-${randomUUID()}`,
  };
  return JSON.stringify({ 'oslo.version': '2.0', 'oslo.message': JSON.stringify(inner) });
}

export interface VmSpec {
  id: string;
  name: string;
  project: string;
  user: string;
  host: string | null;
  image?: string;
  flavor?: string;
  createdAt: Date;
  ports: Array<{ portId: string; address: string; mac: string; network: string }>;
}

const ovo = (name: string, version: string, data: unknown) => ({
  'nova_object.name': name, 'nova_object.namespace': 'nova', 'nova_object.version': version, 'nova_object.data': data,
});

/** A versioned `instance.*` notification (InstanceActionPayload shape). */
export function novaInstance(vm: VmSpec, action: string, at: Date, opts: { state?: string; taskState?: string | null; deletedAt?: Date | null; withIps?: boolean; publisher?: string; initiator?: string; messageId?: string } = {}): string {
  const ips = opts.withIps === false ? [] : vm.ports.map((p) => ovo('IpPayload', '1.0', {
    mac: p.mac, address: p.address, port_uuid: p.portId, meta: {}, version: p.address.includes(':') ? 6 : 4, label: p.network, device_name: `tap${p.portId.slice(0, 11)}`,
  }));
  const payload = ovo('InstanceActionPayload', '1.9', {
    uuid: vm.id, display_name: vm.name, host_name: vm.name, tenant_id: vm.project, user_id: vm.user,
    host: vm.host, node: vm.host, image_uuid: vm.image ?? '155d900f-4e14-4e4c-a73d-069cbf4541e6',
    flavor: ovo('FlavorPayload', '1.4', { flavorid: 'f1', name: vm.flavor ?? 'm1.small', root_gb: 1, vcpus: 1, ephemeral_gb: 0, memory_mb: 512, swap: 0 }),
    created_at: vm.createdAt.toISOString().replace(/\.\d{3}Z$/, 'Z'), launched_at: vm.createdAt.toISOString().replace(/\.\d{3}Z$/, 'Z'),
    deleted_at: opts.deletedAt === undefined || opts.deletedAt === null ? null : opts.deletedAt.toISOString().replace(/\.\d{3}Z$/, 'Z'),
    terminated_at: null, state: opts.state ?? 'active', task_state: opts.taskState ?? null, power_state: 'running',
    ip_addresses: ips, block_devices: [], metadata: {}, availability_zone: 'nova',
    action_initiator_user: opts.initiator ?? vm.user, action_initiator_project: vm.project, request_id: `req-${randomUUID()}`, fault: null,
  });
  return osloEnvelope({
    publisher: opts.publisher ?? `nova-compute:${vm.host ?? 'api'}`, eventType: `instance.${action}`, at, payload,
    ...(opts.messageId === undefined ? {} : { messageId: opts.messageId }),
    context: { userId: opts.initiator ?? vm.user, projectId: vm.project },
  });
}

export interface FipSpec {
  id: string;
  address: string;
  network: string;
  project: string;
}

/** A Neutron `floatingip.*` notification; `portId` null = not associated. */
export function neutronFloatingIp(f: FipSpec, eventType: 'create.end' | 'update.end' | 'delete.end', at: Date, assoc: { portId: string | null; fixedAddress?: string | null; instanceId?: string }, messageId?: string): string {
  const fip = {
    id: f.id, floating_ip_address: f.address, floating_network_id: f.network, tenant_id: f.project, project_id: f.project,
    port_id: assoc.portId, fixed_ip_address: assoc.portId === null ? null : assoc.fixedAddress ?? null,
    router_id: assoc.portId === null ? null : 'ffcd49c4-0532-4d4d-ac48-4b88e10ec90e', status: assoc.portId === null ? 'DOWN' : 'ACTIVE',
    description: '', port_details: assoc.portId === null || assoc.instanceId === undefined ? null : { device_id: assoc.instanceId, device_owner: 'compute:nova', network_id: 'private' },
  };
  const payload = eventType === 'delete.end' ? { floatingip_id: f.id, floatingip: fip } : { floatingip: fip };
  return osloEnvelope({ publisher: 'network.controller', eventType: `floatingip.${eventType}`, at, payload, ...(messageId === undefined ? {} : { messageId }) });
}

/** A Neutron `port.*` notification for an instance's port. */
export function neutronPort(p: { portId: string; address: string; mac: string; network: string; project: string; instanceId: string | null; host?: string }, eventType: 'create.end' | 'update.end' | 'delete.end', at: Date): string {
  const port = {
    id: p.portId, device_id: p.instanceId ?? '', device_owner: p.instanceId === null ? '' : 'compute:nova', network_id: p.network,
    mac_address: p.mac, tenant_id: p.project, project_id: p.project, 'binding:host_id': p.host ?? null, status: 'ACTIVE',
    fixed_ips: [{ ip_address: p.address, subnet_id: 'subnet-1' }],
  };
  const payload = eventType === 'delete.end' ? { port_id: p.portId, port } : { port };
  // Nova makes and deletes an instance's ports with its service user (see notifications.md §5.2).
  return osloEnvelope({ publisher: 'network.controller', eventType: `port.${eventType}`, at, payload, context: { userId: 'nova-service', projectId: 'service' } });
}
