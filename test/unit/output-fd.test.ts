// The CLI's output written to its file descriptor (operator/cli/output-fd.ts):
// a reader slower than the writer gets everything, in order, however large,
// and a reader that goes away ends the writing with OutputClosed. Through
// process.stdout a large answer piped into a slow reader ended the command
// with "write ENOBUFS".
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';

const module = new URL('../../operator/cli/output-fd.ts', import.meta.url).href;
const node = fileURLToPath(new URL('../../node_modules/.bin/node', import.meta.url));

/** A child writing `pieces` pieces of 1 MiB to its stdout, a pipe made non-blocking by touching process.stdout first. */
function writer(pieces: number) {
  const code = `import { OutputClosed, writeAll } from ${JSON.stringify(module)};
    process.stdout; // Node makes a piped stdout non-blocking: the writes meet EAGAIN when the pipe is full.
    const piece = (i) => String(i % 10).repeat(1 << 20);
    try { for (let i = 0; i < ${pieces}; i++) writeAll(1, piece(i)); }
    catch (err) { if (err instanceof OutputClosed) { process.stderr.write('closed'); process.exit(3); } throw err; }`;
  const child = spawn(node, ['--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'pipe'] });
  const closed = new Promise<number | null>((resolve) => child.on('close', resolve));
  return { child, closed };
}

test('a slow reader gets every byte, in order', { timeout: 60_000 }, async () => {
  const { child, closed } = writer(64);
  const hash = createHash('sha256');
  let bytes = 0;
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
  child.stdout.pause();
  await new Promise((resolve) => setTimeout(resolve, 300));
  child.stdout.on('data', (d: Buffer) => { hash.update(d); bytes += d.length; });
  child.stdout.resume();
  const code = await closed;
  assert.equal(stderr, '');
  assert.equal(code, 0);
  assert.equal(bytes, 64 << 20);
  const expected = createHash('sha256');
  for (let i = 0; i < 64; i++) expected.update(String(i % 10).repeat(1 << 20));
  assert.equal(hash.digest('hex'), expected.digest('hex'));
});

test('a reader that goes away ends the writing with OutputClosed', { timeout: 60_000 }, async () => {
  const { child, closed } = writer(64);
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
  child.stdout.once('data', () => child.stdout.destroy());
  const code = await closed;
  assert.equal(stderr, 'closed');
  assert.equal(code, 3);
});
