// The CLI's output, written to its file descriptor before the call returns.
// process.stdout on a pipe queues what the reader has not taken yet, and a
// large answer (trace log of a big report: a gigabyte of NDJSON) piped into
// a slower reader (`| less`, `| jq`, `| gzip`) ended the process with "write
// ENOBUFS" once the queue held more pieces than one writev takes. Written
// here piece by piece instead, waiting while the pipe is full, the command's
// memory does not grow with what the reader has not read.
import { writeSync } from 'node:fs';

const pause = new Int32Array(new SharedArrayBuffer(4));

/** The reader of the output went away (`| head`): what is left is not wanted. */
export class OutputClosed extends Error {}

const codeOf = (err: unknown): unknown => (err !== null && typeof err === 'object' && 'code' in err ? err.code : undefined);

/** Writes all of `text` to `fd`, waiting a millisecond at a time while a non-blocking pipe is full. */
export function writeAll(fd: number, text: string): void {
  const bytes = Buffer.from(text, 'utf8');
  let done = 0;
  while (done < bytes.length) {
    try {
      done += writeSync(fd, bytes, done, bytes.length - done);
    } catch (err) {
      const code = codeOf(err);
      if (code === 'EAGAIN') Atomics.wait(pause, 0, 0, 1);
      else if (code === 'EPIPE') throw new OutputClosed('the output was closed');
      else throw err;
    }
  }
}
