// onDelete under a burst: a batch user's script deletes many VMs at once and
// Nova removes their disks one second after each delete.start. Every snapshot
// must come first, whichever driver captures: the CLI always managed it, and
// librbd once lost most of these races, its calls queued four at a time on
// libuv's thread pool behind other captures' opens and clones.
// QTEST_ONDELETE_BURST sets the size (default 40), QTEST_DRIVER the driver.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { sweep } from '../../operator/capture/sweep.ts';
import { silentLogger } from '../../operator/log.ts';
import { SimBus } from '../sim/bus.ts';
import { NeutronSim } from '../sim/neutron.ts';
import { NovaSim } from '../sim/nova.ts';
import { cloudRbd } from '../sim/rbd-tool.ts';
import { purgeImage } from '../sim/disks.ts';
import { uniqueSuffix } from '../support/env.ts';
import { env, startOperator, until, type RunningOperator } from './harness.ts';

const N = Number(process.env['QTEST_ONDELETE_BURST'] ?? 40);
const driver = process.env['QTEST_DRIVER'] === 'cli' ? 'cli' : 'librbd';
const MiB = 1024 * 1024;

const s = uniqueSuffix();
const novaExchange = `nova-${s}`;
const neutronExchange = `neutron-${s}`;
const imageId = `img-${s}`;
let bus: SimBus | undefined;
let neutron: NeutronSim | undefined;
let nova: NovaSim | undefined;
let op: RunningOperator | undefined;

after(async () => {
  if (op !== undefined) {
    await op.halt();
    // Leave the shared cluster clean: the quarantines go for good, then the disks they pinned.
    await sweep({ db: op.ledger.db, blocksFor: () => op?.operatorBlocks, logger: silentLogger }, { now: new Date(8_000_000_000_000), dryRun: false, policies: [], clouds: [op.cloud] });
    await op.stop();
  }
  const admin = cloudRbd({ cephConf: env.cephConf, id: env.operatorId });
  if (nova !== undefined) {
    await nova.stop();
    for (const server of nova.servers()) for (const d of server.disks) await purgeImage(admin.rbd, d).catch(() => undefined);
    await nova.deleteImage(imageId).catch(() => undefined);
  }
  await neutron?.stop();
  await bus?.deleteExchanges([novaExchange, neutronExchange]);
  await bus?.close();
});

test(`onDelete (${driver}) wins every race of ${N} VMs deleted at once, Nova removing each disk 1 s after its delete.start`, { timeout: 600_000 }, async () => {
  bus = await SimBus.connect(env.amqpUrl);
  neutron = await NeutronSim.start({ bus, exchange: neutronExchange });
  const { rbd, rbdTool } = cloudRbd({ cephConf: env.cephConf, id: env.cloudId });
  // Nova's defaults but fewer retries: a disk not pinned by the second attempt is gone.
  nova = await NovaSim.start({ bus, exchange: novaExchange, format: 'versioned', rbd, rbdTool, neutron, deleteGapMs: 1000, destroyRetries: 2, destroyRetryIntervalMs: 100 });
  await nova.ensureImage(imageId, MiB);
  op = await startOperator({ type: 'openstack', exchanges: [novaExchange, neutronExchange], mode: 'onDelete', orphanGraceMs: 60_000, driver });
  const running = op;
  const servers = [];
  for (let i = 0; i < N; i++) servers.push(await nova.boot({ image: imageId }));
  const n = nova;
  const deletions = await Promise.all(servers.map((server) => n.delete(server.uuid)));
  await Promise.all(deletions.map((d) => d.done));
  const removed = new Set(nova.timeline.filter((e) => e.kind === 'disk-removed').map((e) => e.instance));
  assert.deepEqual(servers.filter((v) => removed.has(v.uuid)).map((v) => v.uuid), [], 'Nova removed no disk: every snapshot came first');
  // Nova is done; whatever was won is in the ledger by now or soon.
  await until(async () => {
    const rows = await running.ledger.db.selectFrom('quarantines').select('state').where('cloud', '=', running.cloud).where('state', 'in', ['quarantined', 'failed']).execute();
    return rows.length >= N;
  }, `${N} capture outcomes`, 120_000);
  const rows = await running.ledger.db.selectFrom('quarantines').select(['instance_id', 'state', 'failure']).where('cloud', '=', running.cloud).execute();
  const failed = rows.filter((r) => r.state !== 'quarantined');
  assert.deepEqual(failed, [], `${rows.length - failed.length} of ${N} captured`);
  assert.deepEqual(new Set(rows.map((r) => r.instance_id)), new Set(servers.map((v) => v.uuid)), 'one quarantine per VM');
});
