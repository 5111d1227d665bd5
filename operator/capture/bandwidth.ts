// A bound on the bytes per second isolation copies out of the cloud's pool:
// a token bucket on the injected clock, shared by every isolation of one
// Cloud, so that two copies at once share the rate instead of doubling it.
//
// Why a copy of our own and not flatten alone: Ceph's per-image QoS
// (rbd_qos_bps_limit) throttles client I/O, not flatten's copy-ups, and
// rbd_concurrent_management_ops only bounds the objects in flight, so the
// rate it gives depends on the cluster's latency (see BENCHMARKS.md,
// isolation). The paced copy reads the clone's allocated extents and writes
// them into the clone at their offsets, which copies them up exactly as a
// flatten would (the same bytes cross the network: read from the parent,
// written into the quarantine pool); the flatten that follows finds the
// objects there and only detaches the clone from its parent.
import type { ExtentData } from '../domain/block-store.ts';
import type { Clock } from '../kube/runtime/clock.ts';

const MiB = 1024 * 1024;

export class TokenBucket {
  readonly #clock: Clock;
  readonly #bytesPerSecond: number;
  readonly #burst: number;
  #tokens: number;
  #at: number;
  /** Callers wait in line: the first in line is served first. */
  #queue: Promise<void> = Promise.resolve();

  /** `burst`: what may go at once after a pause (default one second's worth, at least 4 MiB: one object). */
  constructor(clock: Clock, bytesPerSecond: number, burst?: number) {
    if (!(bytesPerSecond > 0) || !Number.isFinite(bytesPerSecond)) throw new RangeError(`a rate must be a positive number of bytes per second, got ${bytesPerSecond}`);
    this.#clock = clock;
    this.#bytesPerSecond = bytesPerSecond;
    this.#burst = Math.max(burst ?? bytesPerSecond, 4 * MiB);
    this.#tokens = this.#burst;
    this.#at = clock.now().getTime();
  }

  get bytesPerSecond(): number {
    return this.#bytesPerSecond;
  }

  #refill(): void {
    const now = this.#clock.now().getTime();
    this.#tokens = Math.min(this.#burst, this.#tokens + ((now - this.#at) / 1000) * this.#bytesPerSecond);
    this.#at = now;
  }

  /** Resolves once `bytes` may go; a piece larger than the burst goes once the bucket is full, and leaves it in debt. */
  take(bytes: number, signal?: AbortSignal): Promise<void> {
    const turn = this.#queue.then(async () => {
      for (;;) {
        if (signal?.aborted === true) throw signal.reason;
        this.#refill();
        const need = Math.min(bytes, this.#burst);
        if (this.#tokens >= need) {
          this.#tokens -= bytes;
          return;
        }
        const waitMs = Math.ceil(((need - this.#tokens) / this.#bytesPerSecond) * 1000);
        // The clock's timers never keep the process alive, but a copy waiting for its turn is work in
        // progress: a process with nothing else to do (the CLI, a benchmark) must not exit meanwhile.
        const alive = setTimeout(() => {}, waitMs + 1000);
        try {
          await new Promise<void>((resolve) => this.#clock.setTimer(Math.max(1, waitMs), resolve));
        } finally {
          clearTimeout(alive);
        }
      }
    });
    this.#queue = turn.catch(() => {});
    return turn;
  }
}

export function bucketForMiBps(clock: Clock, mibps: number | undefined): TokenBucket | undefined {
  return mibps === undefined ? undefined : new TokenBucket(clock, mibps * MiB);
}

/** The pieces, each let through once the bucket has room for it. */
export async function* paced(pieces: AsyncIterable<ExtentData>, bucket: TokenBucket, signal?: AbortSignal): AsyncGenerator<ExtentData> {
  for await (const piece of pieces) {
    await bucket.take(piece.data.length, signal);
    yield piece;
  }
}
