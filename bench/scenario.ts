// The contract between the harness and a benchmark scenario. A scenario gets
// a context (parameters, services, progress, scratch space) and returns the
// figures it measured; the harness owns reporting, so every scenario's
// numbers land in results.json and BENCHMARKS.md the same way.

/** A point of a time series: seconds since the measurement started, and the value over that second. */
export interface SeriesPoint {
  t: number;
  value: number;
}

export interface Target {
  /** '>=' for throughputs, '<=' for latencies. */
  op: '>=' | '<=';
  value: number;
  /**
   * The target is also met at this share of the ceiling measured in the same
   * run (`>=` only): a rate that depends on how fast this machine is that day
   * is judged beside what the machine allowed (ingest: the bare consumer).
   */
  orRatio?: number | undefined;
}

export interface Figure {
  /** Stable identifier, e.g. `ingest.sqlite.rate`; plots and comparisons key on it. */
  figure: string;
  /** What a reader sees in the table. */
  label: string;
  value: number;
  unit: string;
  /** The same quantity for the best the environment allows (or a naive baseline), measured in the same run. */
  ceiling?: number | undefined;
  /** value / ceiling; computed by the harness when both are present. */
  ratio?: number | undefined;
  target?: Target | undefined;
  params: Record<string, unknown>;
  notes?: string | undefined;
  series?: { unit: string; points: SeriesPoint[] } | undefined;
  /** The ceiling's own time series, when it has one. */
  ceilingSeries?: { unit: string; points: SeriesPoint[] } | undefined;
  /** Raw samples in `unit`, for distribution plots. */
  samples?: number[] | undefined;
}

export interface ParamSpec {
  name: string;
  description: string;
  default: string;
}

export interface Progress {
  /** A transient status line (rewritten in place on a terminal). */
  update(text: string): void;
  /** A line that stays. */
  log(text: string): void;
}

export interface Services {
  /** A vhost on the broker that is this run's alone, removed when the scenario ends. */
  amqpUrl(): Promise<string>;
  /** An empty PostgreSQL database per purpose that is this run's alone, dropped when the scenario ends. */
  postgresUrl(purpose: string): Promise<string>;
}

export interface Context {
  services: Services;
  progress: Progress;
  /** bench/out: gitignored; scenarios keep caches and scratch files here. */
  outDir: string;
  /** A parameter the scenario declared, from `--name=value` or BENCH_NAME (dashes become underscores). */
  param(name: string): string;
  /** Registers cleanup that runs even when the scenario fails or the run is interrupted. */
  defer(fn: () => Promise<void> | void): void;
  /** Free-form lines for the scenario's section of BENCHMARKS.md (method, caveats, observations). */
  note(text: string): void;
}

export interface Scenario {
  name: string;
  /** One line for `--help` and the report. */
  description: string;
  params: ParamSpec[];
  run(ctx: Context): Promise<Figure[]>;
}
