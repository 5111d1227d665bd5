// The BlockStore contract for RbdCli against a real Ceph cluster
// (test/env/ceph-up.sh), as the operator's cephx user and as the cloud's.
import { requireEnv } from '../support/env.ts';
import { blockStoreContract } from '../support/block-store-contract.ts';
import { RbdCli } from '../../operator/ceph/rbd-cli.ts';

const conf = requireEnv('QTEST_CEPH_CONF');
const cloudPools = requireEnv('QTEST_CEPH_POOLS').split(/\s+/).filter((p) => p !== '');

blockStoreContract('RbdCli', async () => ({
  operator: new RbdCli({ cephConf: conf, id: requireEnv('QTEST_CEPH_OPERATOR_ID') }),
  cloud: new RbdCli({ cephConf: conf, id: requireEnv('QTEST_CEPH_CLOUD_ID') }),
  separateUsers: true,
  vms: cloudPools[0] ?? 'vms',
  // The move-to-trash test changes a pool-wide setting; it uses the second
  // cloud pool (Glance's, in the usual layout).
  armedPool: cloudPools[1] ?? cloudPools[0] ?? 'vms',
  quarantinePool: requireEnv('QTEST_CEPH_QUARANTINE_POOL'),
}));
