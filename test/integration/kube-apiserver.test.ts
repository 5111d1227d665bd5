// Proves that the control plane from test/env/kube (a real kube-apiserver on
// etcd, with no controller-manager) supports what the operator relies on:
// CRDs with a status subresource, watches, leases with optimistic
// concurrency, and RBAC enforced for the operator's service account identity.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as k8s from '@kubernetes/client-node';
import { requireEnv, uniqueSuffix } from '../support/env.ts';

const operatorUser = 'system:serviceaccount:quarantine-system:quarantine-operator';

function loadConfig(path: string): k8s.KubeConfig {
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(path);
  return kc;
}

function statusCode(err: unknown): number | undefined {
  return err instanceof k8s.ApiException ? err.code : undefined;
}

async function expectStatus(promise: Promise<unknown>, code: number): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.equal(statusCode(err), code, `expected HTTP ${code}, got ${String(err)}`);
    return true;
  });
}

/** Polls until check returns a value other than undefined. */
async function eventually<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}${lastError === undefined ? '' : `: ${String(lastError)}`}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** Deletes, ignoring 404 so that cleanup can run after a partial failure. */
async function deleteIfPresent(remove: () => Promise<unknown>): Promise<void> {
  try {
    await remove();
  } catch (err) {
    if (statusCode(err) !== 404) throw err;
  }
}

interface WatchEvent {
  type: string;
  object: Record<string, any>;
}

/** Collects watch events and lets a test wait for one that matches. */
class EventLog {
  events: WatchEvent[] = [];
  waiters: Array<{ match: (e: WatchEvent) => boolean; resolve: (e: WatchEvent) => void }> = [];
  closed: unknown = undefined;

  push(event: WatchEvent): void {
    this.events.push(event);
    this.waiters = this.waiters.filter((w) => {
      if (!w.match(event)) return true;
      w.resolve(event);
      return false;
    });
  }

  waitFor(what: string, match: (e: WatchEvent) => boolean, timeoutMs = 15_000): Promise<WatchEvent> {
    const seen = this.events.find(match);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error(`no ${what} watch event within ${timeoutMs}ms; saw ${JSON.stringify(this.events.map((e) => e.type))}, closed: ${String(this.closed)}`));
      }, timeoutMs);
      this.waiters.push({
        match,
        resolve: (e) => {
          clearTimeout(timer);
          resolve(e);
        },
      });
    });
  }
}

describe('kube-apiserver from test/env/kube', () => {
  let admin: k8s.KubeConfig;
  let operator: k8s.KubeConfig;

  before(() => {
    admin = loadConfig(requireEnv('QTEST_KUBECONFIG'));
    operator = loadConfig(requireEnv('QTEST_KUBECONFIG_OPERATOR'));
  });

  describe('custom resources', () => {
    const suffix = uniqueSuffix();
    // A group of its own per run, so runs sharing one apiserver never collide
    // on the cluster-scoped CRD.
    const group = `t${suffix}.quarantine.test`;
    const plural = 'probes';
    const crdName = `${plural}.${group}`;
    const namespace = 'default';
    let extensions: k8s.ApiextensionsV1Api;
    let custom: k8s.CustomObjectsApi;

    before(() => {
      extensions = admin.makeApiClient(k8s.ApiextensionsV1Api);
      custom = admin.makeApiClient(k8s.CustomObjectsApi);
    });

    after(async () => {
      if (!extensions) return;
      await deleteIfPresent(() => extensions.deleteCustomResourceDefinition({ name: crdName }));
      // The apiserver removes the CRD's objects before the CRD itself; waiting
      // keeps a later run from seeing a half-deleted group.
      await eventually('the CRD to be gone', async () => {
        try {
          await extensions.readCustomResourceDefinition({ name: crdName });
          return undefined;
        } catch (err) {
          if (statusCode(err) === 404) return true;
          throw err;
        }
      });
    });

    test('a CRD with a status subresource becomes Established', { timeout: 60_000 }, async () => {
      await extensions.createCustomResourceDefinition({
        body: {
          apiVersion: 'apiextensions.k8s.io/v1',
          kind: 'CustomResourceDefinition',
          metadata: { name: crdName },
          spec: {
            group,
            scope: 'Namespaced',
            names: { plural, singular: 'probe', kind: 'Probe', listKind: 'ProbeList' },
            versions: [
              {
                name: 'v1',
                served: true,
                storage: true,
                subresources: { status: {} },
                schema: {
                  openAPIV3Schema: {
                    type: 'object',
                    properties: {
                      spec: { type: 'object', properties: { target: { type: 'string' } } },
                      status: { type: 'object', properties: { phase: { type: 'string' } } },
                    },
                  },
                },
              },
            ],
          },
        },
      });

      const crd = await eventually('the CRD to be Established', async () => {
        const current = await extensions.readCustomResourceDefinition({ name: crdName });
        const established = current.status?.conditions?.find((c) => c.type === 'Established');
        return established?.status === 'True' ? current : undefined;
      });
      const accepted = crd.status?.conditions?.find((c) => c.type === 'NamesAccepted');
      assert.equal(accepted?.status, 'True');
    });

    test('a custom object is created, its status merge-patched, and the change watched', { timeout: 60_000 }, async () => {
      const name = `probe-${suffix}`;
      const created = await custom.createNamespacedCustomObject({
        group,
        version: 'v1',
        namespace,
        plural,
        body: {
          apiVersion: `${group}/v1`,
          kind: 'Probe',
          metadata: { name },
          spec: { target: 'vm-1' },
          // Status in a create is dropped when the status subresource is on.
          status: { phase: 'Ignored' },
        },
      });
      assert.equal(created.metadata.name, name);
      assert.equal(created.status, undefined);

      const log = new EventLog();
      const watch = new k8s.Watch(admin);
      const controller = await watch.watch(
        `/apis/${group}/v1/namespaces/${namespace}/${plural}`,
        // Starting from the create's resourceVersion means the patch below is
        // seen even if it lands before the watch is fully established.
        { resourceVersion: created.metadata.resourceVersion, fieldSelector: `metadata.name=${name}` },
        (type, object) => log.push({ type, object }),
        (err) => {
          log.closed = err ?? 'closed';
        },
      );
      try {
        const merge = k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch);
        const patched = await custom.patchNamespacedCustomObjectStatus(
          {
            group,
            version: 'v1',
            namespace,
            plural,
            name,
            // The spec half is ignored by /status: only the status is writable there.
            body: { status: { phase: 'Quarantined' }, spec: { target: 'changed' } },
          },
          merge,
        );
        assert.equal(patched.status.phase, 'Quarantined');
        assert.equal(patched.spec.target, 'vm-1');
        assert.equal(patched.metadata.generation, created.metadata.generation, 'a status write must not bump generation');

        const modified = await log.waitFor('MODIFIED with the new status', (e) => e.type === 'MODIFIED' && e.object.status?.phase === 'Quarantined');
        assert.equal(modified.object.metadata.name, name);
        assert.equal(modified.object.metadata.resourceVersion, patched.metadata.resourceVersion);

        // And the main resource ignores status, the other half of the split.
        const specPatched = await custom.patchNamespacedCustomObject(
          { group, version: 'v1', namespace, plural, name, body: { spec: { target: 'vm-2' }, status: { phase: 'Ignored' } } },
          merge,
        );
        assert.equal(specPatched.spec.target, 'vm-2');
        assert.equal(specPatched.status.phase, 'Quarantined');
        await log.waitFor('MODIFIED with the new spec', (e) => e.type === 'MODIFIED' && e.object.spec?.target === 'vm-2');

        await custom.deleteNamespacedCustomObject({ group, version: 'v1', namespace, plural, name });
        await log.waitFor('DELETED', (e) => e.type === 'DELETED');
      } finally {
        controller.abort();
        await deleteIfPresent(() => custom.deleteNamespacedCustomObject({ group, version: 'v1', namespace, plural, name }));
      }
    });
  });

  test('a Lease is created and renewed, and a stale renewal gets 409', { timeout: 30_000 }, async () => {
    const leases = admin.makeApiClient(k8s.CoordinationV1Api);
    const namespace = 'default';
    const name = `quarantine-lease-${uniqueSuffix()}`;
    try {
      const created = await leases.createNamespacedLease({
        namespace,
        body: {
          metadata: { name },
          spec: {
            holderIdentity: 'replica-a',
            leaseDurationSeconds: 15,
            acquireTime: new k8s.V1MicroTime(),
            renewTime: new k8s.V1MicroTime(),
          },
        },
      });
      assert.equal(created.spec?.holderIdentity, 'replica-a');
      const staleVersion = created.metadata?.resourceVersion;
      assert.ok(staleVersion);

      const renewed = await leases.replaceNamespacedLease({
        namespace,
        name,
        body: { ...created, spec: { ...created.spec, renewTime: new k8s.V1MicroTime() } },
      });
      assert.notEqual(renewed.metadata?.resourceVersion, staleVersion);

      // A second replica that read the lease before the renewal must lose.
      await expectStatus(
        leases.replaceNamespacedLease({
          namespace,
          name,
          body: { ...created, spec: { ...created.spec, holderIdentity: 'replica-b', renewTime: new k8s.V1MicroTime() } },
        }),
        409,
      );
      const current = await leases.readNamespacedLease({ namespace, name });
      assert.equal(current.spec?.holderIdentity, 'replica-a');
      assert.equal(current.metadata?.resourceVersion, renewed.metadata?.resourceVersion);
    } finally {
      await deleteIfPresent(() => leases.deleteNamespacedLease({ namespace, name }));
    }
  });

  test('RBAC denies the operator identity until a RoleBinding grants it', { timeout: 60_000 }, async () => {
    const core = admin.makeApiClient(k8s.CoreV1Api);
    const rbac = admin.makeApiClient(k8s.RbacAuthorizationV1Api);
    const asOperator = operator.makeApiClient(k8s.CoreV1Api);
    const namespace = `quarantine-rbac-${uniqueSuffix()}`;
    const name = 'read-secrets';

    await core.createNamespace({ body: { metadata: { name: namespace } } });
    try {
      await expectStatus(asOperator.listSecretForAllNamespaces(), 403);
      await expectStatus(asOperator.listNamespacedSecret({ namespace }), 403);

      await rbac.createNamespacedRole({
        namespace,
        body: {
          metadata: { name },
          rules: [{ apiGroups: [''], resources: ['secrets'], verbs: ['get', 'list', 'watch'] }],
        },
      });
      await rbac.createNamespacedRoleBinding({
        namespace,
        body: {
          metadata: { name },
          roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name },
          // Bound as the service account, as the chart does; the token's user
          // name is what RBAC matches it against.
          subjects: [{ kind: 'ServiceAccount', name: 'quarantine-operator', namespace: 'quarantine-system' }],
        },
      });

      // The authorizer reads RBAC objects from an informer, so the grant takes
      // effect a moment after the write.
      const secrets = await eventually('the RoleBinding to take effect', async () => {
        try {
          return await asOperator.listNamespacedSecret({ namespace });
        } catch (err) {
          if (statusCode(err) === 403) return undefined;
          throw err;
        }
      });
      assert.deepEqual(secrets.items, []);

      // The grant is namespaced: cluster-wide stays forbidden.
      await expectStatus(asOperator.listSecretForAllNamespaces(), 403);

      const review = await operator.makeApiClient(k8s.AuthenticationV1Api).createSelfSubjectReview({ body: {} });
      assert.equal(review.status?.userInfo?.username, operatorUser);
    } finally {
      await deleteIfPresent(() => rbac.deleteNamespacedRoleBinding({ namespace, name }));
      await deleteIfPresent(() => rbac.deleteNamespacedRole({ namespace, name }));
      await deleteIfPresent(() => core.deleteNamespace({ name: namespace }));
      // No controller-manager runs here, so nothing would ever clear the
      // namespace's finalizer; with its contents already deleted, do it here.
      try {
        const ns = await core.readNamespace({ name: namespace });
        await core.replaceNamespaceFinalize({ name: namespace, body: { ...ns, spec: { finalizers: [] } } });
      } catch (err) {
        if (statusCode(err) !== 404) throw err;
      }
      await eventually('the namespace to be gone', async () => {
        try {
          await core.readNamespace({ name: namespace });
          return undefined;
        } catch (err) {
          if (statusCode(err) === 404) return true;
          throw err;
        }
      });
    }
  });
});
