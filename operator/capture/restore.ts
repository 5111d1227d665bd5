// What an investigator does with a quarantine: export it to a file with its
// SHA-256, restore it as a new image, or re-verify its digest. The quarantine
// itself is only ever read.
import type { FileHandle } from 'node:fs/promises';
import type { Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import type { Kysely } from 'kysely';
import type { LedgerSchema } from '../ledger/schema.ts';
import type { BlockStore, ExtentData, ImageSpec } from '../domain/block-store.ts';
import { sparseSha256 } from './sparse-digest.ts';
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
  /** The bytes read from Ceph: the allocated ones. */
  readBytes: number;
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

/**
 * Where a read goes: a stream gets the whole disk (the zeros between the
 * allocated extents made here, not read from Ceph); a file gets the
 * allocated extents at their offsets and is sized to the disk, so that the
 * zeros between them stay holes (a sparse file, `cp --sparse` and `qemu-img`
 * read it as the raw image).
 */
export type ExportSink = Writable | { readonly file: FileHandle };

const ZEROS = Buffer.alloc(1024 * 1024);

async function writeTo(sink: Writable, chunk: Buffer): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    sink.write(chunk, (err) => (err === null || err === undefined ? resolve() : reject(err)));
  });
}

async function zerosTo(sink: Writable, count: number): Promise<void> {
  for (let left = count; left > 0; left -= ZEROS.length) await writeTo(sink, left >= ZEROS.length ? ZEROS : ZEROS.subarray(0, left));
}

async function writeAt(file: FileHandle, offset: number, data: Buffer): Promise<void> {
  for (let done = 0; done < data.length; ) {
    const { bytesWritten } = await file.write(data, done, data.length - done, offset + done);
    done += bytesWritten;
  }
}

/**
 * Reads the quarantine's allocated extents only (the zeros between them are
 * hashed and written without being read), into `sink` while hashing it;
 * records the digest the first time. The SHA-256 is that of the whole disk.
 */
async function readInto(ctx: InvestigatorContext, q: QuarantineRow, sink: ExportSink | undefined): Promise<TransferResult> {
  const read = await ctx.blocks.readAllocated(locationOf(q), { signal: ctx.signal });
  const total = read.sizeBytes;
  const stream = sink === undefined || 'file' in sink ? undefined : sink;
  const file = sink !== undefined && 'file' in sink ? sink.file : undefined;
  let at = 0;
  async function* tapped(): AsyncGenerator<ExtentData> {
    for await (const piece of read.pieces) {
      if (stream !== undefined) {
        await zerosTo(stream, piece.offset - at);
        await writeTo(stream, piece.data);
      } else if (file !== undefined) {
        await writeAt(file, piece.offset, piece.data);
      }
      at = piece.offset + piece.data.length;
      ctx.onProgress?.(at, total);
      yield piece;
    }
  }
  const { sha256, bytes, readBytes } = await sparseSha256({ sizeBytes: total, pieces: tapped() });
  if (stream !== undefined) {
    await zerosTo(stream, total - at);
    stream.end();
    await finished(stream, { readable: false });
  } else if (file !== undefined) {
    // The tail of zeros is a hole too.
    await file.truncate(total);
    await file.sync();
  }
  ctx.onProgress?.(total, total);
  const recorded = q.digest;
  if (recorded === null) await new QuarantineStore(ctx.db, ctx.actor).update(q.id, new Date(), { digest: sha256, digest_at: Date.now() });
  return { id: q.id, sha256, bytes, readBytes, recorded, matches: recorded === null ? null : recorded === sha256 };
}

/**
 * Exports a quarantine to `destination` (an absolute path, or `stdout`). An
 * export that fails is audited too, with where it was going: a partial copy
 * of evidence may exist there.
 */
export async function exportQuarantine(ctx: InvestigatorContext, id: string, sink: ExportSink, destination: string, details: { reason?: string; caseId?: string } = {}): Promise<TransferResult> {
  let r: TransferResult;
  try {
    const q = await usable(ctx, id);
    r = await readInto(ctx, q, sink);
  } catch (err) {
    await auditFailedExport(ctx, id, destination, err, details);
    throw err;
  }
  await appendAudit(ctx.db, { actor: ctx.actor, action: 'export', subject: id, details: { destination, sha256: r.sha256, bytes: r.bytes, readBytes: r.readBytes, recordedDigest: r.recorded, matches: r.matches, ...details } });
  return r;
}

export async function auditFailedExport(ctx: Pick<InvestigatorContext, 'db' | 'actor'>, id: string, destination: string, err: unknown, details: { reason?: string; caseId?: string } = {}): Promise<void> {
  await appendAudit(ctx.db, { actor: ctx.actor, action: 'export.failed', subject: id, details: { destination, error: err instanceof Error ? err.message : String(err), ...details } });
}

export async function verifyQuarantine(ctx: InvestigatorContext, id: string): Promise<TransferResult> {
  const q = await usable(ctx, id);
  const r = await readInto(ctx, q, undefined);
  await appendAudit(ctx.db, { actor: ctx.actor, action: 'verify', subject: id, details: { sha256: r.sha256, bytes: r.bytes, readBytes: r.readBytes, recordedDigest: r.recorded, matches: r.matches } });
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
