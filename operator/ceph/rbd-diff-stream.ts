// A reader for the stream `rbd export-diff` writes (format "rbd diff v1", as
// documented in Ceph's doc/dev/rbd-diff.rst): a banner, then records tagged by
// one byte, integers little-endian.
//   f / t  u32 length + name   from / to snapshot
//   s      u64                 image size
//   w      u64 offset, u64 length, data
//   z      u64 offset, u64 length   (reads as zeros)
//   e                          end
// Data records are passed on as they arrive, so a long extent never sits in
// memory whole.
import { RbdOutputError } from './rbd-json.ts';

export type DiffRecord =
  | { readonly kind: 'size'; readonly sizeBytes: number }
  | { readonly kind: 'data'; readonly offset: number; readonly data: Buffer }
  | { readonly kind: 'zero'; readonly offset: number; readonly length: number };

const BANNER = Buffer.from('rbd diff v1\n');

class ByteReader {
  readonly #input: AsyncIterator<unknown>;
  #buffered: Buffer = Buffer.alloc(0);
  #ended = false;

  constructor(input: AsyncIterable<unknown>) {
    this.#input = input[Symbol.asyncIterator]();
  }

  async #fill(): Promise<boolean> {
    if (this.#ended) return false;
    const next = await this.#input.next();
    if (next.done === true) {
      this.#ended = true;
      return false;
    }
    const chunk = Buffer.isBuffer(next.value) ? next.value : Buffer.from(next.value as Uint8Array);
    this.#buffered = this.#buffered.length === 0 ? chunk : Buffer.concat([this.#buffered, chunk]);
    return true;
  }

  async exactly(n: number, what: string): Promise<Buffer> {
    while (this.#buffered.length < n) {
      if (!(await this.#fill())) throw new RbdOutputError(`export-diff stream ends inside ${what}`);
    }
    const out = this.#buffered.subarray(0, n);
    this.#buffered = this.#buffered.subarray(n);
    return out;
  }

  /** `n` bytes as they come, in pieces. */
  async *stream(n: number, what: string): AsyncGenerator<Buffer> {
    let left = n;
    while (left > 0) {
      if (this.#buffered.length === 0 && !(await this.#fill())) throw new RbdOutputError(`export-diff stream ends inside ${what}`);
      const piece = this.#buffered.subarray(0, Math.min(left, this.#buffered.length));
      this.#buffered = this.#buffered.subarray(piece.length);
      left -= piece.length;
      // A copy: the buffer behind it is reused by later reads.
      yield Buffer.from(piece);
    }
  }

  async atEnd(): Promise<boolean> {
    while (this.#buffered.length === 0) if (!(await this.#fill())) return true;
    return false;
  }
}

function u64(buffer: Buffer, at: number, what: string): number {
  const value = buffer.readBigUInt64LE(at);
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new RbdOutputError(`export-diff ${what} ${value} is out of range`);
  return Number(value);
}

export async function* readDiffStream(input: AsyncIterable<unknown>): AsyncGenerator<DiffRecord> {
  const reader = new ByteReader(input);
  if (!(await reader.exactly(BANNER.length, 'the banner')).equals(BANNER)) throw new RbdOutputError('export-diff stream does not start with "rbd diff v1"');
  for (;;) {
    const tag = String.fromCharCode((await reader.exactly(1, 'a record tag'))[0] ?? 0);
    switch (tag) {
      case 'f':
      case 't': {
        const length = (await reader.exactly(4, 'a snapshot name length')).readUInt32LE(0);
        await reader.exactly(length, 'a snapshot name');
        break;
      }
      case 's':
        yield { kind: 'size', sizeBytes: u64(await reader.exactly(8, 'the size'), 0, 'size') };
        break;
      case 'w': {
        const head = await reader.exactly(16, 'a data record');
        let offset = u64(head, 0, 'offset');
        const length = u64(head, 8, 'length');
        for await (const data of reader.stream(length, 'a data record')) {
          yield { kind: 'data', offset, data };
          offset += data.length;
        }
        break;
      }
      case 'z': {
        const head = await reader.exactly(16, 'a zero record');
        yield { kind: 'zero', offset: u64(head, 0, 'offset'), length: u64(head, 8, 'length') };
        break;
      }
      case 'e':
        if (!(await reader.atEnd())) throw new RbdOutputError('export-diff stream goes on after its end record');
        return;
      default:
        throw new RbdOutputError(`export-diff stream has an unknown record tag ${JSON.stringify(tag)}`);
    }
  }
}

/**
 * The same format written: the banner, a data record per piece, the end
 * record; what `rbd import-diff -` reads. No snapshot records, so it applies
 * to the image's head whatever snapshots it has; no size record, so the
 * image keeps its size.
 */
export async function* writeDiffStream(pieces: AsyncIterable<{ readonly offset: number; readonly data: Buffer }>): AsyncGenerator<Buffer> {
  yield BANNER;
  for await (const piece of pieces) {
    const head = Buffer.alloc(17);
    head.write('w', 0, 'latin1');
    head.writeBigUInt64LE(BigInt(piece.offset), 1);
    head.writeBigUInt64LE(BigInt(piece.data.length), 9);
    yield head;
    yield piece.data;
  }
  yield Buffer.from('e', 'latin1');
}
