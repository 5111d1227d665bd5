// Trash mode under a burst: hundreds of VM disks deleted at once by the
// cloud's own user, every one of them captured. QTEST_BURST sets the size
// (default 500, as the acceptance asks).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { sweep } from '../../operator/capture/sweep.ts';
import { silentLogger } from '../../operator/log.ts';
import { env, startOperator, until, type RunningOperator } from './harness.ts';

const N = Number(process.env['QTEST_BURST'] ?? 500);
const MiB = 1024 * 1024;

async function pool<T>(items: readonly T[], width: number, fn: (t: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: width }, async () => {
    while (next < items.length) {
      const item = items[next++];
      if (item !== undefined) await fn(item);
    }
  }));
}

let op: RunningOperator | undefined;
let disks: string[] = [];
after(async () => {
  if (op === undefined) return;
  // Leave the shared cluster clean: stop capturing, sweep everything captured
  // here for good, and drop what is still in the trash.
  await op.halt();
  await sweep({ db: op.ledger.db, blocksFor: () => op?.operatorBlocks, logger: silentLogger }, { now: new Date(8_000_000_000_000), dryRun: false, policies: [], clouds: [op.cloud] });
  for (const e of await op.operatorBlocks.listTrash({ pool: 'vms' })) {
    if (disks.includes(e.name) || e.name.startsWith('qop-anchor.')) await op.operatorBlocks.removeFromTrash({ pool: 'vms', imageId: e.id }, { force: true }).catch(() => undefined);
  }
  await op.disarmTrash();
  await op.stop();
});

test(`trash mode captures all ${N} disks deleted in one burst`, { timeout: 900_000 }, async () => {
  op = await startOperator({ type: 'openstack', exchanges: [`nova-burst-${randomUUID().slice(0, 8)}`], mode: 'trash', armTrash: true, trashScanSeconds: 1 });
  const running = op;
  disks = Array.from({ length: N }, () => `${randomUUID()}_disk`);
  await pool(disks, 8, (image) => running.cloudBlocks.createImage({ pool: 'vms', image }, MiB));
  const t0 = Date.now();
  // The burst: the cloud removes them all, as Nova's cleanup would, with the pool's trash option armed.
  await pool(disks, 16, (image) => running.cloudBlocks.removeImage({ pool: 'vms', image }));
  const removedIn = Date.now() - t0;
  // The cloud sees them gone (the operator is already adopting from the trash while this runs).
  const left = (await running.cloudBlocks.listImages({ pool: 'vms' })).filter((i) => disks.includes(i));
  assert.deepEqual(left, [], 'every removal succeeded for the cloud');
  await until(async () => {
    const r = await running.ledger.db.selectFrom('quarantines').select((eb) => eb.fn.countAll<number>().as('n')).where('cloud', '=', running.cloud).where('state', 'in', ['quarantined', 'failed']).executeTakeFirstOrThrow();
    return Number(r.n) >= N;
  }, `${N} quarantines`, 800_000);
  const rows = await running.ledger.db.selectFrom('quarantines').select(['source_image', 'state', 'failure']).where('cloud', '=', running.cloud).execute();
  const captured = new Set(rows.filter((r) => r.state === 'quarantined').map((r) => r.source_image));
  const missed = disks.filter((d) => !captured.has(d));
  assert.deepEqual(missed, [], `captured ${captured.size} of ${N}; failures: ${JSON.stringify(rows.filter((r) => r.state === 'failed').slice(0, 3))}`);
  assert.equal(rows.length, N, 'exactly one quarantine per disk');
  const images = (await running.operatorBlocks.listImages({ pool: env.quarantinePool })).filter((i) => i.startsWith('qop.'));
  assert.ok(images.length >= N);
  process.stderr.write(`burst: ${N} removals in ${removedIn} ms, all captured ${((Date.now() - t0) / 1000).toFixed(1)} s after the burst began\n`);
});
