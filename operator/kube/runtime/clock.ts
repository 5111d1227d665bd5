// Time is injected everywhere in the runtime so that backoff, resync and
// lease expiry can be tested by moving a fake clock instead of sleeping.

export interface Timer {
  cancel(): void;
}

export interface Clock {
  now(): Date;
  /** Calls fn once after ms; the timer never keeps the process alive by itself. */
  setTimer(ms: number, fn: () => void): Timer;
}

export const systemClock: Clock = {
  now: () => new Date(),
  setTimer(ms, fn) {
    const t = setTimeout(fn, Math.max(0, ms));
    t.unref();
    return { cancel: () => clearTimeout(t) };
  },
};

/** Resolves after ms on the given clock, or at once when the signal aborts. */
export function sleep(clock: Clock, ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const onAbort = (): void => {
      timer.cancel();
      resolve();
    };
    const timer = clock.setTimer(ms, () => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    });
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Lets every promise chain that is ready run to its next real wait. */
export async function settle(rounds = 5): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

interface Pending {
  due: number;
  seq: number;
  fn: () => void;
}

/** A clock that moves only when told to; timers fire in due order as it passes them. */
export class FakeClock implements Clock {
  #now: number;
  #seq = 0;
  #pending = new Set<Pending>();

  constructor(start: Date | string | number = '2026-01-01T00:00:00Z') {
    this.#now = new Date(start).getTime();
  }

  now(): Date {
    return new Date(this.#now);
  }

  setTimer(ms: number, fn: () => void): Timer {
    const p: Pending = { due: this.#now + Math.max(0, ms), seq: this.#seq++, fn };
    this.#pending.add(p);
    return { cancel: () => this.#pending.delete(p) };
  }

  get pendingTimers(): number {
    return this.#pending.size;
  }

  /** Moves time forward by ms, firing due timers one at a time and letting their work settle in between. */
  async advance(ms: number): Promise<void> {
    const target = this.#now + ms;
    await settle();
    for (;;) {
      let next: Pending | undefined;
      for (const p of this.#pending) {
        if (p.due <= target && (next === undefined || p.due < next.due || (p.due === next.due && p.seq < next.seq))) next = p;
      }
      if (next === undefined) break;
      this.#pending.delete(next);
      this.#now = Math.max(this.#now, next.due);
      next.fn();
      await settle();
    }
    this.#now = target;
    await settle();
  }
}

/**
 * Runs fn at once and then ms after each run ends, on the given clock, until
 * cancelled: periodic upkeep whose every run recomputes its work from
 * persisted state, so a missed or repeated run changes nothing. Runs never
 * overlap. fn reports its own errors: a rejection only ends that run, the
 * schedule goes on.
 */
export function every(clock: Clock, ms: number, fn: () => Promise<void>): Timer {
  let timer: Timer | undefined;
  let cancelled = false;
  const tick = (): void => {
    void fn()
      .catch(() => undefined)
      .finally(() => {
        if (!cancelled) timer = clock.setTimer(ms, tick);
      });
  };
  tick();
  return {
    cancel() {
      cancelled = true;
      timer?.cancel();
    },
  };
}
