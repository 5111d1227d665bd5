// The operator in Kubernetes mode, two replicas against the real apiserver,
// broker, PostgreSQL ledger and Ceph: resources reconciled with statuses,
// one leader that sweeps and hands over when stopped, no notification applied
// twice, a deleted hold releasing its quarantines, a restore recorded with the
// quarantine's SHA-256.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import * as k8s from '@kubernetes/client-node';
import { runKubernetes } from '../../operator/main.ts';
import { verifyAudit } from '../../operator/ledger/audit.ts';
import { parseAnchorArg } from '../../operator/ledger/audit-anchor.ts';
import type { Operator } from '../../operator/operator.ts';
import type { ControllerManager } from '../../operator/kube/runtime/manager.ts';
import { applyCrds } from '../../operator/kube/runtime/kube.ts';
import { RESOURCES, crdFor } from '../../operator/resources/crd.ts';
import { openLedgerDb, migrateToLatest, type LedgerDb } from '../../operator/ledger/db.ts';
import { CaptureEngine } from '../../operator/capture/engine.ts';
import { RbdCli } from '../../operator/ceph/rbd-cli.ts';
import { AmqpPublisher } from '../../operator/intake/amqp.ts';
import { silentLogger } from '../../operator/log.ts';
import { createTestDatabase, type TestDatabase } from '../support/pg.ts';
import { requireEnv, uniqueSuffix } from '../support/env.ts';
import { novaInstance, type VmSpec } from '../sim/openstack-messages.ts';
import { purgeImage } from '../sim/disks.ts';
import { untilDerived } from '../support/derived.ts';

const GROUP = 'quarantine.forensics.dev';
const VERSION = 'v1alpha1';
const NS = 'quarantine-system';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until<T>(fn: () => Promise<T | undefined | false>, what: string, ms = 30_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

interface Replica {
  name: string;
  operator: Operator;
  manager: ControllerManager;
  stop(): Promise<void>;
}

describe('Kubernetes mode, two replicas', () => {
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(requireEnv('QTEST_KUBECONFIG'));
  const custom = kc.makeApiClient(k8s.CustomObjectsApi);
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const s = uniqueSuffix();
  const cloudName = `lab-${s}`;
  const nova = `nova-${s}`;
  const lease = `qop-${s}`;
  let pg: TestDatabase;
  let ledger: LedgerDb;
  const replicas: Replica[] = [];
  const operatorBlocks = new RbdCli({ cephConf: requireEnv('QTEST_CEPH_CONF'), id: requireEnv('QTEST_CEPH_OPERATOR_ID') });
  const cloudBlocks = new RbdCli({ cephConf: requireEnv('QTEST_CEPH_CONF'), id: requireEnv('QTEST_CEPH_CLOUD_ID') });
  const images: string[] = [];
  const sources: string[] = [];

  async function startReplica(name: string): Promise<Replica> {
    const ac = new AbortController();
    let ready!: (v: { operator: Operator; manager: ControllerManager }) => void;
    const isReady = new Promise<{ operator: Operator; manager: ControllerManager }>((r) => { ready = r; });
    const run = runKubernetes({
      dbUrl: pg.url, kubeconfig: requireEnv('QTEST_KUBECONFIG'), namespace: NS, identity: name, leaseName: lease,
      leaseDurationMs: 3000, renewDeadlineMs: 2000, retryPeriodMs: 500, listen: undefined, apiToken: undefined, anchorIntervalMs: 500,
      logger: silentLogger, signal: ac.signal, onReady: (operator, manager) => ready({ operator, manager }),
    });
    const { operator, manager } = await Promise.race([isReady, run.then(() => { throw new Error(`${name} exited early`); })]);
    const r: Replica = { name, operator, manager, stop: async () => { ac.abort(); await run; } };
    replicas.push(r);
    return r;
  }

  before(async () => {
    await applyCrds(kc, RESOURCES.map((d) => crdFor(d)));
    await core.createNamespace({ body: { metadata: { name: NS } } }).catch(() => undefined);
    await core.createNamespace({ body: { metadata: { name: 'security' } } }).catch(() => undefined);
    await core.createNamespacedSecret({ namespace: NS, body: { metadata: { name: `rabbit-${s}` }, stringData: { url: requireEnv('QTEST_AMQP_URL') } } });
    pg = await createTestDatabase();
    ledger = openLedgerDb(pg.url);
    await migrateToLatest(ledger);
    await custom.createClusterCustomObject({ group: GROUP, version: VERSION, plural: 'clouds', body: {
      apiVersion: `${GROUP}/${VERSION}`, kind: 'Cloud', metadata: { name: cloudName },
      spec: {
        type: 'openstack',
        amqp: { urlSecretRef: { name: `rabbit-${s}`, key: 'url' }, exchanges: [{ name: nova }], prefetch: 50 },
        ceph: { configFile: requireEnv('QTEST_CEPH_CONF'), user: requireEnv('QTEST_CEPH_OPERATOR_ID'), watchedPools: ['vms'], quarantine: { pool: requireEnv('QTEST_CEPH_QUARANTINE_POOL') }, trash: { arm: false } },
      },
    } });
    await custom.createClusterCustomObject({ group: GROUP, version: VERSION, plural: 'quarantinepolicies', body: {
      apiVersion: `${GROUP}/${VERSION}`, kind: 'QuarantinePolicy', metadata: { name: `p-${s}` },
      spec: { selector: { clouds: [cloudName] }, capture: { mode: 'onDelete' }, retention: { duration: '1h' }, sweep: { schedule: '0 0 1 1 *' } },
    } });
  });

  after(async () => {
    for (const r of replicas) await r.stop().catch(() => undefined);
    for (const plural of ['clouds', 'quarantinepolicies']) {
      for (const name of [cloudName, `p-${s}`]) await custom.deleteClusterCustomObject({ group: GROUP, version: VERSION, plural, name }).catch(() => undefined);
    }
    const holds = (await custom.listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: 'security', plural: 'quarantineholds' }).catch(() => ({ items: [] }))) as { items: Array<{ metadata: { name: string } }> };
    for (const h of holds.items) {
      await custom.patchNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: 'security', plural: 'quarantineholds', name: h.metadata.name, body: { metadata: { finalizers: null } } }, k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch)).catch(() => undefined);
      await custom.deleteNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: 'security', plural: 'quarantineholds', name: h.metadata.name }).catch(() => undefined);
    }
    for (const image of images) await operatorBlocks.removeImage({ pool: 'images', image }).catch(() => undefined);
    for (const image of sources) await purgeImage(operatorBlocks, { pool: 'vms', image }).catch(() => undefined);
    await ledger.close();
    await pg.drop();
  });

  test('both replicas consume; exactly one leads; its Cloud and Policy statuses are reported', async () => {
    const a = await startReplica('replica-a');
    const b = await startReplica('replica-b');
    await until(async () => a.manager.isLeader !== b.manager.isLeader && (a.manager.isLeader || b.manager.isLeader), 'one leader', 15_000);
    assert.ok(a.operator.clouds.has(cloudName) && b.operator.clouds.has(cloudName), 'both replicas consume the cloud');
    const cloud = await until(async () => {
      const c = (await custom.getClusterCustomObject({ group: GROUP, version: VERSION, plural: 'clouds', name: cloudName })) as { status?: { conditions?: Array<{ type: string; status: string; reason: string }> } };
      const byType = new Map((c.status?.conditions ?? []).map((x) => [x.type, x]));
      return byType.get('Consuming')?.status === 'True' ? byType : undefined;
    }, 'Cloud status');
    assert.equal(cloud.get('Connected')?.status, 'True');
    assert.equal(cloud.get('TrashArmed')?.reason === 'Armed' || cloud.get('TrashArmed')?.reason === 'Disarmed', true);
    const policy = await until(async () => {
      const p = (await custom.getClusterCustomObject({ group: GROUP, version: VERSION, plural: 'quarantinepolicies', name: `p-${s}` })) as { status?: { conditions?: Array<{ type: string; status: string }>; quarantinedCount?: number } };
      return p.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True' ? p.status : undefined;
    }, 'Policy status');
    assert.equal(policy.quarantinedCount, 0);
  });

  test('notifications are shared between the replicas and none is applied twice', async () => {
    const pub = await AmqpPublisher.connect(requireEnv('QTEST_AMQP_URL'));
    const N = 300;
    const t0 = Date.parse('2026-05-01T16:00:00Z');
    for (let i = 0; i < N; i++) {
      const hex = i.toString(16).padStart(12, '0');
      const vm: VmSpec = { id: `10000000-0000-4000-8000-${hex}`, name: `vm${i}`, project: 'p', user: 'u', host: 'h', createdAt: new Date(t0), ports: [{ portId: `port-${hex}`, address: `10.9.${i >> 8}.${i & 255}`, mac: `fa:16:3e:00:${hex.slice(8, 10)}:${hex.slice(10)}`, network: 'private' }] };
      pub.publish(nova, 'versioned_notifications.info', novaInstance(vm, 'create.end', new Date(t0 + i * 1000), { messageId: `m-${s}-${i}` }));
    }
    await pub.confirmed();
    await pub.close();
    await until(async () => Number((await ledger.db.selectFrom('notifications').select((eb) => eb.fn.countAll<number>().as('n')).where('cloud', '=', cloudName).executeTakeFirstOrThrow()).n) === N, 'all notifications applied');
    await untilDerived(ledger.db, cloudName);
    const intervals = Number((await ledger.db.selectFrom('address_intervals').select((eb) => eb.fn.countAll<number>().as('n')).where('cloud', '=', cloudName).executeTakeFirstOrThrow()).n);
    assert.equal(intervals, N);
    const perReplica = replicas.map((r) => r.operator.metrics.notifications);
    assert.equal(perReplica.length, 2);
  });

  test('a hold is mirrored into the ledger with a status; deleting it releases its quarantines', async () => {
    const vm = `20000000-0000-4000-8000-${randomBytes(6).toString('hex')}`;
    const engine = new CaptureEngine({ db: ledger.db, blocks: operatorBlocks, quarantine: { pool: requireEnv('QTEST_CEPH_QUARANTINE_POOL') }, logger: silentLogger });
    const data = randomBytes(1024 * 1024);
    const image = { pool: 'vms', image: `${vm}_disk` };
    sources.push(image.image);
    await cloudBlocks.importImage({ stream: Readable.from([data]) }, image);
    const q = await engine.capture({ cloud: cloudName, instanceId: vm, disk: 'disk', mode: 'onDelete', policy: { name: `p-${s}`, retentionMs: 1, flatten: false }, source: { kind: 'live', image },
      provenance: { cloud: cloudName, instance: { id: vm, name: 'x', project: 'p', user: 'u', host: 'h', image: null, flavor: null, createdAt: null }, addresses: [], deletedAt: null, deletedBy: null, messageId: null } });
    assert.equal(q.state, 'quarantined');
    await custom.createNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: 'security', plural: 'quarantineholds', body: {
      apiVersion: `${GROUP}/${VERSION}`, kind: 'QuarantineHold', metadata: { name: `h-${s}` }, spec: { caseId: 'CASE-1', reason: 'test', selector: { instances: [vm] } },
    } });
    const status = await until(async () => {
      const h = (await custom.getNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: 'security', plural: 'quarantineholds', name: `h-${s}` })) as { status?: { matchedCount?: number }; metadata: { finalizers?: string[] } };
      return h.status?.matchedCount === 1 ? h : undefined;
    }, 'hold status');
    assert.deepEqual(status.metadata.finalizers, ['quarantine.forensics.dev/release-hold']);
    const row = await ledger.db.selectFrom('holds').selectAll().where('name', '=', `security/h-${s}`).executeTakeFirstOrThrow();
    assert.equal(row.released_at, null);

    // The restore request ends Succeeded with the quarantine's digest.
    const target = `restored-${s}`;
    images.push(target);
    await custom.createNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: 'security', plural: 'quarantinerestores', body: {
      apiVersion: `${GROUP}/${VERSION}`, kind: 'QuarantineRestore', metadata: { name: `r-${s}` }, spec: { quarantineId: q.id, reason: 'analysis', caseId: 'CASE-1', target: { pool: 'images', image: target } },
    } });
    const restored = await until(async () => {
      const r = (await custom.getNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: 'security', plural: 'quarantinerestores', name: `r-${s}` })) as { status?: { phase?: string; sha256?: string; image?: string } };
      return r.status?.phase === 'Succeeded' || r.status?.phase === 'Failed' ? r.status : undefined;
    }, 'restore to finish');
    assert.equal(restored.phase, 'Succeeded');
    assert.equal(restored.sha256, createHash('sha256').update(data).digest('hex'));
    assert.equal(restored.image, `images/${target}`);
    // Read by a transfer task outside the reconcile, recorded in the ledger and the audit trail under its id.
    const [task] = await ledger.db.selectFrom('transfers').selectAll().where('target', '=', `images/${target}`).execute();
    assert.equal(task?.state, 'succeeded');
    assert.match(task?.id ?? '', /^kube:/);
    assert.equal(task?.requested_by, `kubernetes:security/r-${s}`);
    const audited = await ledger.db.selectFrom('audit').select('details').where('action', '=', 'restore').where('subject', '=', q.id).execute();
    assert.ok(audited.some((a) => (JSON.parse(a.details) as { transfer?: string }).transfer === task?.id));

    await custom.deleteNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: 'security', plural: 'quarantineholds', name: `h-${s}` });
    await until(async () => (await ledger.db.selectFrom('holds').select('released_at').where('name', '=', `security/h-${s}`).executeTakeFirstOrThrow()).released_at !== null, 'the hold released in the ledger');
    await until(async () => {
      try {
        await custom.getNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: 'security', plural: 'quarantineholds', name: `h-${s}` });
        return false;
      } catch {
        return true;
      }
    }, 'the hold resource gone (finalizer removed)');
    // Released to the sweep: expired (retention 1 s) and unheld, so the leader's sweep deletes it.
    const leader = replicas.find((r) => r.manager.isLeader);
    assert.ok(leader);
    const report = await leader.operator.scheduler.runNow(`p-${s}`);
    assert.deepEqual(report?.deleted.map((d) => d.id), [q.id], JSON.stringify(report));
  });

  test('the audit head is anchored as an AuditHead Event on the Lease, and the trail verifies against it', async () => {
    const head = await ledger.db.selectFrom('audit').select(['seq', 'hash']).orderBy('seq', 'desc').limit(1).executeTakeFirstOrThrow();
    const event = await until(async () => {
      const list = await core.listNamespacedEvent({ namespace: NS, fieldSelector: `involvedObject.name=${lease},reason=AuditHead` });
      return list.items.find((e) => (e.message ?? '').startsWith(`audit head ${head.seq}:${head.hash}`));
    }, 'an AuditHead Event with the current head');
    assert.equal(event.involvedObject.kind, 'Lease');
    const anchor = parseAnchorArg(/audit head (\S+)/.exec(event.message ?? '')?.[1] ?? '');
    assert.ok(anchor !== undefined);
    const v = await verifyAudit(ledger.db, { anchors: [anchor] });
    assert.deepEqual([v.ok, v.anchorsChecked, v.problems], [true, 1, []]);
  });

  test('stopping the leader hands over to the other replica within the lease duration', async () => {
    const leader = replicas.find((r) => r.manager.isLeader);
    const other = replicas.find((r) => !r.manager.isLeader);
    assert.ok(leader !== undefined && other !== undefined);
    assert.equal(leader.operator.isLeader, true, 'the leader runs the sweep and trash scans');
    assert.equal(other.operator.isLeader, false, 'the follower does not');
    const t = Date.now();
    await leader.stop();
    replicas.splice(replicas.indexOf(leader), 1);
    await until(async () => other.manager.isLeader && other.operator.isLeader, 'the other replica to lead', 10_000);
    assert.ok(Date.now() - t <= 3000 + 2000, `handed over in ${Date.now() - t} ms (lease 3 s)`);
  });
});
