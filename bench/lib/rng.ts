// A seeded generator: the same seed gives the same workload and the same data
// set on every run and on both engines, so results are comparable and a cached
// database matches what the generator would produce now.

export class Rng {
  #s: number;
  constructor(seed: number) {
    this.#s = seed >>> 0 || 0x9e3779b9;
  }
  /** mulberry32: tiny, fast, and good enough for workload shapes. */
  next(): number {
    let t = (this.#s = (this.#s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)] as T;
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  /** Log-normal with the given median; sigma sets the spread of the tail. */
  logNormal(median: number, sigma: number): number {
    const u = Math.max(1e-12, this.next());
    const v = this.next();
    const z = Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
    return median * Math.exp(sigma * z);
  }
  /** A UUID-shaped string drawn from this generator (not random in the crypto sense, only unique enough). */
  uuid(): string {
    const h = (n: number) => Math.floor(this.next() * 16 ** n).toString(16).padStart(n, '0');
    return `${h(8)}-${h(4)}-4${h(3)}-${(8 + this.int(4)).toString(16)}${h(3)}-${h(6)}${h(6)}`;
  }
}
