// The Cloud resource: one source of VMs with its AMQP feed (and, in later
// fields, its Ceph cluster and API). Defined once here; the CRD is generated
// from it and standalone manifests are validated by it.
import { z } from 'zod';
import { Conditions, Count, ObjectMeta, SecretKeyRef, Timestamp } from './common.ts';

export const ExchangeSpec = z.object({
  name: z.string().min(1).max(255),
  durable: z.boolean().default(false).describe('Used only if the exchange does not exist yet: the flags its publisher would declare it with.'),
  autoDelete: z.boolean().default(false),
});

export const AmqpSpec = z.object({
  urlSecretRef: SecretKeyRef,
  exchanges: z.array(ExchangeSpec).max(32).optional().describe('Defaults by cloud type: nova, neutron, openstack (OpenStack); opennebula (OpenNebula).'),
  topics: z.array(z.string().min(1).max(255)).min(1).max(16).default(['notifications', 'versioned_notifications']),
  queue: z.string().min(1).max(255).optional().describe("Our own durable queue; never the cloud's `notifications.info`, which Ceilometer reads."),
  prefetch: z.number().int().min(1).max(10_000).optional().describe('Unacknowledged deliveries the broker sends ahead. Half of them are applied to the ledger per transaction, so that the next batch arrives and is decoded while one commits; larger batches cost less per notification. Each is held in memory until its batch commits: lower it where messages are large (OpenNebula VM documents of tens of KiB). Default: 1600 with a SQLite ledger, 3200 with PostgreSQL (a SQLite ledger keeps its page cache and checkpoint thread in the operator\'s own memory).'),
  maxBodyBytes: z.number().int().min(1024).max(512 * 1024 * 1024).default(4 * 1024 * 1024).describe('Larger notification bodies are dead-lettered (reason too-large) without being read.'),
  alternateExchange: z.string().max(255).default('quarantine-operator.unroutable').describe("Durable exchange our queue is bound to, for a broker policy to name as `alternate-exchange` of the cloud's exchanges, so that nothing published while our bindings are gone (a broker restart) is lost; '' = none. See docs/cloud-operators.md."),
  maxEventAgeDays: z.number().int().min(1).max(36_500).default(9125).describe('An event time more than this many days before the receive time is implausible (dead-lettered, reason implausible-time). Raise it to replay an older archive.'),
  maxEventLeadSeconds: z.number().int().min(0).max(31_536_000).default(86_400).describe("An event time more than this many seconds after the receive time is implausible (the publisher's clock is wrong)."),
  maxApplyAttempts: z.number().int().min(1).max(1000).default(5).describe('A notification whose apply fails this many times while the ledger answers is dead-lettered (reason apply-failed).'),
});

const PoolName = z.string().min(1).max(128).regex(/^[A-Za-z0-9_.][A-Za-z0-9_.-]*$/, 'must be a pool name');

export const CephSpec = z.object({
  monitors: z.array(z.string().min(1).max(255)).min(1).max(16).optional().describe('`mon_host` entries; alternatively `configFile` (standalone, or a mounted ceph.conf).'),
  configFile: z.string().min(1).max(4096).optional(),
  driver: z.enum(['librbd', 'cli']).default('librbd').describe('How the operator reaches Ceph: `librbd` in-process on one open connection (needs librbd1 on the host or in the image), or the `rbd` CLI, one process per call. When librbd cannot be loaded the CephDriver condition says so and the CLI is used.'),
  user: z.string().min(1).max(128).default('quarantine-operator').describe('cephx id of the operator (client.<user>).'),
  keyringSecretRef: SecretKeyRef.optional().describe('The cephx key of that user; without it the keyring named by configFile is used.'),
  watchedPools: z.array(PoolName).min(1).max(32).default(['vms', 'volumes']).describe("The cloud's pools whose deleted disks are captured (Nova `images_rbd_pool`, Cinder `rbd_pool`, OpenNebula `POOL_NAME`)."),
  /** Where quarantines live: a pool (and optionally an RBD namespace) the cloud's cephx users cannot write. */
  quarantine: z.object({ pool: PoolName, namespace: z.string().min(1).max(128).optional() }),
  trash: z.object({
    arm: z.boolean().default(false).describe('Set `rbd_move_to_trash_on_remove` on the watched pools ourselves; otherwise only report whether it is on.'),
    expireSeconds: z.number().int().min(60).max(31_536_000).default(86_400).describe('Deferment given to trashed images: the time the operator has to adopt them.'),
    scanIntervalSeconds: z.number().int().min(1).max(3600).default(5),
  }).default({ arm: false, expireSeconds: 86_400, scanIntervalSeconds: 5 }),
  isolation: z.object({
    concurrency: z.number().int().min(1).max(32).default(2).describe("Quarantines digested and copied out of the cloud's pool at once (per replica). Each one reads the disk's allocated data for its digest while its clone is copied into the quarantine pool beside it."),
    bandwidthMiBps: z.number().positive().max(100_000).optional().describe("MiB per second that isolation may copy out of the cloud's pool, all isolations of this Cloud together (per replica): the clone's allocated data is read and written into the quarantine pool at that pace, then the clone is flattened, which only detaches it. Absent: a plain flatten, as fast as the cluster allows (Ceph's per-image QoS, rbd_qos_bps_limit, does not throttle a flatten). The capture digest is not paced: it is the witness of the moment of capture."),
  }).default({ concurrency: 2 }),
});

export const ApiSpec = z.object({
  authUrl: z.string().url().describe('Keystone v3, e.g. https://keystone.example.org:5000/v3'),
  applicationCredentialIdSecretRef: SecretKeyRef,
  applicationCredentialSecretRef: SecretKeyRef,
  region: z.string().max(255).optional(),
  interface: z.enum(['public', 'internal', 'admin']).default('public'),
  caSecretRef: SecretKeyRef.optional().describe("A CA bundle (PEM) for the API's TLS certificates."),
  names: z.object({
    refreshIntervalSeconds: z.number().int().min(10).max(86_400).default(300).describe('Between the passes (leader only) that read from Keystone the user and project names the notifications lack, a few at a time.'),
    cacheTtlSeconds: z.number().int().min(60).max(31_536_000).default(86_400).describe('A name read from Keystone is read again after this long, so a rename shows within it.'),
  }).default({ refreshIntervalSeconds: 300, cacheTtlSeconds: 86_400 }).describe("Users' and projects' names read from Keystone (docs/cloud-operators.md, \"Names beside ids\")."),
});

export const XmlRpcSpec = z.object({
  url: z.string().url().describe("OpenNebula's XML-RPC endpoint, e.g. http://one.example.org:2633/RPC2"),
  sessionSecretRef: SecretKeyRef.describe('`user:password` (or `user:token`) of a user that may list every VM (one.vmpool.info).'),
});

export const ReconcileSpec = z.object({
  enabled: z.boolean().default(true).describe("List the cloud's API now and then (leader only) and record what notifications missed, with honest time bounds. Needs `api` (OpenStack) or `xmlrpc` (OpenNebula)."),
  intervalSeconds: z.number().int().min(10).max(86_400).default(600).describe('Between the end of a pass and the start of the next: the width of the uncertainty window of what a pass finds.'),
  timeoutSeconds: z.number().int().min(1).max(600).default(30).describe('Per API call; a call is tried up to three times.'),
  pageSize: z.number().int().min(8).max(10_000).default(500),
});

export const CloudSpec = z.object({
  type: z.enum(['openstack', 'opennebula']),
  amqp: AmqpSpec.describe('Where the cloud publishes its notifications, and the queue the operator consumes them from.'),
  ceph: CephSpec.optional(),
  api: ApiSpec.optional(),
  xmlrpc: XmlRpcSpec.optional(),
  reconcile: ReconcileSpec.default({ enabled: true, intervalSeconds: 600, timeoutSeconds: 30, pageSize: 500 }),
});

/** Written by the operator only (the status subresource); standalone manifests leave it out. */
export const CloudStatus = z.object({
  observedGeneration: z.number().int().min(0).optional(),
  conditions: Conditions.optional().describe('Connected (AMQP and Ceph reachable), TrashArmed (rbd_move_to_trash_on_remove on every watched pool), Consuming, CephDriver (False when librbd was asked for and the rbd CLI is used instead), Reconciled (False when the last pass over the API found facts the notifications missed, or a listing failed).'),
  lastEventAt: Timestamp.optional().describe('When the last notification from this cloud arrived.'),
  reconciliation: z.object({
    lastPassAt: Timestamp.optional().describe('When the last pass over the API started.'),
    drift: z.record(z.string(), z.object({ added: Count, closed: Count })).optional().describe('Per kind (instance, fixed, floating, nic, router-gateway): facts the last pass had to add or close.'),
  }).optional(),
  counts: z.object({
    notifications: Count.optional(),
    deadLettered: Count.optional(),
    instances: Count.optional(),
    quarantines: Count.optional(),
  }).optional(),
});
export type CloudStatus = z.infer<typeof CloudStatus>;

export const Cloud = z.object({
  apiVersion: z.literal('quarantine.forensics.dev/v1alpha1'),
  kind: z.literal('Cloud'),
  metadata: ObjectMeta,
  spec: CloudSpec,
  status: CloudStatus.optional(),
});
export type Cloud = z.infer<typeof Cloud>;

export function defaultExchanges(type: 'openstack' | 'opennebula'): Array<z.infer<typeof ExchangeSpec>> {
  if (type === 'opennebula') return [{ name: 'opennebula', durable: true, autoDelete: false }];
  // oslo.messaging declares non-durable unless amqp_durable_queues is set.
  return ['nova', 'neutron', 'openstack'].map((name) => ({ name, durable: false, autoDelete: false }));
}

export function queueName(cloud: Cloud): string {
  return cloud.spec.amqp.queue ?? `quarantine-operator.${cloud.metadata.name}`;
}
