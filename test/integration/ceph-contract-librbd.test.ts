// The BlockStore contract for LibrbdStore (in-process librbd through koffi)
// against a real Ceph cluster, as the operator's cephx user and as the cloud's.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { requireEnv } from '../support/env.ts';
import { blockStoreContract } from '../support/block-store-contract.ts';
import { LibrbdStore } from '../../operator/ceph/librbd.ts';
import { loadLibrbd } from '../../operator/ceph/librbd-ffi.ts';

const conf = requireEnv('QTEST_CEPH_CONF');
const cloudPools = requireEnv('QTEST_CEPH_POOLS').split(/\s+/).filter((p) => p !== '');

blockStoreContract('LibrbdStore', async () => {
  const operator = new LibrbdStore({ cephConf: conf, id: requireEnv('QTEST_CEPH_OPERATOR_ID') });
  const cloud = new LibrbdStore({ cephConf: conf, id: requireEnv('QTEST_CEPH_CLOUD_ID') });
  return {
    operator,
    cloud,
    separateUsers: true,
    vms: cloudPools[0] ?? 'vms',
    armedPool: cloudPools[2] ?? cloudPools[0] ?? 'vms',
    quarantinePool: requireEnv('QTEST_CEPH_QUARANTINE_POOL'),
    async close() {
      await Promise.all([operator.close(), cloud.close()]);
    },
  };
});

test('librbd calls in flight are counted per C function until they return', async () => {
  const lib = loadLibrbd();
  const before = lib.callsInFlight().running.rbd_version ?? 0;
  const pending = Array.from({ length: 3 }, () => lib.call('rbd_version', [0], [0], [0]));
  assert.equal((lib.callsInFlight().running.rbd_version ?? 0) - before, 3);
  await Promise.all(pending);
  assert.equal(lib.callsInFlight().running.rbd_version ?? 0, before);
  assert.equal(lib.callsInFlight().waiting, 0);
});
