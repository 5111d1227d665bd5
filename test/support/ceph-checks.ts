// What the tests on the real Ceph cluster check with its cephx users: the
// SHA-256 of what an image holds, that a call through the adapter is refused,
// and what a raw rados or rbd call as a given user answers.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promisify } from 'node:util';
import { RbdPermissionDeniedError } from '../../operator/ceph/errors.ts';
import type { RbdCli } from '../../operator/ceph/rbd-cli.ts';
import type { ImageSpec } from '../../operator/domain/block-store.ts';

const run = promisify(execFile);

/** The SHA-256 of the image's whole content, read with an export as `blocks`' user. */
export async function sha256Of(blocks: RbdCli, image: ImageSpec): Promise<string> {
  const h = createHash('sha256');
  const handle = blocks.exportImage(image);
  for await (const chunk of handle.stream) h.update(chunk as Buffer);
  await handle.done;
  return h.digest('hex');
}

/** Fails unless `p` is refused by Ceph's caps (RbdPermissionDeniedError). */
export async function denied(what: string, p: Promise<unknown>): Promise<void> {
  await assert.rejects(p, (err: unknown) => err instanceof RbdPermissionDeniedError, `${what} must be refused`);
}

/**
 * `tool ARGS` (rados or rbd) as cephx user `id`, past the adapter, as an
 * attacker holding that user's key would call it: its exit status and stderr,
 * never a throw.
 */
export async function cephAs(conf: string, id: string, tool: 'rados' | 'rbd', args: string[]): Promise<{ code: number; stderr: string }> {
  try {
    await run(tool, [`--conf=${conf}`, `--id=${id}`, ...args], { timeout: 60_000 });
    return { code: 0, stderr: '' };
  } catch (err) {
    const e = err as { code?: number; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stderr: e.stderr ?? '' };
  }
}
