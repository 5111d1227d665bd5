// Garbage collection of quarantines: expired and unheld ones, then the oldest
// unheld ones beyond a policy's capacity. Deciding is separate from doing: the
// decision is recorded (state `expired` and an audit row) before any Ceph call,
// so a crash mid-sweep resumes the deletion, and nothing is deleted unrecorded.
import type { Kysely } from 'kysely';
import type { LedgerSchema } from '../ledger/schema.ts';
import type { BlockStore, ImageSpec } from '../domain/block-store.ts';
import { RbdNotFoundError } from '../ceph/errors.ts';
import { appendAudit } from '../ledger/audit.ts';
import type { Policy } from '../domain/policy.ts';
import { QuarantineStore, type QuarantineRow } from './quarantine-store.ts';
import { holdsCovering } from './holds.ts';
import type { Logger } from '../log.ts';

export interface SweepDeps {
  db: Kysely<LedgerSchema>;
  /** The operator's block store per cloud (quarantines of several clouds may share a ledger). */
  blocksFor: (cloud: string) => BlockStore | undefined;
  logger: Logger;
  actor?: string;
}

export interface SweepOptions {
  now: Date;
  dryRun: boolean;
  policies: readonly Policy[];
  /** Only quarantines of these clouds (those this process can reach). */
  clouds?: readonly string[];
  /** Only quarantines captured under these policies (a policy's scheduled sweep). */
  onlyPolicies?: readonly string[];
}

export interface SweepDecision {
  id: string;
  reason: 'expired' | 'capacity';
  bytes: number;
}

export interface SweepReport {
  dryRun: boolean;
  at: string;
  deleted: SweepDecision[];
  wouldDelete: SweepDecision[];
  held: Array<{ id: string; holds: string[]; expired: boolean }>;
  failed: Array<{ id: string; error: string }>;
}

function location(q: QuarantineRow): ImageSpec {
  return { pool: q.location_pool, namespace: q.location_namespace ?? undefined, image: q.location_image };
}

/** Removes an image for good, even where the pool turns removals into trash moves. */
export async function destroyImage(blocks: BlockStore, image: ImageSpec): Promise<void> {
  let id: string;
  try {
    id = (await blocks.info(image)).id;
  } catch (err) {
    if (err instanceof RbdNotFoundError) return;
    throw err;
  }
  await blocks.purgeSnapshots(image).catch((err: unknown) => {
    if (!(err instanceof RbdNotFoundError)) throw err;
  });
  await blocks.removeImage(image);
  const deferred = (await blocks.listTrash({ pool: image.pool, namespace: image.namespace })).find((e) => e.id === id);
  if (deferred !== undefined) await blocks.removeFromTrash({ pool: image.pool, namespace: image.namespace, imageId: id }, { force: true });
}

export async function sweep(deps: SweepDeps, opts: SweepOptions): Promise<SweepReport> {
  const { db, logger } = deps;
  const actor = deps.actor ?? 'quarantine-operator/sweep';
  const store = new QuarantineStore(db, actor);
  const now = opts.now;
  const report: SweepReport = { dryRun: opts.dryRun, at: now.toISOString(), deleted: [], wouldDelete: [], held: [], failed: [] };
  let rows = await store.inState(['quarantined', 'expired']);
  if (opts.clouds !== undefined) rows = rows.filter((r) => opts.clouds?.includes(r.cloud));
  if (opts.onlyPolicies !== undefined) rows = rows.filter((r) => r.policy !== null && opts.onlyPolicies?.includes(r.policy));
  const held = await holdsCovering(db, rows, now);

  const decisions = new Map<string, SweepDecision>();
  for (const q of rows) {
    const holds = held.get(q.id);
    const expired = q.state === 'expired' || (q.expires_at !== null && q.expires_at <= now.getTime());
    if (holds !== undefined) {
      report.held.push({ id: q.id, holds, expired });
      continue;
    }
    if (expired) decisions.set(q.id, { id: q.id, reason: 'expired', bytes: q.bytes ?? 0 });
  }
  // Capacity per policy: oldest first, never a held one, after the expired are gone.
  for (const p of opts.policies) {
    if (p.capacity.maxBytes === undefined && p.capacity.maxCount === undefined) continue;
    const mine = rows.filter((q) => q.policy === p.name && !decisions.has(q.id)).sort((a, b) => (a.captured_at ?? 0) - (b.captured_at ?? 0));
    let count = mine.length;
    let bytes = mine.reduce((s, q) => s + (q.bytes ?? 0), 0);
    for (const q of mine) {
      const over = (p.capacity.maxCount !== undefined && count > p.capacity.maxCount) || (p.capacity.maxBytes !== undefined && bytes > p.capacity.maxBytes);
      if (!over) break;
      if (held.has(q.id) || p.capacity.onFull !== 'evictOldest') continue;
      decisions.set(q.id, { id: q.id, reason: 'capacity', bytes: q.bytes ?? 0 });
      count -= 1;
      bytes -= q.bytes ?? 0;
    }
  }

  for (const d of decisions.values()) {
    if (opts.dryRun) {
      report.wouldDelete.push(d);
      continue;
    }
    const q = rows.find((r) => r.id === d.id);
    const blocks = q === undefined ? undefined : deps.blocksFor(q.cloud);
    if (q === undefined || blocks === undefined) {
      report.failed.push({ id: d.id, error: `no block store for cloud ${q?.cloud ?? '?'}` });
      continue;
    }
    try {
      if (q.state !== 'expired') {
        if (!(await store.transition(q.id, ['quarantined'], 'expired', now))) continue;
        await appendAudit(db, { actor, action: 'sweep.delete', subject: q.id, at: now, details: { reason: d.reason, cloud: q.cloud, instance: q.instance_id, disk: q.disk, location: `${q.location_pool}/${q.location_image}`, capturedAt: q.captured_at === null ? null : new Date(q.captured_at).toISOString(), expiresAt: q.expires_at === null ? null : new Date(q.expires_at).toISOString(), bytes: q.bytes } });
      }
      await destroyImage(blocks, location(q));
      if (q.anchor_trash_id !== null) {
        await blocks.removeFromTrash({ pool: q.source_pool, namespace: q.source_namespace ?? undefined, imageId: q.anchor_trash_id }, { force: true }).catch((err: unknown) => {
          if (!(err instanceof RbdNotFoundError)) throw err;
        });
      }
      await store.transition(q.id, ['expired'], 'purged', new Date(), { purged_at: Date.now(), anchor_trash_id: null });
      report.deleted.push(d);
      logger.info({ quarantine: q.id, reason: d.reason }, 'quarantine deleted by the sweep');
    } catch (err) {
      const error = err instanceof Error ? err.message : String(err);
      report.failed.push({ id: d.id, error });
      await appendAudit(db, { actor, action: 'sweep.failed', subject: d.id, details: { error } });
      logger.error({ quarantine: d.id, err: error }, 'sweep could not delete a quarantine; it will be retried');
    }
  }
  // A quarantine decided earlier but held since then goes back to being kept.
  for (const h of report.held) {
    const q = rows.find((r) => r.id === h.id);
    if (q?.state === 'expired' && !opts.dryRun) {
      await store.transition(q.id, ['expired'], 'quarantined', now);
      await appendAudit(db, { actor, action: 'sweep.kept', subject: q.id, at: now, details: { holds: h.holds } });
    }
  }
  return report;
}
