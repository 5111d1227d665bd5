// Small numeric helpers shared by scenarios.

/** Nearest-rank percentile of already sorted values (p in 0..100). */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))] as number;
}

export function summarize(values: readonly number[]): { n: number; p50: number; p90: number; p99: number; max: number; mean: number } {
  const sorted = [...values].sort((a, b) => a - b);
  const mean = sorted.reduce((s, v) => s + v, 0) / Math.max(1, sorted.length);
  return { n: sorted.length, p50: percentile(sorted, 50), p90: percentile(sorted, 90), p99: percentile(sorted, 99), max: sorted.at(-1) ?? Number.NaN, mean };
}

export function round(v: number, digits = 0): number {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}

/** Counts events into one-second buckets relative to a start time (ms, from performance.now()). */
export class RateSeries {
  readonly #start: number;
  readonly #buckets: number[] = [];
  constructor(start: number) {
    this.#start = start;
  }
  add(now: number, count = 1): void {
    const i = Math.max(0, Math.floor((now - this.#start) / 1000));
    while (this.#buckets.length <= i) this.#buckets.push(0);
    this.#buckets[i] = (this.#buckets[i] ?? 0) + count;
  }
  /** Per-second rates; the last bucket is scaled to its covered fraction so a partial second does not read as a drop. */
  points(end: number): Array<{ t: number; value: number }> {
    const elapsed = (end - this.#start) / 1000;
    return this.#buckets.map((count, i) => {
      const width = Math.min(1, Math.max(1e-3, elapsed - i));
      return { t: i, value: Math.round(count / width) };
    });
  }
}
