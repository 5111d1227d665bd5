// The isolation reconciler: what a quarantine owes once captured, driven from
// its row (lifecycle.ts's isolationWork decides, this module does).
//
// 1. digest: the SHA-256 of the capture snapshot, read through the fresh
//    copy-on-write clone (which has no data of its own yet) from its allocated
//    extents only, the zeros between them hashed unread, recorded with its
//    time in the audit trail, before anything is copied: a change to the
//    cloud-side data after this moment shows in `verify`.
// 2. isolate: flatten the clone, which copies every byte it reads from its
//    parent into the quarantine pool, then release the anchor in the cloud's
//    pool (the adopted trash entry, or the capture snapshot on the live disk).
//    From then on nothing the quarantine holds depends on an object a cloud
//    user can write.
//
// Each step is claimed by one worker (compare-and-set on the row, a lease
// renewed while a long copy runs) and is safe to repeat: after a crash the
// next relist finds the row at the same step and does it again, a flatten
// that was already done is skipped, an anchor already gone is fine.
import type { BlockStore, ImageSpec } from '../domain/block-store.ts';
import { RbdNotFoundError } from '../ceph/errors.ts';
import type { Clock, Timer } from '../kube/runtime/clock.ts';
import type { Logger } from '../log.ts';
import { isolationWork } from './lifecycle.ts';
import { sparseSha256, type SparseDigest } from './sparse-digest.ts';
import type { IsolationStep, QuarantineRow, QuarantineStore } from './quarantine-store.ts';

export interface IsolationDeps {
  store: QuarantineStore;
  blocks: BlockStore;
  clock: Clock;
  logger: Logger;
  /** Who this worker is when it claims a step (the engine's owner). */
  owner: string;
  /** How long a claimed step stays ours without renewal (renewed every third of it while the step runs). */
  claimMs?: number | undefined;
  /** Told when a quarantine is isolated: seconds from capture to isolation. */
  onIsolated?: ((seconds: number) => void) | undefined;
  /** A test seam: runs after a step is claimed and before its Ceph calls. */
  beforeStep?: ((id: string, step: IsolationStep) => Promise<void>) | undefined;
}

export type IsolationOutcome = 'isolated' | 'not-isolated' | 'elsewhere' | 'nothing' | 'gone';

const locationOf = (q: QuarantineRow): ImageSpec => ({ pool: q.location_pool, namespace: q.location_namespace ?? undefined, image: q.location_image });

export class Isolation {
  readonly #d: IsolationDeps;
  readonly #claimMs: number;

  constructor(deps: IsolationDeps) {
    this.#d = deps;
    this.#claimMs = deps.claimMs ?? 120_000;
  }

  /** Rows with a step left, for a relist. */
  pending(cloud?: string): Promise<QuarantineRow[]> {
    return this.#d.store.isolationPending(cloud);
  }

  /** Drives one quarantine through its remaining isolation steps. */
  async reconcile(id: string): Promise<IsolationOutcome> {
    for (;;) {
      const row = await this.#d.store.get(id);
      if (row === undefined) return 'gone';
      const work = isolationWork(row);
      if (work.do === 'nothing') return row.isolation === 'isolated' ? 'isolated' : row.isolation === 'not-isolated' ? 'not-isolated' : 'nothing';
      const step: IsolationStep = work.do === 'digest' ? 'digesting' : 'isolating';
      const held = await this.#claimed(row, step, async () => {
        await this.#d.beforeStep?.(row.id, step);
        return work.do === 'digest' ? this.#digest(row, step, work.then) : this.#isolate(row);
      });
      if (held === 'elsewhere' || held === 'gone') return held;
    }
  }

  /** Runs `fn` under a claim on the step, renewing it meanwhile; 'elsewhere' when another worker holds it. */
  async #claimed(row: QuarantineRow, step: IsolationStep, fn: () => Promise<'done' | 'gone' | 'elsewhere'>): Promise<'done' | 'gone' | 'elsewhere'> {
    const { store, clock, owner } = this.#d;
    if (!(await store.claimIsolation(row.id, step, owner, clock.now(), this.#claimMs))) {
      this.#d.logger.debug({ quarantine: row.id, step }, 'another worker holds this isolation step');
      return 'elsewhere';
    }
    let timer: Timer | undefined;
    let stopped = false;
    const renew = (): void => {
      timer = clock.setTimer(this.#claimMs / 3, () => {
        if (stopped) return;
        void store.claimIsolation(row.id, step, owner, clock.now(), this.#claimMs).catch(() => false).then(() => { if (!stopped) renew(); });
      });
    };
    renew();
    try {
      return await fn();
    } finally {
      stopped = true;
      timer?.cancel();
    }
  }

  async #digest(row: QuarantineRow, step: IsolationStep, then: 'isolating' | 'not-isolated'): Promise<'done' | 'gone' | 'elsewhere'> {
    const { store, blocks, clock, owner, logger } = this.#d;
    let digest: SparseDigest;
    try {
      // Only the allocated extents are read; the zeros between them are hashed without being moved.
      digest = await sparseSha256(await blocks.readAllocated(locationOf(row)));
    } catch (err) {
      if (err instanceof RbdNotFoundError) return 'gone';
      throw err;
    }
    const { sha256, bytes, readBytes } = digest;
    const at = clock.now();
    // A digest recorded earlier (by a first read, before digests were taken at capture) is kept: it is the older witness.
    const fields = row.digest === null ? { digest: sha256, digest_at: at.getTime() } : {};
    const note = { step: 'digest', sha256, bytes, readBytes, digestAt: at.toISOString(), of: `capture snapshot ${row.snapshot}`, next: then, ...(row.digest !== null && row.digest !== sha256 ? { differsFromRecorded: row.digest } : {}) };
    if (!(await store.isolationStepDone(row.id, step, owner, at, { ...fields, isolation: then }, note))) return 'elsewhere';
    if (row.digest !== null && row.digest !== sha256) logger.warn({ quarantine: row.id, sha256, recorded: row.digest }, 'the capture digest differs from the one recorded before');
    logger.info({ quarantine: row.id, sha256, bytes, readBytes }, 'capture digest recorded');
    return 'done';
  }

  async #isolate(row: QuarantineRow): Promise<'done' | 'gone' | 'elsewhere'> {
    const { store, blocks, clock, owner, logger } = this.#d;
    const location = locationOf(row);
    const started = clock.now();
    try {
      const info = await blocks.info(location);
      // A flatten that completed before a crash left no parent: nothing to copy again.
      if (info.parent !== undefined) await blocks.flatten(location);
    } catch (err) {
      if (err instanceof RbdNotFoundError) return 'gone';
      throw err;
    }
    // Read again: orphan adoption may have moved the source into the trash meanwhile.
    const released = await this.#releaseAnchor((await store.get(row.id)) ?? row);
    const now = clock.now();
    const seconds = row.captured_at === null ? 0 : Math.max(0, (now.getTime() - row.captured_at) / 1000);
    const note = { step: 'isolated', copy: 'flatten', copySeconds: (now.getTime() - started.getTime()) / 1000, secondsSinceCapture: seconds, anchorReleased: released };
    if (!(await store.isolationStepDone(row.id, 'isolating', owner, now, { isolation: 'isolated', isolated_at: now.getTime(), flattened: 1, anchor_trash_id: null }, note))) return 'elsewhere';
    this.#d.onIsolated?.(seconds);
    logger.info({ quarantine: row.id, seconds }, 'quarantine isolated: its data no longer depends on the cloud\'s pool');
    return 'done';
  }

  /**
   * Lets go of what the quarantine held in the cloud's pool: an adopted trash
   * entry is removed; the capture snapshot on a live source (in the trash
   * snapshot namespace while the clone used it) went with the flatten, and a
   * user snapshot left by an interrupted capture is removed here.
   */
  async #releaseAnchor(row: QuarantineRow): Promise<Record<string, unknown>> {
    const { blocks } = this.#d;
    const pool = { pool: row.source_pool, namespace: row.source_namespace ?? undefined };
    if (row.anchor_trash_id !== null) {
      try {
        await blocks.removeFromTrash({ ...pool, imageId: row.anchor_trash_id }, { force: true });
      } catch (err) {
        if (!(err instanceof RbdNotFoundError)) throw err;
      }
      return { trashEntry: `${row.source_pool}/${row.anchor_trash_id}`, image: row.anchor_image ?? row.source_image };
    }
    try {
      await blocks.removeSnapshot({ ...pool, image: row.source_image, snapshot: row.snapshot });
    } catch (err) {
      if (!(err instanceof RbdNotFoundError)) throw err;
    }
    return { snapshot: `${row.source_pool}/${row.source_image}@${row.snapshot}` };
  }
}
