// Starts and stops each Cloud's intake (and capture side) on this replica,
// as a level-triggered reconciler on the runtime's keyed queue: given a
// Cloud's name, it makes what runs match what the API server holds now. A
// failed start is logged and retried with backoff, never swallowed; a spec
// change restarts the cloud; a removed or invalid Cloud stops it.
import type { Cloud } from '../resources/cloud.ts';
import { WorkQueue } from './runtime/queue.ts';
import type { Clock } from './runtime/clock.ts';
import type { Logger } from '../log.ts';

/** What the API server holds for a name: a valid Cloud, one that fails its schema, or nothing. */
export type DesiredCloud = { valid: true; cloud: Cloud } | { valid: false; reason: string } | undefined;

/** The part of the operator this reconciler drives. */
export interface CloudHost {
  addCloud(cloud: Cloud): Promise<unknown>;
  removeCloud(name: string): Promise<void>;
}

export interface CloudStarterOptions {
  host: CloudHost;
  desired: (name: string) => DesiredCloud;
  clock: Clock;
  logger: Logger;
  /** First retry delay after a failed start, doubling up to maxRetryMs. */
  retryMs?: number;
  maxRetryMs?: number;
}

export class CloudStarter {
  readonly #o: CloudStarterOptions;
  readonly #queue: WorkQueue;
  /** The spec each running cloud was started with. */
  readonly #running = new Map<string, string>();
  readonly #failures = new Map<string, number>();

  constructor(o: CloudStarterOptions) {
    this.#o = o;
    this.#queue = new WorkQueue({ clock: o.clock, concurrency: 2, process: (name) => this.#reconcile(name) });
  }

  start(): void {
    this.#queue.start();
  }

  /** Called for every change the informer sees (and at each resync). */
  enqueue(name: string): void {
    this.#queue.add(name);
  }

  idle(): Promise<void> {
    return this.#queue.idle();
  }

  get running(): string[] {
    return [...this.#running.keys()];
  }

  async stop(): Promise<void> {
    await this.#queue.stop();
  }

  async #reconcile(name: string): Promise<void> {
    const { host, logger } = this.#o;
    const want = this.#o.desired(name);
    try {
      if (want === undefined || !want.valid) {
        if (want !== undefined) logger.warn({ cloud: name, err: want.reason }, 'invalid Cloud ignored');
        if (this.#running.delete(name)) await host.removeCloud(name);
        this.#failures.delete(name);
        return;
      }
      const spec = JSON.stringify(want.cloud.spec);
      if (this.#running.get(name) === spec) return;
      if (this.#running.delete(name)) await host.removeCloud(name);
      await host.addCloud(want.cloud);
      this.#running.set(name, spec);
      this.#failures.delete(name);
    } catch (err) {
      // Whatever half-started is stopped before the retry starts it again.
      await host.removeCloud(name).catch(() => undefined);
      const n = (this.#failures.get(name) ?? 0) + 1;
      this.#failures.set(name, n);
      const delay = Math.min(this.#o.maxRetryMs ?? 60_000, (this.#o.retryMs ?? 2_000) * 2 ** (n - 1));
      logger.error({ cloud: name, err: err instanceof Error ? err.message : String(err), retryInMs: delay }, 'cannot start the cloud; retrying');
      this.#queue.addAfter(name, delay);
    }
  }
}
