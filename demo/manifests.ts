// The files a site would write to run the operator standalone, filled in for
// the demo's own RabbitMQ vhost and Ceph cluster. They follow
// examples/standalone/, trimmed to what the story uses, and stay in the demo
// directory so that `quarantine run --manifests` and the investigator commands
// can be pointed at them afterwards.
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface DemoCloud {
  amqpUrl: string;
  cephConf: string;
  operatorId: string;
  quarantinePool: string;
}

export const CLOUD = 'lab';
export const POLICY = 'default';
export const HOLD = { namespace: 'security', name: 'cert-demo-001', caseId: 'CERT-DEMO-001', user: 'bob' };
export const RETENTION = '30d';

// JSON strings are valid YAML scalars, whatever the path contains.
const q = (s: string) => JSON.stringify(s);

function cloudYaml(c: DemoCloud): string {
  return `# The simulated OpenStack cloud: Nova and Neutron publish to the demo's
# RabbitMQ vhost, Nova's disks live in the pool "vms" of the demo's Ceph cluster.
apiVersion: quarantine.forensics.dev/v1alpha1
kind: Cloud
metadata:
  name: ${CLOUD}
spec:
  type: openstack
  amqp:
    # Read from <secrets>/rabbit/url; never written into a manifest.
    urlSecretRef: {name: rabbit, key: url}
    exchanges:
      - name: nova
      - name: neutron
    queue: quarantine-operator.${CLOUD}
  ceph:
    configFile: ${q(c.cephConf)}
    # Its keyring is the one ceph.conf names; it has no caps outside these pools.
    user: ${q(c.operatorId)}
    watchedPools: [vms]
    # The cloud's own cephx user (client.nova) has no caps on this pool.
    quarantine: {pool: ${q(c.quarantinePool)}}
    trash:
      # The operator turns on rbd_move_to_trash_on_remove on "vms" itself.
      arm: true
      expireSeconds: 86400
      # Short so that the demo does not wait; 5 s is plenty for a real cloud.
      scanIntervalSeconds: 1
`;
}

function policyYaml(): string {
  return `# Keep every deleted VM's disks of the cloud "${CLOUD}" for ${RETENTION}.
apiVersion: quarantine.forensics.dev/v1alpha1
kind: QuarantinePolicy
metadata:
  name: ${POLICY}
spec:
  selector:
    clouds: [${CLOUD}]
  capture:
    # Race-free: the pool's trash keeps a removed disk until the operator adopts it.
    mode: trash
    disks: {root: true, ephemeral: true, volumes: false}
  retention:
    duration: ${RETENTION}
  sweep:
    schedule: "17 * * * *"
`;
}

function holdYaml(): string {
  return `# A legal hold: ${HOLD.user}'s quarantines never expire while it stands,
# including those captured after it was placed.
apiVersion: quarantine.forensics.dev/v1alpha1
kind: QuarantineHold
metadata:
  name: ${HOLD.name}
  namespace: ${HOLD.namespace}
spec:
  caseId: ${HOLD.caseId}
  reason: Account of ${HOLD.user} suspected compromised; keep everything of it
  selector:
    users: [${HOLD.user}]
`;
}

/** Writes manifests/ and secrets/ under `dir`; returns their paths. */
export function writeDemoSetup(dir: string, c: DemoCloud): { manifests: string; secrets: string } {
  const manifests = join(dir, 'manifests');
  const secrets = join(dir, 'secrets');
  mkdirSync(manifests, { recursive: true });
  mkdirSync(join(secrets, 'rabbit'), { recursive: true, mode: 0o700 });
  chmodSync(secrets, 0o700);
  writeFileSync(join(manifests, 'cloud.yaml'), cloudYaml(c));
  writeFileSync(join(manifests, 'policy.yaml'), policyYaml());
  writeFileSync(join(manifests, 'hold.yaml'), holdYaml());
  writeFileSync(join(secrets, 'rabbit', 'url'), `${c.amqpUrl}\n`, { mode: 0o600 });
  return { manifests, secrets };
}
