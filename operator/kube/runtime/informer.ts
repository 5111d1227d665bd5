// List, then watch from the list's resourceVersion, into a local cache.
// Watches end (timeouts, apiserver restarts, compaction) and in Node they
// have been seen to miss events silently, so the cache is also rebuilt from
// a fresh list every resyncMs, and every key is offered again then.
import type { Logger } from '../../log.ts';
import { type Clock, type Timer } from './clock.ts';
import { httpStatus } from './errors.ts';

export interface ObjectMeta {
  name: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  deletionTimestamp?: string;
  finalizers?: string[];
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  [key: string]: unknown;
}

export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
  [key: string]: unknown;
}

export function keyOf(obj: { metadata: { name: string; namespace?: string } }): string {
  return obj.metadata.namespace ? `${obj.metadata.namespace}/${obj.metadata.name}` : obj.metadata.name;
}

export function refOfKey(key: string): { namespace?: string; name: string } {
  const slash = key.indexOf('/');
  return slash < 0 ? { name: key } : { namespace: key.slice(0, slash), name: key.slice(slash + 1) };
}

export interface ListResult<T> {
  items: T[];
  resourceVersion: string;
}

export interface WatchHandle {
  stop(): void;
}

/** The two calls an informer needs; the real one is in kube.ts, tests bring their own. */
export interface ListerWatcher<T extends KubeObject> {
  list(): Promise<ListResult<T>>;
  /** Calls onDone exactly once when the watch ends, with the error if it failed. */
  watch(resourceVersion: string, onEvent: (type: string, object: unknown) => void, onDone: (err?: unknown) => void): Promise<WatchHandle>;
}

export type ChangeKind = 'add' | 'update' | 'delete' | 'resync';

export interface InformerOptions<T extends KubeObject> {
  source: ListerWatcher<T>;
  clock: Clock;
  log: Logger;
  /** Relist period; 0 turns it off. */
  resyncMs?: number;
  /** First delay after a failed list or watch; doubles up to maxRetryMs. */
  retryMs?: number;
  maxRetryMs?: number;
  onChange(key: string, kind: ChangeKind, object: T | undefined, previous: T | undefined): void;
}

export class Informer<T extends KubeObject> {
  readonly #o: Required<Omit<InformerOptions<T>, 'onChange' | 'source' | 'clock' | 'log'>> & InformerOptions<T>;
  readonly #cache = new Map<string, T>();
  #resourceVersion = '';
  #watch: WatchHandle | undefined;
  // Bumped whenever a watch is replaced, so callbacks of an old watch are ignored.
  #generation = 0;
  #failures = 0;
  #retryTimer: Timer | undefined;
  #resyncTimer: Timer | undefined;
  #running = false;
  #synced = false;
  #syncWaiters: Array<() => void> = [];

  constructor(options: InformerOptions<T>) {
    this.#o = { resyncMs: 300_000, retryMs: 1_000, maxRetryMs: 30_000, ...options };
  }

  get synced(): boolean {
    return this.#synced;
  }

  get(key: string): T | undefined {
    return this.#cache.get(key);
  }

  list(): T[] {
    return [...this.#cache.values()];
  }

  /** Starts listing and watching; resolves once the first list is in the cache. */
  start(): Promise<void> {
    if (!this.#running) {
      this.#running = true;
      void this.#relist();
    }
    return this.#synced ? Promise.resolve() : new Promise((resolve) => this.#syncWaiters.push(resolve));
  }

  stop(): void {
    this.#running = false;
    this.#generation++;
    this.#watch?.stop();
    this.#watch = undefined;
    this.#retryTimer?.cancel();
    this.#resyncTimer?.cancel();
  }

  /** Replaces the cache with a fresh list and restarts the watch from it. */
  async resync(): Promise<void> {
    await this.#relist();
  }

  async #relist(): Promise<void> {
    if (!this.#running) return;
    const generation = ++this.#generation;
    this.#watch?.stop();
    this.#watch = undefined;
    this.#retryTimer?.cancel();
    this.#resyncTimer?.cancel();
    let result: ListResult<T>;
    try {
      result = await this.#o.source.list();
    } catch (err) {
      if (generation === this.#generation) this.#retry(err, 'list', () => void this.#relist());
      return;
    }
    if (generation !== this.#generation || !this.#running) return;
    this.#failures = 0;
    this.#replace(result.items);
    this.#resourceVersion = result.resourceVersion;
    if (!this.#synced) {
      this.#synced = true;
      for (const w of this.#syncWaiters.splice(0)) w();
    }
    if (this.#o.resyncMs > 0) this.#resyncTimer = this.#o.clock.setTimer(this.#o.resyncMs, () => void this.#relist());
    await this.#startWatch(generation);
  }

  #replace(items: T[]): void {
    const seen = new Set<string>();
    for (const item of items) {
      const key = keyOf(item);
      seen.add(key);
      const previous = this.#cache.get(key);
      this.#cache.set(key, item);
      const kind: ChangeKind =
        previous === undefined ? 'add' : previous.metadata.resourceVersion === item.metadata.resourceVersion ? 'resync' : 'update';
      this.#o.onChange(key, kind, item, previous);
    }
    for (const [key, previous] of [...this.#cache]) {
      if (seen.has(key)) continue;
      this.#cache.delete(key);
      this.#o.onChange(key, 'delete', undefined, previous);
    }
  }

  async #startWatch(generation: number): Promise<void> {
    if (generation !== this.#generation || !this.#running) return;
    const startedAt = this.#o.clock.now().getTime();
    try {
      const handle = await this.#o.source.watch(
        this.#resourceVersion,
        (type, object) => {
          if (generation === this.#generation) this.#onEvent(type, object);
        },
        (err) => {
          if (generation !== this.#generation || !this.#running) return;
          this.#watch = undefined;
          const lasted = this.#o.clock.now().getTime() - startedAt;
          // A watch that ran for a while was a success, whatever ended it.
          if (lasted >= 1_000) this.#failures = 0;
          if ((err === undefined || err === null) && lasted >= 1_000) {
            // A clean end (the server's timeout): carry on from where we are.
            void this.#startWatch(generation);
          } else if (err === undefined || err === null) {
            // Ended as soon as it began: something is wrong upstream, so do not spin.
            this.#retry(new Error('watch ended at once'), 'watch', () => void this.#startWatch(generation));
          } else if (httpStatus(err) === 410) {
            void this.#relist();
          } else {
            this.#retry(err, 'watch', () => void this.#startWatch(generation));
          }
        },
      );
      if (generation !== this.#generation) handle.stop();
      else this.#watch = handle;
    } catch (err) {
      if (generation !== this.#generation) return;
      if (httpStatus(err) === 410) void this.#relist();
      else this.#retry(err, 'watch', () => void this.#startWatch(generation));
    }
  }

  #onEvent(type: string, object: unknown): void {
    const obj = object as T;
    if (type === 'ERROR') {
      // The apiserver reports an expired resourceVersion as an ERROR event with a Status of code 410.
      const code = (object as { code?: number } | null)?.code;
      this.#o.log.debug({ code, status: object }, 'watch error event');
      this.#generation++;
      this.#watch?.stop();
      this.#watch = undefined;
      if (code === 410) void this.#relist();
      else this.#retry(object, 'watch', () => void this.#relist());
      return;
    }
    const rv = obj?.metadata?.resourceVersion;
    if (rv) this.#resourceVersion = rv;
    if (type === 'BOOKMARK') return;
    const key = keyOf(obj);
    const previous = this.#cache.get(key);
    if (type === 'DELETED') {
      this.#cache.delete(key);
      this.#o.onChange(key, 'delete', undefined, previous ?? obj);
    } else if (type === 'ADDED' || type === 'MODIFIED') {
      this.#cache.set(key, obj);
      this.#o.onChange(key, previous === undefined ? 'add' : 'update', obj, previous);
    }
  }

  #retry(err: unknown, what: string, again: () => void): void {
    if (!this.#running) return;
    this.#failures++;
    const delay = Math.min(this.#o.maxRetryMs, this.#o.retryMs * 2 ** (this.#failures - 1));
    this.#o.log.warn({ err, delayMs: delay }, `${what} failed; retrying`);
    this.#retryTimer?.cancel();
    this.#retryTimer = this.#o.clock.setTimer(delay, again);
  }
}
