// The isolation reconciler: what a quarantine owes once captured, driven from
// its row (lifecycle.ts's isolationWork decides, this module does).
//
// 1. digest: the SHA-256 of the capture snapshot, read through the fresh
//    copy-on-write clone from its allocated extents only, the zeros between
//    them hashed unread, recorded with its time in the audit trail: a change
//    to the cloud-side data after this moment shows in `verify`.
// 2. isolate: copy the clone's data into the quarantine pool (flatten, or a
//    copy paced to the Cloud's bandwidth then a flatten that only detaches),
//    then release the anchor in the cloud's pool (the adopted trash entry, or
//    the capture snapshot on the live disk). From then on nothing the
//    quarantine holds depends on an object a cloud user can write.
//
// The copy starts beside the digest rather than after it: both read the same
// parent data, and the quarantine is isolated about when the longer of the
// two ends instead of after their sum. Each object's content is then fixed at
// the earlier of its digest read and its copy, never later than with the
// digest alone: a change made after the digest read an object and before the
// copy reached it still differs from the recorded digest, and one made after
// the copy no longer reaches the quarantine. Reading through the clone keeps
// this true while the flatten runs: an object the copy has reached is read
// from the clone's own copy. The anchor is released only after the digest is
// recorded (the isolating step), and the worker that recorded it goes on to
// that step under the same claim.
//
// Each step is claimed by one worker (compare-and-set on the row, a lease
// renewed while a long copy runs) and is safe to repeat: after a crash the
// next relist finds the row at the same step and does it again, a flatten
// that was already done is skipped, an anchor already gone is fine.
//
// A repeated copy does not trust what the interrupted one left. librbd marks
// an object as existing in the clone's object map before it writes it, and a
// flatten skips every object the map says exists: a process killed between
// the two leaves an object that a second flatten skips and that reads as
// zeros once the parent is detached (bench/notes/capture.md has the figures).
// So a step found claimed by an earlier attempt (the row still names an
// owner) renews the clone's object map before copying, copies after the
// digest rather than beside it, and checks the copy against the capture
// digest before it counts as isolated. A copy that differs is recorded as
// such (isolation `copy-differs`, with the failure and an audit entry), its
// anchor kept, and never as isolated.
import type { BlockStore, ImageSpec } from '../domain/block-store.ts';
import { RbdNotFoundError } from '../ceph/errors.ts';
import type { Clock, Timer } from '../kube/runtime/clock.ts';
import type { Logger } from '../log.ts';
import { paced, type TokenBucket } from './bandwidth.ts';
import { isolationWork } from './lifecycle.ts';
import { sparseSha256, type SparseDigest } from './sparse-digest.ts';
import type { IsolationStep, QuarantineRow, QuarantineStore } from './quarantine-store.ts';

const MiB = 1024 * 1024;

export interface IsolationDeps {
  store: QuarantineStore;
  blocks: BlockStore;
  clock: Clock;
  logger: Logger;
  /** Who this worker is when it claims a step (the engine's owner). */
  owner: string;
  /** How long a claimed step stays ours without renewal (renewed every third of it while the step runs). */
  claimMs?: number | undefined;
  /**
   * The rate the copy may take (shared by every isolation of the Cloud):
   * the clone's allocated extents are copied at that pace, then flattened.
   * Absent: a plain flatten, as fast as the cluster goes.
   */
  bandwidth?: TokenBucket | undefined;
  /** The copy starts beside the digest (default) or after it is recorded; the bench measures both. */
  sideBySide?: boolean | undefined;
  /** Told when a quarantine is isolated: seconds from capture to isolation. */
  onIsolated?: ((seconds: number) => void) | undefined;
  /** A test seam: runs after a step is claimed and before its Ceph calls ('copy': as the copy starts). */
  beforeStep?: ((id: string, step: IsolationStep | 'copy') => Promise<void>) | undefined;
}

export type IsolationOutcome = 'isolated' | 'not-isolated' | 'copy-differs' | 'elsewhere' | 'nothing' | 'gone';

type StepResult = 'done' | 'gone' | 'elsewhere';

/** What the copy did, for the audit trail. */
type CopyNote = Record<string, unknown>;

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
      if (work.do === 'nothing') return row.isolation === 'isolated' || row.isolation === 'not-isolated' || row.isolation === 'copy-differs' ? row.isolation : 'nothing';
      const step: IsolationStep = work.do === 'digest' ? 'digesting' : 'isolating';
      // A claim still on the row: an earlier attempt at this step stopped mid-way (a crash, a lapsed lease, an error).
      const resumed = row.owner !== null;
      const held = await this.#claimed(row, step, async (moveTo) => {
        await this.#d.beforeStep?.(row.id, step);
        return work.do === 'digest' ? this.#digest(row, work.then, moveTo, resumed) : this.#isolate(row, this.#copy(row, resumed), resumed);
      });
      if (held === 'elsewhere' || held === 'gone') return held;
    }
  }

  /**
   * Runs `fn` under a claim on the step, renewing it meanwhile; 'elsewhere'
   * when another worker holds it. `fn` may go on to the next step under the
   * same claim (moveTo), which is then the one renewed.
   */
  async #claimed(row: QuarantineRow, step: IsolationStep, fn: (moveTo: (next: IsolationStep) => void) => Promise<StepResult>): Promise<StepResult> {
    const { store, clock, owner } = this.#d;
    if (!(await store.claimIsolation(row.id, step, owner, clock.now(), this.#claimMs))) {
      this.#d.logger.debug({ quarantine: row.id, step }, 'another worker holds this isolation step');
      return 'elsewhere';
    }
    let current = step;
    let timer: Timer | undefined;
    let stopped = false;
    const renew = (): void => {
      timer = clock.setTimer(this.#claimMs / 3, () => {
        if (stopped) return;
        void store.claimIsolation(row.id, current, owner, clock.now(), this.#claimMs).catch(() => false).then(() => { if (!stopped) renew(); });
      });
    };
    renew();
    try {
      return await fn((next) => { current = next; });
    } finally {
      stopped = true;
      timer?.cancel();
    }
  }

  async #digest(row: QuarantineRow, then: 'isolating' | 'not-isolated', moveTo: (next: IsolationStep) => void, resumed: boolean): Promise<StepResult> {
    const { store, blocks, clock, owner, logger } = this.#d;
    // The copy beside the digest; its failure is met where it is awaited.
    let copying: Promise<CopyNote> | undefined;
    const startCopy = (): Promise<CopyNote> => {
      copying = this.#copy(row, resumed);
      copying.catch(() => {});
      return copying;
    };
    // A resumed copy first renews the clone's object map, which the digest's reads must not meet half done.
    if (then === 'isolating' && this.#d.sideBySide !== false && !resumed) startCopy();
    try {
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
      const note = {
        step: 'digest', sha256, bytes, readBytes, digestAt: at.toISOString(), of: `capture snapshot ${row.snapshot}`, next: then,
        ...(copying === undefined ? {} : { copyBeside: true }),
        ...(row.digest !== null && row.digest !== sha256 ? { differsFromRecorded: row.digest } : {}),
      };
      // Going on to isolate, this worker keeps the claim: nobody else starts a second copy meanwhile.
      const keep = then === 'isolating' ? { leaseMs: this.#claimMs } : undefined;
      if (!(await store.isolationStepDone(row.id, 'digesting', owner, at, { ...fields, isolation: then }, note, keep))) return 'elsewhere';
      if (row.digest !== null && row.digest !== sha256) logger.warn({ quarantine: row.id, sha256, recorded: row.digest }, 'the capture digest differs from the one recorded before');
      logger.info({ quarantine: row.id, sha256, bytes, readBytes }, 'capture digest recorded');
      if (then !== 'isolating') return 'done';
      moveTo('isolating');
      await this.#d.beforeStep?.(row.id, 'isolating');
      return await this.#isolate(row, copying ?? startCopy(), resumed);
    } finally {
      // Whatever happened, nothing of this step runs on once it returns.
      await copying?.catch(() => {});
    }
  }

  /** Copies the clone's data into the quarantine pool: a flatten, or a paced copy and then a flatten; nothing when already flat. */
  async #copy(row: QuarantineRow, resumed: boolean): Promise<CopyNote> {
    const { store, blocks, clock, owner, bandwidth } = this.#d;
    await this.#d.beforeStep?.(row.id, 'copy');
    const location = locationOf(row);
    const started = clock.now().getTime();
    const wall = performance.now();
    // A flatten that completed before a crash left no parent: nothing to copy again.
    if ((await blocks.info(location)).parent === undefined) return { copy: 'none (already flat)' };
    let renewed: CopyNote = {};
    if (resumed) {
      // The interrupted copy may have left the object map claiming objects it never wrote (see the header).
      await blocks.renewObjectMap(location);
      renewed = { objectMapRenewed: true };
      await store.isolationNote(row.id, 'isolating', owner, clock.now(), {
        step: 'object map renewed', why: 'an earlier copy of this clone stopped mid-way; its object map may claim objects it never wrote, which a flatten would skip',
      });
    }
    let paces: CopyNote = {};
    if (bandwidth !== undefined) {
      const read = await blocks.readAllocated(location);
      const copiedBytes = await blocks.writeExtents(location, paced(read.pieces, bandwidth));
      const seconds = (performance.now() - wall) / 1000;
      paces = { copiedBytes, limitMiBps: bandwidth.bytesPerSecond / MiB, achievedMiBps: seconds > 0 ? Math.round((copiedBytes / MiB / seconds) * 100) / 100 : null };
    }
    // After a paced copy the objects are there already: the flatten only detaches the clone.
    await blocks.flatten(location);
    return { copy: bandwidth === undefined ? 'flatten' : 'paced copy, then flatten', copySeconds: (clock.now().getTime() - started) / 1000, ...renewed, ...paces };
  }

  async #isolate(row: QuarantineRow, copying: Promise<CopyNote>, resumed: boolean): Promise<StepResult> {
    const { store, blocks, clock, owner, logger } = this.#d;
    let copied: CopyNote;
    let checked: CopyNote = {};
    try {
      copied = await copying;
      // The digest may have been recorded by this same attempt, after `row` was read.
      const recorded = (await store.get(row.id))?.digest ?? row.digest;
      if (resumed && recorded !== null) {
        const copy = await sparseSha256(await blocks.readAllocated(locationOf(row)));
        if (copy.sha256 !== recorded) return await this.#differs(row, copied, copy.sha256, recorded);
        checked = { copyMatchesDigest: true };
      }
    } catch (err) {
      if (err instanceof RbdNotFoundError) return 'gone';
      throw err;
    }
    // Read again: orphan adoption may have moved the source into the trash meanwhile.
    const released = await this.#releaseAnchor((await store.get(row.id)) ?? row);
    const now = clock.now();
    const seconds = row.captured_at === null ? 0 : Math.max(0, (now.getTime() - row.captured_at) / 1000);
    const note = { step: 'isolated', ...copied, ...checked, secondsSinceCapture: seconds, anchorReleased: released };
    if (!(await store.isolationStepDone(row.id, 'isolating', owner, now, { isolation: 'isolated', isolated_at: now.getTime(), flattened: 1, anchor_trash_id: null }, note))) return 'elsewhere';
    this.#d.onIsolated?.(seconds);
    logger.info({ quarantine: row.id, seconds }, 'quarantine isolated: its data no longer depends on the cloud\'s pool');
    return 'done';
  }

  /**
   * A resumed copy that is not the capture: recorded as such, never as
   * isolated, and the anchor in the cloud's pool is kept (whatever of the
   * original it still holds is all there is to recover from).
   */
  async #differs(row: QuarantineRow, copied: CopyNote, sha256: string, recorded: string): Promise<StepResult> {
    const { store, clock, owner, logger } = this.#d;
    const now = clock.now();
    const failure = `the copy in the quarantine pool (sha256 ${sha256}) differs from the capture digest ${recorded}; the anchor in the cloud's pool is kept`;
    const note = { step: 'copy differs', ...copied, copySha256: sha256, captureDigest: recorded, anchorKept: true };
    if (!(await store.isolationStepDone(row.id, 'isolating', owner, now, { isolation: 'copy-differs', failure, flattened: 1 }, note))) return 'elsewhere';
    logger.error({ quarantine: row.id, sha256, recorded }, 'the resumed copy differs from the capture digest: not isolated, anchor kept');
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
