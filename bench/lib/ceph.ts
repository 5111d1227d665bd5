// A throwaway Ceph cluster for a scenario: test/env/ceph-up.sh in a directory
// of the scenario's own, stopped with test/env/ceph-down.sh when the scenario
// ends (ctx.defer), whether it passes or fails.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Context } from '../scenario.ts';

const run = promisify(execFile);
const root = join(import.meta.dirname, '..', '..');

/**
 * Boots a cluster in /tmp/qop-bench-TAG-PID and returns the variables its
 * `env` file exports (QTEST_CEPH_CONF, the users' ids, the pools). `env`
 * is added to ceph-up.sh's environment (e.g. QTEST_CEPH_OSD_MB).
 */
export async function bootCeph(ctx: Context, tag: string, env: Record<string, string> = {}): Promise<Record<string, string>> {
  const dir = `/tmp/qop-bench-${tag}-${process.pid}`;
  const { stdout } = await run('bash', [join(root, 'test/env/ceph-up.sh'), dir], { env: { ...process.env, ...env } });
  ctx.defer(async () => { await run('bash', [join(root, 'test/env/ceph-down.sh'), dir]).catch(() => undefined); });
  const exported: Record<string, string> = {};
  for (const line of readFileSync(join(stdout.trim(), 'env'), 'utf8').split('\n')) {
    const m = /^export ([A-Z_]+)='?([^']*)'?$/.exec(line.trim());
    if (m !== null) exported[m[1] ?? ''] = m[2] ?? '';
  }
  return exported;
}
