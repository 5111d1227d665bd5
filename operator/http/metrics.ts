// Prometheus metrics. Counters are bumped where things happen; ledger-derived
// gauges are computed at scrape time, so they are right on every replica.
// Labelled series of known label values start at zero (knownCloud), so that
// rate() and increase() see the first event instead of a series appearing.
import { readFileSync } from 'node:fs';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Kysely } from 'kysely';
import type { LedgerSchema } from '../ledger/schema.ts';
import type { SweepReport } from '../capture/sweep.ts';
import { CAPTURE_STATES } from '../capture/quarantine-store.ts';
import { DRIFT_KINDS } from '../domain/inventory.ts';

export const CAPTURE_MODES = ['trash', 'softDelete', 'onDelete'] as const;
export const CAPTURE_RESULTS = ['quarantined', 'failed', 'refused'] as const;
export const RACE_RESULTS = ['won', 'lost'] as const;
export const INGEST_OUTCOMES = ['applied', 'duplicate', 'ignored', 'rejected'] as const;
export const SWEEP_REASONS = ['expired', 'capacity'] as const;

export interface QueueDepth {
  cloud: string;
  queue: string;
  messages: number | undefined;
  deadLetterQueue: string;
  deadLetters: number | undefined;
}

export interface MetricSources {
  queueDepth: () => Promise<QueueDepth[]>;
  isLeader: () => boolean;
}

export interface Metrics {
  registry: Registry;
  notifications: Counter<'cloud' | 'source' | 'outcome'>;
  captureSeconds: Histogram<'cloud' | 'mode'>;
  isolationSeconds: Histogram<'cloud'>;
  captures: Counter<'cloud' | 'mode' | 'result'>;
  races: Counter<'cloud' | 'mode' | 'result'>;
  stepConflicts: Counter<'cloud' | 'step'>;
  sweepDeletions: Counter<'reason'>;
  sweepFailures: Counter;
  sweepLastSuccess: Gauge<'policy'>;
  trashArmed: Gauge<'cloud' | 'pool'>;
  auditVerificationOk: Gauge;
  reconcileDrift: Counter<'cloud' | 'kind' | 'change'>;
  reconcileLastDrift: Gauge<'cloud' | 'kind' | 'change'>;
  reconcilePasses: Counter<'cloud' | 'listing' | 'outcome'>;
  reconcileLastPass: Gauge<'cloud'>;
  auditVerificationTime: Gauge;
  /** Starts the labelled series of a cloud at zero. */
  knownCloud(cloud: string, sources: readonly string[]): void;
  /** Where quarantine_reconcile_failing reads from (Kubernetes mode: the controllers of the leader). */
  observeReconciles(source: () => Array<{ kind: string; failing: number }>): void;
  /** Counts a finished sweep (dry runs delete nothing and count only as a success). */
  sweepDone(policy: string, report: SweepReport, at: Date): void;
}

/** The capture steps a replica claims (see capture/engine.ts). */
const CLAIMED_STEPS = ['planned', 'snapshotting', 'cloning'] as const;

function packageVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: unknown };
    return typeof pkg.version === 'string' ? pkg.version : 'unknown';
  } catch {
    return 'unknown';
  }
}

export function createMetrics(db: Kysely<LedgerSchema>, sources: MetricSources): Metrics {
  const registry = new Registry();
  // The defaults already start with process_ / nodejs_: the prefix makes quarantine_process_cpu_seconds_total.
  collectDefaultMetrics({ register: registry, prefix: 'quarantine_' });
  new Gauge({ name: 'quarantine_build_info', help: 'Always 1; the labels say which version runs on which Node.js.', labelNames: ['version', 'nodejs'] as const, registers: [registry] })
    .set({ version: packageVersion(), nodejs: process.versions.node }, 1);
  new Gauge({
    name: 'quarantine_leader', help: '1 on the replica that leads (trash scans, resumed captures, sweeps), 0 on the others.', registers: [registry],
    collect() {
      this.set(sources.isLeader() ? 1 : 0);
    },
  });
  const notifications = new Counter({ name: 'quarantine_notifications_total', help: 'Notifications consumed, by cloud, source and outcome (applied, duplicate, ignored, rejected).', labelNames: ['cloud', 'source', 'outcome'] as const, registers: [registry] });
  const captureSeconds = new Histogram({
    name: 'quarantine_capture_latency_seconds', help: 'From the deletion event (notification or trash entry) to the quarantine being durable.', labelNames: ['cloud', 'mode'] as const,
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300], registers: [registry],
  });
  const isolationSeconds = new Histogram({
    name: 'quarantine_isolation_seconds', help: 'From capture to isolation: the capture digest read, the bytes copied out of the cloud\'s pool and the anchor there released.', labelNames: ['cloud'] as const,
    buckets: [1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 10800], registers: [registry],
  });
  const captures = new Counter({ name: 'quarantine_captures_total', help: 'Capture attempts by mode and result (quarantined, failed, refused).', labelNames: ['cloud', 'mode', 'result'] as const, registers: [registry] });
  const races = new Counter({ name: 'quarantine_capture_races_total', help: 'Live captures started on a delete warning (onDelete, or softDelete when the cloud hard-deletes): won when the snapshot came before the cloud removed the disk. The win rate is won / (won + lost).', labelNames: ['cloud', 'mode', 'result'] as const, registers: [registry] });
  const stepConflicts = new Counter({ name: 'quarantine_capture_step_conflicts_total', help: 'Capture steps this replica found claimed by another worker (it stopped there instead of running the step twice).', labelNames: ['cloud', 'step'] as const, registers: [registry] });
  const sweepDeletions = new Counter({ name: 'quarantine_sweep_deletions_total', help: 'Quarantines deleted by the sweep, by reason (expired, capacity).', labelNames: ['reason'] as const, registers: [registry] });
  const sweepFailures = new Counter({ name: 'quarantine_sweep_failures_total', help: 'Quarantines the sweep failed to delete (retried at the next sweep).', registers: [registry] });
  const sweepLastSuccess = new Gauge({ name: 'quarantine_sweep_last_success_timestamp_seconds', help: 'When a policy\'s last sweep completed without a failed deletion (Unix seconds).', labelNames: ['policy'] as const, registers: [registry] });
  const trashArmed = new Gauge({ name: 'quarantine_trash_armed', help: '1 when rbd_move_to_trash_on_remove is on for a watched pool, 0 when deletions there skip the trash.', labelNames: ['cloud', 'pool'] as const, registers: [registry] });
  const auditVerificationOk = new Gauge({ name: 'quarantine_audit_verification_ok', help: '1 when the last verification of the audit chain found every row intact, 0 when it found a modified or missing row.', registers: [registry] });
  const auditVerificationTime = new Gauge({ name: 'quarantine_audit_verification_timestamp_seconds', help: 'When the audit chain was last verified (Unix seconds).', registers: [registry] });
  const reconcileDrift = new Counter({ name: 'quarantine_cloud_reconcile_drift_total', help: "Facts reconciliation with a cloud's API had to add (the API showed what no notification reported) or close (the ledger held what the API no longer lists), per kind: notifications are being lost.", labelNames: ['cloud', 'kind', 'change'] as const, registers: [registry] });
  const reconcileLastDrift = new Gauge({ name: 'quarantine_cloud_reconcile_last_drift', help: 'Facts the last reconciliation pass had to add or close, per kind (0 when the ledger agreed with the API).', labelNames: ['cloud', 'kind', 'change'] as const, registers: [registry] });
  const reconcilePasses = new Counter({ name: 'quarantine_cloud_reconcile_listings_total', help: "Listings of a cloud's API read by reconciliation, by outcome (ok, failed).", labelNames: ['cloud', 'listing', 'outcome'] as const, registers: [registry] });
  const reconcileLastPass = new Gauge({ name: 'quarantine_cloud_reconcile_last_pass_timestamp_seconds', help: 'When the last reconciliation pass over the cloud\'s API started (Unix seconds).', labelNames: ['cloud'] as const, registers: [registry] });
  const depths = async () => sources.queueDepth().catch((): QueueDepth[] => []);
  new Gauge({
    name: 'quarantine_queue_messages', help: 'Messages waiting in our queue on the broker (consumer lag).', labelNames: ['cloud', 'queue'] as const, registers: [registry],
    async collect() {
      this.reset();
      for (const q of await depths()) if (q.messages !== undefined) this.set({ cloud: q.cloud, queue: q.queue }, q.messages);
    },
  });
  new Gauge({
    name: 'quarantine_dead_letter_messages', help: 'Messages in our dead-letter queue: notifications the operator rejected and nobody has looked at yet.', labelNames: ['cloud', 'queue'] as const, registers: [registry],
    async collect() {
      this.reset();
      for (const q of await depths()) if (q.deadLetters !== undefined) this.set({ cloud: q.cloud, queue: q.deadLetterQueue }, q.deadLetters);
    },
  });
  new Gauge({
    name: 'quarantine_quarantines', help: 'Quarantines in the ledger by state.', labelNames: ['state'] as const, registers: [registry],
    async collect() {
      for (const state of CAPTURE_STATES) this.set({ state }, 0);
      for (const r of await db.selectFrom('quarantines').select(['state', (eb) => eb.fn.countAll<number>().as('n')]).groupBy('state').execute()) this.set({ state: r.state }, Number(r.n));
    },
  });
  new Gauge({
    name: 'quarantine_quarantine_bytes', help: 'Provisioned bytes of quarantines by state.', labelNames: ['state'] as const, registers: [registry],
    async collect() {
      for (const state of CAPTURE_STATES) this.set({ state }, 0);
      for (const r of await db.selectFrom('quarantines').select(['state', (eb) => eb.fn.sum<number>('bytes').as('b')]).groupBy('state').execute()) this.set({ state: r.state }, Number(r.b ?? 0));
    },
  });
  const clouds = new Set<string>();
  new Gauge({
    name: 'quarantine_isolation_lag_seconds', help: 'Per cloud, how long ago the oldest quarantine still owing its isolation (digesting or isolating) was captured; 0 when none owes it.', labelNames: ['cloud'] as const, registers: [registry],
    async collect() {
      this.reset();
      for (const cloud of clouds) this.set({ cloud }, 0);
      const rows = await db.selectFrom('quarantines').select(['cloud', (eb) => eb.fn.min<number>('captured_at').as('oldest')])
        .where('state', '=', 'quarantined').where('isolation', 'in', ['digesting', 'isolating']).groupBy('cloud').execute();
      const now = Date.now();
      for (const r of rows) if (r.oldest !== null) this.set({ cloud: r.cloud }, Math.max(0, (now - Number(r.oldest)) / 1000));
    },
  });
  new Gauge({
    name: 'quarantine_derivation_lag_seconds', help: 'Per cloud, how long ago the oldest batch of applied notifications whose address intervals a derivation pass has not yet made was committed; 0 when none waits.', labelNames: ['cloud'] as const, registers: [registry],
    async collect() {
      this.reset();
      for (const cloud of clouds) this.set({ cloud }, 0);
      const rows = await db.selectFrom('derive_pending').select(['cloud', (eb) => eb.fn.min<number>('recorded_at').as('oldest')]).groupBy('cloud').execute();
      const now = Date.now();
      for (const r of rows) if (r.oldest !== null) this.set({ cloud: r.cloud }, Math.max(0, (now - Number(r.oldest)) / 1000));
    },
  });
  new Gauge({
    name: 'quarantine_isolation_copy_differs', help: 'Per cloud, quarantines whose copy, resumed after a crash, differs from the capture digest (isolation copy-differs): evidence for a person to look at.', labelNames: ['cloud'] as const, registers: [registry],
    async collect() {
      this.reset();
      for (const cloud of clouds) this.set({ cloud }, 0);
      const rows = await db.selectFrom('quarantines').select(['cloud', (eb) => eb.fn.countAll<number>().as('n')])
        .where('state', '=', 'quarantined').where('isolation', '=', 'copy-differs').groupBy('cloud').execute();
      for (const r of rows) this.set({ cloud: r.cloud }, Number(r.n));
    },
  });
  let reconciles: () => Array<{ kind: string; failing: number }> = () => [];
  new Gauge({
    name: 'quarantine_reconcile_failing', help: 'Resources whose last reconciliation failed, by kind (on the leader): what they ask is not what is in force.', labelNames: ['kind'] as const, registers: [registry],
    collect() {
      this.reset();
      for (const r of reconciles()) this.set({ kind: r.kind }, r.failing);
    },
  });
  for (const reason of SWEEP_REASONS) sweepDeletions.inc({ reason }, 0);
  sweepFailures.inc(0);
  return {
    registry, notifications, captureSeconds, isolationSeconds, captures, races, stepConflicts, sweepDeletions, sweepFailures, sweepLastSuccess, trashArmed, auditVerificationOk, auditVerificationTime,
    reconcileDrift, reconcileLastDrift, reconcilePasses, reconcileLastPass,
    knownCloud(cloud, sourceNames) {
      clouds.add(cloud);
      for (const kind of DRIFT_KINDS) for (const change of ['added', 'closed'] as const) reconcileDrift.inc({ cloud, kind, change }, 0);
      for (const source of sourceNames) for (const outcome of INGEST_OUTCOMES) notifications.inc({ cloud, source, outcome }, 0);
      for (const mode of CAPTURE_MODES) {
        for (const result of CAPTURE_RESULTS) captures.inc({ cloud, mode, result }, 0);
        for (const result of RACE_RESULTS) races.inc({ cloud, mode, result }, 0);
        captureSeconds.zero({ cloud, mode });
      }
      for (const step of CLAIMED_STEPS) stepConflicts.inc({ cloud, step }, 0);
      isolationSeconds.zero({ cloud });
    },
    observeReconciles(source) {
      reconciles = source;
    },
    sweepDone(policy, report, at) {
      if (!report.dryRun) for (const d of report.deleted) sweepDeletions.inc({ reason: d.reason });
      if (report.failed.length > 0) sweepFailures.inc(report.failed.length);
      else sweepLastSuccess.set({ policy }, at.getTime() / 1000);
    },
  };
}
