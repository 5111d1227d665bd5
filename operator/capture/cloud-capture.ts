// One cloud's capture side while this replica leads: the live capture, orphan
// adoption and trash adoption reconcilers on the runtime's keyed work queues.
// Everything they act on is in the ledger (capture intents, quarantine rows);
// a notification only enqueues keys, and a periodic relist of open intents
// catches whatever a lost notification, a crash or another replica left.
// Leadership starts and stops this; a stop followed by a start is a fresh run.
import type { Kysely } from 'kysely';
import type { LedgerSchema } from '../ledger/schema.ts';
import type { BlockStore } from '../domain/block-store.ts';
import type { DecodedNotification } from '../domain/events.ts';
import type { Policy } from '../domain/policy.ts';
import type { CloudApi } from '../domain/cloud-api.ts';
import { WorkQueue } from '../kube/runtime/queue.ts';
import type { Clock } from '../kube/runtime/clock.ts';
import type { Logger } from '../log.ts';
import type { CaptureEngine } from './engine.ts';
import { IntentStore } from './intents.ts';
import { signalsOf, trashHintsOf } from './lifecycle.ts';
import { emptyStats, errorText, type CaptureContext, type CaptureStats, type CloudCaptureConfig } from './disk-capture.ts';
import { LiveCapture } from './live-capture.ts';
import { OrphanAdoption } from './orphan-adoption.ts';
import { TrashAdoption } from './trash-adoption.ts';
import { Isolation } from './isolation.ts';
import { bucketForMiBps } from './bandwidth.ts';

export type { CloudCaptureConfig, CaptureStats } from './disk-capture.ts';

export interface CloudCaptureDeps {
  config: CloudCaptureConfig;
  db: Kysely<LedgerSchema>;
  blocks: BlockStore;
  engine: CaptureEngine;
  policies: () => readonly Policy[];
  logger: Logger;
  clock: Clock;
  api?: CloudApi | undefined;
  /** How long after the instance is gone the cloud may still be retrying its delete (Nova: 12 × 5 s). */
  orphanGraceMs?: number | undefined;
  /** Trash entries adopted at once (default 4). */
  adoptConcurrency?: number | undefined;
  /** Instances captured at once (default 16). */
  captureConcurrency?: number | undefined;
  /** How often open intents are listed again (default 30 s). */
  relistMs?: number | undefined;
  /** How long a closed intent is kept before it is pruned (default 30 days), and how often pruning runs (default hourly). */
  intentRetentionMs?: number | undefined;
  pruneEveryMs?: number | undefined;
  beforeWarning?: ((instanceId: string) => Promise<void>) | undefined;
  onRace?: ((mode: string, result: 'won' | 'lost') => void) | undefined;
  onCapture?: ((mode: string, result: 'quarantined' | 'failed' | 'refused', seconds: number) => void) | undefined;
  /** Quarantines digested and isolated at once (default 2): each isolation copies a whole disk. */
  isolateConcurrency?: number | undefined;
  /** MiB/s isolation may copy out of the cloud's pool, all isolations of this Cloud together (absent: a plain flatten, unpaced). */
  isolationBandwidthMiBps?: number | undefined;
  /** Told when a quarantine is isolated: seconds from capture. */
  onIsolated?: ((seconds: number) => void) | undefined;
  /** A test seam: runs after an isolation step is claimed, before its Ceph calls. */
  beforeIsolationStep?: ((id: string, step: string) => Promise<void>) | undefined;
}

export interface TrashArming {
  pool: string;
  moveToTrashOnRemove: boolean;
  expireSeconds: number | undefined;
}

const RELIST = 'relist';
const SCAN = 'scan';
const RESUME = 'resume';
const PRUNE = 'prune';
export const INTENT_RETENTION_MS = 30 * 86_400_000;
const INSTANCE = 'i:';
const ORPHAN = 'o:';
/** A deletion of this instance may have put its disks in the trash: scan at once if a trash-mode policy wants them. */
const TRASHED = 't:';

interface Leading {
  work: WorkQueue;
  adopt: WorkQueue;
}

export class CloudCapture {
  readonly stats: CaptureStats = emptyStats();
  readonly #d: CloudCaptureDeps;
  readonly #ctx: CaptureContext;
  readonly #liveCapture: LiveCapture;
  readonly #orphans: OrphanAdoption;
  #trash: TrashAdoption;
  /** Live captures of the warnings this replica applied: on every replica, so the race with the cloud's delete never waits for a relist. */
  #live: WorkQueue | undefined;
  /** Digest and isolation of new quarantines: on every replica too (step claims keep replicas apart); the leader's relist finds what was left. */
  #isolate: WorkQueue | undefined;
  readonly #isolation: Isolation;
  /** Relist, resume, orphan and trash adoption: on the leader only. */
  #leading: Leading | undefined;
  #firstRelist = true;

  constructor(deps: CloudCaptureDeps) {
    this.#d = deps;
    this.#ctx = {
      config: deps.config, db: deps.db, blocks: deps.blocks, engine: deps.engine, intents: new IntentStore(deps.db), policies: deps.policies,
      logger: deps.logger, clock: deps.clock, stats: this.stats, onRace: deps.onRace, onCapture: deps.onCapture,
      onCaptured: (id) => this.#isolate?.add(id),
    };
    this.#isolation = new Isolation({ store: deps.engine.store, blocks: deps.blocks, clock: deps.clock, logger: deps.logger, owner: deps.engine.owner, onIsolated: deps.onIsolated, beforeStep: deps.beforeIsolationStep,
      bandwidth: bucketForMiBps(deps.clock, deps.isolationBandwidthMiBps),
    });
    this.#liveCapture = new LiveCapture(this.#ctx, { api: deps.api, beforeWarning: deps.beforeWarning });
    this.#orphans = new OrphanAdoption(this.#ctx, { graceMs: deps.orphanGraceMs ?? 90_000 });
    this.#trash = new TrashAdoption(this.#ctx);
  }

  get #log(): Logger {
    return this.#d.logger;
  }

  get leading(): boolean {
    return this.#leading !== undefined;
  }

  /**
   * Acts on the warnings this replica applies (every replica, leader or not):
   * two replicas on one intent are kept apart by the engine's step claims.
   */
  follow(): void {
    if (this.#live !== undefined) return;
    this.#live = new WorkQueue({ clock: this.#d.clock, concurrency: this.#d.captureConcurrency ?? 16, process: (key) => this.#process(key) });
    this.#live.start();
    this.#isolate = new WorkQueue({
      clock: this.#d.clock, concurrency: Math.max(1, this.#d.isolateConcurrency ?? 2),
      process: async (id) => {
        await this.#isolation.reconcile(id).catch((err: unknown) => this.#log.error({ quarantine: id, err: errorText(err) }, 'isolation failed; retried at the next relist'));
      },
    });
    this.#isolate.start();
  }

  /** Starts the leader's reconcilers: resumes, relists open intents and scans the trash at once. */
  start(): void {
    this.follow();
    if (this.#leading !== undefined) return;
    this.#firstRelist = true;
    this.#trash = new TrashAdoption(this.#ctx);
    const work = new WorkQueue({ clock: this.#d.clock, concurrency: this.#d.captureConcurrency ?? 16, process: (key) => this.#process(key) });
    const adopt = new WorkQueue({
      clock: this.#d.clock, concurrency: Math.max(1, this.#d.adoptConcurrency ?? 4),
      process: (id) => this.#trash.reconcile(id).catch((err: unknown) => this.#log.error({ intent: id, err: errorText(err) }, 'trash adoption failed; retried at the next relist')),
    });
    this.#leading = { work, adopt };
    work.start();
    adopt.start();
    work.add(RESUME);
    work.add(RELIST);
    work.add(SCAN);
    work.add(PRUNE);
  }

  /** Stops the leader's reconcilers (on losing leadership) and waits for their running keys; a later start is a fresh run. */
  async stop(): Promise<void> {
    const l = this.#leading;
    this.#leading = undefined;
    await Promise.all([l?.work.stop(), l?.adopt.stop()]);
  }

  /** Stops everything (the cloud is removed, or the process stops). */
  async close(): Promise<void> {
    const live = this.#live;
    const isolate = this.#isolate;
    this.#live = undefined;
    this.#isolate = undefined;
    await Promise.all([this.stop(), live?.stop(), isolate?.stop()]);
  }

  /** Called after a notification's effects (and its intents) are committed: only enqueues keys. */
  onNotification(n: DecodedNotification): void {
    if (n.cloud !== this.#d.config.cloud) return;
    const l = this.#leading;
    for (const s of signalsOf(n)) {
      if (s.kind === 'gone') l?.work.add(`${ORPHAN}${s.instanceId}`);
      else this.#live?.add(`${INSTANCE}${s.instanceId}`);
    }
    // Trash adoption is triggered by the deletion itself; the periodic scan
    // stays as the safety net for what no notification announces.
    for (const instanceId of trashHintsOf(n)) l?.work.add(`${TRASHED}${instanceId}`);
  }

  /** Waits until nothing is queued or running (delayed keys, such as the next relist, do not count). */
  async idle(): Promise<void> {
    for (;;) {
      const queues = [this.#live, this.#leading?.work, this.#leading?.adopt, this.#isolate].filter((q): q is WorkQueue => q !== undefined);
      for (const q of queues) await q.idle();
      if (queues.every((q) => q.waiting === 0)) {
        await Promise.all(queues.map((q) => q.idle()));
        if (queues.every((q) => q.waiting === 0)) return;
      }
    }
  }

  /** Lists open intents and enqueues them; returns how many. */
  async relist(): Promise<number> {
    const open = await this.#ctx.intents.open(this.#d.config.cloud);
    const l = this.#leading;
    for (const i of open) {
      if (i.kind === 'trash') l?.adopt.add(i.id);
      else if (i.kind === 'orphan') l?.work.add(`${ORPHAN}${i.instance_id}`);
      else this.#live?.add(`${INSTANCE}${i.instance_id}`);
    }
    if (l !== undefined) for (const q of await this.#isolation.pending(this.#d.config.cloud)) this.#isolate?.add(q.id);
    if (this.#firstRelist) {
      this.#firstRelist = false;
      const warnings = open.filter((i) => i.kind === 'live' || i.kind === 'soft').length;
      if (warnings > 0) this.#log.info({ instances: warnings }, 'resuming captures for delete warnings recorded before this start');
    }
    return open.length;
  }

  /** Deletes intents closed longer ago than the retention; returns how many. */
  async prune(): Promise<number> {
    const before = new Date(this.#d.clock.now().getTime() - (this.#d.intentRetentionMs ?? INTENT_RETENTION_MS));
    const n = await this.#ctx.intents.prune(this.#d.config.cloud, before);
    if (n > 0) this.#log.info({ intents: n, closedBefore: before.toISOString() }, 'pruned closed capture intents');
    return n;
  }

  async #process(key: string): Promise<void> {
    const l = this.#leading;
    try {
      if (key === RESUME) {
        const resumed = await this.#d.engine.resume(this.#d.config.cloud);
        if (resumed.length > 0) this.#log.info({ resumed: resumed.length }, 'resumed interrupted captures');
        await this.#d.engine.resumeFlattens();
      } else if (key === RELIST) {
        await this.relist();
      } else if (key === PRUNE) {
        await this.prune();
      } else if (key === SCAN) {
        // Each new intent is adopted as soon as it is recorded, while the scan goes on.
        // One key: a scan triggered while one runs makes one more run after it, however many triggers came.
        if (l !== undefined) await this.#trash.scan((id) => l.adopt.add(id));
      } else if (key.startsWith(TRASHED)) {
        if (await this.#trash.wants(key.slice(TRASHED.length))) l?.work.add(SCAN);
      } else if (key.startsWith(INSTANCE)) {
        await this.#liveCapture.reconcile(key.slice(INSTANCE.length));
      } else if (key.startsWith(ORPHAN)) {
        const orphan = await this.#orphans.reconcile(key.slice(ORPHAN.length));
        if (!orphan.done) l?.work.addAfter(key, orphan.dueInMs);
      }
    } catch (err) {
      this.#log.error({ key, err: errorText(err) }, 'capture reconcile failed; retried at the next relist');
    } finally {
      // Level-triggered: the relist and the trash scan come round again by themselves.
      if (key === RELIST) l?.work.addAfter(RELIST, this.#d.relistMs ?? 30_000);
      if (key === SCAN) l?.work.addAfter(SCAN, this.#d.config.trash.scanIntervalSeconds * 1000);
      if (key === PRUNE) l?.work.addAfter(PRUNE, this.#d.pruneEveryMs ?? 3_600_000);
    }
  }

  /** Sets (when configured) `rbd_move_to_trash_on_remove` on every watched pool, then reads it back; run on becoming leader. */
  async armTrash(): Promise<TrashArming[]> {
    const { trash, watchedPools } = this.#d.config;
    if (trash.arm) {
      for (const pool of watchedPools) {
        await this.#d.blocks.setPoolConfig(pool, 'rbd_move_to_trash_on_remove', 'true');
        await this.#d.blocks.setPoolConfig(pool, 'rbd_move_to_trash_on_remove_expire_seconds', String(trash.expireSeconds));
      }
    }
    return this.trashSettings();
  }

  /** Reads the watched pools' trash settings without changing them (status reporting). */
  async trashSettings(): Promise<TrashArming[]> {
    const out: TrashArming[] = [];
    for (const pool of this.#d.config.watchedPools) {
      const on = (await this.#d.blocks.getPoolConfig(pool, 'rbd_move_to_trash_on_remove')) === 'true';
      const exp = await this.#d.blocks.getPoolConfig(pool, 'rbd_move_to_trash_on_remove_expire_seconds');
      out.push({ pool, moveToTrashOnRemove: on, expireSeconds: exp === undefined ? undefined : Number(exp) });
    }
    return out;
  }
}
