// Acceptance of reconciliation on OpenNebula: the simulated oned runs its
// state hooks through the real publisher, behind a link that loses a seeded
// 20 % of them; the operator consumes what arrives (real RabbitMQ), then one
// pass over the XML-RPC VM pool (real HTTP) makes every trace answer after the
// pass the truth and flags every answer it corrected inside its window; a
// cloud whose hooks all publish shows no drift.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { composeOperator } from '../../operator/main.ts';
import { openLedgerDb, migrateToLatest } from '../../operator/ledger/db.ts';
import { traceAddress } from '../../operator/ledger/trace.ts';
import { latestPasses } from '../../operator/ledger/observe.ts';
import { reconciledStatus } from '../../operator/reconcile/condition.ts';
import { driftTotal } from '../../operator/domain/inventory.ts';
import { Cloud } from '../../operator/resources/cloud.ts';
import type { SecretKeyRef } from '../../operator/resources/common.ts';
import { silentLogger } from '../../operator/log.ts';
import { OneSim } from '../sim/opennebula.ts';
import { OneXmlRpc } from '../sim/one-xmlrpc.ts';
import type { RbdTool } from '../sim/rbd-tool.ts';
import { rng } from '../support/histories.ts';
import { FakeBlockStore } from '../support/fake-block-store.ts';
import { requireEnv, uniqueSuffix } from '../support/env.ts';
import { untilDerived } from '../support/derived.ts';

const amqpUrl = requireEnv('QTEST_AMQP_URL');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const publisher = fileURLToPath(new URL('../../hooks/opennebula/quarantine-publish', import.meta.url));
/** VMs here have no disks: nothing reaches the block store's tool. */
const noTool: RbdTool = { protectSnapshot: async () => undefined, unprotectSnapshot: async () => undefined, children: async () => [], write: async () => undefined };

async function run(lossPercent: number, seed: number) {
  const suffix = uniqueSuffix();
  const dir = mkdtempSync(join(tmpdir(), 'qop-reconcile-one-'));
  // The hook as installed, behind a link that loses the runs a seeded draw picks (hooks run one at a time here).
  const lossy = join(dir, 'lossy-publish');
  const draw = rng(seed * 7919);
  writeFileSync(join(dir, 'drop'), Array.from({ length: 500 }, (_, n) => n).filter(() => draw() * 100 < lossPercent).join('\n') + '\n');
  writeFileSync(lossy, [
    '#!/bin/sh',
    `d=${dir}`,
    'n=$(cat "$d/counter" 2>/dev/null || echo 0); echo $((n + 1)) > "$d/counter"',
    'if grep -qx "$n" "$d/drop"; then exit 0; fi',
    'echo "$n" >> "$d/sent"',
    `exec ${publisher} "$@"`,
    '',
  ].join('\n'));
  chmodSync(lossy, 0o755);
  const ledger = openLedgerDb(`sqlite:${join(dir, 'ledger.db')}`);
  await migrateToLatest(ledger);
  const exchange = `one-${suffix}`;
  const one = await OneSim.start({ amqpUrl, exchange, rbd: new FakeBlockStore(), rbdTool: noTool, publisherPath: lossy, waitForHooks: true, shutdownMs: 0, firstVmId: 200_000 + Math.floor(Math.random() * 700_000) });
  const xmlrpc = await OneXmlRpc.start({ one, session: 'oneadmin:pw' });
  const secrets = new Map<string, string>([['amqp/url', amqpUrl], ['one/session', 'oneadmin:pw']]);
  const operator = composeOperator({ ledger, logger: silentLogger, secrets: { get: async (r: SecretKeyRef) => secrets.get(`${r.name}/${r.key}`) ?? '' } });
  const cloud = Cloud.parse({
    apiVersion: 'quarantine.forensics.dev/v1alpha1', kind: 'Cloud', metadata: { name: `rcone-${suffix}` },
    spec: {
      type: 'opennebula',
      amqp: { urlSecretRef: { name: 'amqp', key: 'url' }, exchanges: [{ name: exchange, durable: true }], queue: `qop-rcone-${suffix}`, alternateExchange: '' },
      xmlrpc: { url: xmlrpc.url, sessionSecretRef: { name: 'one', key: 'session' } },
      reconcile: { intervalSeconds: 86_400, pageSize: 8 },
    },
  });
  const name = cloud.metadata.name;
  try {
    await operator.addCloud(cloud);
    await operator.becomeLeader();
    const rt = operator.clouds.get(name);
    assert.ok(rt?.reconcile !== undefined, 'a cloud with spec.xmlrpc is reconciled');
    await rt.reconcile.idle();

    const random = rng(seed);
    const octet = () => 2 + Math.floor(random() * 250);
    const used = new Set<string>();
    const address = () => { for (;;) { const a = `192.0.${2 + Math.floor(random() * 2)}.${octet()}`; if (!used.has(a)) { used.add(a); return a; } } };
    const vms: number[] = [];
    for (let i = 0; i < 8; i += 1) vms.push((await one.create({ disks: [], gname: i % 2 === 0 ? 'physics' : 'chem', nics: [{ ip: address() }, ...(i % 3 === 0 ? [{ ip: address() }] : [])] })).id);
    await one.attachNic(vms[1] as number, { ip: address() });
    // A hot detach publishes HOTPLUG_NIC (the NIC still listed) and RUNNING (without it) within one
    // second, the resolution of the hook's event times; the VM document orders the two.
    await one.detachNic(vms[0] as number, 1);
    await one.terminate(vms[2] as number, { hard: true });
    await one.terminate(vms[5] as number, { hard: true });
    await one.attachNic(vms[3] as number, { ip: address() });
    for (let i = 0; i < 3; i += 1) vms.push((await one.create({ disks: [], nics: [{ ip: address() }] })).id);
    await one.settled();

    // Everything the link forwarded is consumed before the pass.
    const sent = existsSync(join(dir, 'sent')) ? readFileSync(join(dir, 'sent'), 'utf8').trim().split('\n').filter((l) => l !== '').length : 0;
    const deadline = Date.now() + 60_000;
    let last = 0;
    for (;;) {
      last = Number((await ledger.db.selectFrom('notifications').select((eb) => eb.fn.countAll<number>().as('n')).where('cloud', '=', name).executeTakeFirstOrThrow()).n);
      if (last >= sent) break;
      if (Date.now() > deadline) throw new Error(`only ${last} of ${sent} hook messages consumed`);
      await sleep(50);
    }
    await untilDerived(ledger.db, name);

    const truth = new Map<string, string[]>();
    for (const id of one.vmIds()) {
      const vm = one.vm(id);
      if (vm === undefined || vm.state === 6) continue;
      for (const n of vm.nics) truth.set(n.ip, [...(truth.get(n.ip) ?? []), `nic:${id}`].sort());
    }
    const label = (h: { kind: string; instance: { id: string } | null; uncertain?: true }) => `${h.kind}:${h.instance?.id ?? '-'}${h.uncertain === true ? '?' : ''}`;
    const answer = async (a: string, at: Date) => (await traceAddress(ledger.db, a, at, name)).holders.map(label).sort();
    const before = new Date(Date.now() - 1);
    const pre = new Map<string, string[]>();
    for (const a of used) pre.set(a, await answer(a, before));

    const pass = await rt.reconcile.pass();
    assert.deepEqual(pass.listings.map((l) => [l.listing, l.outcome]), [['vms', 'ok']]);
    const after = new Date(pass.finishedAt.getTime() + 1);
    const wrong: string[] = [];
    for (const a of used) {
      const expected = truth.get(a) ?? [];
      const got = await answer(a, after);
      if (got.join(',') !== expected.join(',')) wrong.push(`${a}: expected [${expected.join(', ')}] after the pass, got [${got.join(', ')}]`);
      const then = await answer(a, before);
      const was = pre.get(a) ?? [];
      for (const l of expected) if (!was.includes(l) && !then.includes(`${l}?`)) wrong.push(`${a}: ${l} found by the pass is not flagged uncertain before it (got [${then.join(', ')}])`);
      for (const l of was) if (!expected.includes(l) && !then.includes(`${l}?`)) wrong.push(`${a}: ${l} closed by the pass is not flagged uncertain before it (got [${then.join(', ')}])`);
    }
    assert.deepEqual(wrong, []);
    const runs = Number(readFileSync(join(dir, 'counter'), 'utf8'));
    return { pass, status: reconciledStatus(true, await latestPasses(ledger.db, name)), runs, published: sent, consumed: last };
  } finally {
    await operator.stop();
    await xmlrpc.stop();
    await one.stop();
    await ledger.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

test('OpenNebula hooks losing 20 % of their messages: after one pass over the VM pool every answer is right or says it is uncertain', async () => {
  const r = await run(20, 7);
  assert.ok(r.published < r.runs, `some hook messages were lost (${r.published} of ${r.runs} sent)`);
  assert.ok(driftTotal(r.pass.drift) > 0, 'the pass found drift');
  assert.equal(r.status.condition.reason, 'Drift');
});

test('OpenNebula hooks that all publish, a hot NIC detach among them: no drift', async () => {
  const r = await run(0, 8);
  assert.equal(r.published, r.runs);
  assert.equal(driftTotal(r.pass.drift), 0, JSON.stringify(r.pass.drift));
  assert.equal(r.status.condition.reason, 'NoDrift');
});
