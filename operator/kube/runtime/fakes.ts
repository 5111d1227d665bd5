// In-memory stand-ins for the apiserver behind the runtime's interfaces, with
// the semantics controllers depend on: resourceVersion on every write,
// generation only on spec changes, status only through patchStatus,
// finalizers holding back deletion, 409 on a stale resourceVersion. For unit
// tests of the runtime and of controllers built on it.
import type { CoreEvent, EventSink, Lease, LeaseRecord, LeaseStore, ObjectClient, ObjectRef } from './api.ts';
import type { KubeObject, ListResult, WatchHandle } from './informer.ts';
import { keyOf } from './informer.ts';

export class ApiError extends Error {
  readonly code: number;
  constructor(code: number, message: string) {
    super(message);
    this.code = code;
  }
}

/** RFC 7386 JSON merge patch. */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) return structuredClone(patch);
  const out: Record<string, unknown> =
    target !== null && typeof target === 'object' && !Array.isArray(target) ? { ...(target as Record<string, unknown>) } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

type Watcher = { onEvent: (type: string, obj: unknown) => void; onDone: (err?: unknown) => void };

export class MemoryObjectClient implements ObjectClient<KubeObject> {
  readonly calls: string[] = [];
  /** While true, writes happen but watchers are not told: a watch that silently missed events. */
  dropWatchEvents = false;
  /** Makes the next call of that name fail with this error. */
  readonly failNext = new Map<'list' | 'watch' | 'get' | 'patch' | 'patchStatus', unknown>();
  #rv = 100;
  #uid = 0;
  readonly #objects = new Map<string, KubeObject>();
  readonly #watchers = new Set<Watcher>();
  readonly #now: () => Date;

  constructor(now: () => Date = () => new Date()) {
    this.#now = now;
  }

  #fail(op: 'list' | 'watch' | 'get' | 'patch' | 'patchStatus'): void {
    this.calls.push(op);
    const err = this.failNext.get(op);
    if (err !== undefined) {
      this.failNext.delete(op);
      throw err;
    }
  }

  #emit(type: string, obj: KubeObject): void {
    if (this.dropWatchEvents) return;
    for (const w of [...this.#watchers]) w.onEvent(type, structuredClone(obj));
  }

  #stored(ref: ObjectRef): KubeObject {
    const key = keyOf({ metadata: { name: ref.name, namespace: ref.namespace } });
    const obj = this.#objects.get(key);
    if (obj === undefined) throw new ApiError(404, `${key} not found`);
    return obj;
  }

  get watcherCount(): number {
    return this.#watchers.size;
  }

  /** Ends every open watch, as an apiserver timeout or restart would. */
  endWatches(err?: unknown): void {
    for (const w of [...this.#watchers]) {
      this.#watchers.delete(w);
      w.onDone(err);
    }
  }

  peek(key: string): KubeObject | undefined {
    const obj = this.#objects.get(key);
    return obj === undefined ? undefined : structuredClone(obj);
  }

  create(obj: KubeObject): KubeObject {
    const key = keyOf(obj);
    if (this.#objects.has(key)) throw new ApiError(409, `${key} already exists`);
    const stored: KubeObject = structuredClone(obj);
    delete stored['status'];
    stored.metadata = {
      ...stored.metadata,
      uid: `uid-${++this.#uid}`,
      resourceVersion: String(++this.#rv),
      generation: 1,
      creationTimestamp: this.#now().toISOString(),
    };
    this.#objects.set(key, stored);
    this.#emit('ADDED', stored);
    return structuredClone(stored);
  }

  /** A user's edit of the spec: bumps generation. */
  updateSpec(key: string, spec: unknown): KubeObject {
    const obj = this.#objects.get(key);
    if (obj === undefined) throw new ApiError(404, `${key} not found`);
    obj['spec'] = structuredClone(spec);
    obj.metadata.generation = (obj.metadata.generation ?? 0) + 1;
    obj.metadata.resourceVersion = String(++this.#rv);
    this.#emit('MODIFIED', obj);
    return structuredClone(obj);
  }

  delete(key: string): void {
    const obj = this.#objects.get(key);
    if (obj === undefined) throw new ApiError(404, `${key} not found`);
    if ((obj.metadata.finalizers ?? []).length > 0) {
      obj.metadata.deletionTimestamp ??= this.#now().toISOString();
      obj.metadata.resourceVersion = String(++this.#rv);
      this.#emit('MODIFIED', obj);
      return;
    }
    this.#objects.delete(key);
    obj.metadata.resourceVersion = String(++this.#rv);
    this.#emit('DELETED', obj);
  }

  async list(): Promise<ListResult<KubeObject>> {
    this.#fail('list');
    return { items: [...this.#objects.values()].map((o) => structuredClone(o)), resourceVersion: String(this.#rv) };
  }

  async watch(_rv: string, onEvent: Watcher['onEvent'], onDone: Watcher['onDone']): Promise<WatchHandle> {
    this.#fail('watch');
    const w: Watcher = { onEvent, onDone };
    this.#watchers.add(w);
    return {
      stop: () => {
        if (this.#watchers.delete(w)) onDone(new Error('aborted'));
      },
    };
  }

  async get(ref: ObjectRef): Promise<KubeObject> {
    this.#fail('get');
    return structuredClone(this.#stored(ref));
  }

  async patch(ref: ObjectRef, body: object): Promise<KubeObject> {
    this.#fail('patch');
    const obj = this.#stored(ref);
    const b = body as { metadata?: { resourceVersion?: string }; spec?: unknown };
    if (b.metadata?.resourceVersion !== undefined && b.metadata.resourceVersion !== obj.metadata.resourceVersion) {
      throw new ApiError(409, 'the object has been modified; please apply your changes to the latest version and try again');
    }
    const { resourceVersion: _ignored, ...meta } = b.metadata ?? {};
    const next = mergePatch(obj, { ...b, metadata: meta, status: undefined }) as KubeObject;
    if (b.spec !== undefined && JSON.stringify(next['spec']) !== JSON.stringify(obj['spec'])) {
      next.metadata.generation = (obj.metadata.generation ?? 0) + 1;
    }
    next['status'] = obj['status'];
    if (next['status'] === undefined) delete next['status'];
    next.metadata.resourceVersion = String(++this.#rv);
    const key = keyOf(obj);
    if (next.metadata.deletionTimestamp !== undefined && (next.metadata.finalizers ?? []).length === 0) {
      this.#objects.delete(key);
      this.#emit('DELETED', next);
      return structuredClone(next);
    }
    this.#objects.set(key, next);
    this.#emit('MODIFIED', next);
    return structuredClone(next);
  }

  async patchStatus(ref: ObjectRef, body: { status: object }): Promise<KubeObject> {
    this.#fail('patchStatus');
    const obj = this.#stored(ref);
    obj['status'] = mergePatch(obj['status'], body.status);
    obj.metadata.resourceVersion = String(++this.#rv);
    this.#emit('MODIFIED', obj);
    return structuredClone(obj);
  }
}

export class MemoryEventSink implements EventSink {
  readonly events = new Map<string, CoreEvent>();

  async create(namespace: string, event: CoreEvent): Promise<unknown> {
    const key = `${namespace}/${event.metadata.name}`;
    if (this.events.has(key)) throw new ApiError(409, `${key} already exists`);
    this.events.set(key, structuredClone(event));
    return event;
  }

  async patch(namespace: string, name: string, body: Partial<CoreEvent>): Promise<unknown> {
    const e = this.events.get(`${namespace}/${name}`);
    if (e === undefined) throw new ApiError(404, 'not found');
    Object.assign(e, body);
    return e;
  }

  list(): CoreEvent[] {
    return [...this.events.values()];
  }
}

/** One Lease shared by every elector given this store, with optimistic concurrency. */
export class MemoryLeaseStore implements LeaseStore {
  #lease: Lease | undefined;
  #rv = 0;
  /** Makes every call fail while set (an unreachable apiserver). */
  unavailable = false;

  #check(): void {
    if (this.unavailable) throw new ApiError(503, 'apiserver unavailable');
  }

  get current(): Lease | undefined {
    return this.#lease === undefined ? undefined : structuredClone(this.#lease);
  }

  async get(): Promise<Lease | undefined> {
    this.#check();
    return this.current;
  }

  async create(spec: LeaseRecord): Promise<Lease> {
    this.#check();
    if (this.#lease !== undefined) throw new ApiError(409, 'lease already exists');
    this.#lease = { resourceVersion: String(++this.#rv), spec: structuredClone(spec) };
    return this.current as Lease;
  }

  async update(resourceVersion: string, spec: LeaseRecord): Promise<Lease> {
    this.#check();
    if (this.#lease === undefined) throw new ApiError(404, 'lease not found');
    if (this.#lease.resourceVersion !== resourceVersion) throw new ApiError(409, 'lease was modified');
    this.#lease = { resourceVersion: String(++this.#rv), spec: structuredClone(spec) };
    return this.current as Lease;
  }
}
