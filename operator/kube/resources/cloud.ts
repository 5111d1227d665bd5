// The Cloud resource: one source of VMs with its AMQP feed (and, in later
// fields, its Ceph cluster and API). Defined once here; the CRD is generated
// from it and standalone manifests are validated by it.
import { z } from 'zod';
import { Conditions, Count, ObjectMeta, SecretKeyRef, Timestamp } from './common.ts';

export const ExchangeSpec = z.object({
  name: z.string().min(1).max(255),
  /** Used only if the exchange does not exist yet: the flags its publisher would declare it with. */
  durable: z.boolean().default(false),
  autoDelete: z.boolean().default(false),
});

export const AmqpSpec = z.object({
  urlSecretRef: SecretKeyRef,
  /** Defaults by cloud type: nova, neutron, openstack (OpenStack); opennebula (OpenNebula). */
  exchanges: z.array(ExchangeSpec).max(32).optional(),
  topics: z.array(z.string().min(1).max(255)).min(1).max(16).default(['notifications', 'versioned_notifications']),
  /** Our own durable queue; never the cloud's `notifications.info`, which Ceilometer reads. */
  queue: z.string().min(1).max(255).optional(),
  prefetch: z.number().int().min(1).max(10_000).default(200),
});

const PoolName = z.string().min(1).max(128).regex(/^[A-Za-z0-9_.][A-Za-z0-9_.-]*$/, 'must be a pool name');

export const CephSpec = z.object({
  /** `mon_host` entries; alternatively `configFile` (standalone, or a mounted ceph.conf). */
  monitors: z.array(z.string().min(1).max(255)).min(1).max(16).optional(),
  configFile: z.string().min(1).max(4096).optional(),
  /** cephx id of the operator (client.<user>). */
  user: z.string().min(1).max(128).default('quarantine-operator'),
  /** The cephx key of that user; without it the keyring named by configFile is used. */
  keyringSecretRef: SecretKeyRef.optional(),
  /** The cloud's pools whose deleted disks are captured (Nova `images_rbd_pool`, Cinder `rbd_pool`, OpenNebula `POOL_NAME`). */
  watchedPools: z.array(PoolName).min(1).max(32).default(['vms', 'volumes']),
  /** Where quarantines live: a pool (and optionally an RBD namespace) the cloud's cephx users cannot write. */
  quarantine: z.object({ pool: PoolName, namespace: z.string().min(1).max(128).optional() }),
  trash: z.object({
    /** Set `rbd_move_to_trash_on_remove` on the watched pools ourselves; otherwise only report whether it is on. */
    arm: z.boolean().default(false),
    /** Deferment given to trashed images: the time the operator has to adopt them. */
    expireSeconds: z.number().int().min(60).max(31_536_000).default(86_400),
    scanIntervalSeconds: z.number().int().min(1).max(3600).default(5),
  }).default({ arm: false, expireSeconds: 86_400, scanIntervalSeconds: 5 }),
});

export const ApiSpec = z.object({
  /** Keystone v3, e.g. https://keystone.example.org:5000/v3 */
  authUrl: z.string().url(),
  applicationCredentialIdSecretRef: SecretKeyRef,
  applicationCredentialSecretRef: SecretKeyRef,
  region: z.string().max(255).optional(),
  interface: z.enum(['public', 'internal', 'admin']).default('public'),
  /** A CA bundle (PEM) for the API's TLS certificates. */
  caSecretRef: SecretKeyRef.optional(),
});

export const CloudSpec = z.object({
  type: z.enum(['openstack', 'opennebula']),
  amqp: AmqpSpec,
  ceph: CephSpec.optional(),
  api: ApiSpec.optional(),
});

/** Written by the operator only (the status subresource); standalone manifests leave it out. */
export const CloudStatus = z.object({
  observedGeneration: z.number().int().min(0).optional(),
  /** Connected (AMQP and Ceph reachable), TrashArmed (rbd_move_to_trash_on_remove on every watched pool), Consuming. */
  conditions: Conditions.optional(),
  /** When the last notification from this cloud arrived. */
  lastEventAt: Timestamp.optional(),
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
