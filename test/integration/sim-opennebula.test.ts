// The OpenNebula simulator against the real RabbitMQ and Ceph: the Ceph TM's
// delete on real images (snapshots and their clones go with the disk, the
// trash keeps them with CEPH_TRASH), and the state hooks delivered by the
// project's real publisher script, decoded by the operator's decoder.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import type { OneVmEvent } from '../../operator/domain/events.ts';
import type { ImageSpec } from '../../operator/domain/block-store.ts';
import { RbdCli } from '../../operator/ceph/rbd-cli.ts';
import { exportSha256, imageExists, purgeImage } from '../sim/disks.ts';
import { OneSim } from '../sim/opennebula.ts';
import { cloudRbd } from '../sim/rbd-tool.ts';
import { NotificationTap, type TappedMessage } from '../sim/tap.ts';
import { requireEnv, uniqueSuffix } from '../support/env.ts';

const amqpUrl = requireEnv('QTEST_AMQP_URL');
const cephConf = requireEnv('QTEST_CEPH_CONF');
const cloudId = requireEnv('QTEST_CEPH_CLOUD_ID');
const operatorId = requireEnv('QTEST_CEPH_OPERATOR_ID');
const quarantinePool = requireEnv('QTEST_CEPH_QUARANTINE_POOL');
const [vmsPool = 'vms'] = requireEnv('QTEST_CEPH_POOLS').split(/\s+/).filter((p) => p !== '');

const MiB = 1024 * 1024;

const vmOf = (m: TappedMessage) => {
  const e = m.decoded?.events[0];
  assert.equal(e?.type, 'one_vm');
  return (e as OneVmEvent).vm;
};

describe('OpenNebula simulator against the real RabbitMQ and Ceph', { concurrency: false }, () => {
  const s = uniqueSuffix();
  const exchange = `opennebula-${s}`;
  // Image ids unique to this run: the pool is shared with other test files.
  const imageId = 1000 + Math.floor(Math.random() * 8000);
  const { rbd, rbdTool } = cloudRbd({ cephConf, id: cloudId });
  const operator = new RbdCli({ cephConf, id: operatorId });
  const leftovers: ImageSpec[] = [];
  let one: OneSim;
  let tap: NotificationTap;
  let firstVm: number;

  const hooksFor = (vmId: number) => tap.messages.filter((m) => m.headers['x-opennebula-vm-id'] !== undefined && String(m.headers['x-opennebula-vm-id']) === String(vmId));
  const hookNames = (vmId: number) => hooksFor(vmId).map((m) => String(m.headers['x-opennebula-hook']));

  before(async () => {
    const probe = spawnSync('amqp-publish', ['--help'], { stdio: 'ignore' });
    if (probe.error !== undefined) throw new Error('amqp-publish is missing (amqp-tools): the real hook publisher needs it; run test/env/install.sh');
    firstVm = 5000 + Math.floor(Math.random() * 50_000);
    one = await OneSim.start({ amqpUrl, exchange, rbd, rbdTool, pool: vmsPool, shutdownMs: 100, waitForHooks: true, firstVmId: firstVm });
    tap = await NotificationTap.open(amqpUrl, [{ exchange }]);
    await one.ensureImage(imageId, randomBytes(4 * MiB), 'alpine');
  });

  after(async () => {
    await one?.stop();
    await tap?.close();
    for (const spec of leftovers) await purgeImage(operator, spec, (snap) => rbdTool.children(snap), (snap) => rbdTool.unprotectSnapshot(snap));
    await one?.deleteImage(imageId).catch(() => purgeImage(operator, { pool: vmsPool, image: `one-${imageId}` }, undefined, (snap) => rbdTool.unprotectSnapshot(snap)));
    const model = await import('amqplib').then((m) => m.connect(amqpUrl));
    const ch = await model.createChannel();
    await ch.deleteExchange(exchange).catch(() => undefined);
    await model.close();
  });

  test('boot makes one-<img>-<vm>-<disk> a clone of one-<img>@snap and one-sys-<vm>-<disk>; RUNNING reaches the bus through the real publisher', async () => {
    const vm = await one.create({ disks: [{ imageId }, { volatile: true, sizeBytes: MiB }], nics: [{ ip: '192.168.150.21' }], uname: 'carol', uid: 7, gid: 100, gname: 'users' });
    const disk = one.diskImage(vm.id, 0);
    assert.deepEqual(disk, { pool: vmsPool, image: `one-${imageId}-${vm.id}-0` });
    assert.deepEqual(one.diskImage(vm.id, 1), { pool: vmsPool, image: `one-sys-${vm.id}-1` });
    const info = await rbd.info(disk);
    assert.equal(info.parent?.image, `one-${imageId}`);
    assert.equal(info.parent?.snapshot, 'snap');
    assert.equal((await rbd.listSnapshots({ pool: vmsPool, image: `one-${imageId}` })).find((x) => x.name === 'snap')?.protected, true);
    assert.ok(await imageExists(rbd, one.diskImage(vm.id, 1)));

    const running = await tap.waitFor((m) => m.headers['x-opennebula-hook'] === 'vm-running' && String(m.headers['x-opennebula-vm-id']) === String(vm.id), 15_000, 'vm-running');
    assert.equal(running.contentType, 'application/xml');
    assert.equal(running.routingKey, 'notifications.info');
    assert.equal(running.decoded?.wire, 'opennebula-vm');
    const v = vmOf(running);
    assert.equal(v.id, vm.id);
    assert.equal(v.uname, 'carol');
    assert.equal(v.gname, 'users');
    assert.equal(v.state.name, 'ACTIVE');
    assert.equal(v.lcmState.name, 'RUNNING');
    assert.equal(v.nics[0]?.ip, '192.168.150.21');
    assert.equal(v.nics[0]?.mac, '02:00:c0:a8:96:15');
    assert.deepEqual(v.disks.map((d) => [d.diskId, d.clone, d.source, d.tmMad]), [[0, true, `${vmsPool}/one-${imageId}`, 'ceph'], [1, undefined, undefined, undefined]]);
    assert.equal(running.decoded?.messageId, one.runs.find((r) => r.vmId === vm.id && r.hook === 'vm-running')?.messageId);
    assert.ok(v.host !== undefined);
    await one.terminate(vm.id, { hard: true });
  });

  test('terminate: SHUTDOWN, EPILOG, DONE hooks; the TM deletes the disk, its snapshots and their clones, and the base @snap', async () => {
    const vm = await one.create({ disks: [{ imageId }, { volatile: true, sizeBytes: MiB }], nics: [{ ip: '192.168.150.22' }] });
    const disk = one.diskImage(vm.id, 0);
    await one.writeDisk(disk, randomBytes(MiB));
    const snapId = await one.snapshotDisk(vm.id, 0);
    // An operator's clone of that snapshot, where the cloud's user can reach it.
    const clone: ImageSpec = { pool: vmsPool, image: `capture-${s}` };
    await operator.clone({ ...disk, snapshot: String(snapId) }, clone);
    leftovers.push(clone);
    const mark = one.timeline.last;

    await one.terminate(vm.id, { by: { uid: 0, gid: 0, requestId: 4242 } });
    assert.equal(one.vm(vm.id)?.stateName, 'DONE');
    assert.equal(await imageExists(rbd, disk), false);
    assert.equal(await imageExists(rbd, one.diskImage(vm.id, 1)), false);
    assert.equal(await imageExists(rbd, clone), false, 'the clone of the disk\'s snapshot went with it');
    assert.equal((await rbd.listSnapshots({ pool: vmsPool, image: `one-${imageId}` })).some((x) => x.name === 'snap'), false, 'the unused base snapshot too');
    const steps = one.timeline.since(mark);
    assert.ok(steps.some((x) => x.kind === 'snapshot-removed' && x.image === `${vmsPool}/${disk.image}@${snapId}`));
    const removedClone = steps.findIndex((x) => x.kind === 'disk-removed' && x.image === `${vmsPool}/${clone.image}`);
    const removedDisk = steps.findIndex((x) => x.kind === 'disk-removed' && x.image === `${vmsPool}/${disk.image}`);
    assert.ok(removedClone >= 0 && removedClone < removedDisk, 'children first, then the disk');
    const epilog = steps.findIndex((x) => x.kind === 'state' && x.detail['lcmState'] === 'EPILOG');
    assert.ok(epilog >= 0 && epilog < removedClone, 'all of it during ACTIVE/EPILOG');

    await tap.waitFor((m) => m.headers['x-opennebula-hook'] === 'vm-done' && String(m.headers['x-opennebula-vm-id']) === String(vm.id), 15_000, 'vm-done');
    assert.deepEqual(hookNames(vm.id), ['vm-running', 'vm-running', 'vm-shutdown', 'vm-epilog', 'vm-done']);
    const [shutdown, epilogMsg, done] = hooksFor(vm.id).slice(-3).map(vmOf);
    assert.equal(shutdown?.lcmState.name, 'SHUTDOWN');
    assert.equal(shutdown?.historyAction?.name, 'terminate');
    assert.equal(shutdown?.historyAction?.requestId, 4242);
    assert.equal(epilogMsg?.lcmState.name, 'EPILOG');
    assert.equal(done?.state.name, 'DONE');
    assert.ok(done?.etime instanceof Date);
    assert.equal(done?.nics[0]?.ip, '192.168.150.22', 'DONE still lists the NICs');
  });

  test('with CEPH_TRASH the disk goes to the trash with its snapshots, and the clone survives', async () => {
    const vm = await one.create({ disks: [{ imageId }], cephTrash: true });
    const disk = one.diskImage(vm.id, 0);
    const digest = await one.writeDisk(disk, randomBytes(2 * MiB));
    await operator.createSnapshot({ ...disk, snapshot: 'armed' });
    const clone: ImageSpec = { pool: vmsPool, image: `capture-trash-${s}` };
    await operator.clone({ ...disk, snapshot: 'armed' }, clone);
    leftovers.push(clone, disk);

    await one.terminate(vm.id);
    assert.equal(one.vm(vm.id)?.stateName, 'DONE');
    assert.equal(await imageExists(rbd, disk), false);
    const entry = (await rbd.listTrash({ pool: vmsPool })).find((t) => t.name === disk.image);
    assert.ok(entry !== undefined, 'the disk is in the trash');
    assert.deepEqual((await rbd.listSnapshots({ pool: vmsPool, imageId: entry.id })).map((x) => x.name), ['armed']);
    assert.ok(await imageExists(rbd, clone), 'the clone is untouched');
    assert.equal((await rbd.info(clone)).parent?.inTrash, true);
    assert.equal(await exportSha256(operator, clone), digest, 'and still reads as the disk did');
    const epilog = hooksFor(vm.id).map(vmOf).find((v) => v.lcmState.name === 'EPILOG');
    assert.equal(epilog?.disks[0]?.cephTrash, true, 'the hook message says CEPH_TRASH');
  });

  test('a clone in a pool the cloud cannot read keeps the disk, and the TM still reports success', async () => {
    const vm = await one.create({ disks: [{ imageId }] });
    const disk = one.diskImage(vm.id, 0);
    const digest = await one.writeDisk(disk, randomBytes(MiB));
    await operator.createSnapshot({ ...disk, snapshot: 'q' });
    const quarantined: ImageSpec = { pool: quarantinePool, image: `one-capture-${s}` };
    await operator.clone({ ...disk, snapshot: 'q' }, quarantined);
    leftovers.push(quarantined, disk);
    const mark = one.timeline.last;

    await one.terminate(vm.id);
    assert.equal(one.vm(vm.id)?.stateName, 'DONE', 'the VM reaches DONE all the same');
    const steps = one.timeline.since(mark);
    assert.ok(steps.some((x) => x.kind === 'tm-command' && x.detail['command'] === 'rbd children' && x.detail['ok'] === false), '`rbd children` fails for the cloud user');
    assert.ok(steps.some((x) => x.kind === 'disk-remove-failed' && x.image === `${vmsPool}/${disk.image}`));
    assert.ok(await imageExists(rbd, disk), 'the disk is left behind, orphaned');
    assert.equal(await exportSha256(operator, quarantined), digest);
    assert.equal(await one.diskSha256(disk), digest);
    const snaps = await operator.listSnapshots(disk, { includeTrash: true });
    assert.deepEqual(snaps.map((x) => x.namespace), ['trash'], 'its snapshot was removed into the trash namespace, still backing the clone');
  });

  test('NIC attach and detach: HOTPLUG_NIC with ATTACH = YES in a new history record, the closed one with the action, then RUNNING with the new list', async () => {
    const vm = await one.create({ disks: [{ volatile: true, sizeBytes: MiB }], nics: [{ ip: '192.168.150.23' }] });
    const nicId = await one.attachNic(vm.id, { ip: '10.0.7.23', network: 'private', networkId: 1 });
    await one.detachNic(vm.id, 0);
    await one.terminate(vm.id, { hard: true });
    await tap.waitFor((m) => m.headers['x-opennebula-hook'] === 'vm-done' && String(m.headers['x-opennebula-vm-id']) === String(vm.id), 15_000, 'vm-done');
    assert.deepEqual(hookNames(vm.id), ['vm-running', 'vm-hotplug-nic', 'vm-running', 'vm-hotplug-nic', 'vm-running', 'vm-shutdown', 'vm-epilog', 'vm-done']);
    const vms = hooksFor(vm.id).map(vmOf);
    assert.equal(vms[1]?.lcmState.name, 'HOTPLUG_NIC');
    // close_cp_history: the record the hotplug closed carries the action; the message's last record is the next one.
    assert.deepEqual(vms.map((v) => v.historySeq), [0, 1, 1, 2, 2, 2, 2, 2]);
    const attached = hooksFor(vm.id)[1]?.body.toString('utf8') ?? '';
    assert.match(attached, /<SEQ>0<\/SEQ>.*?<ACTION>23<\/ACTION>.*?<\/HISTORY><HISTORY>.*?<SEQ>1<\/SEQ>/);
    assert.match(attached, new RegExp(`<NIC><AR_ID>0</AR_ID><ATTACH>YES</ATTACH>.*?<NIC_ID>${nicId}</NIC_ID>`));
    assert.deepEqual(vms[2]?.nics.map((n) => n.ip), ['192.168.150.23', '10.0.7.23']);
    assert.match(hooksFor(vm.id)[3]?.body.toString('utf8') ?? '', /<SEQ>1<\/SEQ>.*?<ACTION>24<\/ACTION>.*?<\/HISTORY><HISTORY>.*?<SEQ>2<\/SEQ>/);
    assert.deepEqual(vms[3]?.nics.map((n) => n.ip), ['192.168.150.23', '10.0.7.23'], 'the detached NIC is still listed during the hotplug');
    assert.deepEqual(vms[4]?.nics.map((n) => n.ip), ['10.0.7.23']);
  });

  test('terminate from POWEROFF skips SHUTDOWN; recover --delete goes through CLEANUP_DELETE to DONE while the removal runs', async () => {
    const off = await one.create({ disks: [{ imageId }] });
    await one.poweroff(off.id, { hard: true });
    await one.terminate(off.id);
    await tap.waitFor((m) => m.headers['x-opennebula-hook'] === 'vm-done' && String(m.headers['x-opennebula-vm-id']) === String(off.id), 15_000, 'vm-done');
    assert.deepEqual(hookNames(off.id), ['vm-running', 'vm-epilog', 'vm-done']);
    assert.equal(await imageExists(rbd, one.diskImage(off.id, 0)), false);

    const failed = await one.create({ disks: [{ imageId }] });
    const mark = one.timeline.last;
    await one.recoverDelete(failed.id);
    const doneAt = one.timeline.since(mark).find((x) => x.kind === 'state' && x.detail['state'] === 'DONE');
    await one.settled();
    const removedAt = one.timeline.since(mark).find((x) => x.kind === 'disk-removed');
    assert.ok(doneAt !== undefined && removedAt !== undefined && doneAt.seq < removedAt.seq, 'DONE comes before the disk is gone');
    await tap.waitFor((m) => m.headers['x-opennebula-hook'] === 'vm-done' && String(m.headers['x-opennebula-vm-id']) === String(failed.id), 15_000, 'vm-done');
    assert.deepEqual(hookNames(failed.id), ['vm-running', 'vm-cleanup-delete', 'vm-done']);
    assert.equal(vmOf(hooksFor(failed.id)[1] as TappedMessage).historyAction?.name, 'delete');
    assert.equal(await imageExists(rbd, one.diskImage(failed.id, 0)), false);
  });
});
