// Users' and projects' names from Keystone for the ids Nova's notifications
// carry without names: read from the simulator's Keystone over real HTTP by
// the operator's OpenStack client, cached with the time they were read,
// shown by the trace where no notification named the owner, read again after
// the TTL, and never over a name a newer notification gave.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { OpenStackClient } from '../../operator/clouds/openstack.ts';
import { openLedgerDb, migrateToLatest, type LedgerDb } from '../../operator/ledger/db.ts';
import { applyBatch } from '../../operator/ledger/apply.ts';
import { traceAddress } from '../../operator/ledger/trace.ts';
import { instanceHistory } from '../../operator/ledger/instance-history.ts';
import { holdersDuring } from '../../operator/ledger/attribute.ts';
import type { OwnerNames } from '../../operator/domain/owner-names.ts';
import { IdentityNames } from '../../operator/reconcile/identity-names.ts';
import type { IdentityDirectory } from '../../operator/domain/cloud-api.ts';
import type { Clock } from '../../operator/kube/runtime/clock.ts';
import { silentLogger } from '../../operator/log.ts';
import { NovaApi } from '../sim/nova-api.ts';
import type { NovaSim } from '../sim/nova.ts';
import { novaInstance, type VmSpec } from '../sim/openstack-messages.ts';
import { decodeRaw, osloDelivery } from '../support/cloud-messages.ts';

const T = Date.parse('2026-07-01T08:00:00Z');
const USER = '5b9d1c0e3f6a4c8e9d2b7a1f0e4c3d21';
const PROJECT = '8a7f6e5d4c3b4a29b8c7d6e5f4a3b2c1';

describe('names from Keystone', () => {
  let api: NovaApi;
  let ledger: LedgerDb;
  let now = T + 60_000;
  const clock: Clock = { now: () => new Date(now), setTimer: () => ({ cancel: () => undefined }) };

  before(async () => {
    // Only Keystone is asked here: the compute half of the front is not used.
    api = await NovaApi.start({
      nova: {} as NovaSim, credentials: [{ id: 'cred', secret: 'sec', userId: 'quarantine', projectId: 'admin' }],
      identities: { users: { [USER]: 'alice' }, projects: { [PROJECT]: 'genomics' } },
    });
    ledger = openLedgerDb('sqlite::memory:');
    await migrateToLatest(ledger);
  });
  after(async () => {
    await api.stop();
    await ledger.close();
  });

  const vm = (id: string, address: string): VmSpec => ({
    id, name: `vm-${id}`, project: PROJECT, user: USER, host: 'cmp-1', createdAt: new Date(T),
    ports: [{ portId: `port-${id}`, address, mac: 'fa:16:3e:00:00:01', network: 'private' }],
  });
  /** A versioned create.end: its context is the user, but a versioned payload names nobody. */
  const ingest = async (cloud: string, spec: VmSpec, at: number, contextNames?: { userName: string; projectName: string }) => {
    let body = novaInstance(spec, 'create.end', new Date(at), { messageId: `m-${spec.id}-${at}` });
    if (contextNames !== undefined) {
      const env = JSON.parse(body) as { 'oslo.message': string };
      const inner = JSON.parse(env['oslo.message']) as Record<string, unknown>;
      // The legacy format's context names the requester: here the owner.
      Object.assign(inner, { event_type: 'compute.instance.create.end', publisher_id: 'compute.cmp-1', _context_user_name: contextNames.userName, _context_project_name: contextNames.projectName });
      inner['payload'] = { instance_id: spec.id, display_name: spec.name, tenant_id: PROJECT, user_id: USER, host: 'cmp-1', state: 'active', fixed_ips: [{ address: spec.ports[0]?.address, version: 4, vif_mac: 'fa:16:3e:00:00:01', label: 'private' }] };
      body = JSON.stringify({ 'oslo.version': '2.0', 'oslo.message': JSON.stringify(inner) });
    }
    await applyBatch(ledger.db, [decodeRaw(osloDelivery(body, 'nova', new Date(at + 100)), cloud)]);
  };
  const owner = async (cloud: string, address: string) => {
    // Every interval here is still open: ask well after the last event.
    const h = (await traceAddress(ledger.db, address, new Date(T + 30 * 86_400_000), cloud)).holders[0];
    return { user: h?.instance?.userName, project: h?.instance?.projectName };
  };
  /** Where each name came from and when it was read, as trace ip, trace instance and the window answer it. */
  const provenance = async (cloud: string, address: string, instanceId: string) => {
    const i = (await traceAddress(ledger.db, address, new Date(T + 30 * 86_400_000), cloud)).holders[0]?.instance;
    const history = (await instanceHistory(ledger.db, instanceId, cloud))[0];
    const window = (await holdersDuring(ledger.db, address, new Date(T), new Date(T + 30 * 86_400_000), cloud))[0]?.instance;
    const pick = (x: OwnerNames | null | undefined) => ({ user: [x?.userNameSource, x?.userNameReadAt], project: [x?.projectNameSource, x?.projectNameReadAt] });
    assert.deepEqual(pick(history), pick(i), 'trace instance says the same as trace ip');
    assert.deepEqual(pick(window), pick(i), 'the window answer says the same as trace ip');
    return pick(i);
  };
  const iso = (ms: number) => new Date(ms).toISOString();
  const client = () => new OpenStackClient({ authUrl: api.authUrl, applicationCredentialId: 'cred', applicationCredentialSecret: 'sec' });

  test('the client reads a user\'s and a project\'s name, and null for an id Keystone does not know', async () => {
    const c = client();
    assert.equal(await c.identityName('user', USER), 'alice');
    assert.equal(await c.identityName('project', PROJECT), 'genomics');
    assert.equal(await c.identityName('user', 'no-such-user'), null);
  });

  test('a pass names the owner the notification did not, caches the read, and reads again only after the TTL', async () => {
    const cloud = 'os-a';
    await ingest(cloud, vm('i-1', '10.1.0.5'), T);
    assert.deepEqual(await owner(cloud, '10.1.0.5'), { user: undefined, project: undefined }, 'the versioned payload names nobody');
    const names = new IdentityNames({ cloud, directory: client(), db: ledger.db, clock, logger: silentLogger, ttlMs: 3_600_000 });
    const first = await names.pass();
    assert.deepEqual(first, { read: 2, unknown: 0, failed: 0, instancesNamed: 2 });
    assert.deepEqual(await owner(cloud, '10.1.0.5'), { user: 'alice', project: 'genomics' });
    const firstRead = now;
    assert.deepEqual(await provenance(cloud, '10.1.0.5', 'i-1'), { user: ['keystone', iso(firstRead)], project: ['keystone', iso(firstRead)] });
    const cached = await ledger.db.selectFrom('identity_names').selectAll().where('cloud', '=', cloud).orderBy('kind').execute();
    assert.deepEqual(cached.map((r) => [r.kind, r.id, r.name, r.read_at]), [['project', PROJECT, 'genomics', now], ['user', USER, 'alice', now]]);

    // Another instance of the same owner is named from the cache, without asking Keystone.
    const asked = api.requests.filter((r) => r.path.startsWith('/v3/users') || r.path.startsWith('/v3/projects')).length;
    await ingest(cloud, vm('i-2', '10.1.0.6'), T + 1_000);
    const second = await names.pass();
    assert.deepEqual(second, { read: 0, unknown: 0, failed: 0, instancesNamed: 2 });
    assert.deepEqual(await owner(cloud, '10.1.0.6'), { user: 'alice', project: 'genomics' });
    assert.equal(api.requests.filter((r) => r.path.startsWith('/v3/users') || r.path.startsWith('/v3/projects')).length, asked);

    // Renamed in Keystone: shown once the cached read is older than the TTL.
    api.setIdentity('user', USER, 'alice.smith');
    now += 1_800_000;
    assert.equal((await names.pass()).read, 0, 'within the TTL');
    assert.deepEqual(await provenance(cloud, '10.1.0.5', 'i-1'), { user: ['keystone', iso(firstRead)], project: ['keystone', iso(firstRead)] }, 'no read, no new time');
    now += 1_900_000;
    assert.equal((await names.pass()).read, 2);
    assert.deepEqual(await owner(cloud, '10.1.0.5'), { user: 'alice.smith', project: 'genomics' });
    assert.deepEqual(await provenance(cloud, '10.1.0.5', 'i-1'), { user: ['keystone', iso(now)], project: ['keystone', iso(now)] }, 'the same project name read again shows the new read time');
  });

  test('a name a newer notification gave wins; an id Keystone does not know is cached as unknown; failed reads change nothing', async () => {
    const cloud = 'os-b';
    const told = now + 60_000;
    await ingest(cloud, vm('i-3', '10.2.0.5'), told, { userName: 'alice-from-nova', projectName: 'genomics-from-nova' });
    assert.deepEqual(await owner(cloud, '10.2.0.5'), { user: 'alice-from-nova', project: 'genomics-from-nova' });
    assert.deepEqual(await provenance(cloud, '10.2.0.5', 'i-3'), { user: ['notification', iso(told)], project: ['notification', iso(told)] }, 'read at the event time');
    const names = new IdentityNames({ cloud, directory: client(), db: ledger.db, clock, logger: silentLogger });
    assert.equal((await names.pass()).read, 0, 'names the notification gave are not looked up');

    // A user Keystone no longer knows.
    const ghost = vm('i-4', '10.2.0.6');
    ghost.user = 'deleted-user';
    await ingest(cloud, ghost, T);
    let inFlight = 0;
    let most = 0;
    const slow: IdentityDirectory = {
      identityName: async (kind, id) => {
        inFlight += 1;
        most = Math.max(most, inFlight);
        await new Promise((r) => setTimeout(r, 5));
        inFlight -= 1;
        return client().identityName(kind, id);
      },
    };
    const bounded = new IdentityNames({ cloud, directory: slow, db: ledger.db, clock, logger: silentLogger, concurrency: 1 });
    assert.deepEqual(await bounded.pass(), { read: 2, unknown: 1, failed: 0, instancesNamed: 1 });
    assert.equal(most, 1, 'one read at a time');
    assert.deepEqual(await owner(cloud, '10.2.0.6'), { user: undefined, project: 'genomics' });
    assert.equal((await bounded.pass()).read, 0, 'the unknown id is not asked again within the TTL');

    const down: IdentityDirectory = { identityName: async () => { throw new Error('Keystone refused the application credential (HTTP 401)'); } };
    now += 2 * 86_400_000;
    const failing = new IdentityNames({ cloud, directory: down, db: ledger.db, clock, logger: silentLogger });
    const r = await failing.pass();
    assert.equal(r.failed, 2);
    assert.deepEqual(await owner(cloud, '10.2.0.6'), { user: undefined, project: 'genomics' }, 'the last good name stays');

    // Read again after the notification (Keystone's name since): the read wins over the older notification's.
    assert.equal((await names.pass()).read, 2);
    assert.deepEqual(await owner(cloud, '10.2.0.5'), { user: 'alice-from-nova', project: 'genomics' });
    assert.deepEqual(await provenance(cloud, '10.2.0.5', 'i-3'), { user: ['notification', iso(told)], project: ['keystone', iso(now)] });
  });
});
