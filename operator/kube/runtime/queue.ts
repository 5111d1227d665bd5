// A keyed work queue: a key waits at most once however often it is added,
// one key is never processed by two workers at once, and a key added while
// it is being processed runs again right after.
import type { Clock, Timer } from './clock.ts';

export interface WorkQueueOptions {
  clock: Clock;
  /** Different keys processed at the same time. */
  concurrency?: number;
  process(key: string): Promise<void>;
}

export class WorkQueue {
  readonly #clock: Clock;
  readonly #concurrency: number;
  readonly #process: (key: string) => Promise<void>;
  // A Set keeps insertion order: the oldest waiting key goes first.
  readonly #ready = new Set<string>();
  readonly #running = new Map<string, Promise<void>>();
  readonly #dirty = new Set<string>();
  readonly #delayed = new Map<string, { due: number; timer: Timer }>();
  #started = false;
  #stopped = false;
  #idleWaiters: Array<() => void> = [];

  constructor(options: WorkQueueOptions) {
    this.#clock = options.clock;
    this.#concurrency = Math.max(1, options.concurrency ?? 2);
    this.#process = options.process;
  }

  add(key: string): void {
    if (this.#stopped) return;
    if (this.#running.has(key)) {
      this.#dirty.add(key);
      return;
    }
    this.#ready.add(key);
    this.#pump();
  }

  /** Adds the key after delayMs; of several pending delays for a key, the earliest wins. */
  addAfter(key: string, delayMs: number): void {
    if (this.#stopped) return;
    if (delayMs <= 0) return this.add(key);
    const due = this.#clock.now().getTime() + delayMs;
    const existing = this.#delayed.get(key);
    if (existing !== undefined && existing.due <= due) return;
    existing?.timer.cancel();
    const timer = this.#clock.setTimer(delayMs, () => {
      if (this.#delayed.get(key)?.timer === timer) this.#delayed.delete(key);
      this.add(key);
    });
    this.#delayed.set(key, { due, timer });
  }

  /** Drops a pending delayed add: a fresh run decides anew when the key is due next. */
  cancelDelayed(key: string): void {
    this.#delayed.get(key)?.timer.cancel();
    this.#delayed.delete(key);
  }

  get waiting(): number {
    return this.#ready.size;
  }

  get delayedKeys(): string[] {
    return [...this.#delayed.keys()];
  }

  start(): void {
    this.#started = true;
    this.#pump();
  }

  /** Stops taking work, forgets delayed keys, and waits for the running ones. */
  async stop(): Promise<void> {
    this.#stopped = true;
    for (const d of this.#delayed.values()) d.timer.cancel();
    this.#delayed.clear();
    this.#ready.clear();
    this.#dirty.clear();
    await Promise.allSettled([...this.#running.values()]);
  }

  /** Resolves when nothing is waiting or running (delayed keys do not count). */
  idle(): Promise<void> {
    if (this.#isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  #isIdle(): boolean {
    return this.#running.size === 0 && (this.#ready.size === 0 || !this.#started || this.#stopped);
  }

  #pump(): void {
    if (!this.#started || this.#stopped) return;
    while (this.#running.size < this.#concurrency) {
      const key = this.#ready.values().next().value;
      if (key === undefined) break;
      this.#ready.delete(key);
      this.#running.set(key, this.#run(key));
    }
    if (this.#isIdle()) {
      const waiters = this.#idleWaiters;
      this.#idleWaiters = [];
      for (const w of waiters) w();
    }
  }

  async #run(key: string): Promise<void> {
    // Yield first so that #running holds this promise before any work happens.
    await Promise.resolve();
    try {
      await this.#process(key);
    } catch {
      // process() owns its errors; a throw here must not kill the worker.
    } finally {
      this.#running.delete(key);
      if (this.#dirty.delete(key)) this.#ready.add(key);
      this.#pump();
    }
  }
}
