// Runs each policy's sweep on its cron schedule (minute granularity, in the
// policy's time zone). Only the leader runs it; overlapping runs are skipped.
import cron, { type ScheduledTask } from 'node-cron';
import type { Policy } from '../domain/policy.ts';
import { sweep, type SweepDeps, type SweepReport } from './sweep.ts';
import type { Logger } from '../log.ts';

export interface SweepStatus {
  policy: string;
  lastSweep: Date | undefined;
  lastReport: SweepReport | undefined;
  nextSweep: Date | undefined;
}

export class SweepScheduler {
  readonly #deps: SweepDeps;
  readonly #policies: () => readonly Policy[];
  readonly #log: Logger;
  readonly #clock: () => Date;
  readonly #tasks = new Map<string, { task: ScheduledTask; key: string }>();
  readonly #status = new Map<string, SweepStatus>();
  #running: Promise<unknown> = Promise.resolve();

  readonly #onSweep: ((policy: string, report: SweepReport, at: Date) => void) | undefined;

  constructor(deps: SweepDeps, policies: () => readonly Policy[], clock: () => Date = () => new Date(), onSweep?: (policy: string, report: SweepReport, at: Date) => void) {
    this.#deps = deps;
    this.#onSweep = onSweep;
    this.#policies = policies;
    this.#log = deps.logger;
    this.#clock = clock;
    const log = this.#log;
    cron.setLogger({
      info: (m) => log.debug({ scheduler: 'sweep' }, m),
      warn: (m) => log.warn({ scheduler: 'sweep' }, m),
      error: (m) => log.error({ scheduler: 'sweep' }, String(m)),
      debug: (m) => log.debug({ scheduler: 'sweep' }, String(m)),
    });
  }

  status(policy: string): SweepStatus | undefined {
    const s = this.#status.get(policy);
    const t = this.#tasks.get(policy);
    return s === undefined ? undefined : { ...s, nextSweep: t?.task.getNextRun() ?? undefined };
  }

  /** Brings the scheduled tasks in line with the current policies. */
  sync(): void {
    const wanted = new Map(this.#policies().map((p) => [p.name, p]));
    for (const [name, t] of this.#tasks) {
      const p = wanted.get(name);
      if (p === undefined || `${p.sweep.schedule}|${p.sweep.timeZone}` !== t.key) {
        void t.task.destroy();
        this.#tasks.delete(name);
      }
    }
    for (const p of wanted.values()) {
      if (this.#tasks.has(p.name)) continue;
      const task = cron.schedule(p.sweep.schedule, () => this.runNow(p.name), { timezone: p.sweep.timeZone, noOverlap: true, name: `sweep:${p.name}` });
      this.#tasks.set(p.name, { task, key: `${p.sweep.schedule}|${p.sweep.timeZone}` });
      this.#status.set(p.name, this.#status.get(p.name) ?? { policy: p.name, lastSweep: undefined, lastReport: undefined, nextSweep: undefined });
    }
  }

  /** One sweep for one policy now; sweeps never run concurrently in one process. */
  runNow(policyName: string, dryRun?: boolean): Promise<SweepReport | undefined> {
    const run = this.#running.then(async () => {
      const p = this.#policies().find((x) => x.name === policyName);
      if (p === undefined) return undefined;
      const report = await sweep(this.#deps, { now: this.#clock(), dryRun: dryRun ?? p.sweep.dryRun, policies: [p], onlyPolicies: [p.name] });
      const at = this.#clock();
      this.#status.set(p.name, { policy: p.name, lastSweep: at, lastReport: report, nextSweep: undefined });
      this.#onSweep?.(p.name, report, at);
      this.#log.info({ policy: p.name, deleted: report.deleted.length, wouldDelete: report.wouldDelete.length, held: report.held.length, failed: report.failed.length, dryRun: report.dryRun }, 'sweep done');
      return report;
    });
    this.#running = run.catch(() => undefined);
    return run;
  }

  async stop(): Promise<void> {
    for (const t of this.#tasks.values()) await t.task.destroy();
    this.#tasks.clear();
    await this.#running;
  }
}
