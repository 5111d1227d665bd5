// Status writes and finalizers. Status goes to the /status subresource as a
// merge patch carrying observedGeneration; conditions keep their
// lastTransitionTime unless their status really changes, and a write that
// would change nothing is not sent (each write is a watch event, and a
// reconcile that always writes would wake itself forever).
import { isDeepStrictEqual } from 'node:util';
import type { Condition, ConditionStatus } from '../../resources/common.ts';
import type { ObjectClient } from './api.ts';
import { httpStatus, TemporaryError } from './errors.ts';
import type { KubeObject } from './informer.ts';

export interface ConditionUpdate {
  type: string;
  status: ConditionStatus;
  reason: string;
  message?: string;
}

/** Conditions after applying updates: same order, new types appended. */
export function mergeConditions(current: readonly Condition[] | undefined, updates: readonly ConditionUpdate[], now: Date, generation?: number): Condition[] {
  const out = (current ?? []).map((c) => ({ ...c }));
  for (const u of updates) {
    const i = out.findIndex((c) => c.type === u.type);
    const prev = i < 0 ? undefined : out[i];
    const next: Condition = {
      type: u.type,
      status: u.status,
      reason: u.reason,
      message: u.message ?? '',
      lastTransitionTime: prev !== undefined && prev.status === u.status ? prev.lastTransitionTime : now.toISOString().replace(/\.\d{3}Z$/, 'Z'),
    };
    if (generation !== undefined) next.observedGeneration = generation;
    if (i < 0) out.push(next);
    else out[i] = next;
  }
  return out;
}

export function findCondition(obj: object, type: string): Condition | undefined {
  const conditions = (obj as { status?: { conditions?: Condition[] } }).status?.conditions;
  return conditions?.find((c) => c.type === type);
}

export interface StatusUpdate {
  conditions?: ConditionUpdate[];
  /** Other status fields; null removes one (merge-patch semantics). */
  fields?: Record<string, unknown>;
}

/** The merge patch for an update, or undefined when the object already has that status. */
export function statusPatch(obj: KubeObject, update: StatusUpdate, now: Date): { status: Record<string, unknown> } | undefined {
  const current = (obj['status'] ?? {}) as Record<string, unknown>;
  const generation = obj.metadata.generation;
  const status: Record<string, unknown> = { ...update.fields };
  if (generation !== undefined) status['observedGeneration'] = generation;
  if (update.conditions !== undefined && update.conditions.length > 0) {
    status['conditions'] = mergeConditions(current['conditions'] as Condition[] | undefined, update.conditions, now, generation);
  }
  const changed = Object.entries(status).some(([k, v]) => (v === null ? k in current : !isDeepStrictEqual(current[k], v)));
  return changed ? { status } : undefined;
}

/** Applies the update through the client; returns the object as it is now. */
export async function patchStatus<T extends KubeObject>(client: ObjectClient<T>, obj: T, update: StatusUpdate, now: Date): Promise<T> {
  const body = statusPatch(obj, update, now);
  if (body === undefined) return obj;
  return client.patchStatus({ namespace: obj.metadata.namespace, name: obj.metadata.name }, body);
}

export function hasFinalizer(obj: KubeObject, finalizer: string): boolean {
  return obj.metadata.finalizers?.includes(finalizer) ?? false;
}

export function isDeleting(obj: KubeObject): boolean {
  return obj.metadata.deletionTimestamp !== undefined && obj.metadata.deletionTimestamp !== null;
}

// The whole finalizers list is replaced by a merge patch, so the patch
// carries the resourceVersion it was computed from: if someone else changed
// the list meanwhile, the apiserver answers 409 instead of losing their entry.
async function setFinalizers<T extends KubeObject>(client: ObjectClient<T>, obj: T, finalizers: string[]): Promise<T> {
  try {
    return await client.patch(
      { namespace: obj.metadata.namespace, name: obj.metadata.name },
      { metadata: { finalizers, resourceVersion: obj.metadata.resourceVersion } },
    );
  } catch (err) {
    if (httpStatus(err) === 409) throw new TemporaryError('the object changed while its finalizers were updated', 200, { reason: 'Conflict', cause: err });
    throw err;
  }
}

export async function addFinalizer<T extends KubeObject>(client: ObjectClient<T>, obj: T, finalizer: string): Promise<T> {
  if (hasFinalizer(obj, finalizer)) return obj;
  return setFinalizers(client, obj, [...(obj.metadata.finalizers ?? []), finalizer]);
}

export async function removeFinalizer<T extends KubeObject>(client: ObjectClient<T>, obj: T, finalizer: string): Promise<T> {
  if (!hasFinalizer(obj, finalizer)) return obj;
  return setFinalizers(client, obj, (obj.metadata.finalizers ?? []).filter((f) => f !== finalizer));
}
