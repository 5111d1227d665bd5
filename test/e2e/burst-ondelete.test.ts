// onDelete under a burst: a batch user's script deletes many VMs at once and
// Nova removes their disks one second after each delete.start. Every snapshot
// must come first, whichever driver captures: the CLI always managed it, and
// librbd once lost most of these races, its calls queued four at a time on
// libuv's thread pool behind other captures' opens and clones.
//
// Winning is judged by the evidence, not by Nova's removals: librbd moves an
// image whose snapshot has a clone child to the trash and reports success, so
// a removal after the operator's snapshot succeeds too. The pool is not armed
// for the trash, so a race lost leaves nothing to capture (a failed
// quarantine); a race won leaves a quarantine whose capture digest is that of
// the disk as Nova wrote it.
// QTEST_ONDELETE_BURST sets the size (default 40), QTEST_DRIVER the driver.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { sweep } from '../../operator/capture/sweep.ts';
import { silentLogger } from '../../operator/log.ts';
import { startSimOpenStack, type SimOpenStack } from '../support/sim-openstack.ts';
import { env, startOperator, until, type RunningOperator } from './harness.ts';

const N = Number(process.env['QTEST_ONDELETE_BURST'] ?? 40);
const driver = process.env['QTEST_DRIVER'] === 'cli' ? 'cli' : 'librbd';
const MiB = 1024 * 1024;

let cloud: SimOpenStack | undefined;
let op: RunningOperator | undefined;

after(async () => {
  if (op !== undefined) {
    await op.halt();
    // Leave the shared cluster clean: the quarantines go for good, then the disks they pinned.
    await sweep({ db: op.ledger.db, blocksFor: () => op?.operatorBlocks, logger: silentLogger }, { now: new Date(8_000_000_000_000), dryRun: false, policies: [], clouds: [op.cloud] });
    await op.stop();
  }
  await cloud?.close();
});

test(`onDelete (${driver}) wins every race of ${N} VMs deleted at once, Nova removing each disk 1 s after its delete.start`, { timeout: 600_000 }, async () => {
  cloud = await startSimOpenStack(env, { imageBytes: MiB });
  // Nova's defaults but fewer retries: a disk not pinned by the second attempt is gone.
  const nova = await cloud.nova({ format: 'versioned', deleteGapMs: 1000, destroyRetries: 2, destroyRetryIntervalMs: 100 });
  op = await startOperator({ type: 'openstack', exchanges: cloud.exchanges, mode: 'onDelete', orphanGraceMs: 60_000, driver });
  const running = op;
  const written = new Map<string, string>();
  for (let i = 0; i < N; i++) {
    const server = await nova.boot({ image: cloud.imageId });
    written.set(server.uuid, await nova.writeDisk(nova.rootDisk(server.uuid), randomBytes(64 * 1024)));
  }
  const deletions = await Promise.all([...written.keys()].map((uuid) => nova.delete(uuid)));
  await Promise.all(deletions.map((d) => d.done));
  // The race was run: Nova went for every disk (removed it, to the trash when pinned, or found it gone).
  const attempted = new Set(nova.timeline.filter((e) => e.kind === 'disk-removed' || e.kind === 'disk-missing' || e.kind === 'disk-remove-failed').map((e) => e.instance));
  assert.deepEqual([...written.keys()].filter((uuid) => !attempted.has(uuid)), [], 'Nova tried to remove every disk');
  await until(async () => {
    const rows = await running.ledger.db.selectFrom('quarantines').select('state').where('cloud', '=', running.cloud).where('state', 'in', ['quarantined', 'failed']).execute();
    return rows.length >= N;
  }, `${N} capture outcomes`, 120_000);
  const rows = await running.ledger.db.selectFrom('quarantines').select(['instance_id', 'state', 'failure']).where('cloud', '=', running.cloud).execute();
  const failed = rows.filter((r) => r.state !== 'quarantined');
  assert.deepEqual(failed, [], `${rows.length - failed.length} of ${N} captured`);
  assert.deepEqual(new Set(rows.map((r) => r.instance_id)), new Set(written.keys()), 'one quarantine per VM');
  // The digest is taken from the capture's snapshot: equal to Nova's write, the snapshot came before the removal.
  await until(async () => {
    const digests = await running.ledger.db.selectFrom('quarantines').select('digest').where('cloud', '=', running.cloud).where('digest', 'is not', null).execute();
    return digests.length >= N;
  }, `${N} capture digests`, 300_000);
  const digests = await running.ledger.db.selectFrom('quarantines').select(['instance_id', 'digest']).where('cloud', '=', running.cloud).execute();
  const wrong = digests.filter((d) => d.digest !== written.get(d.instance_id ?? ''));
  assert.deepEqual(wrong, [], 'every quarantine holds the disk as Nova wrote it');
});
