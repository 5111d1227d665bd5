// The BlockStore contract for LibrbdStore (in-process librbd through koffi)
// against a real Ceph cluster, as the operator's cephx user and as the cloud's.
import { requireEnv } from '../support/env.ts';
import { blockStoreContract } from '../support/block-store-contract.ts';
import { LibrbdStore } from '../../operator/ceph/librbd.ts';

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
