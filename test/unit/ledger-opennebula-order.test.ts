// OpenNebula's hook messages carry whole-second times, and a hot NIC detach
// reports HOTPLUG_NIC (the NIC still listed) and RUNNING (without it) within
// one second, often the second the VM booted in. The VM document orders them
// (its last history SEQ, then the hotplug before the state that ends it), so
// the detached NIC is free after that second in every arrival order.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openLedgerDb, migrateToLatest } from '../../operator/ledger/db.ts';
import { applyBatch } from '../../operator/ledger/apply.ts';
import { traceAddress } from '../../operator/ledger/trace.ts';
import { vmDocumentOrder } from '../../operator/domain/opennebula-states.ts';
import { decodeRaw, oneDelivery, type OneHistory, type OneVmDoc, type RawMessage } from '../support/cloud-messages.ts';

const T = Date.parse('2026-06-01T10:00:00Z');
const A = '198.51.100.7';
const B = '198.51.100.8';

function history(seq: number, at: number, action = 0): OneHistory {
  return { seq, stime: at / 1000, etime: 0, rstime: at / 1000, retime: 0, estime: 0, action, uid: -1, gid: -1, requestId: -1 };
}

function vm(state: [number, number], nics: OneVmDoc['nics'], records: OneHistory[]): OneVmDoc {
  return {
    id: 77, name: 'web', uid: 5, uname: 'bob', gid: 100, gname: 'physics', state: state[0], lcmState: state[1], prevState: 3, prevLcmState: 3,
    stime: T / 1000 - 30, etime: 0, deployId: 'dom-77', host: 'kvm-1', nics, history: records,
  };
}

/** Boot at `boot`, then a detach of NIC 1 whose HOTPLUG_NIC and RUNNING both fall in second T; `fails`: an attach of NIC 1 that fails instead. */
function messages(boot: number, kind: 'detach' | 'failed-attach'): RawMessage[] {
  const closed = { ...history(0, boot), etime: T / 1000, retime: T / 1000, action: kind === 'detach' ? 24 : 23 };
  const before = kind === 'detach' ? [{ nicId: 0, ip: A, network: 'public' }, { nicId: 1, ip: B, network: 'public' }] : [{ nicId: 0, ip: A, network: 'public' }];
  const during = [{ nicId: 0, ip: A, network: 'public' }, { nicId: 1, ip: B, network: 'public', attach: true }];
  const after = [{ nicId: 0, ip: A, network: 'public' }];
  const received = new Date(T + 5_000);
  return [
    oneDelivery(vm([3, 3], before, [history(0, boot)]), boot, 'vm', received),
    oneDelivery(vm([3, 25], during, [closed, history(1, T)]), T, 'vm-base64', received),
    oneDelivery(vm([3, 3], after, [closed, history(1, T)]), T, 'hook-message', received),
  ];
}

function permutations<X>(xs: readonly X[]): X[][] {
  if (xs.length <= 1) return [[...xs]];
  return xs.flatMap((x, i) => permutations([...xs.slice(0, i), ...xs.slice(i + 1)]).map((rest) => [x, ...rest]));
}

test('the VM document orders a same-second hotplug: history SEQ first, then HOTPLUG_NIC before the state that ends it', () => {
  const order = (seq: number | undefined, lcm: number) => vmDocumentOrder({ ...(seq === undefined ? {} : { historySeq: seq }), state: { code: 3 }, lcmState: { code: lcm } });
  assert.ok(order(0, 3) < order(1, 25), 'RUNNING of record 0 before the HOTPLUG_NIC that opened record 1');
  assert.ok(order(1, 25) < order(1, 3), 'HOTPLUG_NIC before the RUNNING that ends it');
  assert.ok(order(1, 3) < order(2, 25));
  assert.ok(order(undefined, 3) < order(0, 3), 'a document without history comes first');
});

for (const [name, boot, kind] of [
  ['detach a minute after boot', T - 60_000, 'detach'],
  ['detach in the second the VM booted', T, 'detach'],
  ['an attach that failed, in the second the VM booted', T, 'failed-attach'],
] as const) {
  test(`OpenNebula ${name}: every arrival order, in one batch or one by one, frees the NIC in that second`, async () => {
    const ledger = openLedgerDb('sqlite::memory:');
    try {
      await migrateToLatest(ledger);
      const ms = messages(boot, kind);
      let k = 0;
      for (const order of permutations(ms)) {
        for (const batched of [true, false]) {
          const cloud = `one-${k++}`;
          const recorded = order.map((m) => decodeRaw(m, cloud));
          if (batched) await applyBatch(ledger.db, recorded);
          else for (const r of recorded) await applyBatch(ledger.db, [r]);
          const holders = async (address: string, at: number) => (await traceAddress(ledger.db, address, new Date(at), cloud)).holders.map((h) => `${h.kind}:${h.instance?.id ?? '-'}`);
          const where = `${cloud} (${batched ? 'one batch' : 'one by one'})`;
          assert.deepEqual(await holders(A, T + 1_000), ['nic:77'], where);
          assert.deepEqual(await holders(B, T), [], `${where}: ${B} is free from the second of the detach`);
          assert.deepEqual(await holders(B, T + 30_000), [], where);
          assert.deepEqual(await holders(B, T - 1), kind === 'detach' && boot < T ? ['nic:77'] : [], where);
        }
      }
    } finally {
      await ledger.close();
    }
  });
}
