// Runs a set of controllers on whichever replica holds the leader Lease: they
// start when this replica becomes leader and stop (in-flight reconciles
// finish) before the lease is given up or when it is lost, so two replicas
// never reconcile the same object at once.
import type * as k8s from '@kubernetes/client-node';
import type { Logger } from '../../log.ts';
import { type Clock, systemClock } from './clock.ts';
import { type Controller, ControllerRunner, resourceForKind } from './controller.ts';
import { EventRecorder } from './events.ts';
import { coreEventSink, customObjectClient, kubeLeaseStore } from './kube.ts';
import { LeaderElector } from './leader.ts';

export interface ManagerOptions {
  kubeConfig: k8s.KubeConfig;
  /** Each controller keeps its own object type; `never` here only lets them share one list. */
  controllers: ReadonlyArray<Controller<never>>;
  /** The operator's namespace: the Lease lives here. */
  namespace: string;
  /** This replica (the pod name). */
  identity: string;
  leaseName: string;
  log: Logger;
  clock?: Clock;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  resyncMs?: number;
  concurrency?: number;
  /** Also told when leadership starts and ends, e.g. to run the sweep only on the leader. */
  onStartedLeading?(signal: AbortSignal): void | Promise<void>;
  onStoppedLeading?(): void | Promise<void>;
}

export class ControllerManager {
  readonly #o: ManagerOptions;
  readonly #elector: LeaderElector;
  #runners: ControllerRunner<never>[] = [];

  constructor(options: ManagerOptions) {
    this.#o = options;
    const clock = options.clock ?? systemClock;
    for (const c of options.controllers) resourceForKind(c.kind);
    this.#elector = new LeaderElector({
      store: kubeLeaseStore(options.kubeConfig, options.namespace, options.leaseName),
      identity: options.identity,
      log: options.log,
      clock,
      ...(options.leaseDurationMs === undefined ? {} : { leaseDurationMs: options.leaseDurationMs }),
      ...(options.renewDeadlineMs === undefined ? {} : { renewDeadlineMs: options.renewDeadlineMs }),
      ...(options.retryPeriodMs === undefined ? {} : { retryPeriodMs: options.retryPeriodMs }),
      onStartedLeading: (signal) => this.#lead(signal),
      onStoppedLeading: () => this.#follow(),
    });
  }

  get isLeader(): boolean {
    return this.#elector.isLeader;
  }

  /** Controllers running on this replica now (none unless it leads). */
  get runners(): ReadonlyArray<ControllerRunner<never>> {
    return this.#runners;
  }

  start(): void {
    this.#elector.start();
  }

  async stop(): Promise<void> {
    await this.#elector.stop();
  }

  async #lead(signal: AbortSignal): Promise<void> {
    const { kubeConfig, log } = this.#o;
    const clock = this.#o.clock ?? systemClock;
    const events = new EventRecorder({ sink: coreEventSink(kubeConfig), clock, log, instance: this.#o.identity });
    this.#runners = this.#o.controllers.map(
      (c) =>
        new ControllerRunner(c, {
          client: customObjectClient(kubeConfig, resourceForKind(c.kind)),
          events,
          log: log.child({ controller: c.kind }),
          clock,
          ...(this.#o.resyncMs === undefined ? {} : { resyncMs: this.#o.resyncMs }),
          ...(this.#o.concurrency === undefined ? {} : { concurrency: this.#o.concurrency }),
        }),
    );
    await Promise.all(this.#runners.map((r) => r.start()));
    if (!signal.aborted) await this.#o.onStartedLeading?.(signal);
  }

  async #follow(): Promise<void> {
    const runners = this.#runners;
    this.#runners = [];
    await Promise.allSettled(runners.map((r) => r.stop()));
    await this.#o.onStoppedLeading?.();
  }
}
