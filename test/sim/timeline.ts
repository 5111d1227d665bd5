// What the simulated clouds did, and when: every notification published,
// every disk created, removed, kept or trashed, every state change and hook
// run is recorded as a step. Tests wait on steps instead of sleeping, and the
// benchmark reads the monotonic times to measure how long the operator had
// between a warning on the bus and the cloud's removal of the disk.
import { EventEmitter } from 'node:events';
import { performance } from 'node:perf_hooks';

export interface SimClock {
  now(): Date;
}

export const systemClock: SimClock = { now: () => new Date() };

export type SimSource = 'nova' | 'neutron' | 'cinder' | 'glance' | 'opennebula';

export type StepKind =
  /** A notification the broker confirmed (OpenNebula: a hook publisher run that exited 0). */
  | 'notification'
  /** Neutron routers and their gateway (SNAT) addresses. */
  | 'router-created'
  | 'router-updated'
  | 'router-deleted'
  /** An instance/VM state change. */
  | 'state'
  | 'disk-created'
  | 'disk-written'
  /** The cloud removed the image for good. */
  | 'disk-removed'
  /** One removal attempt failed; the cloud will try again (Nova) or has moved on (OpenNebula). */
  | 'disk-remove-failed'
  /** Nova stopped retrying and left the image in place, as it does: with a log line only. */
  | 'disk-gave-up'
  /** The image the cloud wanted to remove was already gone. */
  | 'disk-missing'
  /** Moved to the RBD trash (Cinder with snapshots, OpenNebula CEPH_TRASH). */
  | 'disk-trashed'
  /** The cloud decided not to touch the image (running_deleted_instance_action other than reap). */
  | 'disk-kept'
  | 'snapshot-created'
  | 'snapshot-removed'
  /** One rbd command of OpenNebula's TM delete, with its outcome. */
  | 'tm-command'
  | 'port-created'
  | 'port-updated'
  | 'port-deleted'
  | 'fip-created'
  | 'fip-updated'
  | 'fip-deleted'
  /** Neutron cleared a floating IP's association because its port went, without a floatingip notification. */
  | 'fip-silently-disassociated'
  /** An OpenNebula hook execution (successful or not). */
  | 'hook'
  | 'api-request'
  | 'log';

export interface SimStep {
  /** Position in the timeline, from 1. */
  readonly seq: number;
  /** The simulator's clock (what the payloads say). */
  readonly at: Date;
  /** performance.now() when recorded: use for durations. */
  readonly t: number;
  readonly source: SimSource;
  readonly kind: StepKind;
  /** Nova/Neutron device UUID, or the OpenNebula VM id as a string. */
  readonly instance?: string | undefined;
  /** For notifications. */
  readonly eventType?: string | undefined;
  /** `pool[/namespace]/image[@snap]` for disk steps. */
  readonly image?: string | undefined;
  /** Everything else worth knowing about the step (routing key, attempt, error, exit code...). */
  readonly detail: Readonly<Record<string, unknown>>;
}

export type StepInput = Omit<SimStep, 'seq' | 't' | 'at' | 'detail'> & { at?: Date; detail?: Record<string, unknown> };

export class SimTimeline {
  readonly #steps: SimStep[] = [];
  readonly #events = new EventEmitter();
  readonly #clock: SimClock;

  constructor(clock: SimClock = systemClock) {
    this.#clock = clock;
    this.#events.setMaxListeners(0);
  }

  get steps(): readonly SimStep[] {
    return this.#steps;
  }

  /** The seq of the last step so far (0 when empty): pass it to `waitFor` as `after`. */
  get last(): number {
    return this.#steps.length;
  }

  record(input: StepInput): SimStep {
    const step: SimStep = Object.freeze({
      ...input,
      seq: this.#steps.length + 1,
      at: input.at ?? this.#clock.now(),
      t: performance.now(),
      detail: Object.freeze({ ...(input.detail ?? {}) }),
    });
    this.#steps.push(step);
    this.#events.emit('step', step);
    return step;
  }

  on(listener: (step: SimStep) => void): () => void {
    this.#events.on('step', listener);
    return () => this.#events.off('step', listener);
  }

  filter(predicate: (step: SimStep) => boolean): SimStep[] {
    return this.#steps.filter(predicate);
  }

  /** Every step after `seq`. */
  since(seq: number): SimStep[] {
    return this.#steps.slice(seq);
  }

  /**
   * The first step (after `after`, default: any so far) that matches; waits
   * for it when there is none yet.
   */
  waitFor(predicate: (step: SimStep) => boolean, options: { timeoutMs?: number; after?: number; what?: string } = {}): Promise<SimStep> {
    const after = options.after ?? 0;
    const found = this.#steps.slice(after).find(predicate);
    if (found !== undefined) return Promise.resolve(found);
    const timeoutMs = options.timeoutMs ?? 30_000;
    return new Promise((resolve, reject) => {
      const off = this.on((step) => {
        if (step.seq <= after || !predicate(step)) return;
        clearTimeout(timer);
        off();
        resolve(step);
      });
      const timer = setTimeout(() => {
        off();
        reject(new Error(`no ${options.what ?? 'matching'} step within ${timeoutMs} ms`));
      }, timeoutMs);
    });
  }

  /** The notifications recorded (optionally for one instance), in publish order. */
  notifications(instance?: string): SimStep[] {
    return this.#steps.filter((s) => s.kind === 'notification' && (instance === undefined || s.instance === instance));
  }
}

export function sleep(ms: number): Promise<void> {
  return ms <= 0 ? Promise.resolve() : new Promise((resolve) => setTimeout(resolve, ms));
}
