// The narrow interfaces the runtime talks to the apiserver through. kube.ts
// implements them on client-node; unit tests implement them in memory.
import type { KubeObject, ListerWatcher } from './informer.ts';

export interface ObjectRef {
  namespace?: string;
  name: string;
}

/** One custom resource kind: list and watch for the informer, and the two merge patches. */
export interface ObjectClient<T extends KubeObject = KubeObject> extends ListerWatcher<T> {
  get(ref: ObjectRef): Promise<T>;
  /** JSON merge patch of the object; with metadata.resourceVersion in the body it fails with 409 on a conflict. */
  patch(ref: ObjectRef, body: object): Promise<T>;
  /** JSON merge patch of the status subresource. */
  patchStatus(ref: ObjectRef, body: { status: object }): Promise<T>;
}

/** core/v1 Events. */
export interface EventSink {
  create(namespace: string, event: CoreEvent): Promise<unknown>;
  patch(namespace: string, name: string, body: Partial<CoreEvent>): Promise<unknown>;
}

export interface CoreEvent {
  metadata: { name: string; namespace: string };
  involvedObject: { apiVersion?: string; kind?: string; name: string; namespace?: string; uid?: string; resourceVersion?: string };
  reason: string;
  message: string;
  type: 'Normal' | 'Warning';
  firstTimestamp: string;
  lastTimestamp: string;
  count: number;
  source: { component: string; host?: string };
  reportingComponent: string;
  reportingInstance: string;
  action?: string;
}

/** coordination.k8s.io/v1 Lease, reduced to what election uses. Times are Dates. */
export interface LeaseRecord {
  holderIdentity?: string;
  leaseDurationSeconds?: number;
  acquireTime?: Date;
  renewTime?: Date;
  leaseTransitions?: number;
}

export interface Lease {
  resourceVersion: string;
  spec: LeaseRecord;
}

export interface LeaseStore {
  /** undefined when the Lease does not exist. */
  get(): Promise<Lease | undefined>;
  /** Fails with 409 when someone created it first. */
  create(spec: LeaseRecord): Promise<Lease>;
  /** Fails with 409 when resourceVersion is no longer current. */
  update(resourceVersion: string, spec: LeaseRecord): Promise<Lease>;
}
