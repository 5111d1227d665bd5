// The SHA-256 of a whole disk from its allocated extents: what lies between
// them reads as zeros on RBD, so zeros are fed to the hash from one buffer
// instead of being read from Ceph. The digest is the same as a full read's;
// only the bytes the disk holds cross the network.
import { createHash, type Hash } from 'node:crypto';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import type { AllocatedRead } from '../domain/block-store.ts';

const ZEROS = Buffer.alloc(1024 * 1024);
/** Zeros hashed between two turns of the event loop (~10 ms of SHA-256), so that claim renewals keep running. */
const ZEROS_PER_TURN = 16 * ZEROS.length;

export class SparseReadError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SparseReadError';
  }
}

async function feedZeros(hash: Hash, count: number): Promise<void> {
  let sinceTurn = 0;
  for (let left = count; left > 0; ) {
    const n = Math.min(left, ZEROS.length);
    hash.update(n === ZEROS.length ? ZEROS : ZEROS.subarray(0, n));
    left -= n;
    sinceTurn += n;
    if (sinceTurn >= ZEROS_PER_TURN) {
      sinceTurn = 0;
      await yieldToLoop();
    }
  }
}

export interface SparseDigest {
  sha256: string;
  /** The disk's size: the bytes the digest covers. */
  bytes: number;
  /** The bytes actually read (the allocated ones). */
  readBytes: number;
}

/** Hashes a disk from its allocated pieces; a piece out of order or beyond the disk's end is refused, never hashed around. */
export async function sparseSha256(read: AllocatedRead): Promise<SparseDigest> {
  const hash = createHash('sha256');
  let at = 0;
  let readBytes = 0;
  for await (const piece of read.pieces) {
    if (piece.offset < at) throw new SparseReadError(`extent at ${piece.offset} comes after ${at}: pieces out of order or overlapping`);
    if (piece.offset + piece.data.length > read.sizeBytes) throw new SparseReadError(`extent at ${piece.offset} (${piece.data.length} bytes) goes beyond the disk's ${read.sizeBytes} bytes`);
    await feedZeros(hash, piece.offset - at);
    hash.update(piece.data);
    at = piece.offset + piece.data.length;
    readBytes += piece.data.length;
  }
  await feedZeros(hash, read.sizeBytes - at);
  return { sha256: hash.digest('hex'), bytes: read.sizeBytes, readBytes };
}
