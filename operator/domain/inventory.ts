// What a cloud's API lists right now, in the domain's words, and the port the
// reconciliation reads it through. A listing is paged (bounded memory) and
// complete or failed: an incomplete listing must never be taken as "these
// resources are gone". Pure types; imports nothing of ours.

/** A Nova server as `GET /servers/detail?all_tenants=1` shows it. */
export interface ListedServer {
  id: string;
  name?: string | undefined;
  project?: string | undefined;
  user?: string | undefined;
  host?: string | undefined;
  /** Nova vm_state (`active`, `soft-delete`, ...), else the API status lower-cased. */
  state?: string | undefined;
  createdAt?: Date | undefined;
  addresses: Array<{ address: string; kind: 'fixed' | 'floating'; mac?: string | undefined; network?: string | undefined }>;
}

/** A Neutron port (`GET /v2.0/ports`). */
export interface ListedPort {
  id: string;
  deviceId?: string | undefined;
  deviceOwner?: string | undefined;
  networkId?: string | undefined;
  mac?: string | undefined;
  project?: string | undefined;
  fixedIps: string[];
  createdAt?: Date | undefined;
}

/** A Neutron floating IP (`GET /v2.0/floatingips`). */
export interface ListedFloatingIp {
  id: string;
  address: string;
  portId: string | null;
  networkId?: string | undefined;
  project?: string | undefined;
  /** `port_details.device_id`, when the API gives it. */
  instanceId?: string | undefined;
  createdAt?: Date | undefined;
}

/** A Neutron router (`GET /v2.0/routers`) with its gateway addresses. */
export interface ListedRouter {
  id: string;
  name?: string | undefined;
  project?: string | undefined;
  gatewayNetworkId?: string | undefined;
  gatewayIps: string[];
  createdAt?: Date | undefined;
}

/** An OpenNebula VM from `one.vmpool.info`. */
export interface ListedOneVm {
  id: number;
  name?: string | undefined;
  user?: string | undefined;
  group?: string | undefined;
  /** `ACTIVE/RUNNING`, `POWEROFF`, ... */
  state: string;
  /** DONE (6): the VM no longer holds anything. */
  done: boolean;
  host?: string | undefined;
  createdAt?: Date | undefined;
  nics: Array<{ nicId: number; addresses: string[]; mac?: string | undefined; network?: string | undefined; target?: string | undefined }>;
}

export type Listing = 'servers' | 'ports' | 'floatingips' | 'routers' | 'vms';

/** Each method yields pages until the listing is complete, or throws. */
export interface OpenStackInventory {
  readonly type: 'openstack';
  servers(): AsyncIterable<ListedServer[]>;
  ports(): AsyncIterable<ListedPort[]>;
  floatingIps(): AsyncIterable<ListedFloatingIp[]>;
  routers(): AsyncIterable<ListedRouter[]>;
}

export interface OpenNebulaInventory {
  readonly type: 'opennebula';
  vms(): AsyncIterable<ListedOneVm[]>;
}

/** The CloudApi port of reconciliation. */
export type CloudInventory = OpenStackInventory | OpenNebulaInventory;

/** Kinds of fact a pass can add or close (drift is counted per kind). */
export const DRIFT_KINDS = ['instance', 'fixed', 'floating', 'nic', 'router-gateway'] as const;
export type DriftKind = (typeof DRIFT_KINDS)[number];

export type Drift = Record<DriftKind, { added: number; closed: number }>;

export function emptyDrift(): Drift {
  return Object.fromEntries(DRIFT_KINDS.map((k) => [k, { added: 0, closed: 0 }])) as Drift;
}

export function driftTotal(d: Drift): number {
  return DRIFT_KINDS.reduce((n, k) => n + d[k].added + d[k].closed, 0);
}
