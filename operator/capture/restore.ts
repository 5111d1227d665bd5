// What an investigator does with a quarantine: export it to a file with its
// SHA-256, restore it as a new image, or re-verify its digest. The quarantine
// itself is only ever read.
import { createHash } from 'node:crypto';
import { Transform, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Kysely } from 'kysely';
import type { LedgerSchema } from '../ledger/schema.ts';
import type { BlockStore, ImageSpec } from '../domain/block-store.ts';
import { RbdNotFoundError } from '../ceph/errors.ts';
import { appendAudit } from '../ledger/audit.ts';
import { QuarantineStore, HOLDING, type QuarantineRow } from './quarantine-store.ts';

export class QuarantineUnavailableError extends Error {
  override name = 'QuarantineUnavailableError';
}

export interface TransferResult {
  id: string;
  sha256: string;
  bytes: number;
  /** Digest recorded earlier, if any, and whether this read matches it. */
  recorded: string | null;
  matches: boolean | null;
}

export interface InvestigatorContext {
  db: Kysely<LedgerSchema>;
  blocks: BlockStore;
  actor: string;
  onProgress?: (bytes: number, total: number | null) => void;
  signal?: AbortSignal;
}

async function usable(ctx: InvestigatorContext, id: string): Promise<QuarantineRow> {
  const q = await new QuarantineStore(ctx.db).get(id);
  if (q === undefined) throw new QuarantineUnavailableError(`no quarantine ${id}`);
  if (!(HOLDING as readonly string[]).includes(q.state)) throw new QuarantineUnavailableError(`quarantine ${id} is ${q.state}${q.failure === null ? '' : ` (${q.failure})`}, there is nothing to read`);
  return q;
}

function locationOf(q: QuarantineRow): ImageSpec {
  return { pool: q.location_pool, namespace: q.location_namespace ?? undefined, image: q.location_image };
}

/** Streams the quarantine into `sink` while hashing it; records the digest the first time. */
async function readInto(ctx: InvestigatorContext, q: QuarantineRow, sink: Writable): Promise<TransferResult> {
  const hash = createHash('sha256');
  let bytes = 0;
  const total = q.bytes;
  const tap = new Transform({
    transform(chunk: Buffer, _enc, done) {
      hash.update(chunk);
      bytes += chunk.length;
      ctx.onProgress?.(bytes, total);
      done(null, chunk);
    },
  });
  const handle = ctx.blocks.exportImage(locationOf(q), { signal: ctx.signal });
  await Promise.all([pipeline(handle.stream, tap, sink), handle.done]);
  const sha256 = hash.digest('hex');
  const recorded = q.digest;
  if (recorded === null) await new QuarantineStore(ctx.db, ctx.actor).update(q.id, new Date(), { digest: sha256, digest_at: Date.now() });
  return { id: q.id, sha256, bytes, recorded, matches: recorded === null ? null : recorded === sha256 };
}

/**
 * Exports a quarantine to `destination` (an absolute path, or `stdout`). An
 * export that fails is audited too, with where it was going: a partial copy
 * of evidence may exist there.
 */
export async function exportQuarantine(ctx: InvestigatorContext, id: string, sink: Writable, destination: string, details: { reason?: string; caseId?: string } = {}): Promise<TransferResult> {
  let r: TransferResult;
  try {
    const q = await usable(ctx, id);
    r = await readInto(ctx, q, sink);
  } catch (err) {
    await auditFailedExport(ctx, id, destination, err, details);
    throw err;
  }
  await appendAudit(ctx.db, { actor: ctx.actor, action: 'export', subject: id, details: { destination, sha256: r.sha256, bytes: r.bytes, recordedDigest: r.recorded, matches: r.matches, ...details } });
  return r;
}

export async function auditFailedExport(ctx: Pick<InvestigatorContext, 'db' | 'actor'>, id: string, destination: string, err: unknown, details: { reason?: string; caseId?: string } = {}): Promise<void> {
  await appendAudit(ctx.db, { actor: ctx.actor, action: 'export.failed', subject: id, details: { destination, error: err instanceof Error ? err.message : String(err), ...details } });
}

export async function verifyQuarantine(ctx: InvestigatorContext, id: string): Promise<TransferResult> {
  const q = await usable(ctx, id);
  const { Writable: W } = await import('node:stream');
  const r = await readInto(ctx, q, new W({ write(_c, _e, done) { done(); } }));
  await appendAudit(ctx.db, { actor: ctx.actor, action: 'verify', subject: id, details: { sha256: r.sha256, bytes: r.bytes, recordedDigest: r.recorded, matches: r.matches } });
  return r;
}

export class RestoreTargetExistsError extends Error {
  override name = 'RestoreTargetExistsError';
}

/** Materializes a quarantine as a new image (a full copy); the quarantine is not touched. */
export async function restoreQuarantine(ctx: InvestigatorContext, id: string, target: ImageSpec, details: { reason?: string; caseId?: string } = {}): Promise<TransferResult & { image: string }> {
  const q = await usable(ctx, id);
  try {
    await ctx.blocks.info(target);
    throw new RestoreTargetExistsError(`${target.pool}/${target.namespace === undefined ? '' : `${target.namespace}/`}${target.image} exists already; restore never overwrites`);
  } catch (err) {
    if (!(err instanceof RbdNotFoundError)) throw err;
  }
  const { PassThrough } = await import('node:stream');
  const pipe = new PassThrough({ highWaterMark: 4 * 1024 * 1024 });
  const importing = ctx.blocks.importImage({ stream: pipe }, target, { signal: ctx.signal });
  const [r] = await Promise.all([readInto(ctx, q, pipe), importing]);
  await ctx.blocks.setMeta(target, 'quarantine.restored-from', id);
  await ctx.blocks.setMeta(target, 'quarantine.sha256', r.sha256);
  const image = `${target.pool}/${target.namespace === undefined ? '' : `${target.namespace}/`}${target.image}`;
  await appendAudit(ctx.db, { actor: ctx.actor, action: 'restore', subject: id, details: { image, sha256: r.sha256, bytes: r.bytes, matches: r.matches, ...details } });
  return { ...r, image };
}
