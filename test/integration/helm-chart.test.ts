// The Helm chart: lint, render and validate every object against the
// Kubernetes schemas, then install it into a real kube-apiserver and prove,
// as the operator's own service account identity, that its RBAC allows what
// the operator does and refuses the rest. No kubelet runs there, so pods are
// never started: the install is checked object by object, without --wait.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as k8s from '@kubernetes/client-node';
import { parseAllDocuments } from 'yaml';
import { GROUP, VERSION } from '../../operator/resources/crd.ts';
import { requireEnv, uniqueSuffix } from '../support/env.ts';
import { documentedHelmInstall, helmBinary } from '../support/helm.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const chart = join(root, 'charts', 'quarantine-operator');
const ciValues = join(chart, 'ci', 'test-values.yaml');
const PLURALS = ['clouds', 'quarantinepolicies', 'quarantineholds', 'quarantinerestores', 'quarantinecases'];
const EVERY_OPTION = [
  'metrics.serviceMonitor.enabled=true', 'metrics.prometheusRule.enabled=true', 'metrics.dashboard.enabled=true', 'networkPolicy.enabled=true',
  'networkPolicy.ingressFrom[0].namespaceSelector.matchLabels.kubernetes\\.io/metadata\\.name=monitoring',
  'tls.enabled=true', 'tls.secretName=quarantine-tls', 'secrets.apiToken.name=quarantine-api', `image.digest=sha256:${'ab'.repeat(32)}`, 'logFormat=text',
];

/** The `--set` values of the `helm install` command in docs/cloud-operators.md, the command a new user copies. */
const documentedSets = (): string[] => documentedHelmInstall().sets;

// The identity test/env/kube gives QTEST_KUBECONFIG_OPERATOR.
const releaseNamespace = 'quarantine-system';
const serviceAccount = 'quarantine-operator';

interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

describe('Helm chart charts/quarantine-operator', () => {
  let helm: string;
  let helmHome: string;

  before(() => {
    helm = helmBinary();
    // helm keeps caches and repository settings under these; a temporary home leaves nothing behind.
    helmHome = mkdtempSync(join(tmpdir(), 'qop-helm-'));
  });

  after(() => {
    if (helmHome) rmSync(helmHome, { recursive: true, force: true });
  });

  function run(args: string[], env: Record<string, string> = {}): Promise<RunResult> {
    return new Promise((resolve) => {
      execFile(
        helm,
        args,
        {
          maxBuffer: 64 * 1024 * 1024,
          env: {
            PATH: process.env['PATH'] ?? '/usr/bin:/bin',
            HOME: helmHome,
            HELM_CACHE_HOME: join(helmHome, 'cache'),
            HELM_CONFIG_HOME: join(helmHome, 'config'),
            HELM_DATA_HOME: join(helmHome, 'data'),
            ...env,
          },
        },
        (err, stdout, stderr) => {
          const code = err === null ? 0 : typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 1;
          resolve({ code, stdout, stderr });
        },
      );
    });
  }

  async function ok(args: string[], env?: Record<string, string>): Promise<string> {
    const r = await run(args, env);
    assert.equal(r.code, 0, `helm ${args.join(' ')} failed:\n${r.stderr}${r.stdout}`);
    return r.stdout;
  }

  async function render(...sets: string[]): Promise<Array<Record<string, any>>> {
    const out = await ok(['template', 'qtest', chart, '-n', releaseNamespace, '-f', ciValues, ...sets.flatMap((s) => ['--set', s])]);
    return parseAllDocuments(out)
      .map((d) => d.toJS() as Record<string, any> | null)
      .filter((o): o is Record<string, any> => o !== null);
  }

  test('helm lint --strict passes', { timeout: 120_000 }, async () => {
    const out = await ok(['lint', '--strict', chart, '-f', ciValues]);
    assert.match(out, /1 chart\(s\) linted, 0 chart\(s\) failed/);
  });

  test('rendering refuses to go on without the ledger Secret, and the values schema catches mistakes', { timeout: 120_000 }, async () => {
    const missing = await run(['template', 'qtest', chart]);
    assert.notEqual(missing.code, 0);
    assert.match(missing.stderr, /secrets\.database\.name must name an existing Secret/);
    const typo = await run(['template', 'qtest', chart, '-f', ciValues, '--set', 'replicas=3']);
    assert.notEqual(typo.code, 0);
    assert.match(typo.stderr, /additional properties 'replicas' not allowed/);
  });

  test('every rendered object (and every CRD) is valid against the Kubernetes schemas', { timeout: 120_000 }, async () => {
    const variants = [
      [],
      ['metrics.serviceMonitor.enabled=true', 'podAntiAffinity=hard', 'secrets.rabbitmq.name=amqp', 'secrets.cephKeyring.name=ceph', 'secrets.extra={ca}'],
      ['replicaCount=1', 'serviceAccount.create=false', 'serviceAccount.name=existing', 'rbac.create=false', 'crds.enabled=false'],
      EVERY_OPTION,
      documentedSets(),
    ];
    const seenKinds = new Set<string>();
    for (const sets of variants) {
      const objects = await render(...sets);
      assert.equal(objects.filter((o) => o['kind'] === 'CustomResourceDefinition').length, sets.includes('crds.enabled=false') ? 0 : PLURALS.length, sets.join(','));
      for (const obj of objects) {
        const where = `${obj['kind']} ${obj['metadata']?.name} (${sets.join(',') || 'defaults'})`;
        if (obj['apiVersion'] === 'monitoring.coreos.com/v1') {
          // No model of the Prometheus Operator's kinds ships with kubernetes-models (promtool checks the rules below).
          assert.ok(['ServiceMonitor', 'PrometheusRule'].includes(obj['kind']), where);
          if (obj['kind'] === 'ServiceMonitor') assert.equal(obj['spec']?.endpoints?.[0]?.port, 'http', where);
          else assert.ok(obj['spec']?.groups?.[0]?.rules?.length >= 7, where);
          seenKinds.add(obj['kind']);
          continue;
        }
        const [group, version] = String(obj['apiVersion']).includes('/') ? String(obj['apiVersion']).split('/') : ['', obj['apiVersion']];
        const models = (await import(`kubernetes-models/${group ? `${group}/` : ''}${version}`)) as Record<string, new (o: unknown) => { validate(): void }>;
        const Model = models[obj['kind']];
        assert.ok(Model, `no model for ${obj['apiVersion']} ${obj['kind']}`);
        assert.doesNotThrow(() => new Model(obj).validate(), where);
        seenKinds.add(obj['kind']);
      }
    }
    assert.deepEqual([...seenKinds].sort(), [
      'ClusterRole', 'ClusterRoleBinding', 'ConfigMap', 'CustomResourceDefinition', 'Deployment', 'NetworkPolicy', 'Pod', 'PodDisruptionBudget',
      'PrometheusRule', 'Role', 'RoleBinding', 'Service', 'ServiceAccount', 'ServiceMonitor',
    ]);
  });

  test('the documented Helm command passes the values schema and lint', { timeout: 120_000 }, async () => {
    const sets = documentedSets();
    assert.ok(sets.includes('secrets.database.name=quarantine-db') && sets.includes('secrets.apiToken.name=quarantine-api'), sets.join(' '));
    await ok(['lint', '--strict', chart, ...sets.flatMap((s) => ['--set', s])]);
    const d = (await ok(['template', 'quarantine', chart, ...sets.flatMap((s) => ['--set', s])]));
    assert.match(d, /name: QUARANTINE_API_TOKEN\n\s+valueFrom:\n\s+secretKeyRef:\n\s+name: "quarantine-api"/);
  });

  test('the alert rules pass `promtool check rules`', { timeout: 120_000 }, async () => {
    const rule = (await render('metrics.prometheusRule.enabled=true')).find((o) => o['kind'] === 'PrometheusRule');
    assert.ok(rule);
    const alerts = (rule['spec'].groups[0].rules as Array<{ alert: string }>).map((r) => r.alert);
    assert.deepEqual(alerts, [
      'QuarantineDeadLettersGrowing', 'QuarantineCapturesFailing', 'QuarantineTrashNotArmed', 'QuarantineConsumerLag',
      'QuarantineSweepFailing', 'QuarantineIsolationLagging', 'QuarantineCopyDiffers', 'QuarantineNoLeader', 'QuarantineNotificationsLost', 'QuarantineAuditVerificationFailing',
    ]);
    const dir = mkdtempSync(join(tmpdir(), 'qop-rules-'));
    try {
      const file = join(dir, 'rules.yaml');
      writeFileSync(file, JSON.stringify(rule['spec']));
      const r = await new Promise<RunResult>((resolve) => {
        execFile('promtool', ['check', 'rules', file], (err, stdout, stderr) => resolve({ code: err === null ? 0 : 1, stdout, stderr }));
      });
      assert.equal(r.code, 0, `promtool (Debian package prometheus, installed by test/env/install.sh):\n${r.stderr}${r.stdout}`);
      assert.match(r.stdout, /SUCCESS: 10 rules found/);
      // The check is not vacuous: a broken expression fails it.
      writeFileSync(file, JSON.stringify({ groups: [{ name: 'x', rules: [{ alert: 'X', expr: 'rate(quarantine_leader[5m' }] }] }));
      const bad = await new Promise<number>((resolve) => execFile('promtool', ['check', 'rules', file], (err) => resolve(err === null ? 0 : 1)));
      assert.equal(bad, 1);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('the dashboard ConfigMap carries the sidecar label and valid dashboard JSON', { timeout: 120_000 }, async () => {
    const cm = (await render('metrics.dashboard.enabled=true')).find((o) => o['kind'] === 'ConfigMap');
    assert.ok(cm);
    assert.equal(cm['metadata'].labels['grafana_dashboard'], '1');
    const dashboard = JSON.parse(cm['data']['quarantine-operator.json']) as { uid: string; panels: Array<{ title: string; targets: Array<{ expr: string }> }> };
    assert.equal(dashboard.uid, 'quarantine-operator');
    const titles = dashboard.panels.map((p) => p.title).join(' | ');
    for (const want of [/Ingest rate/, /Capture latency by mode/, /Race win rate/, /Quarantined bytes/, /Dead-letter queue depth/]) assert.match(titles, want);
  });

  test('optional parts: TLS switches probes and scrapes to HTTPS; security contexts and the image come from values', { timeout: 120_000 }, async () => {
    const objects = await render(...EVERY_OPTION, 'containerSecurityContext.runAsUser=null', 'podSecurityContext.runAsUser=null', 'podSecurityContext.fsGroup=null');
    const d = objects.find((o) => o['kind'] === 'Deployment')!;
    const pod = d['spec'].template.spec;
    const c = pod.containers[0];
    assert.equal(c.image, `quarantine-operator@sha256:${'ab'.repeat(32)}`);
    assert.equal(c.readinessProbe.httpGet.scheme, 'HTTPS');
    assert.deepEqual(pod.volumes.find((v: { name: string }) => v.name === 'tls').secret, { secretName: 'quarantine-tls' });
    assert.ok(c.env.some((e: { name: string; value?: string }) => e.name === 'QUARANTINE_TLS_CERT_FILE' && e.value === '/etc/quarantine/tls/tls.crt'));
    assert.ok(c.env.some((e: { name: string; value?: string }) => e.name === 'QUARANTINE_LOG_FORMAT' && e.value === 'text'));
    // OpenShift: null removes a default and lets the SCC choose.
    assert.equal(c.securityContext.runAsUser, undefined);
    assert.equal(pod.securityContext.fsGroup, undefined);
    assert.equal(pod.securityContext.runAsNonRoot, true);
    const sm = objects.find((o) => o['kind'] === 'ServiceMonitor')!;
    assert.equal(sm['spec'].endpoints[0].scheme, 'https');
    const np = objects.find((o) => o['kind'] === 'NetworkPolicy')!;
    assert.deepEqual(np['spec'].ingress[0].ports, [{ port: 'http', protocol: 'TCP' }]);
    assert.deepEqual(np['spec'].ingress[0].from, [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } }]);
    assert.deepEqual(np['spec'].policyTypes, ['Ingress']);
    const roles = objects.filter((o) => o['kind'] === 'ClusterRole');
    const edit = roles.find((r) => r['metadata'].name.endsWith('-edit'))!;
    assert.equal(edit['metadata'].labels['rbac.authorization.k8s.io/aggregate-to-edit'], 'true');
    assert.deepEqual(edit['rules'][0].resources, ['quarantineholds', 'quarantinerestores', 'quarantinecases']);
    const view = roles.find((r) => r['metadata'].name.endsWith('-view'))!;
    assert.deepEqual(view['rules'][0].verbs, ['get', 'list', 'watch']);
    const tlsMissing = await run(['template', 'qtest', chart, '-f', ciValues, '--set', 'tls.enabled=true']);
    assert.match(tlsMissing.stderr, /tls\.secretName must name a kubernetes\.io\/tls Secret/);
  });

  test('the validation catches a broken object (the check is not vacuous)', async () => {
    const { Deployment } = await import('kubernetes-models/apps/v1');
    const [deployment] = (await render()).filter((o) => o['kind'] === 'Deployment');
    assert.ok(deployment);
    deployment['spec'].template.spec.containers[0].ports[0].containerPort = 'eighty';
    assert.throws(() => new Deployment(deployment as never).validate(), /containerPort/);
  });

  test('the Deployment is hardened, probed, spread and reads the ledger URL from the named Secret; no Secret is rendered', { timeout: 120_000 }, async () => {
    const objects = await render();
    assert.equal(objects.filter((o) => o['kind'] === 'Secret').length, 0, 'the chart never creates Secrets');
    const d = objects.find((o) => o['kind'] === 'Deployment')!;
    const pod = d['spec'].template.spec;
    const c = pod.containers[0];
    assert.equal(d['spec'].replicas, 2);
    assert.deepEqual(c.args, ['run', '--kubernetes']);
    assert.deepEqual(c.ports, [{ name: 'http', containerPort: 8080, protocol: 'TCP' }]);
    assert.deepEqual(c.livenessProbe.httpGet, { path: '/healthz', port: 'http', scheme: 'HTTP' });
    assert.deepEqual(c.readinessProbe.httpGet, { path: '/readyz', port: 'http', scheme: 'HTTP' });
    assert.equal(c.env.find((e: { name: string }) => e.name === 'QUARANTINE_API_TOKEN'), undefined, 'no API token unless a Secret is named');
    assert.equal(pod.securityContext.runAsNonRoot, true);
    assert.equal(pod.securityContext.seccompProfile.type, 'RuntimeDefault');
    assert.equal(c.securityContext.readOnlyRootFilesystem, true);
    assert.equal(c.securityContext.allowPrivilegeEscalation, false);
    assert.deepEqual(c.securityContext.capabilities.drop, ['ALL']);
    assert.ok(c.resources.requests.cpu && c.resources.limits.memory);
    assert.deepEqual(c.env.find((e: { name: string }) => e.name === 'QUARANTINE_DB').valueFrom, { secretKeyRef: { name: 'quarantine-db', key: 'url' } });
    const term = pod.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].podAffinityTerm;
    assert.equal(term.topologyKey, 'kubernetes.io/hostname');
    assert.deepEqual(term.labelSelector.matchLabels, d['spec'].selector.matchLabels);

    const clusterRole = objects.find((o) => o['kind'] === 'ClusterRole')!;
    for (const rule of clusterRole['rules'] as Array<{ apiGroups: string[]; resources: string[]; verbs: string[] }>) {
      assert.ok(!rule.resources.includes('secrets') && !rule.resources.includes('*') && !rule.verbs.includes('*'), JSON.stringify(rule));
      assert.ok(!rule.verbs.includes('delete') && !rule.verbs.includes('create') || rule.resources.every((r) => r === 'events'), JSON.stringify(rule));
    }
    const testPod = objects.find((o) => o['kind'] === 'Pod')!;
    assert.equal(testPod['metadata'].annotations['helm.sh/hook'], 'test');
    assert.match(testPod['spec'].containers[0].command.join(' '), /http:\/\/qtest-quarantine-operator\.quarantine-system\.svc:8080\/readyz/);
  });

  describe('installed into a real kube-apiserver', () => {
    const release = 'qtest';
    const fullname = 'qtest-quarantine-operator';
    const suffix = uniqueSuffix();
    const otherNamespace = `qhelm-other-${suffix}`;
    let admin: k8s.KubeConfig;
    let asOperator: k8s.KubeConfig;
    let kubeconfig: string;
    let createdReleaseNamespace = false;
    let installed = false;

    function statusCode(err: unknown): number | undefined {
      return err instanceof k8s.ApiException ? err.code : undefined;
    }

    async function expectStatus(what: string, call: () => Promise<unknown>, code: number): Promise<void> {
      await assert.rejects(call(), (err: unknown) => {
        assert.equal(statusCode(err), code, `${what}: expected ${code}, got ${String(err)}`);
        return true;
      });
    }

    /** RBAC grants reach the authorizer through an informer, a moment after the write. */
    async function eventuallyAllowed<T>(what: string, call: () => Promise<T>): Promise<T> {
      const deadline = Date.now() + 30_000;
      for (;;) {
        try {
          return await call();
        } catch (err) {
          // 403 until RBAC caches catch up; 429 while the apiserver re-initializes a CRD's storage after helm re-applied it.
          const code = statusCode(err);
          if ((code !== 403 && code !== 429) || Date.now() > deadline) throw new Error(`${what}: ${String(err)}`);
        }
        await new Promise((r) => setTimeout(r, 200));
      }
    }

    async function dropNamespace(core: k8s.CoreV1Api, name: string): Promise<void> {
      try {
        await core.deleteNamespace({ name });
        const ns = await core.readNamespace({ name });
        // No controller-manager empties and finalizes namespaces here.
        await core.replaceNamespaceFinalize({ name, body: { ...ns, spec: { finalizers: [] } } });
      } catch (err) {
        if (statusCode(err) !== 404) throw err;
      }
    }

    before(async () => {
      kubeconfig = requireEnv('QTEST_KUBECONFIG');
      admin = new k8s.KubeConfig();
      admin.loadFromFile(kubeconfig);
      asOperator = new k8s.KubeConfig();
      asOperator.loadFromFile(requireEnv('QTEST_KUBECONFIG_OPERATOR'));
      const core = admin.makeApiClient(k8s.CoreV1Api);
      try {
        await core.createNamespace({ body: { metadata: { name: releaseNamespace } } });
        createdReleaseNamespace = true;
      } catch (err) {
        if (statusCode(err) !== 409) throw err;
      }
      await core.createNamespace({ body: { metadata: { name: otherNamespace } } });
      for (const [namespace, name] of [[releaseNamespace, `amqp-${suffix}`], [releaseNamespace, `unnamed-${suffix}`], [otherNamespace, 'elsewhere']] as const) {
        await core.createNamespacedSecret({ namespace, body: { metadata: { name }, stringData: { url: 'amqp://user:secret@rabbit/' } } });
      }
    });

    after(async () => {
      if (admin === undefined) return;
      if (installed) await run(['uninstall', release, '-n', releaseNamespace, '--kubeconfig', kubeconfig]);
      const core = admin.makeApiClient(k8s.CoreV1Api);
      for (const name of [`amqp-${suffix}`, `unnamed-${suffix}`]) {
        try {
          await core.deleteNamespacedSecret({ namespace: releaseNamespace, name });
        } catch (err) {
          if (statusCode(err) !== 404) throw err;
        }
      }
      try {
        await core.deleteCollectionNamespacedEvent({ namespace: releaseNamespace });
        await core.deleteCollectionNamespacedEvent({ namespace: otherNamespace });
        await admin.makeApiClient(k8s.CoordinationV1Api).deleteNamespacedLease({ namespace: releaseNamespace, name: `${fullname}-leader` });
      } catch (err) {
        if (statusCode(err) !== 404) throw err;
      }
      await core.deleteNamespacedSecret({ namespace: otherNamespace, name: 'elsewhere' }).catch(() => undefined);
      await dropNamespace(core, otherNamespace);
      if (createdReleaseNamespace) await dropNamespace(core, releaseNamespace);
    });

    test('helm install creates the CRDs and every object of the chart', { timeout: 180_000 }, async () => {
      const out = await ok([
        'install', release, chart,
        '-n', releaseNamespace,
        '--kubeconfig', kubeconfig,
        '-f', ciValues,
        '--set', `serviceAccount.name=${serviceAccount}`,
        '--set', `secrets.rabbitmq.name=amqp-${suffix}`,
        '--timeout', '2m',
        // Other test files apply the same CRDs (outside any release) under their own field manager, and a
        // long-lived test apiserver may hold an older copy: adopt them, as docs/cloud-operators.md says.
        '--force-conflicts', '--take-ownership',
      ]);
      installed = true;
      assert.match(out, /STATUS: deployed/);
      assert.match(out, /kubectl get quarantine -A/, 'NOTES.txt is shown');

      const apps = admin.makeApiClient(k8s.AppsV1Api);
      const core = admin.makeApiClient(k8s.CoreV1Api);
      const rbac = admin.makeApiClient(k8s.RbacAuthorizationV1Api);
      const ext = admin.makeApiClient(k8s.ApiextensionsV1Api);
      const deployment = await apps.readNamespacedDeployment({ namespace: releaseNamespace, name: fullname });
      assert.equal(deployment.spec?.replicas, 2);
      assert.equal(deployment.spec?.template.spec?.serviceAccountName, serviceAccount);
      await core.readNamespacedServiceAccount({ namespace: releaseNamespace, name: serviceAccount });
      const service = await core.readNamespacedService({ namespace: releaseNamespace, name: fullname });
      assert.equal(service.spec?.ports?.[0]?.name, 'http');
      await rbac.readClusterRole({ name: fullname });
      await rbac.readClusterRoleBinding({ name: fullname });
      await rbac.readNamespacedRole({ namespace: releaseNamespace, name: fullname });
      await rbac.readNamespacedRoleBinding({ namespace: releaseNamespace, name: fullname });
      await admin.makeApiClient(k8s.PolicyV1Api).readNamespacedPodDisruptionBudget({ namespace: releaseNamespace, name: fullname });
      for (const plural of PLURALS) {
        const crd = await ext.readCustomResourceDefinition({ name: `${plural}.${GROUP}` });
        assert.equal(crd.status?.conditions?.find((c) => c.type === 'Established')?.status, 'True', plural);
        assert.equal(crd.metadata?.annotations?.['helm.sh/resource-policy'], 'keep', plural);
        assert.equal(crd.metadata?.annotations?.['meta.helm.sh/release-name'], release, plural);
      }
      await rbac.readClusterRole({ name: `${fullname}-view` });
      await rbac.readClusterRole({ name: `${fullname}-edit` });
      const status = await ok(['status', release, '-n', releaseNamespace, '--kubeconfig', kubeconfig]);
      assert.match(status, /STATUS: deployed/);
    });

    test('the operator identity may do what the operator does', { timeout: 120_000 }, async () => {
      assert.ok(installed, 'needs the install');
      const custom = admin.makeApiClient(k8s.CustomObjectsApi);
      const policyName = `rbac-${suffix}`;
      await custom.createClusterCustomObject({
        group: GROUP,
        version: VERSION,
        plural: 'quarantinepolicies',
        body: { apiVersion: `${GROUP}/${VERSION}`, kind: 'QuarantinePolicy', metadata: { name: policyName }, spec: { retention: { duration: '30d' } } },
      });
      try {
        const opCustom = asOperator.makeApiClient(k8s.CustomObjectsApi);
        const list = (await eventuallyAllowed('list QuarantinePolicies', () =>
          opCustom.listClusterCustomObject({ group: GROUP, version: VERSION, plural: 'quarantinepolicies' }),
        )) as { items: Array<{ metadata: { name: string } }> };
        assert.ok(list.items.some((p) => p.metadata.name === policyName));
        await eventuallyAllowed('list QuarantineHolds', () => opCustom.listClusterCustomObject({ group: GROUP, version: VERSION, plural: 'quarantineholds' }));
        const merge = k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch);
        const patched = await opCustom.patchClusterCustomObjectStatus(
          { group: GROUP, version: VERSION, plural: 'quarantinepolicies', name: policyName, body: { status: { quarantinedCount: 1, observedGeneration: 1 } } },
          merge,
        );
        assert.equal(patched.status.quarantinedCount, 1);
        await opCustom.patchClusterCustomObject(
          { group: GROUP, version: VERSION, plural: 'quarantinepolicies', name: policyName, body: { metadata: { finalizers: ['quarantine.forensics.dev/sweep'] } } },
          merge,
        );
        await opCustom.patchClusterCustomObject(
          { group: GROUP, version: VERSION, plural: 'quarantinepolicies', name: policyName, body: { metadata: { finalizers: null } } },
          merge,
        );

        const opCore = asOperator.makeApiClient(k8s.CoreV1Api);
        const now = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
        for (const namespace of [releaseNamespace, otherNamespace, 'default']) {
          await opCore.createNamespacedEvent({
            namespace,
            body: {
              metadata: { name: `rbac-${suffix}` },
              involvedObject: namespace === 'default'
                ? { apiVersion: `${GROUP}/${VERSION}`, kind: 'QuarantinePolicy', name: policyName }
                : { apiVersion: `${GROUP}/${VERSION}`, kind: 'QuarantineHold', name: 'h', namespace },
              reason: 'RbacCheck',
              message: 'allowed',
              type: 'Normal',
              firstTimestamp: now as unknown as Date,
              lastTimestamp: now as unknown as Date,
              count: 1,
              source: { component: 'quarantine-operator' },
            },
          });
        }
        await opCore.patchNamespacedEvent({ namespace: releaseNamespace, name: `rbac-${suffix}`, body: { count: 2 } }, merge);
        await admin.makeApiClient(k8s.CoreV1Api).deleteNamespacedEvent({ namespace: 'default', name: `rbac-${suffix}` });

        const leases = asOperator.makeApiClient(k8s.CoordinationV1Api);
        const leaseName = `${fullname}-leader`;
        const lease = await leases.createNamespacedLease({
          namespace: releaseNamespace,
          body: { metadata: { name: leaseName }, spec: { holderIdentity: 'pod-a', leaseDurationSeconds: 15, renewTime: new k8s.V1MicroTime() } },
        });
        const read = await leases.readNamespacedLease({ namespace: releaseNamespace, name: leaseName });
        await leases.replaceNamespacedLease({ namespace: releaseNamespace, name: leaseName, body: { ...read, spec: { ...read.spec, renewTime: new k8s.V1MicroTime() } } });
        assert.equal(lease.spec?.holderIdentity, 'pod-a');

        const secret = await opCore.readNamespacedSecret({ namespace: releaseNamespace, name: `amqp-${suffix}` });
        assert.equal(Buffer.from(secret.data?.['url'] ?? '', 'base64').toString(), 'amqp://user:secret@rabbit/');
      } finally {
        await custom.deleteClusterCustomObject({ group: GROUP, version: VERSION, plural: 'quarantinepolicies', name: policyName });
      }
    });

    test('and nothing more', { timeout: 120_000 }, async () => {
      assert.ok(installed, 'needs the install');
      const opCore = asOperator.makeApiClient(k8s.CoreV1Api);
      // Wait for the grants to be in force, so that the 403s below are real refusals.
      await eventuallyAllowed('get the named Secret', () => opCore.readNamespacedSecret({ namespace: releaseNamespace, name: `amqp-${suffix}` }));

      await expectStatus('get a Secret the values do not name', () => opCore.readNamespacedSecret({ namespace: releaseNamespace, name: `unnamed-${suffix}` }), 403);
      await expectStatus('list Secrets in its own namespace', () => opCore.listNamespacedSecret({ namespace: releaseNamespace }), 403);
      await expectStatus('get a Secret in another namespace', () => opCore.readNamespacedSecret({ namespace: otherNamespace, name: 'elsewhere' }), 403);
      await expectStatus('list Secrets in another namespace', () => opCore.listNamespacedSecret({ namespace: otherNamespace }), 403);
      await expectStatus('list Secrets cluster-wide', () => opCore.listSecretForAllNamespaces(), 403);
      await expectStatus('delete pods', () => opCore.deleteNamespacedPod({ namespace: releaseNamespace, name: 'any' }), 403);
      await expectStatus('list pods', () => opCore.listNamespacedPod({ namespace: releaseNamespace }), 403);
      await expectStatus('create pods/exec', () => opCore.connectPostNamespacedPodExec({ namespace: releaseNamespace, name: 'any', command: 'sh' }), 403);
      await expectStatus('read Events', () => opCore.listNamespacedEvent({ namespace: releaseNamespace }), 403);
      await expectStatus('create a ConfigMap', () => opCore.createNamespacedConfigMap({ namespace: releaseNamespace, body: { metadata: { name: 'x' } } }), 403);

      const ext = asOperator.makeApiClient(k8s.ApiextensionsV1Api);
      await expectStatus('create a CRD', () => ext.createCustomResourceDefinition({
        body: {
          metadata: { name: `probes.t${suffix}.quarantine.test` },
          spec: {
            group: `t${suffix}.quarantine.test`,
            scope: 'Namespaced',
            names: { plural: 'probes', kind: 'Probe' },
            versions: [{ name: 'v1', served: true, storage: true, schema: { openAPIV3Schema: { type: 'object' } } }],
          },
        },
      }), 403);
      await expectStatus('delete our own CRDs', () => ext.deleteCustomResourceDefinition({ name: `quarantinepolicies.${GROUP}` }), 403);

      const opCustom = asOperator.makeApiClient(k8s.CustomObjectsApi);
      await expectStatus('create a QuarantinePolicy', () => opCustom.createClusterCustomObject({
        group: GROUP,
        version: VERSION,
        plural: 'quarantinepolicies',
        body: { apiVersion: `${GROUP}/${VERSION}`, kind: 'QuarantinePolicy', metadata: { name: `no-${suffix}` }, spec: { retention: { duration: '1d' } } },
      }), 403);
      await expectStatus('delete a QuarantineHold', () => opCustom.deleteNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: otherNamespace, plural: 'quarantineholds', name: 'any' }), 403);

      const leases = asOperator.makeApiClient(k8s.CoordinationV1Api);
      await expectStatus('read another Lease', () => leases.readNamespacedLease({ namespace: releaseNamespace, name: 'someone-elses-lease' }), 403);
      await expectStatus('a Lease in another namespace', () => leases.createNamespacedLease({
        namespace: otherNamespace,
        body: { metadata: { name: `${fullname}-leader` }, spec: { holderIdentity: 'x' } },
      }), 403);

      const rbac = asOperator.makeApiClient(k8s.RbacAuthorizationV1Api);
      await expectStatus('grant itself more', () => rbac.createNamespacedRoleBinding({
        namespace: releaseNamespace,
        body: { metadata: { name: 'escalate' }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'cluster-admin' }, subjects: [{ kind: 'ServiceAccount', name: serviceAccount, namespace: releaseNamespace }] },
      }), 403);
    });

    test('every example in examples/kubernetes is accepted by the API server (every kind, schema and CEL rules)', { timeout: 120_000 }, async () => {
      assert.ok(installed, 'needs the install');
      const dir = join(root, 'examples', 'kubernetes');
      const objects = readdirSync(dir).filter((f) => f.endsWith('.yaml')).sort()
        .flatMap((f) => parseAllDocuments(readFileSync(join(dir, f), 'utf8')).map((d) => ({ file: f, obj: d.toJS() as k8s.KubernetesObject })));
      assert.deepEqual([...new Set(objects.map((o) => o.obj.kind))].sort(), ['Cloud', 'QuarantineHold', 'QuarantinePolicy', 'QuarantineRestore']);
      const api = k8s.KubernetesObjectApi.makeApiClient(admin);
      for (const { file, obj } of objects) {
        // A server-side dry run: admission and validation run in full, nothing is stored (the shared test
        // apiserver may hold a Cloud "lab" of another test); namespaced examples go to a namespace of ours.
        const body = obj.metadata?.namespace === undefined ? obj : { ...obj, metadata: { ...obj.metadata, namespace: otherNamespace } };
        const created = await eventuallyAllowed(`create ${file}`, () => api.create(body, undefined, 'All'));
        assert.equal(created.kind, obj.kind, file);
      }
      // The check is not vacuous: the same API call refuses an invalid example.
      const broken = objects.find((o) => o.obj.kind === 'QuarantinePolicy')!.obj as k8s.KubernetesObject & { spec: Record<string, unknown> };
      await assert.rejects(api.create({ ...broken, spec: { ...broken.spec, retention: { duration: 'forever' } } }, undefined, 'All'), (err: unknown) => statusCode(err) === 422);
    });

    test('helm upgrade changes a CRD, and upgrades with the documented values', { timeout: 240_000 }, async () => {
      assert.ok(installed, 'needs the install');
      const ext = admin.makeApiClient(k8s.ApiextensionsV1Api);
      const name = `quarantinepolicies.${GROUP}`;
      // A later chart version: one CRD gains a printer column.
      const next = mkdtempSync(join(tmpdir(), 'qop-chart-'));
      try {
        cpSync(chart, next, { recursive: true });
        const template = join(next, 'templates', 'crds', 'quarantinepolicies.yaml');
        const text = readFileSync(template, 'utf8');
        const marker = '      additionalPrinterColumns:\n';
        assert.ok(text.includes(marker));
        writeFileSync(template, text.replace(marker, `${marker}        - name: Upgraded${suffix}\n          type: string\n          jsonPath: .spec.retention.duration\n          priority: 1\n`));
        const before = await ext.readCustomResourceDefinition({ name });
        assert.ok(!JSON.stringify(before.spec.versions).includes(`Upgraded${suffix}`));
        // Other test files re-apply the CRDs under their own field manager between runs: take the fields back, as the docs say.
        await ok(['upgrade', release, next, '-n', releaseNamespace, '--kubeconfig', kubeconfig, '--reuse-values', '--timeout', '2m', '--force-conflicts']);
        const after = await ext.readCustomResourceDefinition({ name });
        assert.ok(after.spec.versions[0]?.additionalPrinterColumns?.some((c) => c.name === `Upgraded${suffix}`), 'helm upgrade applied the new CRD');
      } finally {
        rmSync(next, { recursive: true, force: true });
      }
      // Back to this version, now with the values docs/cloud-operators.md documents.
      const out = await ok(['upgrade', release, chart, '-n', releaseNamespace, '--kubeconfig', kubeconfig, '--timeout', '2m', '--force-conflicts',
        '--set', `serviceAccount.name=${serviceAccount}`, ...documentedSets().flatMap((s) => ['--set', s])]);
      assert.match(out, /STATUS: deployed/);
      const restored = await ext.readCustomResourceDefinition({ name });
      assert.ok(!JSON.stringify(restored.spec.versions).includes(`Upgraded${suffix}`), 'and the next upgrade applied it again');
      const deployment = await admin.makeApiClient(k8s.AppsV1Api).readNamespacedDeployment({ namespace: releaseNamespace, name: fullname });
      const env = deployment.spec?.template.spec?.containers[0]?.env ?? [];
      assert.equal(env.find((e) => e.name === 'QUARANTINE_API_TOKEN')?.valueFrom?.secretKeyRef?.name, 'quarantine-api');
    });

    test('helm uninstall removes the release’s objects (and keeps the CRDs and their data)', { timeout: 120_000 }, async () => {
      assert.ok(installed, 'needs the install');
      await ok(['uninstall', release, '-n', releaseNamespace, '--kubeconfig', kubeconfig, '--timeout', '2m']);
      installed = false;
      const apps = admin.makeApiClient(k8s.AppsV1Api);
      const rbac = admin.makeApiClient(k8s.RbacAuthorizationV1Api);
      await expectStatus('the Deployment', () => apps.readNamespacedDeployment({ namespace: releaseNamespace, name: fullname }), 404);
      await expectStatus('the ClusterRole', () => rbac.readClusterRole({ name: fullname }), 404);
      await expectStatus('the RoleBinding', () => rbac.readNamespacedRoleBinding({ namespace: releaseNamespace, name: fullname }), 404);
      await expectStatus('the aggregated edit role', () => rbac.readClusterRole({ name: `${fullname}-edit` }), 404);
      for (const plural of PLURALS) await admin.makeApiClient(k8s.ApiextensionsV1Api).readCustomResourceDefinition({ name: `${plural}.${GROUP}` });
    });
  });
});
