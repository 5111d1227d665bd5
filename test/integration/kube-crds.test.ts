// The generated CRD files against a real kube-apiserver: accepted and
// Established, valid objects stored with the server's defaults, invalid ones
// refused with messages that name the problem, the status subresource and the
// printer columns working. Other test files use the same CRDs concurrently,
// so they are applied idempotently and never deleted here.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { request } from 'node:https';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as k8s from '@kubernetes/client-node';
import { parse } from 'yaml';
import { GROUP, VERSION } from '../../operator/resources/crd.ts';
import { applyCrds } from '../../operator/kube/runtime/kube.ts';
import { requireEnv, uniqueSuffix } from '../support/env.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const apiVersion = `${GROUP}/${VERSION}`;
const merge = k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch);

function statusCode(err: unknown): number | undefined {
  return err instanceof k8s.ApiException ? err.code : undefined;
}

/** Expects a 422 whose message matches; returns the message. */
async function rejected(promise: Promise<unknown>, message: RegExp): Promise<string> {
  let text = '';
  await assert.rejects(promise, (err: unknown) => {
    assert.equal(statusCode(err), 422, String(err));
    const body = (err as k8s.ApiException<unknown>).body;
    text = typeof body === 'string' ? (JSON.parse(body) as { message: string }).message : (body as { message: string }).message;
    assert.match(text, message);
    return true;
  });
  return text;
}

/** GET with `kubectl get`'s Accept header: the server renders the printer columns as a Table. */
async function table(kc: k8s.KubeConfig, path: string): Promise<{ columnDefinitions: Array<{ name: string }>; rows: Array<{ cells: unknown[] }> }> {
  const cluster = kc.getCurrentCluster();
  assert.ok(cluster);
  const url = new URL(cluster.server + path);
  const opts: import('node:https').RequestOptions = {
    method: 'GET',
    hostname: url.hostname,
    port: url.port,
    path: url.pathname + url.search,
    headers: { Accept: 'application/json;as=Table;g=meta.k8s.io;v=v1' },
  };
  await kc.applyToHTTPSOptions(opts);
  return new Promise((resolve, reject) => {
    const req = request(opts, (res) => {
      let data = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (data += c));
      res.on('end', () => (res.statusCode === 200 ? resolve(JSON.parse(data)) : reject(new Error(`${res.statusCode}: ${data}`))));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('generated CRDs on a real kube-apiserver', () => {
  let admin: k8s.KubeConfig;
  let custom: k8s.CustomObjectsApi;
  let core: k8s.CoreV1Api;
  const suffix = uniqueSuffix();
  const namespace = `qcrd-${suffix}`;
  const cleanup: Array<() => Promise<unknown>> = [];

  before(async () => {
    admin = new k8s.KubeConfig();
    admin.loadFromFile(requireEnv('QTEST_KUBECONFIG'));
    custom = admin.makeApiClient(k8s.CustomObjectsApi);
    core = admin.makeApiClient(k8s.CoreV1Api);
    await core.createNamespace({ body: { metadata: { name: namespace } } });
  });

  after(async () => {
    for (const c of cleanup.reverse()) {
      try {
        await c();
      } catch (err) {
        if (statusCode(err) !== 404) throw err;
      }
    }
    if (core === undefined) return;
    // No controller-manager runs here to empty and finalize the namespace, so its objects go first.
    for (const plural of ['quarantineholds', 'quarantinerestores', 'quarantinecases']) {
      const list = (await custom.listNamespacedCustomObject({ ...ns, plural })) as { items: Array<{ metadata: { name: string } }> };
      for (const item of list.items) await custom.deleteNamespacedCustomObject({ ...ns, plural, name: item.metadata.name });
    }
    try {
      await core.deleteNamespace({ name: namespace });
      const ns = await core.readNamespace({ name: namespace });
      await core.replaceNamespaceFinalize({ name: namespace, body: { ...ns, spec: { finalizers: [] } } });
    } catch (err) {
      if (statusCode(err) !== 404) throw err;
    }
  });

  const ns = { group: GROUP, version: VERSION, namespace };
  const cl = { group: GROUP, version: VERSION };

  test('every file in crds/ is accepted and becomes Established with its names', { timeout: 90_000 }, async () => {
    const files = readdirSync(join(root, 'crds')).filter((f) => f.endsWith('.yaml'));
    assert.deepEqual(files.sort(), ['clouds.yaml', 'quarantinecases.yaml', 'quarantineholds.yaml', 'quarantinepolicies.yaml', 'quarantinerestores.yaml']);
    const crds = files.map((f) => parse(readFileSync(join(root, 'crds', f), 'utf8')) as object);
    await applyCrds(admin, crds);
    const ext = admin.makeApiClient(k8s.ApiextensionsV1Api);
    for (const crd of crds as k8s.V1CustomResourceDefinition[]) {
      const live = await ext.readCustomResourceDefinition({ name: crd.metadata?.name ?? '' });
      const cond = (t: string) => live.status?.conditions?.find((c) => c.type === t)?.status;
      assert.equal(cond('Established'), 'True', crd.metadata?.name);
      assert.equal(cond('NamesAccepted'), 'True', crd.metadata?.name);
      assert.deepEqual(live.status?.acceptedNames?.shortNames, crd.spec.names.shortNames);
    }
  });

  test('valid objects of each kind are stored with the server applying the defaults', { timeout: 30_000 }, async () => {
    const cloudName = `cloud-${suffix}`;
    const cloud = await custom.createClusterCustomObject({
      ...cl,
      plural: 'clouds',
      body: { apiVersion, kind: 'Cloud', metadata: { name: cloudName }, spec: { type: 'openstack', amqp: { urlSecretRef: { name: 'amqp', key: 'url' } } } },
    });
    cleanup.push(() => custom.deleteClusterCustomObject({ ...cl, plural: 'clouds', name: cloudName }));
    // No default in the schema: the intake's depends on the ledger's engine (DEFAULT_PREFETCH).
    assert.equal(cloud.spec.amqp.prefetch, undefined);
    assert.equal(cloud.spec.amqp.maxBodyBytes, 4 * 1024 * 1024);
    assert.deepEqual(cloud.spec.amqp.topics, ['notifications', 'versioned_notifications']);

    const policyName = `policy-${suffix}`;
    const policy = await custom.createClusterCustomObject({
      ...cl,
      plural: 'quarantinepolicies',
      body: { apiVersion, kind: 'QuarantinePolicy', metadata: { name: policyName }, spec: { retention: { duration: '30d' }, capacity: { maxCount: 1000 } } },
    });
    cleanup.push(() => custom.deleteClusterCustomObject({ ...cl, plural: 'quarantinepolicies', name: policyName }));
    assert.deepEqual(policy.spec, {
      selector: {},
      capture: { mode: 'trash', disks: { root: true, ephemeral: true, volumes: false }, flatten: false, isolate: true, releaseResources: false },
      retention: { duration: '30d' },
      capacity: { maxCount: 1000, onFull: 'refuse' },
      sweep: { schedule: '0 * * * *', timeZone: 'UTC', dryRun: false },
    });

    const hold = await custom.createNamespacedCustomObject({
      ...ns,
      plural: 'quarantineholds',
      body: {
        apiVersion,
        kind: 'QuarantineHold',
        metadata: { name: 'hold-1' },
        spec: {
          selector: { addresses: [{ address: '188.185.194.218', from: '2026-04-01T16:00:00Z', to: '2026-04-01T17:00:00Z' }], instances: ['5d5b1f0e-1c1b-4f5e-9e53-1f5a0c3e9a11'] },
          reason: 'abuse report 1234',
          caseId: 'CERT-2026-0042',
          until: '2027-01-01T00:00:00Z',
        },
      },
    });
    assert.equal(hold.spec.caseId, 'CERT-2026-0042');

    const target = await custom.createNamespacedCustomObject({
      ...ns,
      plural: 'quarantinerestores',
      body: { apiVersion, kind: 'QuarantineRestore', metadata: { name: 'restore-target' }, spec: { quarantineId: 'q-1', target: { pool: 'forensics', image: 'case-42-root' }, reason: 'analysis', caseId: 'CERT-2026-0042' } },
    });
    assert.equal(target.spec.target.readOnly, true);
    const exported = await custom.createNamespacedCustomObject({
      ...ns,
      plural: 'quarantinerestores',
      body: { apiVersion, kind: 'QuarantineRestore', metadata: { name: 'restore-export' }, spec: { quarantineId: 'q-1', export: { path: '/exports/case-42.raw' }, reason: 'analysis', caseId: 'CERT-2026-0042' } },
    });
    assert.equal(exported.spec.export.format, 'raw');

    const kase = await custom.createNamespacedCustomObject({
      ...ns,
      plural: 'quarantinecases',
      body: { apiVersion, kind: 'QuarantineCase', metadata: { name: 'cert-2026-0042' }, spec: { reason: 'flood', logs: [{ name: 'batch.log', text: '18:13:16+02:00 x TCP 188.185.194.218:1 -> 192.0.2.1:80\n', date: '2026-05-01' }] } },
    });
    assert.equal(kase.spec.logs[0].date, '2026-05-01');
    const kaseRejected = (spec: object) =>
      custom.createNamespacedCustomObject({ ...ns, plural: 'quarantinecases', body: { apiVersion, kind: 'QuarantineCase', metadata: { name: 'bad-case' }, spec } });
    await rejected(kaseRejected({ logs: [] }), /spec\.logs: Invalid value: \d+: spec\.logs in body should have at least 1 items|spec\.logs in body should have at least 1 items/);
    await rejected(kaseRejected({ logs: [{ name: 'a', text: 'x', format: 'pcap' }] }), /spec\.logs\[0\]\.format: Unsupported value: "pcap"/);
  });

  test('invalid objects are refused by the schema with a message that says what is wrong', { timeout: 30_000 }, async () => {
    const policy = (spec: object) =>
      custom.createClusterCustomObject({ ...cl, plural: 'quarantinepolicies', body: { apiVersion, kind: 'QuarantinePolicy', metadata: { name: `bad-${suffix}` }, spec } });
    const hold = (spec: object) =>
      custom.createNamespacedCustomObject({ ...ns, plural: 'quarantineholds', body: { apiVersion, kind: 'QuarantineHold', metadata: { name: 'bad-hold' }, spec } });
    const restore = (spec: object) =>
      custom.createNamespacedCustomObject({ ...ns, plural: 'quarantinerestores', body: { apiVersion, kind: 'QuarantineRestore', metadata: { name: 'bad-restore' }, spec } });

    await rejected(policy({ retention: { duration: '30d' }, capture: { mode: 'snapshot' } }), /spec\.capture\.mode: Unsupported value: "snapshot": supported values: "trash", "softDelete", "onDelete"/);
    await rejected(policy({ capture: { mode: 'trash' } }), /spec\.retention: Required value/);
    await rejected(policy({ retention: { duration: '30 days' } }), /spec\.retention\.duration: Invalid value: "string": must be a duration like 720h, 30d or 1d12h/);
    await rejected(policy({ retention: { duration: '0d' } }), /spec\.retention\.duration: Invalid value: "string": must be longer than zero/);
    await rejected(policy({ retention: { duration: '1d' }, capacity: { onFull: 'evictOldest' } }), /spec\.capacity: Invalid value: "object": capacity needs maxBytes or maxCount/);
    await rejected(policy({ retention: { duration: '1d' }, sweep: { schedule: 'every hour' } }), /spec\.sweep\.schedule in body should match/);

    await rejected(hold({ selector: {}, reason: 'r', caseId: 'c' }), /spec\.selector: Invalid value: "object": selector needs at least one of clouds, instances, projects, users, addresses/);
    await rejected(hold({ selector: { users: ['alice'] }, caseId: 'c' }), /spec\.reason: Required value/);
    await rejected(hold({ selector: { addresses: [{ address: '10.0.0.300' }] }, reason: 'r', caseId: 'c' }), /spec\.selector\.addresses\[0\]\.address: Invalid value: "string": must be an IPv4 or IPv6 address/);
    await rejected(
      hold({ selector: { addresses: [{ address: '10.0.0.3', from: '2026-02-01T00:00:00Z', to: '2026-01-01T00:00:00Z' }] }, reason: 'r', caseId: 'c' }),
      /spec\.selector\.addresses\[0\]\.to: Invalid value: "object": from must be before to/,
    );

    await rejected(
      restore({ quarantineId: 'q-1', target: { pool: 'p', image: 'i' }, export: { path: '/x' }, reason: 'r', caseId: 'c' }),
      /spec: Invalid value: "object": exactly one of target or export must be set/,
    );
    await rejected(restore({ quarantineId: 'q-1', reason: 'r', caseId: 'c' }), /exactly one of target or export must be set/);
    await rejected(restore({ quarantineId: 'q-1', export: { path: '/exports/../etc/shadow' }, reason: 'r', caseId: 'c' }), /spec\.export\.path: Invalid value: "string": must be an absolute path without \.\./);
  });

  test('a QuarantineRestore cannot be edited once made', { timeout: 30_000 }, async () => {
    const name = 'restore-immutable';
    await custom.createNamespacedCustomObject({
      ...ns,
      plural: 'quarantinerestores',
      body: { apiVersion, kind: 'QuarantineRestore', metadata: { name }, spec: { quarantineId: 'q-1', target: { pool: 'forensics', image: 'img' }, reason: 'r', caseId: 'c' } },
    });
    await rejected(
      custom.patchNamespacedCustomObject({ ...ns, plural: 'quarantinerestores', name, body: { spec: { quarantineId: 'q-2' } } }, merge),
      /spec is immutable: create a new QuarantineRestore instead/,
    );
  });

  test('status is written only through /status and validated there too', { timeout: 30_000 }, async () => {
    const name = `status-${suffix}`;
    const created = await custom.createClusterCustomObject({
      ...cl,
      plural: 'quarantinepolicies',
      body: { apiVersion, kind: 'QuarantinePolicy', metadata: { name }, spec: { retention: { duration: '720h' } }, status: { quarantinedCount: 99 } },
    });
    cleanup.push(() => custom.deleteClusterCustomObject({ ...cl, plural: 'quarantinepolicies', name }));
    assert.equal(created.status, undefined, 'status in a create is dropped');

    const status = {
      observedGeneration: 1,
      quarantinedCount: 12,
      quarantinedBytes: 3 * 2 ** 40,
      lastSweep: '2026-04-01T17:00:00Z',
      nextSweep: '2026-04-01T18:00:00Z',
      conditions: [{ type: 'Ready', status: 'True', reason: 'Swept', message: '3 deleted', lastTransitionTime: '2026-04-01T17:00:05Z', observedGeneration: 1 }],
    };
    const patched = await custom.patchClusterCustomObjectStatus({ ...cl, plural: 'quarantinepolicies', name, body: { status } }, merge);
    assert.deepEqual(patched.status, status);
    assert.equal(patched.metadata.generation, 1);

    await rejected(
      custom.patchClusterCustomObjectStatus({ ...cl, plural: 'quarantinepolicies', name, body: { status: { conditions: [{ type: 'Ready', status: 'Maybe', reason: 'X', lastTransitionTime: '2026-04-01T17:00:05Z' }] } } }, merge),
      /status\.conditions\[0\]\.status: Unsupported value: "Maybe"/,
    );

    const restoreName = 'restore-status';
    await custom.createNamespacedCustomObject({
      ...ns,
      plural: 'quarantinerestores',
      body: { apiVersion, kind: 'QuarantineRestore', metadata: { name: restoreName }, spec: { quarantineId: 'q-1', export: { path: '/exports/a.raw' }, reason: 'r', caseId: 'c' } },
    });
    const done = await custom.patchNamespacedCustomObjectStatus(
      {
        ...ns,
        plural: 'quarantinerestores',
        name: restoreName,
        body: { status: { phase: 'Succeeded', path: '/exports/a.raw', bytes: 10737418240, sha256: 'a'.repeat(64), progress: 100, startedAt: '2026-04-01T17:00:00Z', completedAt: '2026-04-01T17:05:00Z' } },
      },
      merge,
    );
    assert.equal(done.status.phase, 'Succeeded');
    await rejected(
      custom.patchNamespacedCustomObjectStatus({ ...ns, plural: 'quarantinerestores', name: restoreName, body: { status: { phase: 'Done' } } }, merge),
      /status\.phase: Unsupported value: "Done"/,
    );
  });

  test('kubectl-style tables show the printer columns', { timeout: 30_000 }, async () => {
    const policies = await table(admin, `/apis/${GROUP}/${VERSION}/quarantinepolicies`);
    assert.deepEqual(policies.columnDefinitions.map((c) => c.name), ['Name', 'Mode', 'Retention', 'Quarantined', 'Bytes', 'Next Sweep', 'Age']);
    const restores = await table(admin, `/apis/${GROUP}/${VERSION}/namespaces/${namespace}/quarantinerestores`);
    assert.deepEqual(restores.columnDefinitions.map((c) => c.name), ['Name', 'Quarantine', 'Phase', 'SHA256', 'Case', 'Age']);
    const row = restores.rows.find((r) => r.cells[0] === 'restore-status');
    assert.ok(row, 'the restore with a status is listed');
    assert.deepEqual(row.cells.slice(1, 4), ['q-1', 'Succeeded', 'a'.repeat(64)]);
    const holds = await table(admin, `/apis/${GROUP}/${VERSION}/namespaces/${namespace}/quarantineholds`);
    assert.deepEqual(holds.columnDefinitions.map((c) => c.name), ['Name', 'Case', 'Matched', 'Until', 'Age']);
    const clouds = await table(admin, `/apis/${GROUP}/${VERSION}/clouds`);
    assert.deepEqual(clouds.columnDefinitions.map((c) => c.name), ['Name', 'Type', 'Connected', 'Consuming', 'TrashArmed', 'CephDriver', 'Last Event', 'Age']);
  });
});
