// Prometheus metrics. Counters are bumped where things happen; ledger-derived
// gauges are computed at scrape time, so they are right on every replica.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Kysely } from 'kysely';
import type { LedgerSchema } from '../ledger/schema.ts';

export interface Metrics {
  registry: Registry;
  notifications: Counter<'cloud' | 'source' | 'outcome'>;
  captureSeconds: Histogram<'cloud' | 'mode'>;
  captures: Counter<'cloud' | 'mode' | 'result'>;
  races: Counter<'cloud' | 'mode' | 'result'>;
  sweepDeletions: Counter<'reason'>;
  sweepFailures: Counter;
  queueMessages: Gauge<'cloud' | 'queue'>;
}

export function createMetrics(db: Kysely<LedgerSchema>, queueDepth: () => Promise<Array<{ cloud: string; queue: string; messages: number }>>): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'quarantine_process_' });
  const notifications = new Counter({ name: 'quarantine_notifications_total', help: 'Notifications consumed, by cloud, source and outcome (applied, duplicate, ignored, rejected).', labelNames: ['cloud', 'source', 'outcome'] as const, registers: [registry] });
  const captureSeconds = new Histogram({
    name: 'quarantine_capture_latency_seconds', help: 'From the deletion event (notification or trash entry) to the quarantine being durable.', labelNames: ['cloud', 'mode'] as const,
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300], registers: [registry],
  });
  const captures = new Counter({ name: 'quarantine_captures_total', help: 'Capture attempts by mode and result (quarantined, failed, refused).', labelNames: ['cloud', 'mode', 'result'] as const, registers: [registry] });
  const races = new Counter({ name: 'quarantine_capture_races_total', help: 'Live captures started on a delete warning (onDelete, or softDelete when the cloud hard-deletes): won when the snapshot came before the cloud removed the disk. The win rate is won / (won + lost).', labelNames: ['cloud', 'mode', 'result'] as const, registers: [registry] });
  const sweepDeletions = new Counter({ name: 'quarantine_sweep_deletions_total', help: 'Quarantines deleted by the sweep, by reason (expired, capacity).', labelNames: ['reason'] as const, registers: [registry] });
  const sweepFailures = new Counter({ name: 'quarantine_sweep_failures_total', help: 'Quarantines the sweep failed to delete (retried at the next sweep).', registers: [registry] });
  const queueMessages = new Gauge({
    name: 'quarantine_queue_messages', help: 'Messages waiting in our queue on the broker (consumer lag).', labelNames: ['cloud', 'queue'] as const, registers: [registry],
    async collect() {
      for (const q of await queueDepth().catch(() => [])) this.set({ cloud: q.cloud, queue: q.queue }, q.messages);
    },
  });
  new Gauge({
    name: 'quarantine_quarantines', help: 'Quarantines in the ledger by state.', labelNames: ['state'] as const, registers: [registry],
    async collect() {
      this.reset();
      for (const r of await db.selectFrom('quarantines').select(['state', (eb) => eb.fn.countAll<number>().as('n')]).groupBy('state').execute()) this.set({ state: r.state }, Number(r.n));
    },
  });
  new Gauge({
    name: 'quarantine_quarantine_bytes', help: 'Provisioned bytes of quarantines by state.', labelNames: ['state'] as const, registers: [registry],
    async collect() {
      this.reset();
      for (const r of await db.selectFrom('quarantines').select(['state', (eb) => eb.fn.sum<number>('bytes').as('b')]).groupBy('state').execute()) this.set({ state: r.state }, Number(r.b ?? 0));
    },
  });
  return { registry, notifications, captureSeconds, captures, races, sweepDeletions, sweepFailures, queueMessages };
}
