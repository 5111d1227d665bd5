// `quarantine ingest` with the Cloud and its policies records the capture
// intents of the delete warnings it reads, in the same transaction, as live
// intake does: the operator then captures the disks Ceph still holds. Without
// them it says, in one line, that nothing read will be captured.
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { cli } from '../support/cli-ledger.ts';
import { EXIT } from '../../operator/cli/errors.ts';
import { openLedgerDb } from '../../operator/ledger/db.ts';
import { CaptureEngine } from '../../operator/capture/engine.ts';
import { CloudCapture } from '../../operator/capture/cloud-capture.ts';
import { parseDecision } from '../../operator/capture/lifecycle.ts';
import { resourcesFromManifests } from '../../operator/resources/manifest-kinds.ts';
import { FakeClock } from '../../operator/kube/runtime/clock.ts';
import { silentLogger } from '../../operator/log.ts';
import { FakeBlockStore } from '../support/fake-block-store.ts';
import { novaInstance, type VmSpec } from '../sim/openstack-messages.ts';

const dir = mkdtempSync(join(tmpdir(), 'qop-ingest-intents-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const manifests = join(dir, 'manifests');
cpSync(join(import.meta.dirname, '..', '..', 'examples', 'standalone'), manifests, { recursive: true });
// The example policy adopts from the trash (a warning opens no intent there); this one snapshots on delete.
const policyFile = join(manifests, 'policy.yaml');
writeFileSync(policyFile, readFileSync(policyFile, 'utf8').replace(/^    mode: trash$/m, '    mode: onDelete'));

const vm = (i: number): VmSpec => ({
  id: `6f1b7a52-3c1e-4d7b-9a57-0d9a5c1f2e1${i}`, name: `vm-${i}`, project: 'p', user: 'u', host: 'hv1', createdAt: new Date('2026-05-01T10:00:00Z'), ports: [],
});

describe('quarantine ingest and capture intents', () => {
  test('with --manifests, each delete warning opens one intent with its policy\'s decision; the operator captures what is still there', async () => {
    const db = `sqlite:${join(dir, 'a.db')}`;
    const at = new Date(Date.now() - 60_000);
    const file = join(dir, 'deletes.jsonl');
    writeFileSync(file, [0, 1, 2].flatMap((i) => [novaInstance(vm(i), 'create.end', new Date(at.getTime() - 3_600_000)), novaInstance(vm(i), 'delete.start', at)]).join('\n') + '\n');
    const r = await cli(['--db', db, 'ingest', '--cloud', 'lab', '--manifests', manifests, file]);
    assert.equal(r.code, EXIT.ok, r.err);
    assert.equal(r.out, 'applied 6, duplicate 0, ignored 0, rejected 0\ncapture intents opened: 3 (the operator running cloud lab captures what Ceph still holds)\n');
    const again = await cli(['--db', db, 'ingest', '--cloud', 'lab', '--manifests', manifests, file]);
    assert.match(again.out, /duplicate 6.*\ncapture intents opened: 0/s);

    const ledger = openLedgerDb(db);
    const intents = await ledger.db.selectFrom('capture_intents').selectAll().orderBy('instance_id').execute();
    assert.deepEqual(intents.map((i) => [i.cloud, i.kind, i.instance_id, i.state]), [0, 1, 2].map((i) => ['lab', 'live', vm(i).id, 'open']));
    const { policies } = resourcesFromManifests(manifests);
    for (const i of intents) assert.equal(parseDecision(i.decision).policy, policies[0]?.name);

    // The operator for cloud lab, later: two of the three disks are still on Ceph.
    const blocks = new FakeBlockStore();
    for (const i of [0, 2]) await blocks.importImage({ stream: Readable.from([Buffer.from('evidence\n'.repeat(64))]) }, { pool: 'vms', image: `${vm(i).id}_disk` });
    const clock = new FakeClock();
    const engine = new CaptureEngine({ db: ledger.db, blocks, quarantine: { pool: 'quarantine' }, logger: silentLogger, clock: () => clock.now() });
    const capture = new CloudCapture({
      config: { cloud: 'lab', cloudType: 'openstack', watchedPools: ['vms', 'volumes'], trash: { arm: false, expireSeconds: 0, scanIntervalSeconds: 600 } },
      db: ledger.db, blocks, engine, policies: () => policies, logger: silentLogger, clock,
    });
    capture.start();
    await capture.idle();
    const held = await ledger.db.selectFrom('quarantines').select(['instance_id', 'state', 'retention_ms']).where('state', '=', 'quarantined').orderBy('instance_id').execute();
    assert.deepEqual(held.map((q) => q.instance_id), [vm(0).id, vm(2).id]);
    assert.ok(held.every((q) => q.retention_ms === policies[0]?.retentionMs));
    assert.ok((await ledger.db.selectFrom('capture_intents').select('state').execute()).every((i) => i.state === 'done'));
    await capture.stop();
    await ledger.close();
  });

  test('without --manifests the warnings are recorded, no intent is opened, and one line says so', async () => {
    const db = `sqlite:${join(dir, 'b.db')}`;
    const file = join(dir, 'one.json');
    writeFileSync(file, novaInstance(vm(5), 'delete.start', new Date(Date.now() - 60_000)));
    const r = await cli(['--db', db, 'ingest', '--cloud', 'lab', file]);
    assert.equal(r.code, EXIT.ok);
    assert.equal(r.out, 'applied 1, duplicate 0, ignored 0, rejected 0\n');
    assert.match(r.err, /^1 delete warning\(s\) read; no capture intents recorded for them: pass --manifests/);
    assert.equal(r.err.trim().split('\n').length, 1);
    const ledger = openLedgerDb(db);
    assert.equal((await ledger.db.selectFrom('capture_intents').selectAll().execute()).length, 0);
    await ledger.close();
  });

  test('a --cloud the manifests do not name is a usage error (exit 2), nothing applied', async () => {
    const db = `sqlite:${join(dir, 'c.db')}`;
    const file = join(dir, 'two.json');
    writeFileSync(file, novaInstance(vm(6), 'delete.start', new Date(Date.now() - 60_000)));
    const r = await cli(['--db', db, 'ingest', '--cloud', 'elsewhere', '--manifests', manifests, file]);
    assert.equal(r.code, EXIT.usage);
    assert.match(r.err, /has no Cloud named elsewhere/);
  });
});
