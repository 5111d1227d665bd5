// Turns what the clouds report into captures, per cloud: delete warnings
// start live captures (onDelete, softDelete), trash entries are adopted
// (trash), and disks the cloud failed to delete are taken over afterwards.
// Work is queued and serialized per instance; intake never waits for Ceph.
import type { Kysely } from 'kysely';
import type { LedgerSchema } from '../ledger/schema.ts';
import type { BlockStore, TrashEntry } from '../ceph/block-store.ts';
import type { DecodedNotification, InstanceEvent, OneVmEvent } from '../domain/events.ts';
import { policyFor, type Policy } from '../domain/policy.ts';
import { imagesOfInstance, ownerOfImageName, roleWanted, type DiskRole } from '../domain/disks.ts';
import { appendAudit } from '../ledger/audit.ts';
import type { CaptureEngine, CaptureSource } from './engine.ts';
import { HOLDING } from './quarantine-store.ts';
import { instanceFacts, provenanceOf } from './provenance.ts';
import type { CloudApi } from '../clouds/openstack.ts';
import type { Logger } from '../log.ts';

export interface CloudCaptureConfig {
  cloud: string;
  cloudType: 'openstack' | 'opennebula';
  watchedPools: string[];
  trash: { arm: boolean; expireSeconds: number; scanIntervalSeconds: number };
}

export interface CoordinatorDeps {
  config: CloudCaptureConfig;
  db: Kysely<LedgerSchema>;
  blocks: BlockStore;
  engine: CaptureEngine;
  policies: () => readonly Policy[];
  logger: Logger;
  clock?: () => Date;
  api?: CloudApi | undefined;
  /** How long after delete.end the cloud may still be retrying its delete (Nova: 12 × 5 s). */
  orphanGraceMs?: number;
  /** Trash entries adopted at once during a scan (default 4). */
  adoptConcurrency?: number;
  /**
   * How far back `resumeWarnings` looks for delete warnings that a previous
   * run recorded but never acted on (default 7 days: soft-deleted servers wait
   * for Nova's reclaim interval, which sites set to days).
   */
  resumeWindowMs?: number;
  /** Runs before a delete warning is acted on (crash tests kill the process here). */
  beforeWarning?: (instanceId: string) => Promise<void>;
  /** Told about every onDelete-style race: did the snapshot come before the cloud's removal. */
  onRace?: (mode: string, result: 'won' | 'lost') => void;
  /** Told about every capture attempt: result and seconds since the deletion was announced. */
  onCapture?: (mode: string, result: 'quarantined' | 'failed' | 'refused', seconds: number) => void;
}

export interface TrashArming {
  pool: string;
  moveToTrashOnRemove: boolean;
  expireSeconds: number | undefined;
}

export interface CoordinatorStats {
  captures: number;
  failed: number;
  /** onDelete: the cloud removed the disk before the snapshot (the race lost). */
  racesLost: number;
  racesWon: number;
  refusedFull: number;
  adoptedOrphans: number;
}

const ONE_SHUTDOWN = 12;
const ONE_EPILOG = 11;
const ONE_CLEANUP_DELETE = 23;
const ONE_DONE = 6;

/** instance_events actions that warn of a deletion; OpenNebula's are `ACTIVE/<LCM state>`. */
const LIVE_WARNINGS = ['delete.start', 'force_delete.start', 'ACTIVE/SHUTDOWN', 'ACTIVE/EPILOG', 'ACTIVE/CLEANUP_DELETE'];
const SOFT_WARNING = 'soft_delete.end';
const GONE_EVENTS = ['delete.end', 'force_delete.end', 'DONE'];
const UNDONE = 'restore.end';

export class CaptureCoordinator {
  readonly #d: CoordinatorDeps;
  readonly #clock: () => Date;
  readonly #queue = new Map<string, Promise<void>>();
  readonly #skippedTrash = new Set<string>();
  readonly #timers = new Set<NodeJS.Timeout>();
  #scanTimer: NodeJS.Timeout | undefined;
  #scanning: Promise<number> | undefined;
  #stopped = false;
  readonly stats: CoordinatorStats = { captures: 0, failed: 0, racesLost: 0, racesWon: 0, refusedFull: 0, adoptedOrphans: 0 };

  constructor(deps: CoordinatorDeps) {
    this.#d = deps;
    this.#clock = deps.clock ?? (() => new Date());
  }

  get #log(): Logger {
    return this.#d.logger;
  }

  /** Serializes work per key (an instance), so two events for one VM never race each other. */
  #enqueue(key: string, work: () => Promise<void>): Promise<void> {
    const prev = this.#queue.get(key) ?? Promise.resolve();
    const next = prev.then(work).catch((err: unknown) => this.#log.error({ key, err: err instanceof Error ? err.message : String(err) }, 'capture work failed'));
    this.#queue.set(key, next);
    void next.finally(() => {
      if (this.#queue.get(key) === next) this.#queue.delete(key);
    });
    return next;
  }

  /** Waits for every queued capture (tests, shutdown). */
  async idle(): Promise<void> {
    while (this.#queue.size > 0 || this.#scanning !== undefined) {
      await Promise.allSettled([...this.#queue.values(), this.#scanning]);
    }
  }

  /** Called after a notification's effects are committed to the ledger. */
  onNotification(n: DecodedNotification): void {
    if (this.#stopped || n.cloud !== this.#d.config.cloud) return;
    for (const e of n.events) {
      if (e.type === 'instance') this.#onInstance(n, e);
      else if (e.type === 'one_vm') this.#onOneVm(n, e);
    }
  }

  async #policy(instanceId: string): Promise<Policy | undefined> {
    const facts = await instanceFacts(this.#d.db, this.#d.config.cloud, instanceId);
    return policyFor(this.#d.policies(), facts, this.#clock());
  }

  #onInstance(n: DecodedNotification, e: InstanceEvent): void {
    const id = e.instance.id;
    if (e.notScheduled) return;
    if (e.action === 'delete.start' || e.action === 'force_delete.start') {
      void this.#enqueue(id, async () => {
        await this.#d.beforeWarning?.(id);
        const p = await this.#policy(id);
        if (p === undefined) return;
        // softDelete falls back to a best-effort live capture when the cloud hard-deletes anyway.
        if (p.capture.mode === 'onDelete' || p.capture.mode === 'softDelete') await this.#captureLive(id, p, n.messageId, true, n.occurredAt);
        else this.scanTrashSoon();
      });
    } else if (e.action === 'soft_delete.end') {
      void this.#enqueue(id, async () => {
        await this.#d.beforeWarning?.(id);
        const p = await this.#policy(id);
        if (p?.capture.mode !== 'softDelete') return;
        const ok = await this.#captureLive(id, p, n.messageId, false, n.occurredAt);
        if (ok && p.capture.releaseResources) await this.#forceDelete(id);
      });
    } else if (e.action === 'delete.end' || e.action === 'force_delete.end') {
      this.#adoptOrphansAfterGrace(id, this.#clock().getTime());
      this.scanTrashSoon();
    }
  }

  #onOneVm(n: DecodedNotification, e: OneVmEvent): void {
    const id = String(e.vm.id);
    const lcm = e.vm.lcmState.code;
    const state = e.vm.state.code;
    if (lcm === ONE_SHUTDOWN || lcm === ONE_EPILOG || lcm === ONE_CLEANUP_DELETE) {
      void this.#enqueue(id, async () => {
        await this.#d.beforeWarning?.(id);
        const p = await this.#policy(id);
        if (p === undefined) return;
        // SHUTDOWN is the warning; EPILOG is already the deletion, still worth a try.
        if (p.capture.mode !== 'trash') await this.#captureLive(id, p, n.messageId, true, n.occurredAt);
        else this.scanTrashSoon();
      });
    } else if (state === ONE_DONE) {
      this.#adoptOrphansAfterGrace(id, this.#clock().getTime());
      this.scanTrashSoon();
    }
  }

  /** The cloud may still be retrying its delete for a while after announcing the end; adopt what it left after that. */
  #adoptOrphansAfterGrace(instanceId: string, goneAt: number): void {
    const wait = goneAt + (this.#d.orphanGraceMs ?? 90_000) - this.#clock().getTime();
    this.#later(Math.max(0, wait), () => this.#enqueue(instanceId, () => this.#adoptOrphans(instanceId)));
  }

  #later(ms: number, fn: () => unknown): void {
    const t = setTimeout(() => {
      this.#timers.delete(t);
      // A ledger or Ceph outage must not become an unhandled rejection (the end of the process).
      if (!this.#stopped) void Promise.resolve().then(fn).catch((err: unknown) => this.#log.error({ err: err instanceof Error ? err.message : String(err) }, 'deferred capture work failed; retried at the next scan'));
    }, ms);
    this.#timers.add(t);
  }

  async #full(p: Policy): Promise<boolean> {
    if (p.capacity.onFull !== 'refuse' || (p.capacity.maxBytes === undefined && p.capacity.maxCount === undefined)) return false;
    const rows = await this.#d.engine.store.list({ policy: p.name, states: HOLDING });
    const bytes = rows.reduce((s, r) => s + (r.bytes ?? 0), 0);
    return (p.capacity.maxCount !== undefined && rows.length >= p.capacity.maxCount) || (p.capacity.maxBytes !== undefined && bytes >= p.capacity.maxBytes);
  }

  async #capture(instanceId: string, disk: string, role: DiskRole, p: Policy, source: CaptureSource, messageId: string | null, since: Date): Promise<boolean> {
    if (!roleWanted(role, p.capture.disks)) return false;
    const report = (result: 'quarantined' | 'failed' | 'refused') => this.#d.onCapture?.(p.capture.mode, result, Math.max(0, (this.#clock().getTime() - since.getTime()) / 1000));
    if (await this.#full(p)) {
      this.stats.refusedFull += 1;
      report('refused');
      await appendAudit(this.#d.db, { actor: 'quarantine-operator', action: 'capture.refused', subject: `${this.#d.config.cloud}/${instanceId}`, details: { disk, policy: p.name, reason: 'capacity full (onFull: refuse)' } });
      this.#log.warn({ instance: instanceId, disk, policy: p.name }, 'capture refused: the policy is at capacity');
      return false;
    }
    const provenance = await provenanceOf(this.#d.db, this.#d.config.cloud, instanceId, messageId);
    const row = await this.#d.engine.capture({
      cloud: this.#d.config.cloud, instanceId, disk, mode: p.capture.mode, source, provenance,
      policy: { name: p.name, retentionMs: p.retentionMs, flatten: p.capture.flatten },
    });
    if (row.state === 'failed') {
      this.stats.failed += 1;
      report('failed');
      return false;
    }
    this.stats.captures += 1;
    report('quarantined');
    if (p.capture.flatten) void this.#d.engine.flatten(row.id).catch((err: unknown) => this.#log.error({ quarantine: row.id, err: String(err) }, 'flatten failed; retried at the next start'));
    return true;
  }

  /** Snapshots every wanted disk the instance still has; returns whether all went well. */
  async #captureLive(instanceId: string, p: Policy, messageId: string | null, racing: boolean, since: Date): Promise<boolean> {
    const { cloud, cloudType, watchedPools } = this.#d.config;
    // A cloud that publishes both notification formats warns twice; the
    // second warning finds the disks captured and must not count again.
    const captured = new Set((await this.#d.engine.store.list({ cloud, instanceId }))
      .filter((q) => q.state !== 'failed' && q.state !== 'purged').map((q) => `${q.source_pool}/${q.source_image}`));
    let all = true;
    let found = 0;
    for (const pool of watchedPools) {
      const names = imagesOfInstance(await this.#d.blocks.listImages({ pool }), cloudType, instanceId);
      for (const image of names) {
        const owner = ownerOfImageName(image);
        if (owner === undefined || !('instanceId' in owner)) continue;
        found += 1;
        if (captured.has(`${pool}/${image}`)) continue;
        try {
          const ok = await this.#capture(instanceId, owner.disk, owner.role, p, { kind: 'live', image: { pool, image } }, messageId, since);
          if (racing && roleWanted(owner.role, p.capture.disks)) {
            if (ok) this.stats.racesWon += 1;
            else this.stats.racesLost += 1;
            this.#d.onRace?.(p.capture.mode, ok ? 'won' : 'lost');
          }
          all &&= ok || !roleWanted(owner.role, p.capture.disks);
        } catch (err) {
          all = false;
          this.#log.error({ instance: instanceId, image, err: err instanceof Error ? err.message : String(err) }, 'live capture failed');
        }
      }
    }
    if (found === 0 && racing) {
      this.stats.racesLost += 1;
      this.#d.onRace?.(p.capture.mode, 'lost');
      this.#log.warn({ instance: instanceId }, 'no disk left to capture: the cloud deleted them before the snapshot');
    }
    return all && found > 0;
  }

  async #forceDelete(instanceId: string): Promise<void> {
    if (this.#d.api === undefined) {
      this.#log.warn({ instance: instanceId }, 'releaseResources is set but the Cloud has no api section; the server stays soft-deleted');
      return;
    }
    await this.#d.api.forceDelete(instanceId);
    await appendAudit(this.#d.db, { actor: 'quarantine-operator', action: 'server.forceDelete', subject: `${this.#d.config.cloud}/${instanceId}`, details: { reason: 'disks captured; releasing resources' } });
    this.#log.info({ instance: instanceId }, 'force-deleted the soft-deleted server after capture');
  }

  async #adoptOrphans(instanceId: string): Promise<void> {
    for (const q of await this.#d.engine.store.list({ cloud: this.#d.config.cloud, instanceId, states: HOLDING })) {
      if (await this.#d.engine.adoptOrphan(q.id)) this.stats.adoptedOrphans += 1;
    }
  }

  /**
   * Acts on delete warnings that reached the ledger but not a capture: the
   * notification is acknowledged once its effects are committed, so a process
   * that dies right after (or a replica that loses leadership) would never
   * capture that VM, and its orphan-adoption timer would be lost too. Run by
   * the leader at start. Returns the instances whose capture it resumed.
   */
  async resumeWarnings(): Promise<string[]> {
    const { cloud, cloudType, watchedPools } = this.#d.config;
    const since = this.#clock().getTime() - (this.#d.resumeWindowMs ?? 7 * 86_400_000);
    const rows = await this.#d.db.selectFrom('instance_events').select(['instance_id', 'message_id', 'at', 'action'])
      .where('cloud', '=', cloud).where('at', '>=', since)
      .where('action', 'in', [...LIVE_WARNINGS, SOFT_WARNING, ...GONE_EVENTS, UNDONE])
      .orderBy('at').execute();
    if (rows.length === 0) return [];
    // The latest warning per instance, unless a restore came after it.
    type Seen = { warning?: { action: string; messageId: string; at: number } | undefined; goneAt?: number };
    const byInstance = new Map<string, Seen>();
    for (const r of rows) {
      const seen = byInstance.get(r.instance_id) ?? {};
      if (r.action === UNDONE) seen.warning = undefined;
      else if (GONE_EVENTS.includes(r.action)) seen.goneAt = r.at;
      else seen.warning = { action: r.action, messageId: r.message_id, at: r.at };
      byInstance.set(r.instance_id, seen);
    }
    // One listing per pool instead of one per instance: most warned
    // instances are long gone, and their disks with them.
    const present = new Set<string>();
    for (const pool of watchedPools) {
      for (const image of await this.#d.blocks.listImages({ pool })) {
        const owner = ownerOfImageName(image);
        if (owner !== undefined && owner.cloudType === cloudType && 'instanceId' in owner) present.add(owner.instanceId);
      }
    }
    const resumed: string[] = [];
    for (const [id, seen] of byInstance) {
      const held = await this.#d.engine.store.list({ cloud, instanceId: id });
      if (held.length > 0) {
        // Captured before the restart: only the orphan adoption may be owed.
        if (seen.goneAt !== undefined && held.some((q) => HOLDING.some((s) => s === q.state))) {
          this.#adoptOrphansAfterGrace(id, seen.goneAt);
        }
        continue;
      }
      const w = seen.warning;
      if (w === undefined || !present.has(id)) continue;
      resumed.push(id);
      const announced = new Date(w.at);
      void this.#enqueue(id, async () => {
        const p = await this.#policy(id);
        if (p === undefined || p.capture.mode === 'trash') return;
        if (w.action === SOFT_WARNING) {
          if (p.capture.mode !== 'softDelete') return;
          const ok = await this.#captureLive(id, p, w.messageId, false, announced);
          if (ok && p.capture.releaseResources && seen.goneAt === undefined) await this.#forceDelete(id);
        } else {
          await this.#captureLive(id, p, w.messageId, true, announced);
        }
        if (seen.goneAt !== undefined) this.#adoptOrphansAfterGrace(id, seen.goneAt);
      });
    }
    if (resumed.length > 0) this.#log.info({ instances: resumed.length }, 'resuming captures for delete warnings recorded before this start');
    return resumed;
  }

  // --- trash -----------------------------------------------------------------

  /** Reads (and when configured, sets) `rbd_move_to_trash_on_remove` on every watched pool. */
  async armTrash(): Promise<TrashArming[]> {
    const { trash, watchedPools } = this.#d.config;
    const out: TrashArming[] = [];
    for (const pool of watchedPools) {
      if (trash.arm) {
        await this.#d.blocks.setPoolConfig(pool, 'rbd_move_to_trash_on_remove', 'true');
        await this.#d.blocks.setPoolConfig(pool, 'rbd_move_to_trash_on_remove_expire_seconds', String(trash.expireSeconds));
      }
      const on = (await this.#d.blocks.getPoolConfig(pool, 'rbd_move_to_trash_on_remove')) === 'true';
      const exp = await this.#d.blocks.getPoolConfig(pool, 'rbd_move_to_trash_on_remove_expire_seconds');
      out.push({ pool, moveToTrashOnRemove: on, expireSeconds: exp === undefined ? undefined : Number(exp) });
    }
    return out;
  }

  scanTrashSoon(): void {
    if (this.#stopped) return;
    this.#later(50, () => this.scanTrash());
  }

  /** Adopts new trash entries of the watched pools that a trash-mode policy selects; returns how many. */
  scanTrash(): Promise<number> {
    if (this.#scanning !== undefined) return this.#scanning;
    const run = this.#scanTrash().finally(() => {
      this.#scanning = undefined;
    });
    this.#scanning = run;
    return run;
  }

  async #scanTrash(): Promise<number> {
    let adopted = 0;
    const fresh: TrashEntry[] = [];
    for (const pool of this.#d.config.watchedPools) {
      for (const entry of await this.#d.blocks.listTrash({ pool })) {
        if (this.#skippedTrash.has(`${pool}/${entry.id}`)) continue;
        if ((await this.#d.engine.store.bySource(this.#d.config.cloud, entry.id)) !== undefined) continue;
        fresh.push(entry);
      }
    }
    // A burst of deletions is adopted a few at a time: each adoption is a
    // handful of rbd calls, mostly waiting on the cluster, and the deferment
    // leaves time, but not unlimited time.
    const width = Math.max(1, this.#d.adoptConcurrency ?? 4);
    let next = 0;
    const worker = async () => {
      while (next < fresh.length && !this.#stopped) {
        const entry = fresh[next++];
        if (entry !== undefined && (await this.#adoptTrashEntry(entry).catch((err: unknown) => {
          this.#log.error({ image: entry.name, err: err instanceof Error ? err.message : String(err) }, 'trash adoption failed; retried at the next scan');
          return false;
        }))) adopted += 1;
      }
    };
    await Promise.all(Array.from({ length: width }, worker));
    return adopted;
  }

  async #adoptTrashEntry(entry: TrashEntry): Promise<boolean> {
    const owner = ownerOfImageName(entry.name);
    const expected = this.#d.config.cloudType;
    if (owner === undefined || owner.cloudType !== expected) {
      this.#skippedTrash.add(`${entry.pool}/${entry.id}`);
      return false;
    }
    const instanceId = 'instanceId' in owner ? owner.instanceId : `volume:${owner.volumeId}`;
    const p = await this.#policy(instanceId);
    if (p === undefined || p.capture.mode !== 'trash' || !roleWanted(owner.role, p.capture.disks)) {
      // Left to its deferment: the cloud's own purge removes it in time.
      this.#skippedTrash.add(`${entry.pool}/${entry.id}`);
      return false;
    }
    let ok = false;
    await this.#enqueue(instanceId, async () => {
      ok = await this.#capture(instanceId, owner.disk, owner.role, p, { kind: 'trash', entry }, null, entry.deletedAt);
    });
    return ok;
  }

  /** Periodic scans; only the leader runs them. */
  startTrashScans(): void {
    const every = this.#d.config.trash.scanIntervalSeconds * 1000;
    const tick = () => {
      this.#scanTimer = setTimeout(() => {
        void this.scanTrash().catch((err: unknown) => this.#log.error({ err: String(err) }, 'trash scan failed')).finally(() => {
          if (!this.#stopped) tick();
        });
      }, every);
    };
    tick();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#scanTimer);
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
    await this.idle();
  }
}
