// The ledger's tables as Kysely sees them. Times are epoch milliseconds in
// bigint columns on both engines, so comparisons and indexes behave alike.
import type { ColumnType, Generated, Selectable } from 'kysely';
import type { INSTANCE_CARRIED_COLUMNS } from './trace-index.ts';

/** Every notification as received: the evidence, unique per (cloud, message id). */
export interface NotificationsTable {
  id: Generated<number>;
  cloud: string;
  source: string;
  message_id: string;
  /** 'message-id' when the source gave one, 'content-hash' when the id is a SHA-256 of the body. */
  id_kind: string;
  event_type: string;
  publisher: string | null;
  occurred_at: number;
  received_at: number;
  /** 'applied' or 'ignored' (well-formed but of no interest). */
  outcome: string;
  /** SHA-256 (hex) of the body as received: it outlives the body's own retention. Null only for rows from before migration 0012 whose body is still kept. */
  body_sha256: string | null;
}

/**
 * The bodies as received, apart from the rows that name them: the bulk of the
 * ledger, with a retention of their own (ledger/body-retention.ts). On
 * PostgreSQL partitioned by month of receipt, so expiring a month is dropping
 * a partition.
 */
export interface NotificationBodiesTable {
  notification_id: number;
  received_at: number;
  body: string;
}

export interface InstancesTable {
  cloud: string;
  instance_id: string;
  name: string | null;
  project: string | null;
  user_id: string | null;
  host: string | null;
  image: string | null;
  flavor: string | null;
  state: string | null;
  created_at: number | null;
  deleted_at: number | null;
  deleted_by: string | null;
  first_seen_at: number;
  /** Event time of the newest event applied, so a late event cannot roll fields back. */
  last_event_at: number;
  /** Earliest reported end of life (delete.end, force_delete.end, state deleted, OpenNebula DONE): it holds nothing after. */
  ended_at: Generated<number | null>;
  /** The owner's names beside the ids, where the cloud gives them. */
  user_name: Generated<string | null>;
  project_name: Generated<string | null>;
  /** Where each name came from (NameSource: keystone, notification, opennebula) and when it was read (ms); null before migration 0016. */
  user_name_source: Generated<string | null>;
  user_name_at: Generated<number | null>;
  project_name_source: Generated<string | null>;
  project_name_at: Generated<number | null>;
  /** The API stopped listing it: gone somewhere in [gone_after, gone_by], no notification said when. */
  gone_after: Generated<number | null>;
  gone_by: Generated<number | null>;
}

/**
 * A complete list reported at one time: an instance's addresses (owner
 * `instance:ID`, members `kind|address`), a port's fixed IPs (owner
 * `port:ID`, members addresses) or a router's gateway addresses (owner
 * `router:ID`, members addresses; a deletion is an empty list). A slot of that owner whose member is missing
 * was released then.
 */
export interface SlotSnapshotsTable {
  id: Generated<number>;
  cloud: string;
  owner: string;
  at: number;
  message_id: string;
  /** JSON array of strings. */
  members: string;
  /** Order among facts of the same time (see address_changes.ord). */
  ord: Generated<number>;
}

/**
 * Which slots each holder has facts in (address_changes), one row per pair:
 * how a derivation finds every slot of an instance whose end or address
 * list changed, or the floating IPs of a port whose owner changed
 * (derive.ts), without reading every fact the holder ever had. Facts without
 * a holder (`release_any`, holder_key '') have no pair. Kept by the writers
 * of facts (holder-slots.ts).
 */
export interface HolderSlotsTable {
  cloud: string;
  holder_key: string;
  slot: string;
}

/**
 * A batch's facts recorded and not yet derived into intervals
 * (derive-pending.ts): what it touched, as JSON, deleted when derived.
 */
export interface DerivePendingTable {
  id: Generated<number>;
  cloud: string;
  /** When the batch committed (epoch ms): the age of the oldest row is how far the intervals lag. */
  recorded_at: number;
  touched: string;
}

/**
 * Copies of the instance's columns the trace shows (migration 0018,
 * instance-copies.ts), kept by triggers: read, never written by the code.
 * Null where the ledger has no row for the instance.
 */
type InstanceCopies = {
  [C in (typeof INSTANCE_CARRIED_COLUMNS)[number] as `instance_${C}`]: ColumnType<Selectable<InstancesTable>[C] | null, never, never>;
};

/** Who held an address over [valid_from, valid_to); valid_to null = still held. */
export interface AddressIntervalsTable extends InstanceCopies {
  id: Generated<number>;
  cloud: string;
  /** The slot the interval is derived from (see address_changes). */
  slot: string;
  address: string;
  kind: string;
  network: string | null;
  port: string | null;
  mac: string | null;
  instance_id: string | null;
  project: string | null;
  valid_from: number;
  valid_to: number | null;
  opened_by: string | null;
  closed_by: string | null;
  /** Observed start: held for certain only from here; it began somewhere in [valid_from, from_certain]. Null: exact. */
  from_certain: Generated<number | null>;
  /** Observed end: held for certain only until here; it ended somewhere in [to_certain, valid_to]. Null: exact. */
  to_certain: Generated<number | null>;
}

/** Reported changes of who holds a slot; address_intervals are derived from these. */
export interface AddressChangesTable {
  id: Generated<number>;
  cloud: string;
  slot: string;
  at: number;
  op: string;
  holder_key: string;
  address: string;
  kind: string;
  instance_id: string | null;
  port: string | null;
  mac: string | null;
  network: string | null;
  project: string | null;
  message_id: string | null;
  /** Observed facts (op seen/unseen, from an API listing): the change happened after this time; null when not known. */
  since: Generated<number | null>;
  /**
   * Order among facts of the same time, before anything else breaks the tie:
   * for OpenNebula the VM's own sequence (history record, then hotplug before
   * the state that ends it), since its event times are whole seconds. 0 elsewhere.
   */
  ord: Generated<number>;
}

/** Which notifications concern which instance: an instance's timeline without scanning bodies. */
export interface InstanceEventsTable {
  cloud: string;
  instance_id: string;
  message_id: string;
  at: number;
  event_type: string;
  action: string;
}

/** Neutron ports as last seen: the link from a floating IP's port to an instance. */
export interface PortsTable {
  cloud: string;
  port_id: string;
  device_id: string | null;
  device_owner: string | null;
  network: string | null;
  mac: string | null;
  project: string | null;
  deleted_at: number | null;
  last_event_at: number;
}

/** Neutron routers as last seen: whose SNAT (gateway) addresses are whose. */
export interface RoutersTable {
  cloud: string;
  router_id: string;
  name: string | null;
  project: string | null;
  deleted_at: number | null;
  last_event_at: number;
}

/** One preserved disk: where it came from, where it is, and where its capture stands. */
export interface QuarantinesTable {
  id: string;
  cloud: string;
  instance_id: string;
  /** Which disk of the instance: disk, disk.local, disk.config, volume, one-disk-0 ... */
  disk: string;
  mode: string;
  policy: string | null;
  state: string;
  failure: string | null;
  source_pool: string;
  source_namespace: string | null;
  source_image: string;
  /** RBD image id of the source: a capture is unique per (cloud, source image id). */
  source_image_id: string;
  /** The source as we hold it until flatten or purge: in the trash (anchor_trash_id) or live. */
  anchor_image: string | null;
  anchor_trash_id: string | null;
  snapshot: string;
  location_pool: string;
  location_namespace: string | null;
  location_image: string;
  bytes: number | null;
  flattened: number;
  planned_at: number;
  captured_at: number | null;
  expires_at: number | null;
  purged_at: number | null;
  digest: string | null;
  digest_at: number | null;
  provenance: string;
  updated_at: number;
  /** The retention decided when the capture was planned; null only for rows older than capture intents. */
  retention_ms: number | null;
  intent_id: string | null;
  /** Who runs the current step, and until when that claim holds (a crashed owner's claim lapses). */
  owner: string | null;
  claimed_until: number | null;
  /** 1 when the policy wanted the quarantine isolated (copied out of the cloud's pool), frozen at planning. */
  isolate: Generated<number>;
  /** digesting → isolating → isolated, or digesting → not-isolated; null before capture (and for rows older than isolation). */
  isolation: Generated<string | null>;
  isolated_at: Generated<number | null>;
}

/**
 * Work the capture side owes: recorded in the same transaction as what caused
 * it (a delete warning, a trash entry, an instance gone), with the policy's
 * decision at that moment. open → done | cancelled.
 */
export interface CaptureIntentsTable {
  id: string;
  cloud: string;
  /** live (delete warning), soft (soft delete), trash (trash entry), orphan (instance gone). */
  kind: string;
  /** Unique per (cloud, kind): the instance id, or pool/trash id for a trash entry. */
  subject: string;
  instance_id: string;
  message_id: string | null;
  announced_at: number;
  /** JSON of the policy decision (see capture/lifecycle.ts). */
  decision: string;
  state: string;
  outcome: string | null;
  created_at: number;
  updated_at: number;
}

/**
 * A restore or an export of a quarantine, run as a task outside any
 * reconcile: pending → running → succeeded | failed. The running owner renews
 * claimed_until while it reads; a lapsed claim means its process died, and the
 * task is failed (and audited) as interrupted.
 */
export interface TransfersTable {
  id: string;
  /** 'restore' (a new RBD image) or 'export' (a file). */
  kind: string;
  quarantine_id: string;
  cloud: string;
  /** pool[/namespace]/image for a restore, the file's path for an export. */
  target: string;
  /** JSON of how to reach the target (see capture/transfers.ts). */
  spec: string;
  actor: string;
  reason: string | null;
  case_id: string | null;
  /** Who asked, e.g. kubernetes:NS/NAME or cli. */
  requested_by: string;
  state: string;
  owner: string | null;
  claimed_until: number | null;
  bytes: number;
  total: number | null;
  sha256: string | null;
  /** 1 when the read matches the recorded digest, 0 when it differs, null when none was recorded. */
  matches: number | null;
  failure: string | null;
  error: string | null;
  created_at: number;
  started_at: number | null;
  completed_at: number | null;
  updated_at: number;
}

/** A legal hold: matching quarantines never expire while it stands. */
export interface HoldsTable {
  id: string;
  name: string;
  case_id: string | null;
  reason: string | null;
  selector: string;
  created_at: number;
  until: number | null;
  released_at: number | null;
  created_by: string | null;
}

/** Append-only, hash-chained: each row carries the hash of the previous one. */
export interface AuditTable {
  seq: number;
  at: number;
  actor: string;
  action: string;
  subject: string | null;
  details: string;
  prev_hash: string;
  /** SHA-256 of the row while key_id is null; HMAC-SHA256 with that audit key otherwise. */
  hash: string;
  /** Fingerprint of the audit key that signed the row; null in the unkeyed era before migration 0007. */
  key_id: string | null;
}

/** An investigation opened from log lines (JSON arrays of the lines read and of the unreadable ones). */
export interface CasesTable {
  name: string;
  reason: string | null;
  created_at: number;
  created_by: string;
  /** The legal hold placed on the case's instances, if any matched. */
  hold: string | null;
  lines: string;
  unreadable: string;
}

/** One reconciliation pass over one listing of a cloud's API, and what it had to add or close. */
export interface ReconcilePassesTable {
  id: Generated<number>;
  cloud: string;
  /** servers, ports, floatingips, routers, vms */
  listing: string;
  /** When the listing was started (observed facts are bounded by it). */
  started_at: number;
  finished_at: number;
  /** ok, or failed (nothing recorded from an incomplete listing closes anything). */
  outcome: string;
  error: string | null;
  /** JSON object: kind -> { added, closed }. */
  drift: string;
}

/** User and project names read from a cloud's identity API (Keystone), cached with the time they were read. */
export interface IdentityNamesTable {
  cloud: string;
  /** user or project */
  kind: string;
  id: string;
  /** null: the API answered that it does not know the id. */
  name: string | null;
  read_at: number;
}

export interface LedgerSchema {
  identity_names: IdentityNamesTable;
  reconcile_passes: ReconcilePassesTable;
  cases: CasesTable;
  quarantines: QuarantinesTable;
  holds: HoldsTable;
  audit: AuditTable;
  notifications: NotificationsTable;
  notification_bodies: NotificationBodiesTable;
  instances: InstancesTable;
  address_intervals: AddressIntervalsTable;
  address_changes: AddressChangesTable;
  ports: PortsTable;
  instance_events: InstanceEventsTable;
  capture_intents: CaptureIntentsTable;
  transfers: TransfersTable;
  slot_snapshots: SlotSnapshotsTable;
  routers: RoutersTable;
  derive_pending: DerivePendingTable;
  holder_slots: HolderSlotsTable;
}
