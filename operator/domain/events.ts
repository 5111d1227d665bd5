// Normalized facts decoded from the clouds' notifications. The decoders
// (operator/intake/decode) produce them; the ledger applies them. Pure types
// plus a few constant lists; imports nothing of ours.
//
// Conventions that hold for every type below:
// - `undefined` means "this message does not say"; it never means "none" or
//   "cleared". Where the difference between "absent" and "explicitly empty"
//   matters (floating IP port, instance addresses), the type says so.
// - Identifiers are kept as the cloud spells them (UUID strings for OpenStack,
//   numbers for OpenNebula); nothing is lower-cased or reformatted.
// - Ownership (project/user) comes from the resource itself, never from the
//   request context: a port created by Nova carries Nova's service user in the
//   context but the tenant's project on the port.

/** Where a notification came from. `unknown` only for ignored messages nobody routes. */
export type NotificationSource = 'nova' | 'neutron' | 'opennebula' | 'unknown';

/**
 * How the message reached us.
 * - `oslo-v2`: `{"oslo.version":"2.0","oslo.message":"<json>"}` (driver `messagingv2`).
 * - `oslo-v1`: the bare oslo message (driver `messaging`), `_context_*` keys inline.
 * - `oslo-listener`: the shape oslo hands to a listener callback (`ctxt`, `metadata`).
 * - `opennebula-hook-message`: a `<HOOK_MESSAGE>` document, plain or base64.
 * - `opennebula-vm`: a bare `<VM>` document (a state hook's `$TEMPLATE`), plain or base64.
 */
export type WireFormat = 'oslo-v2' | 'oslo-v1' | 'oslo-listener' | 'opennebula-hook-message' | 'opennebula-vm';

/**
 * What `messageId` is.
 * - `message-id`: the publisher's id (oslo `message_id`; for OpenNebula the AMQP
 *   message-id property or the hook publisher's `x-message-id` header). Both
 *   publishers reuse it when they resend, so it de-duplicates.
 * - `content-hash`: hex SHA-256 of the message content (for OpenNebula of the
 *   decoded XML, so the plain and base64 forms of one document share it). Two
 *   genuinely different events with byte-identical content collapse into one,
 *   which is harmless for the ledger because applying either is the same.
 */
export type MessageIdKind = 'message-id' | 'content-hash';

/**
 * Where `occurredAt` was taken from, best first.
 * - `message`: the oslo `timestamp` (or listener `metadata.timestamp`): when the
 *   service emitted the notification.
 * - `delivery`: the publish time the delivery carries: the AMQP `timestamp`
 *   property, or for OpenNebula the hook publisher's `x-published-at` header
 *   (when the hook ran).
 * - `history`: an OpenNebula VM history time matching the reported state (a
 *   lower bound: the transition happened at or after it).
 * - `received`: when the consumer received the message (an upper bound).
 */
export type OccurredAtSource = 'message' | 'delivery' | 'history' | 'received';

/** The request context the notification was emitted under (`_context_*` or listener `ctxt`). */
export interface RequestContext {
  userId?: string;
  projectId?: string;
  requestId?: string;
  userName?: string;
  projectName?: string;
}

/** One decoded notification: the envelope facts plus the domain events it carries. */
export interface DecodedNotification {
  cloud: string;
  source: NotificationSource;
  wire: WireFormat;
  /** Key for idempotent apply, unique per cloud. See `idKind`. */
  messageId: string;
  idKind: MessageIdKind;
  /**
   * The service's event type as sent (`instance.delete.start`,
   * `compute.instance.delete.start`, `floatingip.update.end`, ...). OpenNebula
   * state events are `opennebula.vm.state`; other OpenNebula hook messages are
   * `opennebula.<object>.state` or `opennebula.api` and are ignored.
   */
  eventType: string;
  /** oslo `publisher_id` (`nova-compute:<host>`, `nova-api:<host>`, `compute.<host>`, `network.<host>`); `opennebula` for OpenNebula. */
  publisher?: string;
  /** Upper-cased oslo priority (`INFO`, `ERROR`, ...); absent in the listener shape. */
  priority?: string;
  occurredAt: Date;
  occurredAtSource: OccurredAtSource;
  receivedAt: Date;
  /** Who made the request. Audit information only; see the ownership convention above. Empty for OpenNebula. */
  context: RequestContext;
  /** In the order the ledger should apply them (bulk port creates yield several). */
  events: DomainEvent[];
  /**
   * True for a well-formed notification of a type nobody handles (e.g.
   * `router.update.start`, `instance.pause.start`); `events` is then empty. The
   * caller keeps the raw body and acknowledges.
   */
  ignored: boolean;
  /** Non-fatal oddities (unparseable timestamp, unknown state code, ...), for logs and the audit trail. */
  warnings: string[];
}

export type DomainEvent = InstanceEvent | PortEvent | FloatingIpEvent | RouterInterfaceEvent | RouterEvent | OneVmEvent;

// ---------------------------------------------------------------------------
// Nova instances (versioned `instance.*` and legacy `compute.instance.*`)

/**
 * Instance actions that are decoded; versioned and legacy event types map to
 * the same action (`instance.delete.start` and `compute.instance.delete.start`
 * are both `delete.start`). Other `instance.*` types are ignored.
 * `force_delete.*` exists only in the legacy format, and Nova emits it only
 * when the API deletes without the compute service (see `localDelete`).
 */
export const INSTANCE_ACTIONS = [
  'create.start',
  'create.end',
  'create.error',
  'update',
  'exists',
  'delete.start',
  'delete.end',
  'soft_delete.start',
  'soft_delete.end',
  'force_delete.start',
  'force_delete.end',
  'restore.start',
  'restore.end',
  'shutdown.start',
  'shutdown.end',
  'power_off.start',
  'power_off.end',
  'power_on.start',
  'power_on.end',
  'shelve.start',
  'shelve.end',
  'shelve_offload.start',
  'shelve_offload.end',
  'unshelve.start',
  'unshelve.end',
  'interface_attach.start',
  'interface_attach.end',
  'interface_attach.error',
  'interface_detach.start',
  'interface_detach.end',
] as const;

export type InstanceAction = (typeof INSTANCE_ACTIONS)[number];

/** The instance as the payload describes it at `occurredAt`. */
export interface InstanceSnapshot {
  /** Instance UUID. */
  id: string;
  /** Display name. */
  name?: string;
  /** Owning project (payload `tenant_id`). */
  project?: string;
  /** Owning user (payload `user_id`). */
  user?: string;
  /** Compute host; absent when never scheduled or shelved-offloaded. */
  host?: string;
  /** Hypervisor node name. */
  node?: string;
  /** Glance image id (empty for boot-from-volume, so absent). */
  image?: string;
  /** Flavor name (`m1.small`). */
  flavor?: string;
  createdAt?: Date;
  launchedAt?: Date;
  /** Set at soft delete and at delete.end. */
  deletedAt?: Date;
  terminatedAt?: Date;
  /** Nova vm_state: `active`, `building`, `soft-delete`, `deleted`, `shelved_offloaded`, ... */
  state?: string;
  /** Nova task_state (`deleting`, `soft-deleting`, ...); absent when idle. */
  taskState?: string;
  /** Nova power_state (versioned only): `running`, `shutdown`, `pending`, ... */
  powerState?: string;
}

/** An address an instance holds, as Nova's network-info cache lists it. */
export interface InstanceAddress {
  address: string;
  version: 4 | 6;
  mac?: string;
  /** Neutron port UUID (versioned payloads only). */
  portId?: string;
  /** Network label (`private`). */
  network?: string;
  /**
   * `fixed`: an address on the instance's port. `floating`: a floating IP
   * Nova's legacy payload lists under the fixed IP it maps to (versioned
   * payloads never carry floating IPs; Neutron's events are the source there).
   */
  kind: 'fixed' | 'floating';
  /** For `floating`: the fixed address it is mapped to. */
  fixedAddress?: string;
}

export interface InstanceEvent {
  type: 'instance';
  action: InstanceAction;
  format: 'versioned' | 'legacy';
  instance: InstanceSnapshot;
  /**
   * Who triggered it: versioned `action_initiator_user/project` (absent in
   * periodic tasks such as the soft-delete reclaim), legacy: the request context.
   */
  actor?: { user?: string; project?: string; requestId?: string };
  /**
   * Addresses the payload lists. `undefined`: the payload has no address list
   * at all (legacy delete.*, update, exists). Every listed address was held by
   * the instance at `occurredAt`, whatever `addressesAuthoritative` says.
   */
  addresses?: InstanceAddress[];
  /**
   * True only when `addresses` is the complete current set, so an address the
   * ledger has open for this instance and that is missing here was released.
   * False for create.start/create.error (nothing allocated yet, or already
   * rolled back), for shutdown.end, delete.end and force_delete.* (the list
   * is emptied by the teardown itself, so an empty list there is NOT evidence
   * of when the addresses went: close the instance's open intervals at
   * delete.end, or earlier from Neutron's port delete/unbind events), for any
   * payload with state `deleted`, and whenever `addresses` is undefined.
   */
  addressesAuthoritative: boolean;
  /**
   * The API deleted the instance without its compute service (service down):
   * the hypervisor was not contacted, so the RBD disks still exist and will be
   * removed later, silently, when that compute service comes back (unless it
   * runs with `running_deleted_instance_action` other than `reap`). Set on
   * delete.* / force_delete.* only, and only when the instance has a host.
   * Versioned: publisher `nova-api:`. Legacy: `force_delete.*` (only emitted on
   * that path), or a `compute.<h>` publisher whose host differs from the
   * instance's host (inferred: the API node publishes under its own name).
   */
  localDelete: boolean;
  /**
   * Never scheduled: no host and never launched, so there is nothing on any
   * disk to preserve. Set on delete.* / force_delete.* / create.error only.
   */
  notScheduled: boolean;
}

// ---------------------------------------------------------------------------
// Neutron ports

export interface PortFixedIp {
  address: string;
  subnetId?: string;
}

export interface PortSnapshot {
  id: string;
  /**
   * Instance UUID when `deviceOwner` is `compute:<az>`; router id for router
   * ports; floating IP id for `network:floatingip`. For a full port object an
   * absent value means Neutron sent an empty one: the port has no device
   * (e.g. unbound by Nova at instance delete).
   */
  deviceId?: string;
  deviceOwner?: string;
  networkId?: string;
  mac?: string;
  /** Owning project (`tenant_id`/`project_id` of the port). */
  project?: string;
  /** `binding:host_id`. */
  host?: string;
  fixedIps: PortFixedIp[];
  status?: string;
}

export interface PortEvent {
  type: 'port';
  /** `exists` comes from `neutron-usage-audit` and is for reconciliation. */
  action: 'create.end' | 'update.end' | 'delete.end' | 'exists';
  port: PortSnapshot;
  /**
   * delete.end from Neutron before 9.0.0 (Newton) carries only `port_id`:
   * `port` then holds just the id and `fixedIps` is [] meaning "not told".
   * Either way, a port.delete.end means: every address of the port is released
   * and every floating IP associated with the port is disassociated, because
   * Neutron sends no floatingip notification for that implicit disassociation.
   */
  idOnly: boolean;
}

// ---------------------------------------------------------------------------
// Neutron floating IPs

export interface FloatingIpSnapshot {
  id: string;
  /** The public address. */
  address?: string;
  /** External network. */
  networkId?: string;
  /**
   * The associated port. `string`: associated with that port. `null`: the
   * payload says it is not associated. `undefined`: the payload does not say
   * (id-only delete.end, or an update request that does not touch it).
   * A move from port A to port B is one update.end naming B only: the
   * previous holder must come from the ledger's own state.
   */
  portId?: string | null;
  /** The fixed address the floating IP maps to, when associated. */
  fixedAddress?: string | null;
  routerId?: string | null;
  /** Owning project of the floating IP. */
  project?: string;
  /** `port_details.device_id` (fip-port-details extension): the instance behind the port. */
  instanceId?: string;
  status?: string;
}

export interface FloatingIpEvent {
  type: 'floatingip';
  /**
   * `update.start` carries the client's request (plus the id), not the result:
   * use it as a hint only; update.end is the fact. An update.end whose `portId`
   * equals the ledger's current association (a description change) must not
   * open a new interval.
   */
  action: 'create.end' | 'update.start' | 'update.end' | 'delete.end' | 'exists';
  floatingIp: FloatingIpSnapshot;
  /** delete.end from Neutron before 9.0.0 carries only `floatingip_id`. */
  idOnly: boolean;
}

// ---------------------------------------------------------------------------
// Neutron router interfaces

export interface RouterInterfaceEvent {
  type: 'router_interface';
  action: 'create' | 'delete';
  routerId: string;
  portId: string;
  subnetId?: string;
  networkId?: string;
  project?: string;
}

// ---------------------------------------------------------------------------
// Neutron routers (their gateway addresses are the SNAT addresses of every
// instance behind them that has no floating IP)

export interface RouterSnapshot {
  id: string;
  name?: string;
  /** Owning project. */
  project?: string;
  /** External network of the gateway. */
  gatewayNetworkId?: string;
  /**
   * `external_gateway_info.external_fixed_ips` addresses. An array: the
   * gateway holds exactly these now. `null`: the payload says there is no
   * gateway. `undefined`: the payload does not say (id-only delete.end).
   */
  gatewayIps?: string[] | null;
}

export interface RouterEvent {
  type: 'router';
  /** A delete ends every gateway address of the router. */
  action: 'create.end' | 'update.end' | 'delete.end';
  router: RouterSnapshot;
  idOnly: boolean;
}

// ---------------------------------------------------------------------------
// OpenNebula VMs

export interface OneCodeName {
  code: number;
  /** Upper-case oned name; undefined for a code newer than our tables (a warning is recorded). */
  name?: string;
}

export interface OneNic {
  nicId: number;
  ip?: string;
  ip6?: string;
  ip6Global?: string;
  ip6Ula?: string;
  mac?: string;
  /** Virtual network name. */
  network?: string;
  networkId?: number;
  /** Host-side tap device (`one-<vm>-<nic>`). */
  target?: string;
  /** True for a `NIC_ALIAS` (an extra address on a parent NIC). */
  alias: boolean;
  /** For an alias: the parent NIC's `NIC_ID`, when given. */
  parentNicId?: number;
}

export interface OneDisk {
  diskId: number;
  /** Absent for volatile disks. */
  imageId?: number;
  image?: string;
  /** `<pool>/one-<IMAGE_ID>` for Ceph images. */
  source?: string;
  poolName?: string;
  /** CLONE=YES: a per-VM copy `one-<img>-<vm>-<disk>` that the TM deletes with the VM. */
  clone?: boolean;
  /** PERSISTENT=YES (or SAVE=YES): the VM uses the image itself, which survives the VM. */
  persistent?: boolean;
  tmMad?: string;
  datastoreId?: number;
  /** CEPH_TRASH=YES: the TM moves the disk to the RBD trash instead of removing it. */
  cephTrash?: boolean;
  /** Size in MiB. */
  size?: number;
  /** `TYPE` (`RBD`, `FILE`, `fs`, ...). */
  type?: string;
}

export interface OneHistoryAction {
  /** `HISTORY/ACTION` code of the last history record (27 terminate, 28 terminate-hard, 13 delete, ...). */
  code: number;
  /** oned's name (`terminate-hard`); undefined for an unknown code. */
  name?: string;
  /** Who asked for it; undefined when oned itself acted (-1). */
  uid?: number;
  gid?: number;
  requestId?: number;
}

export interface OneVm {
  id: number;
  name: string;
  /** Owner. */
  uid: number;
  uname: string;
  /** Owning group. */
  gid: number;
  gname: string;
  state: OneCodeName;
  lcmState: OneCodeName;
  prevState?: OneCodeName;
  prevLcmState?: OneCodeName;
  /** Creation time. */
  stime: Date;
  /** End time; undefined while the VM is alive (oned writes 0). */
  etime?: Date;
  /** Hypervisor id (libvirt domain UUID on KVM). */
  deployId?: string;
  /** Current host: last history record's HOSTNAME, else the hook's REMOTE_HOST. */
  host?: string;
  /** Every NIC and NIC alias in the VM template, i.e. the addresses held at `occurredAt`. */
  nics: OneNic[];
  disks: OneDisk[];
  historyAction?: OneHistoryAction;
  /**
   * SEQ of the last history record. oned starts a new record for every hot
   * NIC attach, detach and update (DispatchManager::close_cp_history), so it
   * orders the VM's documents where their one-second times cannot.
   */
  historySeq?: number;
}

export interface OneHookInfo {
  type: 'STATE';
  /** The state names the hook message announces (they match `vm.state`/`vm.lcmState`). */
  state?: string;
  lcmState?: string;
  resourceId?: number;
  remoteHost?: string;
  serviceId?: number;
}

/**
 * The full VM document at a state transition. Every state event carries the
 * whole VM, so the ledger can treat each one as a snapshot: NICs listed are
 * held now (NICs that disappeared were detached, HOTPLUG_NIC marks that), and
 * DONE (state 6) closes everything. Disk deletion happens during ACTIVE/EPILOG
 * (lcm 11) and ACTIVE/CLEANUP_DELETE (lcm 23), before DONE; ACTIVE/SHUTDOWN
 * (lcm 12) is the last warning before it.
 */
export interface OneVmEvent {
  type: 'one_vm';
  vm: OneVm;
  /** Present when the VM came wrapped in a HOOK_MESSAGE. */
  hook?: OneHookInfo;
}
