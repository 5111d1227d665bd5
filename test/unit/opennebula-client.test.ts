// The OpenNebula client against the simulator's XML-RPC front over real HTTP:
// the VM pool read in overlapping pages comes back complete and in id order,
// each VM parsed by the intake's decoder; a refused session, a fault and a
// malformed answer are clear errors; a 503 is retried.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { OneXmlRpc, type OneXmlRpcOptions } from '../sim/one-xmlrpc.ts';
import { OpenNebulaClient, OpenNebulaError, parseResponse } from '../../operator/reconcile/opennebula-client.ts';
import type { ListedOneVm } from '../../operator/domain/inventory.ts';

const template = readFileSync(new URL('../fixtures/opennebula/vm-800-active-shutdown.xml', import.meta.url), 'utf8');

/** A pool of VMs made from the fixture: ids, states and first NIC addresses of our choosing. */
function pool(vms: Array<{ id: number; state?: number }>): OneXmlRpcOptions['one'] {
  const docs = new Map(vms.map((v) => [v.id, template
    .replace('<ID>800</ID>', `<ID>${v.id}</ID>`).replace('<STATE>3</STATE>', `<STATE>${v.state ?? 3}</STATE>`)
    .replace(/<LCM_STATE>12<\/LCM_STATE>/, `<LCM_STATE>${v.state === undefined || v.state === 3 ? 3 : 0}</LCM_STATE>`)
    .replace('<IP>192.168.150.100</IP>', `<IP>10.9.${v.id >> 8}.${v.id & 255}</IP>`)]));
  return {
    vmIds: () => [...docs.keys()].sort((a, b) => a - b),
    vm: (id: number) => (docs.has(id) ? { state: vms.find((v) => v.id === id)?.state ?? 3 } : undefined),
    vmXml: (id: number) => docs.get(id) ?? '',
  };
}

async function list(client: OpenNebulaClient): Promise<ListedOneVm[]> {
  const out: ListedOneVm[] = [];
  for await (const page of client.vms()) out.push(...page);
  return out;
}

test('the VM pool is read in pages, complete, in id order, without DONE VMs', async () => {
  const ids = Array.from({ length: 60 }, (_, i) => 100 + i * 3);
  const server = await OneXmlRpc.start({ one: pool([...ids.map((id) => ({ id })), { id: 99, state: 6 }]), session: 'oneadmin:secret' });
  try {
    const vms = await list(new OpenNebulaClient({ url: server.url, session: 'oneadmin:secret', pageSize: 17 }));
    assert.deepEqual(vms.map((v) => v.id), ids);
    assert.ok(server.calls.length > 3, 'several pages were asked');
    const first = vms[0];
    assert.equal(first?.state, 'ACTIVE/RUNNING');
    assert.equal(first?.done, false);
    assert.equal(first?.user, 'oneadmin');
    assert.deepEqual(first?.nics.map((n) => n.addresses[0]), ['10.9.0.100']);
  } finally {
    await server.stop();
  }
});

test('a refused session is an error naming the call', async () => {
  const server = await OneXmlRpc.start({ one: pool([{ id: 1 }]), session: 'oneadmin:secret' });
  try {
    await assert.rejects(list(new OpenNebulaClient({ url: server.url, session: 'oneadmin:wrong' })), (e: unknown) => e instanceof OpenNebulaError && /one\.vmpool\.info: .*authenticated/.test(e.message));
  } finally {
    await server.stop();
  }
});

test('transport failures and 503 are retried; a fault or a malformed answer is not', async () => {
  let calls = 0;
  const server = await OneXmlRpc.start({ one: pool([{ id: 1 }]), session: 's' });
  try {
    const flaky: typeof fetch = async (input, init) => {
      calls += 1;
      if (calls === 1) throw new TypeError('fetch failed');
      if (calls === 2) return new Response('busy', { status: 503 });
      return fetch(input, init);
    };
    const vms = await list(new OpenNebulaClient({ url: server.url, session: 's', fetch: flaky, sleep: async () => undefined }));
    assert.deepEqual(vms.map((v) => v.id), [1]);
    assert.equal(calls, 3);
  } finally {
    await server.stop();
  }
  assert.throws(() => parseResponse('<methodResponse><params><param><value><array><data><value><i4>1</i4></value></data></array></value></param></params></methodResponse>'), /not a \[success, result, code\] array/);
  assert.deepEqual(parseResponse('<methodResponse><fault><value><struct><member><name>faultCode</name><value><int>-32601</int></value></member></struct></value></fault></methodResponse>'), { ok: false, error: 'fault faultCode=-32601' });
});
