// The Cloud resource: one source of VMs with its AMQP feed (and, in later
// fields, its Ceph cluster and API). Defined once here; the CRD is generated
// from it and standalone manifests are validated by it.
import { z } from 'zod';
import { ObjectMeta, SecretKeyRef } from './common.ts';

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

export const CloudSpec = z.object({
  type: z.enum(['openstack', 'opennebula']),
  amqp: AmqpSpec,
});

export const Cloud = z.object({
  apiVersion: z.literal('quarantine.forensics.dev/v1alpha1'),
  kind: z.literal('Cloud'),
  metadata: ObjectMeta,
  spec: CloudSpec,
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
