// The running operator for a set of clouds: intake, capture, sweep. Both the
// standalone mode (resources from YAML) and the Kubernetes mode (resources
// from the API server) drive this one object.
import { prepareBodyPartitions, pruneBodies } from './ledger/body-retention.ts';
import type { LedgerDb } from './ledger/db.ts';
import type { startCloudIntake, CloudIntake } from './intake/cloud-intake.ts';
import { CaptureEngine } from './capture/engine.ts';
import { CloudCapture } from './capture/cloud-capture.ts';
import { recordCaptureIntents } from './capture/intents.ts';
import { every, systemClock, type Clock, type Timer } from './kube/runtime/clock.ts';
import { SweepScheduler } from './capture/sweep-schedule.ts';
import { upsertHold, releaseHolds, listHolds } from './capture/holds.ts';
import type { CephAccess } from './clouds/ceph-access.ts';
import type { CloudApi, IdentityDirectory } from './domain/cloud-api.ts';
import { IdentityNames } from './reconcile/identity-names.ts';
import { CloudReconcile, type PassReport } from './reconcile/cloud-reconcile.ts';
import { DRIFT_KINDS, type CloudInventory } from './domain/inventory.ts';
import type { Cloud } from './resources/cloud.ts';
import type { Policy } from './domain/policy.ts';
import type { Hold } from './domain/holds.ts';
import type { SecretSource } from './secrets.ts';
import type { BlockStore } from './domain/block-store.ts';
import { LIBRBD_ADOPT_CONCURRENCY, LIBRBD_CAPTURE_CONCURRENCY } from './ceph/worker-threads.ts';
import type { Logger } from './log.ts';
import { createMetrics, type Metrics, type QueueDepth } from './http/metrics.ts';
import { LedgerHealth } from './ledger/health.ts';
import { verifyAudit } from './ledger/audit.ts';
import { TransferRunner } from './capture/transfers.ts';
import { hostname } from 'node:os';

export interface CloudRuntime {
  cloud: Cloud;
  intake: CloudIntake;
  ceph: CephAccess | undefined;
  engine: CaptureEngine | undefined;
  capture: CloudCapture | undefined;
  /** Reconciliation with the cloud's API (leader only); undefined when no API is configured or it is disabled. */
  reconcile?: CloudReconcile | undefined;
  /** Users' and projects' names from the cloud's identity API (leader only); undefined without API credentials. */
  identityNames?: IdentityNames | undefined;
}

/**
 * The adapters a cloud needs, built by the composition root (main.ts) for
 * both modes: the operator itself constructs none.
 */
export interface CloudAdapters {
  /** The operator's own Ceph access for the Cloud's ceph section; undefined without one. */
  ceph(cloud: Cloud): Promise<CephAccess | undefined>;
  /** The cloud's API for the Cloud's api section; undefined without one. */
  cloudApi(cloud: Cloud): Promise<CloudApi | undefined>;
  /** The listings reconciliation reads (Nova and Neutron, or OpenNebula's XML-RPC pool); undefined without an API section. */
  inventory(cloud: Cloud): Promise<CloudInventory | undefined>;
  /** Where user and project names come from (Keystone, with the Cloud's API credentials); undefined without. */
  identity?(cloud: Cloud): Promise<IdentityDirectory | undefined>;
  /** The cloud's notification intake: its AMQP consumer feeding the ledger. */
  intake: typeof startCloudIntake;
}

export interface OperatorOptions {
  ledger: LedgerDb;
  secrets: SecretSource;
  adapters: CloudAdapters;
  logger: Logger;
  clock?: () => Date;
  /** Seconds the cloud may keep retrying a delete before its disk counts as orphaned. */
  orphanGraceMs?: number;
  /** How often the leader verifies the audit chain (default hourly). */
  auditCheckIntervalMs?: number;
  /** Notification bodies older than this expire (ledger/body-retention.ts); undefined keeps them. */
  bodyRetentionMs?: number;
  /** How often the leader prepares body partitions and expires bodies (default daily). */
  bodyMaintenanceIntervalMs?: number;
  /** The runtime's clock, for the capture reconcilers' queues and relists (default: the system clock). */
  runtimeClock?: Clock;
  /** How often the capture reconcilers list open intents again. */
  relistMs?: number;
  /** This replica's name when it claims a capture step (default: the host name); stable across restarts of one pod. */
  identity?: string;
}

export const MANIFEST_ACTOR = 'manifests';

/** What a mode has built before the operator: the ledger, where secrets come from, the logger, who this replica is. */
export type OperatorParts = Omit<OperatorOptions, 'adapters'>;
/** Builds the operator and its adapters from a mode's parts (main.ts's composeOperator). */
export type ComposeOperator = (parts: OperatorParts) => Operator;

export class Operator {
  readonly #o: OperatorOptions;
  readonly clouds = new Map<string, CloudRuntime>();
  #policies: Policy[] = [];
  readonly scheduler: SweepScheduler;
  readonly metrics: Metrics;
  #leader = false;
  readonly ledgerHealth: LedgerHealth;
  #auditTimer: Timer | undefined;
  #bodyTimer: Timer | undefined;
  /** Restores and exports, run as ledger tasks outside any reconcile. */
  readonly transfers: TransferRunner;

  constructor(o: OperatorOptions) {
    this.#o = o;
    this.transfers = new TransferRunner({
      db: o.ledger.db, blocksFor: (c) => this.blocksFor(c), clock: this.#runtimeClock(), owner: o.identity ?? hostname(), logger: o.logger.child({ component: 'transfers' }),
    });
    this.ledgerHealth = new LedgerHealth({ db: o.ledger.db, logger: o.logger });
    o.ledger.onConnectionError = (err) => this.ledgerHealth.reportConnectionError(err);
    // A ledger outage pauses every cloud's intake: what is queued stays in the broker.
    this.ledgerHealth.onChange((state) => {
      for (const rt of this.clouds.values()) {
        void (state.up ? rt.intake.consumer.resume() : rt.intake.consumer.pause());
      }
    });
    this.metrics = createMetrics(o.ledger.db, {
      isLeader: () => this.#leader,
      queueDepth: async () => {
        const out: QueueDepth[] = [];
        for (const [cloud, rt] of this.clouds) {
          const c = rt.intake.consumer;
          out.push({
            cloud, queue: c.queue, messages: await c.queueDepth().catch(() => undefined),
            deadLetterQueue: c.deadLetterQueue, deadLetters: await c.deadLetterDepth().catch(() => undefined),
          });
        }
        return out;
      },
    });
    this.scheduler = new SweepScheduler(
      { db: o.ledger.db, blocksFor: (c) => this.blocksFor(c), logger: o.logger },
      () => this.#policies,
      o.clock,
      (policy, report, at) => this.metrics.sweepDone(policy, report, at),
    );
  }

  blocksFor(cloud: string): BlockStore | undefined {
    return this.clouds.get(cloud)?.ceph?.blocks;
  }

  get policies(): readonly Policy[] {
    return this.#policies;
  }

  setPolicies(policies: Policy[]): void {
    this.#policies = policies;
    if (this.#leader) this.scheduler.sync();
  }

  /** Holds from resources: created or updated by name, and released when their resource is gone. */
  async syncHolds(holds: Array<Hold & { reason?: string }>, actor = MANIFEST_ACTOR): Promise<void> {
    const now = (this.#o.clock ?? (() => new Date()))();
    for (const h of holds) await upsertHold(this.#o.ledger.db, { ...h, actor }, now);
    const wanted = new Set(holds.map((h) => h.name));
    for (const h of await listHolds(this.#o.ledger.db)) {
      if (h.createdBy === actor && !wanted.has(h.name)) await releaseHolds(this.#o.ledger.db, { name: h.name }, actor, now);
    }
  }

  async addCloud(cloud: Cloud): Promise<CloudRuntime> {
    const { logger, secrets, ledger } = this.#o;
    const name = cloud.metadata.name;
    const log = logger.child({ cloud: name });
    this.metrics.knownCloud(name, cloud.spec.type === 'opennebula' ? ['opennebula', 'unknown'] : ['nova', 'neutron', 'unknown']);
    const ceph = await this.#o.adapters.ceph(cloud);
    if (ceph?.fallback !== undefined) log.warn({ driver: ceph.driver }, `Ceph driver: ${ceph.fallback}`);
    else if (ceph !== undefined) log.info({ driver: ceph.driver }, 'Ceph driver');
    let engine: CaptureEngine | undefined;
    let capture: CloudCapture | undefined;
    if (ceph !== undefined && cloud.spec.ceph !== undefined) {
      const c = cloud.spec.ceph;
      // Fault injection for crash tests: the process kills itself, for real,
      // right after recording a step and before its Ceph call.
      const killAt = process.env['QUARANTINE_FAULT_KILL_AT'];
      const beforeStep = killAt === undefined || killAt === '' ? undefined : async (id: string, step: string) => {
        if (step === killAt) {
          log.warn({ quarantine: id, step }, 'QUARANTINE_FAULT_KILL_AT: killing this process');
          process.kill(process.pid, 'SIGKILL');
        }
      };
      // 'warned': the delete warning is in the ledger, no capture has started.
      const beforeWarning = killAt !== 'warned' ? undefined : async (instance: string) => {
        log.warn({ instance }, 'QUARANTINE_FAULT_KILL_AT=warned: killing this process');
        process.kill(process.pid, 'SIGKILL');
      };
      engine = new CaptureEngine({
        db: ledger.db, blocks: ceph.blocks, quarantine: c.quarantine, logger: log,
        ...(this.#o.clock === undefined ? {} : { clock: this.#o.clock }),
        ...(beforeStep === undefined ? {} : { beforeStep }),
        onConflict: (_id, step) => this.metrics.stepConflicts.inc({ cloud: name, step }),
        ...(this.#o.identity === undefined ? {} : { owner: this.#o.identity }),
      });
      const api = await this.#o.adapters.cloudApi(cloud);
      const clock = this.#runtimeClock();
      capture = new CloudCapture({
        config: { cloud: name, cloudType: cloud.spec.type, watchedPools: c.watchedPools, trash: c.trash },
        db: ledger.db, blocks: ceph.blocks, engine, policies: () => this.#policies, logger: log, api, clock,
        orphanGraceMs: this.#o.orphanGraceMs, relistMs: this.#o.relistMs, beforeWarning,
        ...(ceph.driver === 'librbd' ? { captureConcurrency: LIBRBD_CAPTURE_CONCURRENCY, adoptConcurrency: LIBRBD_ADOPT_CONCURRENCY } : {}),
        onRace: (mode, result) => this.metrics.races.inc({ cloud: name, mode, result }),
        onCapture: (mode, result, seconds) => {
          this.metrics.captures.inc({ cloud: name, mode, result });
          if (result === 'quarantined') this.metrics.captureSeconds.observe({ cloud: name, mode }, seconds);
        },
        onIsolated: (seconds) => this.metrics.isolationSeconds.observe({ cloud: name }, seconds),
        isolateConcurrency: c.isolation.concurrency,
        isolationBandwidthMiBps: c.isolation.bandwidthMiBps,
        ...(beforeStep === undefined ? {} : { beforeIsolationStep: beforeStep }),
      });
    } else {
      log.warn('no ceph section: this cloud is traced but its disks are not captured');
    }
    const url = await secrets.get(cloud.spec.amqp.urlSecretRef);
    const co = capture;
    const intake = await this.#o.adapters.intake(cloud, url, ledger.db, log, {
      onApplied: (n) => co?.onNotification(n),
      onOutcome: (c, source, outcome) => this.metrics.notifications.inc({ cloud: c, source, outcome }),
    }, this.ledgerHealth, co === undefined ? undefined : (trx, n) => recordCaptureIntents(trx, n, { cloud: name, policies: () => this.#policies }));
    if (!this.ledgerHealth.up) await intake.consumer.pause();
    capture?.follow();
    const reconcile = await this.#reconciler(cloud, log);
    const directory = await this.#o.adapters.identity?.(cloud);
    const names = cloud.spec.api?.names;
    const identityNames = directory === undefined ? undefined : new IdentityNames({
      cloud: name, directory, db: ledger.db, clock: this.#runtimeClock(), logger: log.child({ component: 'identity-names' }),
      ...(names === undefined ? {} : { intervalMs: names.refreshIntervalSeconds * 1000, ttlMs: names.cacheTtlSeconds * 1000 }),
    });
    const rt: CloudRuntime = { cloud, intake, ceph, engine, capture, reconcile, identityNames };
    this.clouds.set(name, rt);
    if (this.#leader) await this.#lead(rt);
    return rt;
  }

  /** The reconciler of a cloud whose API is configured (Keystone for OpenStack, XML-RPC for OpenNebula). */
  async #reconciler(cloud: Cloud, log: Logger): Promise<CloudReconcile | undefined> {
    const r = cloud.spec.reconcile;
    const name = cloud.metadata.name;
    if (!r.enabled) return undefined;
    const inventory = await this.#o.adapters.inventory(cloud);
    if (inventory === undefined) {
      log.info(`no ${cloud.spec.type === 'openstack' ? 'spec.api' : 'spec.xmlrpc'}: the ledger is not reconciled with the cloud's API, so lost notifications go unnoticed`);
      return undefined;
    }
    const clock = this.#o.runtimeClock ?? (this.#o.clock === undefined ? systemClock : { ...systemClock, now: this.#o.clock });
    const listings = inventory.type === 'openstack' ? ['ports', 'floatingips', 'routers', 'servers'] : ['vms'];
    for (const listing of listings) for (const outcome of ['ok', 'failed']) this.metrics.reconcilePasses.inc({ cloud: name, listing, outcome }, 0);
    return new CloudReconcile({
      cloud: name, inventory, db: this.#o.ledger.db, clock, logger: log.child({ component: 'reconcile' }), intervalMs: r.intervalSeconds * 1000,
      onPass: (p) => this.#countPass(p),
    });
  }

  #countPass(p: PassReport): void {
    const m = this.metrics;
    for (const l of p.listings) m.reconcilePasses.inc({ cloud: p.cloud, listing: l.listing, outcome: l.outcome });
    for (const kind of DRIFT_KINDS) {
      for (const change of ['added', 'closed'] as const) {
        m.reconcileDrift.inc({ cloud: p.cloud, kind, change }, p.drift[kind][change]);
        m.reconcileLastDrift.set({ cloud: p.cloud, kind, change }, p.drift[kind][change]);
      }
    }
    m.reconcileLastPass.set({ cloud: p.cloud }, p.startedAt.getTime() / 1000);
  }

  async removeCloud(name: string): Promise<void> {
    const rt = this.clouds.get(name);
    if (rt === undefined) return;
    this.clouds.delete(name);
    await rt.reconcile?.stop();
    await rt.identityNames?.stop();
    await rt.intake.stop();
    await rt.capture?.close();
    await rt.ceph?.close();
    this.#o.logger.info({ cloud: name }, 'cloud removed: its consumer and capture stopped');
  }

  #runtimeClock(): Clock {
    return this.#o.runtimeClock ?? (this.#o.clock === undefined ? systemClock : { ...systemClock, now: this.#o.clock });
  }

  get isLeader(): boolean {
    return this.#leader;
  }

  /** Work that must run on one replica only: reconciliation with the API, the capture reconcilers and the sweep. */
  async #lead(rt: CloudRuntime): Promise<void> {
    rt.reconcile?.start();
    rt.identityNames?.start();
    if (rt.capture === undefined) return;
    const log = this.#o.logger.child({ cloud: rt.cloud.metadata.name });
    const arming = await rt.capture.armTrash().catch((err: unknown) => {
      log.error({ err: String(err) }, 'cannot read the watched pools\' trash settings');
      return [];
    });
    for (const a of arming) {
      this.metrics.trashArmed.set({ cloud: rt.cloud.metadata.name, pool: a.pool }, a.moveToTrashOnRemove ? 1 : 0);
      if (!a.moveToTrashOnRemove) log.warn({ pool: a.pool }, 'rbd_move_to_trash_on_remove is off: deletions in this pool skip the trash, so trash-mode capture cannot see them');
    }
    if (this.#leader) rt.capture.start();
  }

  async becomeLeader(): Promise<void> {
    if (this.#leader) return;
    this.#leader = true;
    for (const rt of this.clouds.values()) await this.#lead(rt);
    this.scheduler.sync();
    this.transfers.lead();
    this.#startAuditChecks();
    this.#startBodyMaintenance();
    this.#o.logger.info('leading: captures, trash scans and sweeps run here');
  }

  /**
   * The leader re-verifies the audit chain now and then, so that a modified or
   * deleted row raises an alert (quarantine_audit_verification_ok) without
   * anyone running `quarantine audit verify`.
   */
  #startAuditChecks(): void {
    const check = async () => {
      try {
        const v = await verifyAudit(this.#o.ledger.db);
        this.metrics.auditVerificationOk.set(v.ok ? 1 : 0);
        this.metrics.auditVerificationTime.set((this.#o.clock ?? (() => new Date()))().getTime() / 1000);
        if (!v.ok) this.#o.logger.error({ problems: v.problems.length, firstSeq: v.problems[0]?.seq }, 'the audit chain does not verify');
      } catch (err) {
        this.#o.logger.warn({ err: err instanceof Error ? err.message : String(err) }, 'cannot verify the audit chain');
      }
    };
    this.#auditTimer = every(this.#runtimeClock(), this.#o.auditCheckIntervalMs ?? 3_600_000, check);
  }

  /**
   * The leader keeps the monthly body partitions ready ahead of time
   * (PostgreSQL) and, with a body retention, expires old bodies: an audited
   * change of evidence, done by one replica only.
   */
  #startBodyMaintenance(): void {
    const run = async () => {
      const now = (this.#o.clock ?? (() => new Date()))();
      try {
        const created = await prepareBodyPartitions(this.#o.ledger.db, this.#o.ledger.engine, now);
        if (created.length > 0) this.#o.logger.info({ partitions: created }, 'notification body partitions created');
        if (this.#o.bodyRetentionMs === undefined) return;
        const r = await pruneBodies(this.#o.ledger.db, this.#o.ledger.engine, { keepMs: this.#o.bodyRetentionMs, now, actor: 'quarantine-operator' });
        if (r.removed > 0 || r.keptUnderHold > 0) {
          this.#o.logger.info({ removed: r.removed, keptUnderHold: r.keptUnderHold, cutoff: r.cutoff.toISOString(), partitionsDropped: r.partitionsDropped }, 'notification bodies expired');
        }
      } catch (err) {
        this.#o.logger.warn({ err: err instanceof Error ? err.message : String(err) }, 'notification body maintenance failed; retrying at the next interval');
      }
    };
    this.#bodyTimer = every(this.#runtimeClock(), this.#o.bodyMaintenanceIntervalMs ?? 86_400_000, run);
  }

  async stopLeading(): Promise<void> {
    if (!this.#leader) return;
    this.#leader = false;
    this.#auditTimer?.cancel();
    this.#bodyTimer?.cancel();
    this.transfers.unlead();
    await this.scheduler.stop();
    for (const rt of this.clouds.values()) {
      await rt.reconcile?.stop();
      await rt.identityNames?.stop();
      await rt.capture?.stop();
    }
  }

  /** Ready when the ledger answers and every cloud's intake has a live broker connection. */
  async readiness(): Promise<{ ready: boolean; reasons: string[] }> {
    const reasons: string[] = [];
    const ledger = this.ledgerHealth.state;
    if (!ledger.up) reasons.push(`ledger database unreachable since ${ledger.since.toISOString()} (${ledger.error}); intake paused`);
    for (const [name, rt] of this.clouds) if ((await rt.intake.consumer.queueDepth().catch(() => undefined)) === undefined) reasons.push(`cloud ${name}: not connected to its broker`);
    return { ready: reasons.length === 0, reasons };
  }

  async stop(): Promise<void> {
    this.ledgerHealth.stop();
    this.#auditTimer?.cancel();
    this.#bodyTimer?.cancel();
    // Before the clouds close: an interrupted transfer is recorded while the ledger is open.
    await this.transfers.stop();
    await this.scheduler.stop();
    for (const rt of this.clouds.values()) {
      await rt.reconcile?.stop();
      await rt.identityNames?.stop();
      await rt.intake.stop();
      await rt.capture?.close();
      await rt.ceph?.close();
    }
  }
}
