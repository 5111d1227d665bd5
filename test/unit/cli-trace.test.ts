// `quarantine ingest` and `quarantine trace` on the embedded ledger: the
// investigator's question answered from real-format notification bodies.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, writeFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cli } from '../support/cli-ledger.ts';
import { EXIT } from '../../operator/cli/errors.ts';
import { openLedgerDb } from '../../operator/ledger/db.ts';
import { applyNames, recordNames } from '../../operator/ledger/identity-names.ts';
import { namedCell } from '../../operator/domain/owner-names.ts';
import { neutronFloatingIp, neutronPort, novaInstance, type VmSpec } from '../sim/openstack-messages.ts';

const t = (iso: string) => new Date(iso);
const vmA: VmSpec = { id: 'a9b0c1d2-0000-4000-8000-00000000000a', name: 'batch-17', project: 'proj-hep', user: 'alice', host: 'cmp-04', createdAt: t('2026-05-01T15:00:00Z'), ports: [{ portId: 'port-aaaa', address: '10.0.0.5', mac: 'fa:16:3e:00:00:0a', network: 'private' }] };
const vmB: VmSpec = { id: 'b9b0c1d2-0000-4000-8000-00000000000b', name: 'web-2', project: 'proj-astro', user: 'bob', host: 'cmp-07', createdAt: t('2026-05-01T15:30:00Z'), ports: [{ portId: 'port-bbbb', address: '10.0.0.9', mac: 'fa:16:3e:00:00:0b', network: 'private' }] };
const fip = { id: 'fip-1', address: '188.185.194.218', network: 'ext-net', project: 'proj-hep' };

describe('quarantine ingest + trace', () => {
  const dir = mkdtempSync(join(tmpdir(), 'qop-trace-'));
  const db = `sqlite:${join(dir, 'ledger.db')}`;
  const msgs = join(dir, 'msgs');
  after(() => rmSync(dir, { recursive: true, force: true }));

  before(() => {
    const bodies = [
      neutronPort({ ...vmA.ports[0]!, project: vmA.project, instanceId: vmA.id }, 'create.end', t('2026-05-01T15:59:00Z')),
      novaInstance(vmA, 'create.end', t('2026-05-01T16:00:00Z')),
      neutronFloatingIp(fip, 'update.end', t('2026-05-01T16:05:00Z'), { portId: 'port-aaaa', fixedAddress: '10.0.0.5', instanceId: vmA.id }),
      novaInstance(vmB, 'create.end', t('2026-05-01T16:06:00Z')),
      // The floating IP moves to B in one update; A is then deleted.
      neutronFloatingIp(fip, 'update.end', t('2026-05-01T16:20:00Z'), { portId: 'port-bbbb', fixedAddress: '10.0.0.9', instanceId: vmB.id }),
      novaInstance(vmA, 'delete.start', t('2026-05-01T16:30:00Z'), { taskState: 'deleting', initiator: 'alice' }),
      novaInstance(vmA, 'delete.end', t('2026-05-01T16:30:09Z'), { state: 'deleted', withIps: false, deletedAt: t('2026-05-01T16:30:09Z') }),
    ];
    mkdirSync(msgs, { recursive: true });
    writeFileSync(join(msgs, 'stream.jsonl'), bodies.slice(0, 4).join('\n') + '\n');
    bodies.slice(4).forEach((b, i) => writeFileSync(join(msgs, `later-${i}.json`), b));
    writeFileSync(join(msgs, 'broken.json'), '{"oslo.version": "2.0", "oslo.message": "{not json"}');
  });

  test('ingest reports applied and rejected, names the rejected file, exits 3', async () => {
    const files = readdirSync(msgs).sort().map((f) => join(msgs, f));
    const r = await cli(['--db', db, 'ingest', '--cloud', 'cern', ...files]);
    assert.equal(r.code, EXIT.partial);
    assert.match(r.out, /applied 7, duplicate 0, ignored 0, rejected 1/);
    assert.match(r.err, /broken\.json: rejected \(bad-envelope\)/);
  });

  test('ingesting the same files again changes nothing', async () => {
    const again = await cli(['--db', db, 'ingest', '--cloud', 'cern', join(msgs, 'stream.jsonl')]);
    assert.equal(again.code, EXIT.ok);
    assert.match(again.out, /applied 0, duplicate 4/);
  });

  test('trace ip answers who held the floating IP, in JSON, for a time given with an offset', async () => {
    const r = await cli(['--db', db, 'trace', 'ip', '188.185.194.218', '--at', '2026-05-01T18:13:16+02:00', '-o', 'json']);
    assert.equal(r.code, EXIT.ok, r.err);
    const j = JSON.parse(r.out);
    assert.equal(j.address, '188.185.194.218');
    assert.equal(j.at, '2026-05-01T16:13:16.000Z');
    assert.equal(j.holders.length, 1);
    const h = j.holders[0];
    assert.deepEqual(
      { cloud: h.cloud, kind: h.kind, network: h.network, port: h.port, from: h.from, to: h.to },
      { cloud: 'cern', kind: 'floating', network: 'ext-net', port: 'port-aaaa', from: '2026-05-01T16:05:00.000Z', to: '2026-05-01T16:20:00.000Z' },
    );
    assert.deepEqual(h.instance, { id: vmA.id, name: 'batch-17', project: 'proj-hep', user: 'alice', host: 'cmp-04', deletedAt: '2026-05-01T16:30:09.000Z' });
  });

  test('after the move the same address belongs to the other instance', async () => {
    const r = await cli(['--db', db, 'trace', 'ip', '188.185.194.218', '--at', '2026-05-01T16:25:00Z', '-o', 'json']);
    assert.equal(JSON.parse(r.out).holders[0].instance.id, vmB.id);
  });

  test('no holder: exit 1 and a plain sentence', async () => {
    const r = await cli(['--db', db, 'trace', 'ip', '188.185.194.218', '--at', '2026-05-01T16:00:00Z']);
    assert.equal(r.code, EXIT.notFound);
    assert.match(r.out, /nobody held 188\.185\.194\.218/);
  });

  test('a time without an offset is refused with exit 2', async () => {
    const r = await cli(['--db', db, 'trace', 'ip', '188.185.194.218', '--at', '2026-05-01 18:13:16']);
    assert.equal(r.code, EXIT.usage);
    assert.match(r.err, /not an ISO 8601 time with an offset/);
  });

  test('an impossible date is refused with exit 2, not rolled over', async () => {
    for (const when of ['2026-02-30T10:00:00Z', '2026-04-31T10:00:00+02:00', '2026-05-01T24:00:00Z', '2026-05-01T10:60:00Z']) {
      const r = await cli(['--db', db, 'trace', 'ip', '188.185.194.218', '--at', when]);
      assert.equal(r.code, EXIT.usage, when);
      assert.match(r.err, /impossible date or time/);
    }
  });

  test('a malformed address is a usage error (exit 2), not "nobody"', async () => {
    for (const address of ['999.1.1.1', '1.2.3', '10.0.0.05', '2001:db8::5::1']) {
      const r = await cli(['--db', db, 'trace', 'ip', address, '--at', '2026-05-01T16:10:00Z']);
      assert.equal(r.code, EXIT.usage, address);
      assert.match(r.err, /is not an IP address/);
      assert.equal(r.out, '');
    }
  });

  test('trace instance shows owner, deletion, addresses over time and events', async () => {
    const r = await cli(['--db', db, 'trace', 'instance', vmA.id, '-o', 'json']);
    assert.equal(r.code, EXIT.ok);
    const j = JSON.parse(r.out);
    assert.equal(j.user, 'alice');
    assert.equal(j.deletedBy, 'alice');
    assert.equal(j.deletedAt, '2026-05-01T16:30:09.000Z');
    assert.deepEqual(j.addresses.map((a: { address: string; kind: string; to: string | null }) => [a.address, a.kind, a.to]).sort(), [
      ['10.0.0.5', 'fixed', '2026-05-01T16:30:09.000Z'],
      ['188.185.194.218', 'floating', '2026-05-01T16:20:00.000Z'],
    ]);
    assert.deepEqual(j.events.map((e: { eventType: string }) => e.eventType), ['port.create.end', 'instance.create.end', 'instance.delete.start', 'instance.delete.end']);
    const table = await cli(['--db', db, 'trace', 'instance', vmA.id]);
    assert.match(table.out, /deleted by\s+alice/);
  });

  test('names read from Keystone are shown with their source and read time, in JSON and beside the id in tables', async () => {
    const readAt = Date.parse('2026-05-02T08:00:00Z');
    const ledger = openLedgerDb(db);
    try {
      await recordNames(ledger.db, 'cern', [{ kind: 'user', id: 'alice', name: 'Alice Liddell' }, { kind: 'project', id: 'proj-hep', name: 'High Energy' }], readAt);
      assert.ok(await applyNames(ledger.db, 'cern') > 0);
    } finally {
      await ledger.close();
    }
    const ip = await cli(['--db', db, 'trace', 'ip', '10.0.0.5', '--at', '2026-05-01T16:10:00Z', '-o', 'json']);
    assert.equal(ip.code, EXIT.ok, ip.err);
    const i = JSON.parse(ip.out).holders[0].instance;
    assert.deepEqual([i.userName, i.userNameSource, i.userNameReadAt, i.projectName, i.projectNameSource, i.projectNameReadAt],
      ['Alice Liddell', 'keystone', '2026-05-02T08:00:00.000Z', 'High Energy', 'keystone', '2026-05-02T08:00:00.000Z']);
    const wide = await cli(['--db', db, 'trace', 'ip', '10.0.0.5', '--at', '2026-05-01T16:10:00Z', '-o', 'wide']);
    assert.match(wide.out, /alice \(Alice Liddell, keystone 2026-05-02T08:00:00Z\)/);
    assert.match(wide.out, /proj-hep \(High Energy, keystone 2026-05-02T08:00:00Z\)/);
    const history = await cli(['--db', db, 'trace', 'instance', vmA.id, '-o', 'json']);
    const h = JSON.parse(history.out);
    assert.deepEqual([h.userName, h.userNameSource, h.userNameReadAt], ['Alice Liddell', 'keystone', '2026-05-02T08:00:00.000Z']);
    const table = await cli(['--db', db, 'trace', 'instance', vmA.id]);
    assert.match(table.out, /user\s+alice \(Alice Liddell, keystone 2026-05-02T08:00:00Z\)/);
  });
});

describe('namedCell', () => {
  test('the id, then the name where it differs, then where and when it was read', () => {
    assert.equal(namedCell('u-1', undefined, undefined, undefined), 'u-1');
    assert.equal(namedCell('u-1', 'alice', undefined, undefined), 'u-1 (alice)');
    assert.equal(namedCell('u-1', 'alice', 'notification', '2026-05-01T16:00:00.000Z'), 'u-1 (alice, notification 2026-05-01T16:00:00Z)');
    assert.equal(namedCell('oneadmin', 'oneadmin', 'opennebula', '2026-05-01T16:00:00.000Z'), 'oneadmin (opennebula 2026-05-01T16:00:00Z)');
    assert.equal(namedCell('oneadmin', 'oneadmin', undefined, undefined), 'oneadmin', 'a name equal to the id, of unknown source, adds nothing');
    assert.equal(namedCell(null, 'alice', 'keystone', '2026-05-02T08:00:00.123Z'), 'alice (keystone 2026-05-02T08:00:00.123Z)');
  });
});
