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
  context?: {
    userId?: string | null;
    projectId?: string | null;
    requestId?: string | null;
    userName?: string;
    projectName?: string;
    isAdmin?: boolean;
    roles?: string[];
  };
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
  const c = e.context;
  if (c?.userName !== undefined) inner['_context_user_name'] = c.userName;
  if (c?.projectName !== undefined) inner['_context_project_name'] = c.projectName;
  if (c?.isAdmin !== undefined) inner['_context_is_admin'] = c.isAdmin;
  if (c?.roles !== undefined) inner['_context_roles'] = c.roles;
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

// ---------------------------------------------------------------------------
// Full-state builders: the simulator keeps an instance's whole state and
// renders it into either Nova format, as nova/notifications does.

export interface NovaFlavor {
  flavorid: string;
  name: string;
  rootGb: number;
  ephemeralGb: number;
  swap: number;
  vcpus: number;
  memoryMb: number;
}

export interface NovaAddress {
  portId: string;
  address: string;
  mac: string;
  /** Network label. */
  network: string;
}

export interface NovaBlockDevice {
  volumeId: string;
  bootIndex: number | null;
  deleteOnTermination: boolean;
  deviceName: string;
}

/** An instance as Nova's database holds it at the moment of a notification. */
export interface NovaInstanceView {
  uuid: string;
  displayName: string;
  project: string;
  user: string;
  host: string | null;
  node: string | null;
  /** '' for a server booted from a volume. */
  imageUuid: string;
  flavor: NovaFlavor;
  state: string;
  taskState: string | null;
  powerState: string;
  createdAt: Date;
  launchedAt: Date | null;
  updatedAt: Date | null;
  terminatedAt: Date | null;
  deletedAt: Date | null;
  /** Nova's network-info cache: fixed addresses only. */
  addresses: NovaAddress[];
  blockDevices: NovaBlockDevice[];
  availabilityZone: string;
  keyName: string | null;
  metadata: Record<string, string>;
  reservationId: string;
  /** libvirt domain name, `instance-0000002a`. */
  instanceName: string;
  tags: string[];
}

export interface NovaStateUpdate {
  oldState: string;
  state: string;
  oldTaskState: string | null;
  newTaskState: string | null;
}

export interface NovaActor {
  /** null in periodic tasks (the admin context of the compute manager has no user). */
  user: string | null;
  project: string | null;
  requestId: string | null;
}

/** Seconds precision with Z, as the versioned payloads print datetimes. */
export function novaIsoTime(d: Date | null): string | null {
  return d === null ? null : d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

export interface NovaVersionedOptions {
  /** `nova-compute:<host>` or `nova-api:<host>`. */
  publisher: string;
  actor: NovaActor;
  /** Payload class: InstanceActionPayload (default), InstanceCreatePayload, InstanceUpdatePayload. */
  kind?: 'action' | 'create' | 'update';
  /** For `instance.update`. */
  stateUpdate?: NovaStateUpdate;
  oldDisplayName?: string | null;
  /** `[notifications] bdms_in_notifications`; false (Nova's default) sends []. */
  bdmsInNotifications?: boolean;
  priority?: string;
  fault?: unknown;
  messageId?: string;
}

/** A versioned notification (`instance.*`) in an oslo 2.0 envelope. */
export function novaVersionedMessage(view: NovaInstanceView, eventType: string, at: Date, opts: NovaVersionedOptions): string {
  const kind = opts.kind ?? 'action';
  const data: Record<string, unknown> = {
    uuid: view.uuid, display_name: view.displayName, display_description: view.displayName, host_name: view.displayName,
    tenant_id: view.project, user_id: view.user, host: view.host, node: view.node, image_uuid: view.imageUuid,
    kernel_id: '', ramdisk_id: '', os_type: null, architecture: 'x86_64', availability_zone: view.availabilityZone,
    flavor: ovo('FlavorPayload', '1.4', {
      flavorid: view.flavor.flavorid, name: view.flavor.name, root_gb: view.flavor.rootGb, ephemeral_gb: view.flavor.ephemeralGb,
      swap: view.flavor.swap, vcpus: view.flavor.vcpus, memory_mb: view.flavor.memoryMb, disabled: false, rxtx_factor: 1.0,
      extra_specs: {}, projects: null, is_public: true, vcpu_weight: 0, description: null,
    }),
    created_at: novaIsoTime(view.createdAt), launched_at: novaIsoTime(view.launchedAt), updated_at: novaIsoTime(view.updatedAt),
    terminated_at: novaIsoTime(view.terminatedAt), deleted_at: novaIsoTime(view.deletedAt),
    state: view.state, task_state: view.taskState, power_state: view.powerState, progress: 0, locked: false, locked_reason: null,
    auto_disk_config: 'MANUAL', key_name: view.keyName, metadata: view.metadata, reservation_id: view.reservationId, shares: [],
    ip_addresses: view.addresses.map((a) => ovo('IpPayload', '1.0', {
      mac: a.mac, address: a.address, port_uuid: a.portId, meta: {}, version: a.address.includes(':') ? 6 : 4, label: a.network,
      device_name: `tap${a.portId.slice(0, 11)}`,
    })),
    block_devices: opts.bdmsInNotifications === true
      ? view.blockDevices.map((b) => ovo('BlockDevicePayload', '1.0', {
        volume_id: b.volumeId, boot_index: b.bootIndex, delete_on_termination: b.deleteOnTermination, device_name: b.deviceName, tag: null,
      }))
      : [],
    request_id: opts.actor.requestId, action_initiator_user: opts.actor.user, action_initiator_project: opts.actor.project,
  };
  let payload: unknown;
  if (kind === 'update') {
    const u = opts.stateUpdate ?? { oldState: view.state, state: view.state, oldTaskState: view.taskState, newTaskState: view.taskState };
    const day = new Date(Date.UTC(at.getUTCFullYear(), at.getUTCMonth(), 1));
    payload = ovo('InstanceUpdatePayload', '2.1', {
      ...data, tags: view.tags, old_display_name: opts.oldDisplayName ?? null,
      state_update: ovo('InstanceStateUpdatePayload', '1.0', { old_state: u.oldState, state: u.state, old_task_state: u.oldTaskState, new_task_state: u.newTaskState }),
      audit_period: ovo('AuditPeriodPayload', '1.0', { audit_period_beginning: novaIsoTime(day), audit_period_ending: novaIsoTime(at) }),
    });
  } else if (kind === 'create') {
    payload = ovo('InstanceCreatePayload', '1.13', {
      ...data, fault: opts.fault ?? null, tags: view.tags, keypairs: [], trusted_image_certificates: null, instance_name: view.instanceName,
    });
  } else {
    payload = ovo('InstanceActionPayload', '1.9', { ...data, fault: opts.fault ?? null });
  }
  return osloEnvelope({
    publisher: opts.publisher, eventType, at, payload, priority: opts.priority ?? 'INFO',
    ...(opts.messageId === undefined ? {} : { messageId: opts.messageId }),
    context: { userId: opts.actor.user, projectId: opts.actor.project, requestId: opts.actor.requestId ?? `req-${randomUUID()}` },
  });
}

/** `2016-08-17 15:10:12+00:00`: created_at in legacy payloads. */
function legacyCreated(d: Date): string {
  return `${d.toISOString().slice(0, 19).replace('T', ' ')}+00:00`;
}

/** `2016-08-17T15:10:33.000000`, or "" when unset (null_safe_isotime). */
function legacyTime(d: Date | null): string {
  return d === null ? '' : `${d.toISOString().slice(0, 23)}000`;
}

export interface NovaLegacyOptions {
  /** `compute.<host>` (the emitting node, API or compute). */
  publisher: string;
  actor: NovaActor;
  /** Emitters that pass network info (create.end) add `fixed_ips`; others leave the key out. */
  withFixedIps?: boolean;
  /** `compute.instance.update` fields. */
  stateUpdate?: NovaStateUpdate;
  /** Glance endpoint for `image_ref_url`. */
  glanceUrl?: string;
  priority?: string;
  messageId?: string;
}

/** A legacy (unversioned) `compute.instance.*` notification in an oslo 2.0 envelope. */
export function novaLegacyMessage(view: NovaInstanceView, eventType: string, at: Date, opts: NovaLegacyOptions): string {
  const glance = opts.glanceUrl ?? 'http://glance.example.org:9292';
  const payload: Record<string, unknown> = {
    instance_id: view.uuid, display_name: view.displayName, hostname: view.displayName, tenant_id: view.project, user_id: view.user,
    host: view.host, node: view.node, availability_zone: view.availabilityZone, cell_name: '', reservation_id: view.reservationId,
    instance_type: view.flavor.name, instance_type_id: 1, instance_flavor_id: view.flavor.flavorid, memory_mb: view.flavor.memoryMb,
    vcpus: view.flavor.vcpus, root_gb: view.flavor.rootGb, ephemeral_gb: view.flavor.ephemeralGb,
    disk_gb: view.flavor.rootGb + view.flavor.ephemeralGb,
    state: view.state, state_description: view.taskState ?? '', progress: '',
    created_at: legacyCreated(view.createdAt), launched_at: legacyTime(view.launchedAt), terminated_at: legacyTime(view.terminatedAt),
    deleted_at: legacyTime(view.deletedAt),
    image_ref_url: `${glance}/images/${view.imageUuid}`, kernel_id: '', ramdisk_id: '', os_type: null, architecture: 'x86_64',
    image_meta: view.imageUuid === '' ? {} : { base_image_ref: view.imageUuid, container_format: 'bare', disk_format: 'raw', min_disk: '0', min_ram: '0' },
    metadata: view.metadata, access_ip_v4: null, access_ip_v6: null,
  };
  if (opts.withFixedIps === true) {
    payload['fixed_ips'] = view.addresses.map((a) => ({
      address: a.address, version: a.address.includes(':') ? 6 : 4, type: 'fixed', label: a.network, vif_mac: a.mac, meta: {}, floating_ips: [],
    }));
  }
  if (opts.stateUpdate !== undefined) {
    const day = new Date(Date.UTC(at.getUTCFullYear(), at.getUTCMonth(), 1));
    Object.assign(payload, {
      old_state: opts.stateUpdate.oldState, old_task_state: opts.stateUpdate.oldTaskState, new_task_state: opts.stateUpdate.newTaskState,
      audit_period_beginning: legacyTime(day), audit_period_ending: legacyTime(at), bandwidth: {},
    });
  }
  return osloEnvelope({
    publisher: opts.publisher, eventType, at, payload, priority: opts.priority ?? 'INFO',
    ...(opts.messageId === undefined ? {} : { messageId: opts.messageId }),
    context: { userId: opts.actor.user, projectId: opts.actor.project, requestId: opts.actor.requestId ?? `req-${randomUUID()}` },
  });
}

// ---------------------------------------------------------------------------
// Neutron resources in full (what the API returns, hence what .end carries).

/** Neutron's resource times: seconds, with Z in current releases. */
export function neutronTime(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

export interface NeutronPortView {
  id: string;
  name: string;
  networkId: string;
  project: string;
  mac: string;
  fixedIps: Array<{ address: string; subnetId: string }>;
  /** '' when unbound. */
  deviceId: string;
  deviceOwner: string;
  bindingHost: string | null;
  status: string;
  createdAt: Date;
  updatedAt: Date;
  revision: number;
}

export interface NeutronFloatingIpView {
  id: string;
  address: string;
  floatingNetworkId: string;
  project: string;
  portId: string | null;
  fixedAddress: string | null;
  routerId: string | null;
  status: string;
  description: string;
  createdAt: Date;
  updatedAt: Date;
  revision: number;
  /** fip-port-details: the associated port, null when unassociated. */
  portDetails: { deviceId: string; deviceOwner: string; mac: string; networkId: string; status: string; name: string } | null;
}

export interface NeutronMessageOptions {
  /** `network.<host>`. */
  publisher: string;
  context: { userId: string | null; projectId: string | null; requestId?: string };
  /** For `.start` events: the client's request body (update.start adds the id). */
  request?: Record<string, unknown>;
  messageId?: string;
}

export function neutronPortBody(p: NeutronPortView): Record<string, unknown> {
  return {
    id: p.id, name: p.name, network_id: p.networkId, tenant_id: p.project, project_id: p.project, mac_address: p.mac,
    admin_state_up: true, status: p.status, device_id: p.deviceId, device_owner: p.deviceOwner,
    fixed_ips: p.fixedIps.map((f) => ({ subnet_id: f.subnetId, ip_address: f.address })),
    allowed_address_pairs: [], extra_dhcp_opts: [], security_groups: [], description: '', port_security_enabled: true,
    'binding:host_id': p.bindingHost, 'binding:vnic_type': 'normal', 'binding:profile': {},
    'binding:vif_type': p.bindingHost === null ? 'unbound' : 'ovs', 'binding:vif_details': p.bindingHost === null ? {} : { port_filter: true },
    dns_name: null, tags: [], created_at: neutronTime(p.createdAt), updated_at: neutronTime(p.updatedAt), revision_number: p.revision,
  };
}

export function neutronFloatingIpBody(f: NeutronFloatingIpView): Record<string, unknown> {
  return {
    id: f.id, floating_ip_address: f.address, floating_network_id: f.floatingNetworkId, tenant_id: f.project, project_id: f.project,
    port_id: f.portId, fixed_ip_address: f.fixedAddress, router_id: f.routerId, status: f.status, description: f.description,
    dns_name: '', dns_domain: '', qos_policy_id: null, port_forwardings: [], tags: [],
    created_at: neutronTime(f.createdAt), updated_at: neutronTime(f.updatedAt), revision_number: f.revision,
    port_details: f.portDetails === null ? null : {
      name: f.portDetails.name, network_id: f.portDetails.networkId, mac_address: f.portDetails.mac, admin_state_up: true,
      status: f.portDetails.status, device_id: f.portDetails.deviceId, device_owner: f.portDetails.deviceOwner,
    },
  };
}

export interface NeutronRouterView {
  id: string;
  name: string;
  project: string;
  /** The external network and addresses of the gateway; null without one. */
  gateway: { networkId: string; subnetId: string; addresses: string[] } | null;
  createdAt: Date;
  updatedAt: Date;
  revision: number;
}

export function neutronRouterBody(r: NeutronRouterView): Record<string, unknown> {
  return {
    id: r.id, name: r.name, tenant_id: r.project, project_id: r.project, admin_state_up: true, status: 'ACTIVE', description: '',
    external_gateway_info: r.gateway === null ? null : {
      network_id: r.gateway.networkId, enable_snat: true, external_fixed_ips: r.gateway.addresses.map((a) => ({ subnet_id: r.gateway?.subnetId, ip_address: a })),
    },
    routes: [], tags: [], created_at: neutronTime(r.createdAt), updated_at: neutronTime(r.updatedAt), revision_number: r.revision,
  };
}

export function neutronRouterMessage(r: NeutronRouterView, phase: NeutronPhase, at: Date, opts: NeutronMessageOptions): string {
  return osloEnvelope({
    publisher: opts.publisher, eventType: `router.${phase}`, at, payload: neutronPayload('router', r.id, neutronRouterBody(r), phase, opts.request),
    ...(opts.messageId === undefined ? {} : { messageId: opts.messageId }),
    context: { userId: opts.context.userId, projectId: opts.context.projectId, ...(opts.context.requestId === undefined ? {} : { requestId: opts.context.requestId }) },
  });
}

type NeutronPhase = 'create.start' | 'create.end' | 'update.start' | 'update.end' | 'delete.start' | 'delete.end';

/** Payload of `<resource>.<phase>` the way neutron's API notifier builds it. */
function neutronPayload(resource: 'port' | 'floatingip' | 'router', id: string, body: Record<string, unknown>, phase: NeutronPhase, request: Record<string, unknown> | undefined): unknown {
  switch (phase) {
    case 'create.start':
      return { [resource]: request ?? {} };
    case 'update.start':
      return { id, [resource]: request ?? {} };
    case 'delete.start':
      return { [`${resource}_id`]: id };
    case 'delete.end':
      return { [`${resource}_id`]: id, [resource]: body };
    default:
      return { [resource]: body };
  }
}

export function neutronPortMessage(p: NeutronPortView, phase: NeutronPhase, at: Date, opts: NeutronMessageOptions): string {
  return osloEnvelope({
    publisher: opts.publisher, eventType: `port.${phase}`, at, payload: neutronPayload('port', p.id, neutronPortBody(p), phase, opts.request),
    ...(opts.messageId === undefined ? {} : { messageId: opts.messageId }),
    context: { userId: opts.context.userId, projectId: opts.context.projectId, ...(opts.context.requestId === undefined ? {} : { requestId: opts.context.requestId }) },
  });
}

export function neutronFloatingIpMessage(f: NeutronFloatingIpView, phase: NeutronPhase, at: Date, opts: NeutronMessageOptions): string {
  return osloEnvelope({
    publisher: opts.publisher, eventType: `floatingip.${phase}`, at, payload: neutronPayload('floatingip', f.id, neutronFloatingIpBody(f), phase, opts.request),
    ...(opts.messageId === undefined ? {} : { messageId: opts.messageId }),
    context: { userId: opts.context.userId, projectId: opts.context.projectId, ...(opts.context.requestId === undefined ? {} : { requestId: opts.context.requestId }) },
  });
}
