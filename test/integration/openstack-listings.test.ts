// The OpenStack client's listings against the simulator's Keystone, Nova and
// Neutron fronts over real HTTP (the simulator publishing on the real broker):
// every server, port, floating IP and router comes back once through small
// pages, in the domain's words; Keystone names users and projects; 5xx and transport errors are retried, an
// expired token is renewed, and a body of the wrong shape is a clear error.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { OpenStackClient, OpenStackError } from '../../operator/clouds/openstack.ts';
import { SimBus } from '../sim/bus.ts';
import { NeutronSim } from '../sim/neutron.ts';
import { NovaSim } from '../sim/nova.ts';
import { NovaApi } from '../sim/nova-api.ts';
import { FakeBlockStore } from '../support/fake-block-store.ts';
import { requireEnv, uniqueSuffix } from '../support/env.ts';

const amqpUrl = requireEnv('QTEST_AMQP_URL');

async function all<T>(pages: AsyncIterable<T[]>): Promise<T[]> {
  const out: T[] = [];
  for await (const p of pages) out.push(...p);
  return out;
}

test('servers, ports, floating IPs and routers are listed completely through pages, and failures are retried or explained', async () => {
  const suffix = uniqueSuffix();
  const bus = await SimBus.connect(amqpUrl);
  const neutron = await NeutronSim.start({ bus, exchange: `neutron-${suffix}`, startEvents: false });
  const nova = await NovaSim.start({ bus, exchange: `nova-${suffix}`, format: 'versioned', rbd: new FakeBlockStore(), neutron, deleteGapMs: 0, destroyRetries: 1, destroyRetryIntervalMs: 0 });
  const api = await NovaApi.start({ nova, neutron, credentials: [{ id: 'c', secret: 's', userId: 'u', projectId: 'admin' }], identities: { users: { u: 'operator' }, projects: { physics: 'Physics dept.' } } });
  try {
    await nova.ensureImage(`img-${suffix}`, 1 << 16);
    const ids: string[] = [];
    for (let i = 0; i < 7; i += 1) ids.push((await nova.boot({ image: `img-${suffix}`, project: i % 2 === 0 ? 'physics' : 'chemistry' })).uuid);
    const port = neutron.ports().find((p) => p.deviceId === ids[0]);
    const fip = await neutron.createFloatingIp({ project: 'physics', portId: port?.id as string });
    await neutron.createFloatingIp({ project: 'physics' });
    const router = await neutron.createRouter({ project: 'physics', gateway: true });
    await (await nova.delete(ids[6] as string)).done;

    let calls = 0;
    const flaky: typeof fetch = async (input, init) => {
      calls += 1;
      if (calls === 3) throw new TypeError('fetch failed');
      if (calls === 5) return new Response('{"message":"busy"}', { status: 503 });
      return fetch(input, init);
    };
    const client = new OpenStackClient({ authUrl: api.authUrl, applicationCredentialId: 'c', applicationCredentialSecret: 's', pageSize: 2, fetch: flaky, sleep: async () => undefined });
    const servers = await all(client.servers());
    assert.deepEqual(servers.map((s) => s.id).sort(), ids.slice(0, 6).sort(), 'every tenant\'s live servers, each once');
    const first = servers.find((s) => s.id === ids[0]);
    assert.equal(first?.project, 'physics');
    assert.equal(first?.state, 'active');
    assert.ok(first?.createdAt instanceof Date);
    assert.deepEqual(first?.addresses.map((a) => `${a.kind} ${a.address}`).sort(), [`fixed ${port?.fixedIps[0]?.address}`, `floating ${fip.address}`].sort());
    const ports = await all(client.ports());
    assert.deepEqual(ports.map((p) => p.id).sort(), neutron.ports().map((p) => p.id).sort());
    assert.equal(ports.find((p) => p.id === port?.id)?.deviceId, ids[0]);
    const fips = await all(client.floatingIps());
    assert.equal(fips.length, 2);
    assert.equal(fips.find((f) => f.id === fip.id)?.portId, port?.id);
    assert.equal(fips.find((f) => f.id === fip.id)?.instanceId, ids[0]);
    const routers = await all(client.routers());
    assert.deepEqual(routers.map((r) => [r.id, r.gatewayIps]), [[router.id, router.gateway?.addresses]]);
    assert.ok(calls >= 8, 'the failing calls were retried');

    // An expired token: the next listing authenticates again.
    api.revokeTokens();
    assert.equal((await all(client.routers())).length, 1);

    // Keystone's names for the ids the listings carry, from the catalog's identity endpoint.
    assert.equal(await client.identityName('project', 'physics'), 'Physics dept.');
    assert.equal(await client.identityName('user', 'u'), 'operator');
    assert.equal(await client.identityName('project', 'chemistry'), null, 'an id Keystone does not know');

    const wrong: typeof fetch = async (input, init) => {
      const res = await fetch(input, init);
      return String(input).includes('/v2.0/ports') ? new Response('{"ports":[{"id":7}]}', { status: 200 }) : res;
    };
    const strict = new OpenStackClient({ authUrl: api.authUrl, applicationCredentialId: 'c', applicationCredentialSecret: 's', fetch: wrong });
    await assert.rejects(all(strict.ports()), (e: unknown) => e instanceof OpenStackError && /unexpected body: ports\.0\.id/.test(e.message));
  } finally {
    await nova.stop();
    await neutron.stop();
    await api.stop();
    await bus.deleteExchanges([`nova-${suffix}`, `neutron-${suffix}`]).catch(() => undefined);
    await bus.close();
  }
});
