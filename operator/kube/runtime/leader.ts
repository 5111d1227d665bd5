// Leader election on a coordination.k8s.io/v1 Lease, so that exactly one
// replica runs the controllers and the sweep. Expiry is judged by this
// replica's own clock, from when it last saw the lease change, never from
// the holder's renewTime: two machines' clocks need not agree. A leader
// renews with the resourceVersion it last wrote, so if anyone else has
// written the lease since (it took over while we were stalled), the renewal
// gets 409 and leadership ends at once.
import type { Logger } from '../../log.ts';
import type { Lease, LeaseRecord, LeaseStore } from './api.ts';
import { type Clock, sleep, systemClock } from './clock.ts';
import { httpStatus } from './errors.ts';

export interface LeaderElectorOptions {
  store: LeaseStore;
  /** Unique per replica: the pod name. */
  identity: string;
  log: Logger;
  clock?: Clock;
  /** How long others wait, after the last renewal they saw, before taking over. */
  leaseDurationMs?: number;
  /** A leader that could not renew for this long stops leading (before others may take over). */
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  /** Called when this replica becomes leader; the signal aborts when it stops being one. */
  onStartedLeading(signal: AbortSignal): void | Promise<void>;
  /** Called when leadership ends, by loss or by stop(); awaited before the lease is released. */
  onStoppedLeading(): void | Promise<void>;
  onNewLeader?(identity: string | undefined): void;
}

export class LeaderElector {
  readonly #o: LeaderElectorOptions & { clock: Clock; leaseDurationMs: number; renewDeadlineMs: number; retryPeriodMs: number };
  #stop = new AbortController();
  #loop: Promise<void> | undefined;
  #leading: AbortController | undefined;
  #lastRenew = 0;
  // What we last saw (or wrote) and when, by our clock.
  #observed: Lease | undefined;
  #observedAt = 0;
  #leader: string | undefined;

  constructor(options: LeaderElectorOptions) {
    const o = { clock: systemClock, leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000, ...options };
    if (!(o.leaseDurationMs > o.renewDeadlineMs && o.renewDeadlineMs > o.retryPeriodMs)) {
      throw new Error('leader election needs leaseDuration > renewDeadline > retryPeriod');
    }
    this.#o = o;
  }

  get isLeader(): boolean {
    return this.#leading !== undefined;
  }

  /** The holder as last observed. */
  get leader(): string | undefined {
    return this.#leader;
  }

  start(): void {
    if (this.#loop !== undefined) return;
    this.#stop = new AbortController();
    this.#loop = this.#run();
  }

  /** Stops competing; a leader stops its work first and then gives the lease up so that another replica takes over at once. */
  async stop(): Promise<void> {
    this.#stop.abort();
    await this.#loop;
    this.#loop = undefined;
    if (this.#leading === undefined) return;
    await this.#endLeading();
    const lease = this.#observed;
    if (lease === undefined) return;
    try {
      const now = this.#o.clock.now();
      await this.#o.store.update(lease.resourceVersion, {
        ...lease.spec,
        holderIdentity: '',
        leaseDurationSeconds: 1,
        renewTime: now,
      });
      this.#o.log.info({ identity: this.#o.identity }, 'released the leader lease');
    } catch (err) {
      this.#o.log.warn({ err }, 'could not release the leader lease; others take over when it expires');
    }
  }

  async #run(): Promise<void> {
    const signal = this.#stop.signal;
    while (!signal.aborted) {
      let outcome: 'held' | 'lost' | 'failed';
      try {
        outcome = (await this.tryAcquireOrRenew()) ? 'held' : 'failed';
      } catch (err) {
        outcome = httpStatus(err) === 409 && this.#leading !== undefined ? 'lost' : 'failed';
        if (outcome === 'failed') this.#o.log.warn({ err }, 'leader election: lease request failed');
      }
      if (signal.aborted) break;
      const now = this.#o.clock.now().getTime();
      if (outcome === 'held') {
        this.#lastRenew = now;
        if (this.#leading === undefined) this.#beginLeading();
      } else if (this.#leading !== undefined && (outcome === 'lost' || now - this.#lastRenew >= this.#o.renewDeadlineMs)) {
        this.#o.log.warn({ identity: this.#o.identity, outcome }, 'lost leadership');
        // Our view is stale: the next round reads the lease afresh.
        this.#observed = undefined;
        await this.#endLeading();
      }
      await sleep(this.#o.clock, this.#o.retryPeriodMs, signal);
    }
  }

  /**
   * One round: renew if leading, otherwise take the lease if it is free or
   * expired. True when this replica holds the lease afterwards. A 409 while
   * leading is thrown: someone else wrote the lease.
   */
  async tryAcquireOrRenew(): Promise<boolean> {
    const { store, identity, clock } = this.#o;
    const durationS = Math.ceil(this.#o.leaseDurationMs / 1000);
    const now = clock.now();
    if (this.#leading !== undefined && this.#observed !== undefined) {
      const spec: LeaseRecord = { ...this.#observed.spec, holderIdentity: identity, leaseDurationSeconds: durationS, renewTime: now };
      this.#see(await store.update(this.#observed.resourceVersion, spec));
      return true;
    }
    const current = await store.get();
    if (current === undefined) {
      try {
        this.#see(await store.create({ holderIdentity: identity, leaseDurationSeconds: durationS, acquireTime: now, renewTime: now, leaseTransitions: 0 }));
        return true;
      } catch (err) {
        if (httpStatus(err) === 409) return false;
        throw err;
      }
    }
    this.#see(current);
    const holder = current.spec.holderIdentity || undefined;
    const heldFor = (current.spec.leaseDurationSeconds ?? durationS) * 1000;
    if (holder !== undefined && holder !== identity && clock.now().getTime() < this.#observedAt + heldFor) return false;
    const transitions = current.spec.leaseTransitions ?? 0;
    const spec: LeaseRecord = {
      holderIdentity: identity,
      leaseDurationSeconds: durationS,
      acquireTime: holder === identity ? (current.spec.acquireTime ?? now) : now,
      renewTime: now,
      leaseTransitions: holder === identity ? transitions : transitions + 1,
    };
    try {
      this.#see(await store.update(current.resourceVersion, spec));
      return true;
    } catch (err) {
      if (httpStatus(err) === 409) return false;
      throw err;
    }
  }

  #see(lease: Lease): void {
    if (this.#observed?.resourceVersion !== lease.resourceVersion) {
      this.#observed = lease;
      this.#observedAt = this.#o.clock.now().getTime();
    }
    const holder = lease.spec.holderIdentity || undefined;
    if (holder !== this.#leader) {
      this.#leader = holder;
      this.#o.onNewLeader?.(holder);
    }
  }

  #beginLeading(): void {
    const leading = new AbortController();
    this.#leading = leading;
    this.#o.log.info({ identity: this.#o.identity }, 'became leader');
    void (async () => {
      try {
        await this.#o.onStartedLeading(leading.signal);
      } catch (err) {
        this.#o.log.error({ err }, 'onStartedLeading failed');
      }
    })();
  }

  async #endLeading(): Promise<void> {
    const leading = this.#leading;
    if (leading === undefined) return;
    this.#leading = undefined;
    leading.abort();
    try {
      await this.#o.onStoppedLeading();
    } catch (err) {
      this.#o.log.error({ err }, 'onStoppedLeading failed');
    }
  }
}
