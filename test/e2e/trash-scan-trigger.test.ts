// Trash mode on the real cluster with the periodic trash scan an hour apart:
// a VM Nova deletes (its disk moved to the RBD trash by the armed pool, as
// with deferred deletion) is still captured within seconds, because the
// delete notification triggers the scan. A disk put in the trash with no
// notification, meanwhile, waits: the interval alone would not have found
// either one in time.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { sweep } from '../../operator/capture/sweep.ts';
import { silentLogger } from '../../operator/log.ts';
import type { NovaSim } from '../sim/nova.ts';
import { startSimOpenStack, type SimOpenStack } from '../support/sim-openstack.ts';
import { env, sha256Of, sleep, startOperator, until, type RunningOperator } from './harness.ts';

const MiB = 1024 * 1024;
const SCAN_INTERVAL_S = 3600;
/** How soon after Nova's delete.end the disk must be captured: far below the scan interval, with room for a loaded machine. */
const PROMPT_MS = 5_000;

describe('trash scan triggered by the delete notification', { concurrency: false }, () => {
  let cloud: SimOpenStack;
  let nova: NovaSim;
  let op: RunningOperator | undefined;

  before(async () => {
    cloud = await startSimOpenStack(env);
    nova = await cloud.nova();
  });
  after(async () => {
    if (op !== undefined) {
      // Leave the shared pools as found: captured disks swept for good, the trash emptied of ours, the pool disarmed.
      await op.halt();
      await sweep({ db: op.ledger.db, blocksFor: () => op?.operatorBlocks, logger: silentLogger }, { now: new Date(8_000_000_000_000), dryRun: false, policies: [], clouds: [op.cloud] });
      const ours = new Set(nova.servers().flatMap((srv) => srv.disks.map((d) => d.image)));
      for (const e of await op.operatorBlocks.listTrash({ pool: 'vms' })) {
        if (ours.has(e.name) || e.name.startsWith('qop-anchor.')) await op.operatorBlocks.removeFromTrash({ pool: 'vms', imageId: e.id }, { force: true }).catch(() => undefined);
      }
      await op.disarmTrash();
      await op.stop();
    }
    await cloud.close();
  });

  test(`with the scan ${SCAN_INTERVAL_S} s apart, a disk Nova deletes into the trash is captured within ${PROMPT_MS / 1000} s of its delete notification`, async () => {
    op = await startOperator({ type: 'openstack', exchanges: cloud.exchanges, mode: 'trash', armTrash: true, trashScanSeconds: SCAN_INTERVAL_S, isolate: false });
    const capture = op.operator.clouds.get(op.cloud)?.capture;
    assert.ok(capture !== undefined, 'the cloud has its capture');
    assert.equal(await op.operatorBlocks.getPoolConfig('vms', 'rbd_move_to_trash_on_remove'), 'true', 'the operator armed the watched pool');

    const deleted = await nova.boot({ image: cloud.imageId, project: 'proj-hep', user: 'alice', host: 'compute-1' });
    const quiet = await nova.boot({ image: cloud.imageId, project: 'proj-hep', user: 'alice', host: 'compute-1' });
    const digest = await nova.writeDisk(nova.rootDisk(deleted.uuid), randomBytes(4 * MiB));
    // The scan the leader runs on start has come and gone: the next one is an hour away.
    await capture.idle();

    // The control: the cloud's own user removes a disk with nothing published. The armed pool puts it in the trash,
    // where only a scan finds it, and no scan comes.
    await cloud.rbd.removeImage(nova.rootDisk(quiet.uuid));
    assert.ok((await cloud.rbd.listTrash({ pool: 'vms' })).some((e) => e.name === `${quiet.uuid}_disk`), 'the silent removal went to the trash');
    await sleep(3000);
    await capture.idle();
    assert.deepEqual(await op.quarantinesOf(quiet.uuid), [], 'no scan ran: a disk trashed without a notification waits for the interval');
    assert.deepEqual(await op.ledger.db.selectFrom('capture_intents').select('id').where('cloud', '=', op.cloud).execute(), [], 'no intent either');

    const del = await nova.delete(deleted.uuid, { user: 'alice', project: 'proj-hep' });
    await del.done;
    const notified = Date.now();
    assert.ok(!(await cloud.rbd.listImages({ pool: 'vms' })).some((i) => i.startsWith(deleted.uuid)), 'Nova believes the disk is gone');
    const q = await op.waitForQuarantine(deleted.uuid, PROMPT_MS);
    const tookMs = Date.now() - notified;
    assert.equal(q.state, 'quarantined', q.failure ?? '');
    assert.equal(q.source_image, `${deleted.uuid}_disk`);
    assert.equal(await sha256Of(op.operatorBlocks, { pool: q.location_pool, image: q.location_image }), digest, 'the quarantine holds the disk as it was');
    const intent = await op.ledger.db.selectFrom('capture_intents').select(['kind']).where('id', '=', q.intent_id ?? '').executeTakeFirst();
    assert.equal(intent?.kind, 'trash', 'adopted out of the trash by the scan');
    process.stdout.write(`# captured ${tookMs} ms after Nova's delete completed (scan interval ${SCAN_INTERVAL_S} s)\n`);

    // The scan the notification triggered looks at the whole trash: the silent one is found by it too.
    const other = await until(async () => (await op?.quarantinesOf(quiet.uuid))?.find((x) => x.state === 'quarantined'), 'the silently trashed disk captured by the triggered scan', PROMPT_MS);
    assert.equal(other.source_image, `${quiet.uuid}_disk`);
  });
});
