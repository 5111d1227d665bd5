// The reconcile loop. A controller is `{ kind, reconcile(object, ctx) }`:
// level-triggered (it is given the object as it is now, never a diff),
// called once per key at a time, again after requeueAfterMs if it asks, with
// backoff after a TemporaryError, and not again after a PermanentError until
// the object changes. Every failure leaves a `Reconciled` condition and a
// Warning Event on the object.
import type { Logger } from '../../log.ts';
import { type ResourceDef, RESOURCES } from '../../resources/crd.ts';
import type { ObjectClient } from './api.ts';
import { type Clock, systemClock } from './clock.ts';
import { PermanentError, TemporaryError, httpStatus } from './errors.ts';
import type { EventRecorder, EventType } from './events.ts';
import { type ChangeKind, Informer, type KubeObject, type ListerWatcher } from './informer.ts';
import { WorkQueue } from './queue.ts';
import { type StatusUpdate, addFinalizer, isDeleting, patchStatus, removeFinalizer } from './status.ts';

export interface ReconcileResult {
  /** Reconcile this object again after this long even if nothing changes. */
  requeueAfterMs?: number;
}

export interface ReconcileContext {
  readonly key: string;
  readonly clock: Clock;
  readonly log: Logger;
  /** Aborted when the controller stops (for example on losing leadership). */
  readonly signal: AbortSignal;
  /** The object as stored, including this reconcile's own writes so far. */
  readonly raw: KubeObject;
  /** Merge-patches the status subresource with observedGeneration; sends nothing if nothing changes. */
  status(update: StatusUpdate): Promise<void>;
  event(type: EventType, reason: string, message: string): Promise<void>;
  addFinalizer(name: string): Promise<void>;
  removeFinalizer(name: string): Promise<void>;
}

export interface Controller<T = KubeObject> {
  /** A kind of operator/resources/crd.ts RESOURCES. */
  kind: string;
  /** Given the parsed object (defaults applied); an object that fails its schema never gets here. */
  reconcile(object: T, ctx: ReconcileContext): Promise<ReconcileResult | void>;
  /** Called after an object is gone from the API, with the last version seen. */
  deleted?(key: string, last: KubeObject | undefined, ctx: { clock: Clock; log: Logger }): Promise<void>;
}

export interface ControllerRuntimeOptions {
  client: ObjectClient;
  events: EventRecorder;
  log: Logger;
  clock?: Clock;
  /** The informer's list and watch; the client by default. */
  source?: ListerWatcher<KubeObject>;
  resource?: ResourceDef;
  concurrency?: number;
  resyncMs?: number;
  /** Backoff after consecutive failures of one key: baseMs, doubling, at most maxMs (a TemporaryError's delay is the floor). */
  backoff?: { baseMs?: number; maxMs?: number };
}

export const RECONCILED = 'Reconciled';

export function resourceForKind(kind: string): ResourceDef {
  const def = RESOURCES.find((r) => r.kind === kind);
  if (def === undefined) throw new Error(`no custom resource of kind ${kind}`);
  return def;
}

// Our own status writes come back as watch events; only changes someone
// else made to what we reconcile from deserve a run.
function worthReconciling(kind: ChangeKind, obj: KubeObject | undefined, prev: KubeObject | undefined): boolean {
  if (kind !== 'update' || obj === undefined || prev === undefined) return true;
  const a = obj.metadata;
  const b = prev.metadata;
  return (
    a.generation === undefined ||
    a.generation !== b.generation ||
    a.deletionTimestamp !== b.deletionTimestamp ||
    JSON.stringify([a.finalizers, a.labels, a.annotations]) !== JSON.stringify([b.finalizers, b.labels, b.annotations])
  );
}

export class ControllerRunner<T = KubeObject> {
  readonly informer: Informer<KubeObject>;
  readonly #controller: Controller<T>;
  readonly #o: ControllerRuntimeOptions;
  readonly #clock: Clock;
  readonly #resource: ResourceDef;
  readonly #queue: WorkQueue;
  readonly #failures = new Map<string, number>();
  readonly #permanent = new Set<string>();
  readonly #last = new Map<string, KubeObject>();
  readonly #stop = new AbortController();

  constructor(controller: Controller<T>, options: ControllerRuntimeOptions) {
    this.#controller = controller;
    this.#o = options;
    this.#clock = options.clock ?? systemClock;
    this.#resource = options.resource ?? resourceForKind(controller.kind);
    this.#queue = new WorkQueue({ clock: this.#clock, concurrency: options.concurrency ?? 2, process: (key) => this.#process(key) });
    this.informer = new Informer<KubeObject>({
      source: options.source ?? options.client,
      clock: this.#clock,
      log: options.log,
      resyncMs: options.resyncMs ?? 300_000,
      onChange: (key, kind, obj, prev) => {
        if (kind === 'delete' && prev !== undefined) this.#last.set(key, prev);
        if (worthReconciling(kind, obj, prev)) this.#queue.add(key);
      },
    });
  }

  /** Starts watching and reconciling; resolves once the first list is cached. */
  async start(): Promise<void> {
    this.#queue.start();
    await this.informer.start();
  }

  async stop(): Promise<void> {
    this.#stop.abort();
    this.informer.stop();
    await this.#queue.stop();
  }

  /** Reconcile a key soon, for triggers from outside the apiserver. */
  enqueue(key: string, afterMs = 0): void {
    this.#queue.addAfter(key, afterMs);
  }

  /** Resolves when no key is waiting or being reconciled. */
  idle(): Promise<void> {
    return this.#queue.idle();
  }

  get delayedKeys(): string[] {
    return this.#queue.delayedKeys;
  }

  get kind(): string {
    return this.#controller.kind;
  }

  /** Resources whose last reconcile failed (retrying, or waiting for a change after a permanent failure): drift from what they ask. */
  get failing(): number {
    return new Set([...this.#failures.keys(), ...this.#permanent]).size;
  }

  async #process(key: string): Promise<void> {
    // This run decides when the key is due next.
    this.#queue.cancelDelayed(key);
    const log = this.#o.log.child({ kind: this.#resource.kind, key });
    const raw = this.informer.get(key);
    if (raw === undefined) {
      this.#failures.delete(key);
      this.#permanent.delete(key);
      const last = this.#last.get(key);
      this.#last.delete(key);
      try {
        await this.#controller.deleted?.(key, last, { clock: this.#clock, log });
      } catch (err) {
        log.error({ err }, 'deleted() failed');
      }
      return;
    }
    let latest = raw;
    const client = this.#o.client;
    const now = (): Date => this.#clock.now();
    const ctx: ReconcileContext = {
      key,
      clock: this.#clock,
      log,
      signal: this.#stop.signal,
      get raw() {
        return latest;
      },
      status: async (update) => {
        latest = await patchStatus(client, latest, update, now());
      },
      event: (type, reason, message) => this.#o.events.record(latest, type, reason, message),
      addFinalizer: async (name) => {
        latest = await addFinalizer(client, latest, name);
      },
      removeFinalizer: async (name) => {
        latest = await removeFinalizer(client, latest, name);
      },
    };
    try {
      let parsed: T;
      try {
        parsed = this.#resource.parse(raw) as T;
      } catch (err) {
        throw new PermanentError((err as Error).message, { reason: 'InvalidSpec', cause: err });
      }
      const result = await this.#controller.reconcile(parsed, ctx);
      this.#failures.delete(key);
      this.#permanent.delete(key);
      if (!isDeleting(latest)) {
        await this.#writeOutcome(ctx, { type: RECONCILED, status: 'True', reason: 'ReconcileSucceeded', message: '' });
      }
      if (result?.requeueAfterMs !== undefined && result.requeueAfterMs >= 0) this.#queue.addAfter(key, result.requeueAfterMs);
    } catch (err) {
      await this.#failed(key, err, ctx, log);
    }
  }

  async #failed(key: string, err: unknown, ctx: ReconcileContext, log: Logger): Promise<void> {
    const message = err instanceof Error ? err.message : String(err);
    if (err instanceof PermanentError) {
      this.#failures.delete(key);
      this.#permanent.add(key);
      log.warn({ err }, 'reconcile failed permanently; waiting for the object to change');
      await this.#writeOutcome(ctx, { type: RECONCILED, status: 'False', reason: err.reason, message });
      await ctx.event('Warning', err.reason, message);
      return;
    }
    const failures = (this.#failures.get(key) ?? 0) + 1;
    this.#failures.set(key, failures);
    const base = this.#o.backoff?.baseMs ?? 1_000;
    const max = this.#o.backoff?.maxMs ?? 300_000;
    const backoff = Math.min(max, base * 2 ** Math.min(failures - 1, 30));
    const delay = err instanceof TemporaryError ? Math.max(err.delayMs, backoff) : backoff;
    const reason = err instanceof TemporaryError ? err.reason : 'ReconcileError';
    log.warn({ err, failures, delayMs: delay }, 'reconcile failed; will retry');
    this.#queue.addAfter(key, delay);
    await this.#writeOutcome(ctx, { type: RECONCILED, status: 'False', reason, message });
    await ctx.event('Warning', reason, message);
  }

  async #writeOutcome(ctx: ReconcileContext, condition: { type: string; status: 'True' | 'False'; reason: string; message: string }): Promise<void> {
    try {
      await ctx.status({ conditions: [condition] });
    } catch (err) {
      // Gone already (a finalizer was the last thing holding it) or unreachable: the next run writes it.
      if (httpStatus(err) !== 404) ctx.log.warn({ err }, 'could not write the Reconciled condition');
    }
  }
}
