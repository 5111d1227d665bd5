// The Helm chart on a node that really runs pods (test/env/node): the
// operator's image built without a registry and imported, `helm install` of
// the chart with the commands docs/cloud-operators.md gives, and the test
// environment's RabbitMQ, PostgreSQL and Ceph. Two replicas elect one leader
// through the Lease with their own service account's token; the simulated
// Nova deletes a VM and its disk is quarantined; `helm test` passes; the
// leader's pod is deleted and the other replica takes over; `helm upgrade`
// rolls the pods; `helm uninstall` leaves the CRDs and the quarantines.
//
// Test-only, because the node has no pod network, kube-proxy or cluster DNS:
// a post-renderer (test/e2e/node/post-render.ts) puts the pods on the host's
// network at loopback addresses, one port per replica; the API server's
// loopback address is given as KUBERNETES_SERVICE_HOST/PORT; the lease is
// short so that a takeover is quick. Run alone (it needs QTEST_SERVICES with
// `node`, which a machine runs one of at a time).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as k8s from '@kubernetes/client-node';
import { openLedgerDb, type LedgerDb } from '../../operator/ledger/db.ts';
import { RbdCli } from '../../operator/ceph/rbd-cli.ts';
import { SimBus } from '../sim/bus.ts';
import { NovaSim } from '../sim/nova.ts';
import { cloudRbd } from '../sim/rbd-tool.ts';
import { purgeImage } from '../sim/disks.ts';
import { createTestDatabase, type TestDatabase } from '../support/pg.ts';
import { requireEnv, uniqueSuffix } from '../support/env.ts';
import { documentedHelmInstall, helmBinary } from '../support/helm.ts';
import { sha256Of, sleep, until } from './harness.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const chart = join(root, 'charts', 'quarantine-operator');
const GROUP = 'quarantine.forensics.dev';
const VERSION = 'v1alpha1';
const MiB = 1024 * 1024;

if (process.env['QTEST_NODE_DIR'] === undefined) {
  throw new Error('QTEST_NODE_DIR is not set: this test needs the test node; run it with QTEST_SERVICES="amqp postgres ceph kube node" bash test/run.sh test/e2e/chart-on-node.test.ts');
}

const env = {
  kubeconfig: requireEnv('QTEST_KUBECONFIG'),
  amqpUrl: requireEnv('QTEST_AMQP_URL'),
  cephConf: requireEnv('QTEST_CEPH_CONF'),
  cephDir: requireEnv('QTEST_CEPH_DIR'),
  cloudId: requireEnv('QTEST_CEPH_CLOUD_ID'),
  operatorId: requireEnv('QTEST_CEPH_OPERATOR_ID'),
  quarantinePool: requireEnv('QTEST_CEPH_QUARANTINE_POOL'),
  podLogs: requireEnv('QTEST_NODE_POD_LOGS'),
};

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: string[], extraEnv: Record<string, string> = {}, timeoutMs = 600_000): Promise<Run> {
  return new Promise((resolve) => {
    execFile(cmd, args, { maxBuffer: 64 * MiB, timeout: timeoutMs, env: { ...process.env, ...extraEnv } }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1;
      resolve({ code, stdout, stderr });
    });
  });
}

/** Ports free on loopback now, for the replicas to listen on. */
async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(Array.from({ length: n }, () => new Promise<ReturnType<typeof createServer>>((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => resolve(s));
  })));
  const ports = servers.map((s) => { const a = s.address(); return typeof a === 'object' && a !== null ? a.port : 0; });
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

/** The main process of a pod's operator container, found on the host by the pod name in its environment. */
function operatorProcess(pod: string): number | undefined {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      if (!cmdline.includes('/app/operator/cli/main.ts')) continue;
      if (readFileSync(`/proc/${entry}/environ`, 'utf8').split('\0').includes(`POD_NAME=${pod}`)) return Number(entry);
    } catch {
      // The process ended while being read.
    }
  }
  return undefined;
}

describe('the chart on a real node', { concurrency: false }, () => {
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(env.kubeconfig);
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const apps = kc.makeApiClient(k8s.AppsV1Api);
  const leases = kc.makeApiClient(k8s.CoordinationV1Api);
  const custom = kc.makeApiClient(k8s.CustomObjectsApi);
  const ext = kc.makeApiClient(k8s.ApiextensionsV1Api);
  const apiServer = new URL(kc.getCurrentCluster()?.server ?? '');
  const documented = documentedHelmInstall();
  const ns = documented.namespace;
  const release = documented.release;
  const s = uniqueSuffix();
  const cloudName = `node-${s}`;
  const policyName = `node-${s}`;
  const novaExchange = `nova-node-${s}`;
  const imageId = `img-node-${s}`;
  const { rbd, rbdTool } = cloudRbd({ cephConf: env.cephConf, id: env.cloudId });
  const operatorBlocks = new RbdCli({ cephConf: env.cephConf, id: env.operatorId });
  let helm: string;
  let helmHome: string;
  let helmEnv: Record<string, string>;
  let pg: TestDatabase;
  let ledger: LedgerDb;
  let bus: SimBus;
  let nova: NovaSim | undefined;
  let imageRef: { repository: string; tag: string };
  let ports: number[];
  let installed = false;
  let quarantine: { id: string; pool: string; image: string } | undefined;
  const createdSecrets: string[] = [];

  const helmRun = (args: string[]) => run(helm, [...args, '--kubeconfig', env.kubeconfig], helmEnv);
  async function helmOk(args: string[]): Promise<string> {
    const r = await helmRun(args);
    assert.equal(r.code, 0, `helm ${args.join(' ')} failed:\n${r.stderr}${r.stdout}\n${await podLogTail()}`);
    return r.stdout;
  }

  /** The last lines each of the release's containers logged, for failure messages. */
  async function podLogTail(): Promise<string> {
    const out: string[] = [];
    try {
      for (const dir of readdirSync(env.podLogs)) {
        if (!dir.startsWith(`${ns}_`)) continue;
        for (const container of readdirSync(join(env.podLogs, dir))) {
          for (const file of readdirSync(join(env.podLogs, dir, container))) {
            const lines = readFileSync(join(env.podLogs, dir, container, file), 'utf8').trim().split('\n');
            out.push(`--- ${dir}/${container}/${file}`, ...lines.slice(-15));
          }
        }
      }
    } catch {
      // No pod has logged yet.
    }
    return out.join('\n');
  }

  /** The values given on top of the documented command: the image just built, and what the node lacks. */
  function testOnlyArgs(): string[] {
    const sets = [
      `image.repository=${imageRef.repository}`, `image.tag=${imageRef.tag}`, 'image.pullPolicy=Never',
      'extraEnv[0].name=KUBERNETES_SERVICE_HOST', `extraEnv[0].value=${apiServer.hostname}`,
      'extraEnv[1].name=KUBERNETES_SERVICE_PORT', `extraEnv[1].value=${apiServer.port}`,
    ];
    const numbers = ['leaderElection.leaseDurationSeconds=6', 'leaderElection.renewDeadlineSeconds=4', 'leaderElection.retryPeriodSeconds=1'];
    return [
      ...sets.flatMap((v) => ['--set-string', v]),
      ...numbers.flatMap((v) => ['--set', v]),
      '--post-renderer', 'qtest-node', '--post-renderer-args', JSON.stringify({ ports }),
      // Other tests of this API server applied the CRDs before, outside any release.
      '--take-ownership', '--force-conflicts',
    ];
  }

  async function operatorPods(): Promise<k8s.V1Pod[]> {
    const list = await core.listNamespacedPod({ namespace: ns, labelSelector: `app.kubernetes.io/instance=${release},app.kubernetes.io/name=quarantine-operator` });
    return list.items.filter((p) => p.metadata?.deletionTimestamp === undefined && p.metadata?.annotations?.['helm.sh/hook'] === undefined);
  }

  async function readyPods(): Promise<k8s.V1Pod[] | undefined> {
    const pods = await operatorPods();
    const ready = pods.filter((p) => p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'));
    return ready.length === 2 && pods.length === 2 ? ready : undefined;
  }

  async function leaseHolder(): Promise<string | undefined> {
    const deployment = (await apps.listNamespacedDeployment({ namespace: ns, labelSelector: `app.kubernetes.io/instance=${release}` })).items[0];
    const leaseName = deployment?.spec?.template.spec?.containers[0]?.env?.find((e) => e.name === 'QUARANTINE_LEADER_LEASE')?.value;
    assert.ok(leaseName, 'the Deployment names its Lease');
    const lease = await leases.readNamespacedLease({ namespace: ns, name: leaseName }).catch(() => undefined);
    return lease?.spec?.holderIdentity ?? undefined;
  }

  async function putSecret(name: string, data: Record<string, string>): Promise<void> {
    await core.deleteNamespacedSecret({ namespace: ns, name }).catch(() => undefined);
    await core.createNamespacedSecret({ namespace: ns, body: { metadata: { name }, stringData: data } });
    createdSecrets.push(name);
  }

  before(async () => {
    helm = helmBinary();
    helmHome = mkdtempSync(join(tmpdir(), 'qop-helm-node-'));
    const plugin = join(helmHome, 'plugins', 'qtest-node');
    mkdirSync(plugin, { recursive: true });
    writeFileSync(join(plugin, 'plugin.yaml'), [
      'apiVersion: v1', 'type: postrenderer/v1', 'name: qtest-node', 'version: 0.1.0', 'runtime: subprocess', 'runtimeConfig:', '  platformCommand:',
      `    - command: ${JSON.stringify(process.execPath)}`, `      args: [${JSON.stringify(join(root, 'test', 'e2e', 'node', 'post-render.ts'))}]`, '',
    ].join('\n'));
    helmEnv = {
      HOME: helmHome, HELM_CACHE_HOME: join(helmHome, 'cache'), HELM_CONFIG_HOME: join(helmHome, 'config'),
      HELM_DATA_HOME: join(helmHome, 'data'), HELM_PLUGINS: join(helmHome, 'plugins'),
    };
    ports = await freePorts(2);

    // The image, built from the project's files and imported into the node's containerd.
    const built = await run('bash', [join(root, 'scripts', 'build-image-tar.sh'), '--import']);
    assert.equal(built.code, 0, `scripts/build-image-tar.sh failed:\n${built.stderr}`);
    const ref = built.stdout.trim().split('\n')[1] ?? '';
    const m = /^([^:]+):(.+)$/.exec(ref);
    assert.ok(m, `build-image-tar.sh printed no image name: ${built.stdout}`);
    imageRef = { repository: m[1] ?? '', tag: m[2] ?? '' };

    await core.createNamespace({ body: { metadata: { name: ns } } }).catch(() => undefined);
    pg = await createTestDatabase();
    ledger = openLedgerDb(pg.url);
    const cephKey = /key = (\S+)/.exec(readFileSync(join(env.cephDir, `ceph.client.${env.operatorId}.keyring`), 'utf8'))?.[1];
    assert.ok(cephKey, 'the operator keyring has a key');
    // The Secrets the documented commands create and name, under the documented names.
    const keyOf = (name: string) => {
      const key = documented.secretKeys.get(name);
      assert.ok(key, `docs/cloud-operators.md creates the Secret ${name}`);
      return key;
    };
    await putSecret(documented.secrets.database, { [keyOf(documented.secrets.database)]: pg.url });
    await putSecret(documented.secrets.apiToken, { [keyOf(documented.secrets.apiToken)]: randomBytes(24).toString('hex') });
    await putSecret(documented.secrets.rabbitmq, { [keyOf(documented.secrets.rabbitmq)]: env.amqpUrl });
    await putSecret(documented.secrets.cephKeyring, { [keyOf(documented.secrets.cephKeyring)]: cephKey });

    bus = await SimBus.connect(env.amqpUrl);
  });

  after(async () => {
    if (installed) await helmRun(['uninstall', release, '-n', ns, '--wait', '--timeout', '3m']);
    for (const plural of ['clouds', 'quarantinepolicies']) {
      await custom.deleteClusterCustomObject({ group: GROUP, version: VERSION, plural, name: plural === 'clouds' ? cloudName : policyName }).catch(() => undefined);
    }
    for (const name of createdSecrets) await core.deleteNamespacedSecret({ namespace: ns, name }).catch(() => undefined);
    if (nova !== undefined) {
      await nova.stop();
      for (const server of nova.servers()) for (const d of server.disks) await purgeImage(operatorBlocks, d).catch(() => undefined);
      await nova.deleteImage(imageId).catch(() => undefined);
    }
    if (quarantine !== undefined) await purgeImage(operatorBlocks, { pool: quarantine.pool, image: quarantine.image }).catch(() => undefined);
    await operatorBlocks.removePoolConfig('vms', 'rbd_move_to_trash_on_remove').catch(() => undefined);
    await operatorBlocks.removePoolConfig('vms', 'rbd_move_to_trash_on_remove_expire_seconds').catch(() => undefined);
    if (bus !== undefined) {
      await bus.deleteExchanges([novaExchange]).catch(() => undefined);
      await bus.close();
    }
    await ledger?.close();
    await pg?.drop();
    if (helmHome) rmSync(helmHome, { recursive: true, force: true });
  });

  test('helm install --wait: two replicas of the real image start, pass their probes and elect one leader through the Lease', { timeout: 600_000 }, async () => {
    await helmOk(['install', release, chart, '-n', ns, ...documented.args, ...testOnlyArgs(), '--wait', '--timeout', '5m']);
    installed = true;
    const pods = await until(readyPods, 'two ready operator pods', 120_000);
    const names = pods.map((p) => p.metadata?.name ?? '');
    const holder = await until(async () => { const h = await leaseHolder(); return h !== undefined && names.includes(h) ? h : undefined; }, 'a leader among the pods', 60_000);
    assert.ok(names.includes(holder));
    for (const p of pods) assert.equal(p.status?.containerStatuses?.[0]?.restartCount, 0, `${p.metadata?.name} never restarted`);
  });

  test('the pods run as the numeric non-root user on a read-only root, with their service account token as their only credential', async () => {
    const pods = await until(readyPods, 'two ready operator pods', 60_000);
    for (const pod of pods) {
      const name = pod.metadata?.name ?? '';
      const pid = operatorProcess(name);
      assert.ok(pid !== undefined, `the operator process of ${name} runs on the node`);
      const uids = /^Uid:\s+(.*)$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]?.split(/\s+/);
      assert.deepEqual(uids, ['10001', '10001', '10001', '10001'], `${name} runs as 10001`);
      const rootMount = readFileSync(`/proc/${pid}/mountinfo`, 'utf8').split('\n').map((l) => l.split(' ')).find((f) => f[4] === '/');
      assert.ok(rootMount?.[5]?.split(',').includes('ro'), `${name}'s root filesystem is mounted read-only: ${rootMount?.join(' ')}`);
      const environ = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
      assert.ok(!environ.some((e) => e.startsWith('KUBECONFIG=')), 'no kubeconfig: the in-cluster token is the credential');
      // ServiceAccount admission mounted the projected token the operator authenticates with.
      const token = pod.spec?.volumes?.find((v) => v.projected?.sources?.some((s) => s.serviceAccountToken !== undefined));
      assert.ok(token, `${name} mounts a service account token`);
      const serviceAccount = pod.spec?.serviceAccountName ?? '';
      assert.equal(serviceAccount, (await apps.listNamespacedDeployment({ namespace: ns, labelSelector: `app.kubernetes.io/instance=${release}` })).items[0]?.spec?.template.spec?.serviceAccountName);

      // The very token the pod holds: it is the operator's service account, and the chart's RBAC is what it may do.
      const mounted = `/proc/${pid}/root/var/run/secrets/kubernetes.io/serviceaccount`;
      const podKc = new k8s.KubeConfig();
      podKc.loadFromOptions({
        clusters: [{ name: 'node', server: apiServer.toString().replace(/\/$/, ''), caData: Buffer.from(readFileSync(`${mounted}/ca.crt`)).toString('base64') }],
        users: [{ name: 'pod', token: readFileSync(`${mounted}/token`, 'utf8').trim() }],
        contexts: [{ name: 'pod', cluster: 'node', user: 'pod' }],
        currentContext: 'pod',
      });
      const review = await podKc.makeApiClient(k8s.AuthenticationV1Api).createSelfSubjectReview({ body: { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' } });
      assert.equal(review.status?.userInfo?.username, `system:serviceaccount:${ns}:${serviceAccount}`);
      const podCore = podKc.makeApiClient(k8s.CoreV1Api);
      await podCore.readNamespacedSecret({ namespace: ns, name: documented.secrets.rabbitmq });
      await assert.rejects(podCore.listNamespacedSecret({ namespace: ns }), (e: unknown) => (e as { code?: number }).code === 403, 'it may not list Secrets');
      await assert.rejects(podCore.listPodForAllNamespaces(), (e: unknown) => (e as { code?: number }).code === 403, 'it may not list pods');
    }
  });

  test('the simulated Nova deletes a VM and the operator in the pods quarantines its disk', { timeout: 300_000 }, async () => {
    const monHost = /^mon_host\s*=\s*(.+)$/m.exec(readFileSync(env.cephConf, 'utf8'))?.[1]?.trim();
    assert.ok(monHost, 'the test Ceph names its monitors');
    await custom.createClusterCustomObject({ group: GROUP, version: VERSION, plural: 'clouds', body: {
      apiVersion: `${GROUP}/${VERSION}`, kind: 'Cloud', metadata: { name: cloudName },
      spec: {
        type: 'openstack',
        amqp: { urlSecretRef: { name: documented.secrets.rabbitmq, key: documented.secretKeys.get(documented.secrets.rabbitmq) ?? 'url' }, exchanges: [{ name: novaExchange }], prefetch: 50 },
        ceph: {
          monitors: [monHost], user: env.operatorId, keyringSecretRef: { name: documented.secrets.cephKeyring, key: documented.secretKeys.get(documented.secrets.cephKeyring) ?? 'key' },
          watchedPools: ['vms'], quarantine: { pool: env.quarantinePool }, trash: { arm: true, expireSeconds: 3600, scanIntervalSeconds: 1 },
        },
      },
    } });
    await custom.createClusterCustomObject({ group: GROUP, version: VERSION, plural: 'quarantinepolicies', body: {
      apiVersion: `${GROUP}/${VERSION}`, kind: 'QuarantinePolicy', metadata: { name: policyName },
      spec: { selector: { clouds: [cloudName] }, capture: { mode: 'trash' }, retention: { duration: '1h' }, sweep: { schedule: '0 0 1 1 *' } },
    } });
    // Consuming: the pods read the broker's Secret and reached RabbitMQ; the status write proves the RBAC of clouds/status.
    await until(async () => {
      const c = (await custom.getClusterCustomObject({ group: GROUP, version: VERSION, plural: 'clouds', name: cloudName })) as { status?: { conditions?: Array<{ type: string; status: string }> } };
      return c.status?.conditions?.some((x) => x.type === 'Consuming' && x.status === 'True');
    }, 'the Cloud to be consumed', 120_000).catch(async (e: unknown) => { throw new Error(`${String(e)}\n${await podLogTail()}`); });
    await until(async () => (await operatorBlocks.getPoolConfig('vms', 'rbd_move_to_trash_on_remove').catch(() => undefined)) === 'true', 'the leader to arm the trash', 60_000);

    nova = await NovaSim.start({ bus, exchange: novaExchange, format: 'both', rbd, rbdTool, deleteGapMs: 300, destroyRetries: 3, destroyRetryIntervalMs: 100 });
    await nova.ensureImage(imageId, 4 * MiB);
    const server = await nova.boot({ image: imageId, project: 'proj-node', user: 'dora', host: 'compute-1' });
    const digest = await nova.writeDisk(nova.rootDisk(server.uuid), randomBytes(4 * MiB));
    await sleep(200);
    const del = await nova.delete(server.uuid, { user: 'dora', project: 'proj-node' });
    await del.done;
    const row = await until(async () => (await ledger.db.selectFrom('quarantines').selectAll().where('cloud', '=', cloudName).where('instance_id', '=', server.uuid).execute())
      .find((q) => q.state === 'quarantined' || q.state === 'failed'), 'a quarantine of the deleted VM', 120_000)
      .catch(async (e: unknown) => { throw new Error(`${String(e)}\n${await podLogTail()}`); });
    assert.equal(row.state, 'quarantined', row.failure ?? '');
    quarantine = { id: row.id, pool: row.location_pool, image: row.location_image };
    assert.equal(await sha256Of(operatorBlocks, { pool: row.location_pool, image: row.location_image }), digest, 'the quarantine holds the disk as it was');
  });

  test('helm test passes', { timeout: 300_000 }, async () => {
    const out = await helmOk(['test', release, '-n', ns, '--logs', '--timeout', '3m']);
    assert.match(out, /Phase:\s+Succeeded/);
    assert.match(out, /\/readyz 200/);
  });

  test('the leader pod is deleted and the other replica takes over', { timeout: 300_000 }, async () => {
    const before = (await readyPods()) ?? [];
    const names = before.map((p) => p.metadata?.name ?? '');
    const leader = await leaseHolder();
    assert.ok(leader !== undefined && names.includes(leader));
    const other = names.find((n) => n !== leader);
    await core.deleteNamespacedPod({ namespace: ns, name: leader });
    // A leader that stops releases the Lease (an empty holder) rather than let it run out.
    const next = await until(async () => { const h = await leaseHolder(); return h !== undefined && h !== '' && h !== leader ? h : undefined; }, 'a new leader', 60_000);
    assert.equal(next, other, 'the surviving replica leads');
    // The Deployment replaces the deleted pod.
    const after = await until(async () => { const p = await readyPods(); return p?.every((x) => x.metadata?.name !== leader) ? p : undefined; }, 'a replacement pod', 180_000);
    assert.equal(after.length, 2);
  });

  test('helm upgrade changes a value and rolls the pods', { timeout: 600_000 }, async () => {
    const before = new Set(((await readyPods()) ?? []).map((p) => p.metadata?.uid));
    await helmOk(['upgrade', release, chart, '-n', ns, ...documented.args, ...testOnlyArgs(), '--set', 'logLevel=debug', '--wait', '--timeout', '5m']);
    const pods = await until(async () => { const p = await readyPods(); return p?.every((x) => !before.has(x.metadata?.uid)) ? p : undefined; }, 'two new ready pods', 180_000);
    for (const p of pods) assert.equal(p.spec?.containers[0]?.env?.find((e) => e.name === 'LOG_LEVEL')?.value, 'debug');
    const names = pods.map((p) => p.metadata?.name ?? '');
    await until(async () => { const h = await leaseHolder(); return h !== undefined && names.includes(h); }, 'a leader among the new pods', 60_000);
  });

  test('helm uninstall removes the operator and leaves the CRDs, the Cloud and the quarantine', { timeout: 300_000 }, async () => {
    await helmOk(['uninstall', release, '-n', ns, '--wait', '--timeout', '3m']);
    installed = false;
    await until(async () => (await operatorPods()).length === 0, 'the operator pods gone', 120_000);
    for (const plural of ['clouds', 'quarantinepolicies', 'quarantineholds', 'quarantinerestores', 'quarantinecases']) {
      await ext.readCustomResourceDefinition({ name: `${plural}.${GROUP}` });
    }
    await custom.getClusterCustomObject({ group: GROUP, version: VERSION, plural: 'clouds', name: cloudName });
    assert.ok(quarantine, 'a quarantine was made');
    assert.ok((await operatorBlocks.listImages({ pool: quarantine.pool })).includes(quarantine.image), 'the quarantined disk is still in Ceph');
    const row = await ledger.db.selectFrom('quarantines').select('state').where('id', '=', quarantine.id).executeTakeFirstOrThrow();
    assert.equal(row.state, 'quarantined');
  });
});
