// The capture state machine. A capture is recorded in the ledger before each
// Ceph call and every step tolerates having been done already, so a crash at
// any point resumes to exactly one quarantine:
//
//   planned → snapshotting → cloning → quarantined → (flattening → quarantined)
//   → expired → purged            or → failed (with the reason)
// A quarantined row then carries its isolation steps (isolation.ts).
//
// The quarantine is a v2 clone in a pool the cloud's cephx users cannot write,
// made from a snapshot of the source. The source then becomes the anchor that
// the clone depends on: the cloud cannot remove it while the clone exists
// (rbd answers "image has snapshots with linked clones"), and a trashed source
// is adopted by restoring it under a name no cloud delete logic matches.
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Kysely } from 'kysely';
import type { LedgerSchema } from '../ledger/schema.ts';
import type { BlockStore, ImageSpec, TrashEntry } from '../domain/block-store.ts';
import { RbdExistsError, RbdNotFoundError } from '../ceph/errors.ts';
import { appendAudit } from '../ledger/audit.ts';
import { expiryOf, type CaptureMode } from '../domain/policy.ts';
import { IN_PROGRESS, QuarantineStore, type CaptureState, type QuarantineRow } from './quarantine-store.ts';
import type { Logger } from '../log.ts';

export interface Provenance {
  cloud: string;
  instance: { id: string; name: string | null; project: string | null; user: string | null; host: string | null; image: string | null; flavor: string | null; createdAt: string | null };
  addresses: Array<{ address: string; kind: string; network: string | null; port: string | null; from: string; to: string | null }>;
  deletedAt: string | null;
  deletedBy: string | null;
  messageId: string | null;
  source: { pool: string; namespace: string | null; image: string; imageId: string };
  disk: string;
  mode: CaptureMode;
  policy: string | null;
}

export type CaptureSource = { kind: 'live'; image: ImageSpec } | { kind: 'trash'; entry: TrashEntry };

export interface CaptureRequest {
  cloud: string;
  instanceId: string;
  disk: string;
  mode: CaptureMode;
  /** `isolate` (default true): copy the quarantine out of the cloud's pool once captured. */
  policy: { name: string; retentionMs: number; flatten: boolean; isolate?: boolean | undefined } | undefined;
  source: CaptureSource;
  provenance: Omit<Provenance, 'source' | 'disk' | 'mode' | 'policy'>;
  /** The capture intent this disk is captured for. */
  intentId?: string | undefined;
}

export interface QuarantineLocation {
  pool: string;
  namespace?: string | undefined;
}

/** A test seam: called after a step is recorded and before its Ceph call, so a test can stop the engine exactly there. */
export type StepHook = (id: string, step: CaptureState) => Promise<void>;

export interface CaptureEngineDeps {
  db: Kysely<LedgerSchema>;
  blocks: BlockStore;
  quarantine: QuarantineLocation;
  logger: Logger;
  clock?: () => Date;
  actor?: string;
  beforeStep?: StepHook;
  /** Retention of rows planned before capture intents existed (they carry none); every newer row carries its own. */
  defaultRetentionMs?: number;
  /** Who this engine is when it claims a step: stable across restarts of one replica (default: the host name, a pod's name). */
  owner?: string;
  /** How long a claimed step stays ours without progress, so a crashed replica's step passes to another. */
  claimMs?: number;
  /** Told when a step was claimed by someone else (this worker stopped there). */
  onConflict?: (id: string, step: CaptureState) => void;
}

export class CaptureFailedError extends Error {
  override name = 'CaptureFailedError';
}

const META_PREFIX = 'quarantine.';

export function newQuarantineId(): string {
  return `q${randomBytes(8).toString('hex')}`;
}

export class CaptureEngine {
  readonly store: QuarantineStore;
  readonly #blocks: BlockStore;
  readonly #where: QuarantineLocation;
  readonly #log: Logger;
  readonly #clock: () => Date;
  readonly #actor: string;
  readonly #beforeStep: StepHook;
  readonly #defaultRetentionMs: number;
  readonly #owner: string;
  readonly #claimMs: number;
  readonly #onConflict: (id: string, step: CaptureState) => void;
  /** Per-quarantine serialization within this process. */
  readonly #running = new Map<string, Promise<QuarantineRow>>();

  constructor(deps: CaptureEngineDeps) {
    this.store = new QuarantineStore(deps.db);
    this.#blocks = deps.blocks;
    this.#where = deps.quarantine;
    this.#log = deps.logger;
    this.#clock = deps.clock ?? (() => new Date());
    this.#actor = deps.actor ?? 'quarantine-operator';
    this.#beforeStep = deps.beforeStep ?? (async () => undefined);
    this.#defaultRetentionMs = deps.defaultRetentionMs ?? 30 * 86_400_000;
    this.#owner = deps.owner ?? hostname();
    this.#claimMs = deps.claimMs ?? 120_000;
    this.#onConflict = deps.onConflict ?? (() => undefined);
  }

  /** Who this engine is when it claims a step; isolation claims under the same name. */
  get owner(): string {
    return this.#owner;
  }

  /** Plans (or finds) the capture of one disk and drives it to `quarantined`. */
  async capture(req: CaptureRequest): Promise<QuarantineRow> {
    const now = this.#clock();
    const id = newQuarantineId();
    let sourceImageId: string;
    let sourceImage: ImageSpec;
    let anchorImage: string | null;
    if (req.source.kind === 'trash') {
      const e = req.source.entry;
      sourceImageId = e.id;
      sourceImage = { pool: e.pool, namespace: e.namespace, image: e.name };
      anchorImage = `qop-anchor.${id}`;
    } else {
      sourceImage = req.source.image;
      sourceImageId = await this.#blocks.imageId(sourceImage);
      anchorImage = null;
    }
    const existing = await this.store.bySource(req.cloud, sourceImageId);
    if (existing !== undefined) return this.advance(existing);
    const provenance: Provenance = {
      ...req.provenance,
      source: { pool: sourceImage.pool, namespace: sourceImage.namespace ?? null, image: sourceImage.image, imageId: sourceImageId },
      disk: req.disk, mode: req.mode, policy: req.policy?.name ?? null,
    };
    const { row, created } = await this.store.plan({
      id, cloud: req.cloud, instance_id: req.instanceId, disk: req.disk, mode: req.mode, policy: req.policy?.name ?? null,
      source_pool: sourceImage.pool, source_namespace: sourceImage.namespace ?? null, source_image: sourceImage.image, source_image_id: sourceImageId,
      anchor_image: anchorImage, snapshot: `qop-${id}`,
      location_pool: this.#where.pool, location_namespace: this.#where.namespace ?? null, location_image: `qop.${id}`,
      planned_at: now.getTime(), provenance: JSON.stringify(provenance),
      retention_ms: req.policy?.retentionMs ?? null, intent_id: req.intentId ?? null, isolate: req.policy?.isolate ?? true,
    }, now);
    if (created) this.#log.info({ quarantine: row.id, cloud: req.cloud, instance: req.instanceId, disk: req.disk, mode: req.mode }, 'capture planned');
    return this.advance(row, req.policy);
  }

  /** Drives one quarantine forward from wherever it stands; concurrent calls for one id share the work. */
  advance(row: QuarantineRow, policy?: CaptureRequest['policy']): Promise<QuarantineRow> {
    const running = this.#running.get(row.id);
    if (running !== undefined) return running;
    const work = this.#advance(row, policy).finally(() => this.#running.delete(row.id));
    this.#running.set(row.id, work);
    return work;
  }

  /** Picks up every capture a crash or restart left in progress. */
  async resume(cloud?: string): Promise<QuarantineRow[]> {
    const pending = await this.store.inState(['planned', 'snapshotting', 'cloning'], cloud);
    const out: QuarantineRow[] = [];
    for (const row of pending) out.push(await this.advance(row).catch((err: unknown) => { this.#log.error({ quarantine: row.id, err: String(err) }, 'resume failed'); return row; }));
    return out;
  }

  #image(row: QuarantineRow, which: 'source' | 'anchor' | 'location'): ImageSpec {
    if (which === 'location') return { pool: row.location_pool, namespace: row.location_namespace ?? undefined, image: row.location_image };
    const image = which === 'anchor' && row.anchor_image !== null ? row.anchor_image : row.source_image;
    return { pool: row.source_pool, namespace: row.source_namespace ?? undefined, image };
  }

  /** The image the snapshot is taken on: the adopted anchor for trash sources, else the live source. */
  #origin(row: QuarantineRow): ImageSpec {
    return this.#image(row, row.anchor_image !== null ? 'anchor' : 'source');
  }

  async #fail(row: QuarantineRow, reason: string): Promise<QuarantineRow> {
    const now = this.#clock();
    await this.store.transition(row.id, ['planned', 'snapshotting', 'cloning'], 'failed', now, { failure: reason, owner: null, claimed_until: null });
    await appendAudit(this.store.db, { actor: this.#actor, action: 'capture.failed', subject: row.id, details: { reason, cloud: row.cloud, instance: row.instance_id, disk: row.disk }, at: now });
    this.#log.warn({ quarantine: row.id, reason }, 'capture failed');
    return (await this.store.get(row.id)) ?? row;
  }

  #conflict(row: QuarantineRow, step: CaptureState): QuarantineRow {
    this.#log.warn({ quarantine: row.id, step, owner: this.#owner }, 'another worker holds this capture step; this one stops');
    this.#onConflict(row.id, step);
    return row;
  }

  /** The claim on the next step, renewed by the transition into it. */
  #lease(): { claimed_until: number } {
    return { claimed_until: this.#clock().getTime() + this.#claimMs };
  }

  async #advance(start: QuarantineRow, policy?: CaptureRequest['policy']): Promise<QuarantineRow> {
    let row = start;
    // Whether the step the row is at is ours already: an owned transition
    // into it renewed the claim in the same write.
    let held = false;
    for (;;) {
      const state = row.state as CaptureState;
      if (!IN_PROGRESS.includes(state)) return row;
      // Every step is claimed first: of two workers on one row, one goes on
      // and the other stops here, before any Ceph call.
      if (!held && !(await this.store.claim(row.id, state, this.#owner, this.#clock(), this.#claimMs))) return this.#conflict((await this.store.get(row.id)) ?? row, state);
      held = false;
      if (state === 'planned') {
        if (!(await this.store.transitionOwned(row.id, 'planned', 'snapshotting', this.#owner, this.#clock(), this.#lease()))) return this.#conflict(row, state);
        held = true;
      } else if (state === 'snapshotting') {
        await this.#beforeStep(row.id, 'snapshotting');
        const outcome = await this.#snapshot(row);
        if (outcome !== 'ok') return this.#fail(row, outcome);
        if (!(await this.store.transitionOwned(row.id, 'snapshotting', 'cloning', this.#owner, this.#clock(), this.#lease()))) return this.#conflict(row, state);
        held = true;
      } else {
        await this.#beforeStep(row.id, 'cloning');
        // The step calls Ceph on the origin more than once: a driver that opens
        // an image per call opens it once for all of them. Released with the
        // step, so that a crash between steps leaves nothing open. The clone is
        // not kept open: its keys and size go through its header (a driver's
        // cheapest path), and nobody else has it open to be told.
        const release = this.#blocks.keepOpen([this.#origin(row)]);
        try {
          const outcome = await this.#clone(row);
          if (typeof outcome === 'string') return this.#fail(row, outcome);
          // A live source's capture snapshot only leaves the cloud's listing
          // here; the clone is durable without that, and isolation removes a
          // snapshot left behind once it has flattened the clone. So such a
          // capture is recorded first, and its latency is not the origin's
          // exclusive lock, which the cloud's own rbd processes contend for.
          // An anchor, or a policy without isolation, has nothing to clean up
          // after it: there the origin's part must succeed first.
          const recordFirst = row.isolate === 1 && !outcome.anchored;
          if (!recordFirst) await outcome.source;
          const finished = await this.#finish(row, outcome.bytes, policy);
          if (recordFirst) await outcome.source.catch((err: unknown) => this.#log.warn({ quarantine: row.id, err: String(err) }, 'the capture snapshot stays on the source until isolation removes it'));
          if (!finished) return this.#conflict(row, state);
        } finally {
          await release();
        }
      }
      row = (await this.store.get(row.id)) ?? row;
    }
  }

  /**
   * The live source is gone by name: with the pool's trash option on, the
   * cloud's delete moved it to the trash (same image id). Restore it under our
   * anchor name and carry on from there. Returns the updated row, or undefined.
   */
  async #recoverFromTrash(row: QuarantineRow): Promise<QuarantineRow | undefined> {
    const pool = { pool: row.source_pool, namespace: row.source_namespace ?? undefined };
    const entry = (await this.#blocks.listTrash(pool)).find((e) => e.id === row.source_image_id);
    if (entry === undefined) return undefined;
    const anchor = `qop-anchor.${row.id}`;
    await this.store.update(row.id, this.#clock(), { anchor_image: anchor });
    await this.#blocks.restoreFromTrash({ ...pool, imageId: entry.id }, { name: anchor });
    this.#log.info({ quarantine: row.id, image: row.source_image }, 'the cloud trashed the source mid-capture; adopted it from the trash');
    return this.store.get(row.id);
  }

  async #snapshot(start: QuarantineRow): Promise<'ok' | string> {
    let row = start;
    if (row.anchor_image !== null) {
      // Adopt the trashed disk: back under our own name, out of the cloud's naming.
      // Not found means it is gone, or restored already by a run that died.
      try {
        await this.#blocks.restoreFromTrash({ pool: row.source_pool, namespace: row.source_namespace ?? undefined, imageId: row.source_image_id }, { name: row.anchor_image });
      } catch (err) {
        if (!(err instanceof RbdNotFoundError || err instanceof RbdExistsError)) throw err;
        const restored = await this.#exists(this.#origin(row));
        if (!restored && !(await this.#exists(this.#image(row, 'location')))) return `the trash entry ${row.source_image_id} of ${row.source_image} vanished before it could be adopted`;
      }
    }
    for (let attempt = 0; ; attempt++) {
      try {
        await this.#blocks.createSnapshot({ ...this.#origin(row), snapshot: row.snapshot });
        return 'ok';
      } catch (err) {
        if (err instanceof RbdExistsError) return 'ok';
        if (!(err instanceof RbdNotFoundError)) throw err;
        // Already cloned and cleaned on an earlier run that died before recording it?
        if (await this.#exists(this.#image(row, 'location'))) return 'ok';
        const recovered = attempt === 0 && row.anchor_image === null ? await this.#recoverFromTrash(row) : undefined;
        if (recovered === undefined) return `the source ${row.source_pool}/${row.source_image} was gone before it could be snapshotted (the cloud deleted it first)`;
        row = recovered;
      }
    }
  }

  /**
   * The clone made and dressed: its size, and the origin's part of the step
   * (its snapshot removed, an anchor moved back to the trash) still running;
   * or why not.
   */
  async #clone(start: QuarantineRow): Promise<{ bytes: number; source: Promise<void>; anchored: boolean } | string> {
    let row = start;
    const location = this.#image(row, 'location');
    for (let attempt = 0; ; attempt++) {
      try {
        await this.#blocks.clone({ ...this.#origin(row), snapshot: row.snapshot }, location);
        break;
      } catch (err) {
        if (err instanceof RbdExistsError) break;
        if (!(err instanceof RbdNotFoundError)) throw err;
        if (await this.#exists(location)) break;
        const recovered = attempt === 0 && row.anchor_image === null ? await this.#recoverFromTrash(row) : undefined;
        if (recovered === undefined) return `the snapshot ${row.snapshot} of ${row.source_image} is gone`;
        row = recovered;
      }
    }
    const origin = this.#origin(row);
    // What is left touches two images that no longer depend on each other:
    // the clone (its provenance and size) and the origin (our snapshot, the
    // anchor's way back to the trash). Both go at once.
    const source = (async () => {
      // Our user snapshot is no longer needed once the clone exists: removing it
      // moves it to the trash snapshot namespace, where it lives as long as the
      // clone does, and leaves the cloud's own snapshot listing as it was.
      try {
        await this.#blocks.removeSnapshot({ ...origin, snapshot: row.snapshot });
      } catch (err) {
        if (!(err instanceof RbdNotFoundError)) throw err;
      }
      if (row.anchor_image !== null) {
        // Back to the trash, out of every listing the cloud uses; the clone pins it there.
        try {
          await this.#blocks.moveToTrash(origin);
        } catch (err) {
          if (!(err instanceof RbdNotFoundError)) throw err;
        }
      }
    })();
    // Awaited by the caller, whatever happens to the clone's part.
    source.catch(() => undefined);
    // The image carries its own provenance, so it stays identifiable even without the ledger.
    // Two keys and a size, independent of each other: at once.
    const [, , bytes] = await Promise.all([
      this.#blocks.setMeta(location, `${META_PREFIX}instance`, row.instance_id),
      this.#blocks.setMeta(location, `${META_PREFIX}provenance`, JSON.stringify({ id: row.id, ...(JSON.parse(row.provenance) as object) })),
      this.#blocks.imageSize(location),
    ]).catch(async (err: unknown) => {
      // The step ends only when both parts have, whatever happened to either.
      await source.catch(() => undefined);
      throw err;
    });
    return { bytes, source, anchored: row.anchor_image !== null };
  }

  async #finish(start: QuarantineRow, bytes: number, policy?: CaptureRequest['policy']): Promise<boolean> {
    const row = (await this.store.get(start.id)) ?? start;
    const now = this.#clock();
    // The retention decided when the capture was planned, carried by the row,
    // so a capture resumed after a crash keeps its policy's retention.
    const retention = policy?.retentionMs ?? row.retention_ms ?? this.#defaultRetentionMs;
    const expires = expiryOf(now, retention);
    const moved = await this.store.transitionOwned(row.id, 'cloning', 'quarantined', this.#owner, now, {
      captured_at: now.getTime(), expires_at: expires.getTime(), bytes,
      anchor_trash_id: row.anchor_image !== null ? row.source_image_id : row.anchor_trash_id,
      owner: null, claimed_until: null,
      // Its digest is owed at once, before anything else reads or copies it (see isolation.ts).
      isolation: 'digesting',
    });
    if (!moved) return false;
    await appendAudit(this.store.db, {
      actor: this.#actor, action: 'capture', subject: row.id, at: now,
      details: { cloud: row.cloud, instance: row.instance_id, disk: row.disk, mode: row.mode, policy: row.policy, source: `${row.source_pool}/${row.source_image}`, sourceImageId: row.source_image_id, location: `${row.location_pool}/${row.location_namespace === null ? '' : `${row.location_namespace}/`}${row.location_image}`, bytes, expiresAt: expires.toISOString() },
    });
    this.#log.info({ quarantine: row.id, cloud: row.cloud, instance: row.instance_id, disk: row.disk, bytes, expiresAt: expires.toISOString() }, 'quarantined');
    return true;
  }

  async #exists(image: ImageSpec): Promise<boolean> {
    try {
      await this.#blocks.imageSize(image);
      return true;
    } catch (err) {
      if (err instanceof RbdNotFoundError) return false;
      throw err;
    }
  }

  /** Makes a quarantine independent of its source (a full copy), so base images stay deletable. */
  async flatten(id: string): Promise<QuarantineRow | undefined> {
    const row = await this.store.get(id);
    if (row === undefined || row.flattened === 1) return row;
    if (!(await this.store.transition(id, ['quarantined'], 'flattening', this.#clock()))) return this.store.get(id);
    await this.#beforeStep(id, 'flattening');
    await this.#blocks.flatten(this.#image(row, 'location'));
    await this.releaseAnchor(row, 'flattened');
    await this.store.transition(id, ['flattening'], 'quarantined', this.#clock(), { flattened: 1 });
    return this.store.get(id);
  }

  /** Resumes flattens a crash interrupted. */
  async resumeFlattens(): Promise<void> {
    for (const row of await this.store.inState(['flattening'])) {
      await this.#blocks.flatten(this.#image(row, 'location'));
      await this.releaseAnchor(row, 'flattened');
      await this.store.transition(row.id, ['flattening'], 'quarantined', this.#clock(), { flattened: 1 });
    }
  }

  /**
   * Lets go of the source once nothing depends on it: an anchor we adopted
   * (restored from trash, or an orphan the cloud failed to delete) is removed;
   * a live source still in the cloud's hands is left to the cloud.
   */
  async releaseAnchor(row: QuarantineRow, why: string): Promise<void> {
    if (row.anchor_trash_id === null) return;
    try {
      await this.#blocks.removeFromTrash({ pool: row.source_pool, namespace: row.source_namespace ?? undefined, imageId: row.anchor_trash_id }, { force: true });
    } catch (err) {
      if (!(err instanceof RbdNotFoundError)) throw err;
    }
    await this.store.update(row.id, this.#clock(), { anchor_trash_id: null });
    await appendAudit(this.store.db, { actor: this.#actor, action: 'anchor.released', subject: row.id, details: { why, pool: row.source_pool, imageId: row.anchor_trash_id, image: row.source_image } });
  }

  /**
   * A live source the cloud tried and failed to delete (our clone pins it):
   * move it to the trash, out of the cloud's listings, and keep it as the anchor.
   */
  async adoptOrphan(id: string): Promise<boolean> {
    const row = await this.store.get(id);
    if (row === undefined || row.anchor_image !== null || row.anchor_trash_id !== null) return false;
    const source = this.#image(row, 'source');
    let sourceId: string;
    try {
      sourceId = await this.#blocks.imageId(source);
    } catch (err) {
      if (!(err instanceof RbdNotFoundError)) throw err;
      // The cloud's delete may have moved it to the trash (pool trash option): adopt it there.
      const entry = (await this.#blocks.listTrash({ pool: row.source_pool, namespace: row.source_namespace ?? undefined })).find((e) => e.id === row.source_image_id);
      if (entry === undefined) return false;
      await this.store.update(id, this.#clock(), { anchor_trash_id: entry.id });
      await appendAudit(this.store.db, { actor: this.#actor, action: 'orphan.adopted', subject: id, details: { pool: row.source_pool, image: row.source_image, imageId: entry.id, from: 'trash' } });
      return true;
    }
    if (sourceId !== row.source_image_id) return false;
    await this.#blocks.moveToTrash(source);
    await this.store.update(id, this.#clock(), { anchor_trash_id: row.source_image_id });
    await appendAudit(this.store.db, { actor: this.#actor, action: 'orphan.adopted', subject: id, details: { pool: row.source_pool, image: row.source_image, imageId: row.source_image_id } });
    this.#log.info({ quarantine: id, image: `${row.source_pool}/${row.source_image}` }, 'adopted the disk the cloud could not delete');
    return true;
  }
}
