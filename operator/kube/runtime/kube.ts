// The runtime's interfaces implemented on @kubernetes/client-node. Kept apart
// from the rest so that unit tests (and commands that never talk to a
// cluster) do not pay for loading client-node.
import * as k8s from '@kubernetes/client-node';
import { GROUP, VERSION, type ResourceDef } from '../../resources/crd.ts';
import type { SecretKeyRef } from '../../resources/common.ts';
import type { SecretSource } from '../../secrets.ts';
import { SecretNotFoundError } from '../../secrets.ts';
import type { CoreEvent, EventSink, Lease, LeaseRecord, LeaseStore, ObjectClient, ObjectRef } from './api.ts';
import type { KubeObject, ListResult, WatchHandle } from './informer.ts';

const mergePatch = (): ReturnType<typeof k8s.setHeaderOptions> => k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch);

export const FIELD_MANAGER = 'quarantine-operator';

export function customObjectClient(kc: k8s.KubeConfig, def: ResourceDef): ObjectClient<KubeObject> {
  const api = kc.makeApiClient(k8s.CustomObjectsApi);
  const base = { group: GROUP, version: VERSION, plural: def.plural };
  const scoped = (ref: ObjectRef): { namespace: string } | undefined => {
    if (!def.namespaced) return undefined;
    if (ref.namespace === undefined) throw new Error(`${def.kind} ${ref.name}: a namespaced object needs a namespace`);
    return { namespace: ref.namespace };
  };
  return {
    async list(): Promise<ListResult<KubeObject>> {
      // The cluster-wide path lists a namespaced kind across all namespaces.
      const list = (await api.listClusterCustomObject(base)) as { items: KubeObject[]; metadata?: { resourceVersion?: string } };
      return { items: list.items, resourceVersion: list.metadata?.resourceVersion ?? '' };
    },
    async watch(resourceVersion, onEvent, onDone): Promise<WatchHandle> {
      const watch = new k8s.Watch(kc);
      const controller = await watch.watch(
        `/apis/${GROUP}/${VERSION}/${def.plural}`,
        {
          resourceVersion,
          allowWatchBookmarks: true,
          // The server ends each watch after a while, spread so that replicas do not all reconnect together.
          timeoutSeconds: 240 + Math.floor(Math.random() * 120),
        },
        (type, object) => onEvent(type, object),
        (err) => onDone(err ?? undefined),
      );
      return { stop: () => controller.abort() };
    },
    async get(ref) {
      const ns = scoped(ref);
      return (ns
        ? await api.getNamespacedCustomObject({ ...base, ...ns, name: ref.name })
        : await api.getClusterCustomObject({ ...base, name: ref.name })) as KubeObject;
    },
    async patch(ref, body) {
      const ns = scoped(ref);
      return (ns
        ? await api.patchNamespacedCustomObject({ ...base, ...ns, name: ref.name, body, fieldManager: FIELD_MANAGER }, mergePatch())
        : await api.patchClusterCustomObject({ ...base, name: ref.name, body, fieldManager: FIELD_MANAGER }, mergePatch())) as KubeObject;
    },
    async patchStatus(ref, body) {
      const ns = scoped(ref);
      return (ns
        ? await api.patchNamespacedCustomObjectStatus({ ...base, ...ns, name: ref.name, body, fieldManager: FIELD_MANAGER }, mergePatch())
        : await api.patchClusterCustomObjectStatus({ ...base, name: ref.name, body, fieldManager: FIELD_MANAGER }, mergePatch())) as KubeObject;
    },
  };
}

export function coreEventSink(kc: k8s.KubeConfig): EventSink {
  const api = kc.makeApiClient(k8s.CoreV1Api);
  return {
    create: (namespace, event: CoreEvent) => api.createNamespacedEvent({ namespace, body: event as unknown as k8s.CoreV1Event }),
    patch: (namespace, name, body) => api.patchNamespacedEvent({ namespace, name, body }, mergePatch()),
  };
}

function toLease(l: k8s.V1Lease): Lease {
  const s = l.spec ?? {};
  const spec: LeaseRecord = {};
  if (s.holderIdentity !== undefined) spec.holderIdentity = s.holderIdentity;
  if (s.leaseDurationSeconds !== undefined) spec.leaseDurationSeconds = s.leaseDurationSeconds;
  if (s.acquireTime !== undefined) spec.acquireTime = new Date(s.acquireTime);
  if (s.renewTime !== undefined) spec.renewTime = new Date(s.renewTime);
  if (s.leaseTransitions !== undefined) spec.leaseTransitions = s.leaseTransitions;
  return { resourceVersion: l.metadata?.resourceVersion ?? '', spec };
}

function toV1Spec(r: LeaseRecord): k8s.V1LeaseSpec {
  const micro = (d: Date | undefined): k8s.V1MicroTime | undefined => (d === undefined ? undefined : new k8s.V1MicroTime(d.getTime()));
  return {
    holderIdentity: r.holderIdentity,
    leaseDurationSeconds: r.leaseDurationSeconds,
    acquireTime: micro(r.acquireTime),
    renewTime: micro(r.renewTime),
    leaseTransitions: r.leaseTransitions,
  };
}

export function kubeLeaseStore(kc: k8s.KubeConfig, namespace: string, name: string): LeaseStore {
  const api = kc.makeApiClient(k8s.CoordinationV1Api);
  return {
    async get() {
      try {
        return toLease(await api.readNamespacedLease({ namespace, name }));
      } catch (err) {
        if (err instanceof k8s.ApiException && err.code === 404) return undefined;
        throw err;
      }
    },
    async create(spec) {
      return toLease(await api.createNamespacedLease({ namespace, body: { metadata: { name, namespace }, spec: toV1Spec(spec) } }));
    },
    async update(resourceVersion, spec) {
      return toLease(
        await api.replaceNamespacedLease({ namespace, name, body: { metadata: { name, namespace, resourceVersion }, spec: toV1Spec(spec) } }),
      );
    },
  };
}

/** Secrets in the operator's own namespace, read one at a time (the chart grants get, never list or watch). */
export class KubeSecretSource implements SecretSource {
  readonly #api: k8s.CoreV1Api;
  readonly #namespace: string;
  constructor(kc: k8s.KubeConfig, namespace: string) {
    this.#api = kc.makeApiClient(k8s.CoreV1Api);
    this.#namespace = namespace;
  }
  async get(ref: SecretKeyRef): Promise<string> {
    let secret: k8s.V1Secret;
    try {
      secret = await this.#api.readNamespacedSecret({ namespace: this.#namespace, name: ref.name });
    } catch (err) {
      if (err instanceof k8s.ApiException && (err.code === 404 || err.code === 403)) {
        throw new SecretNotFoundError(`Secret ${this.#namespace}/${ref.name} ${err.code === 404 ? 'does not exist' : 'is not readable by the operator (is it named in the chart values?)'}`);
      }
      throw err;
    }
    const value = secret.data?.[ref.key];
    if (value === undefined) throw new SecretNotFoundError(`Secret ${this.#namespace}/${ref.name} has no key ${ref.key}`);
    return Buffer.from(value, 'base64').toString('utf8').trim();
  }
}

/**
 * Creates or updates CustomResourceDefinitions and waits until the apiserver
 * serves them (Established). Server-side apply, because it is one idempotent
 * call that several processes may make at once, and because its body is sent
 * as given: the typed create and replace calls pass a CRD through
 * client-node's model classes, which silently drop `default`, `enum` and the
 * `x-kubernetes-*` keys of a plain-JSON schema.
 */
export async function applyCrds(kc: k8s.KubeConfig, crds: readonly object[], options: { timeoutMs?: number } = {}): Promise<void> {
  const api = kc.makeApiClient(k8s.ApiextensionsV1Api);
  const deadline = Date.now() + (options.timeoutMs ?? 60_000);
  const apply = k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.ServerSideApply);
  const names: string[] = [];
  for (const crd of crds) {
    const name = (crd as { metadata?: { name?: string } }).metadata?.name;
    if (name === undefined) throw new Error('a CRD without metadata.name');
    names.push(name);
    await api.patchCustomResourceDefinition({ name, body: crd, fieldManager: FIELD_MANAGER, force: true }, apply);
  }
  for (const name of names) {
    for (;;) {
      const current = await api.readCustomResourceDefinition({ name });
      const established = current.status?.conditions?.find((c) => c.type === 'Established');
      if (established?.status === 'True') break;
      if (Date.now() > deadline) throw new Error(`CRD ${name} did not become Established: ${JSON.stringify(current.status?.conditions)}`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
}
