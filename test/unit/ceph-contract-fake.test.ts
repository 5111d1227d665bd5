// The BlockStore contract for the in-memory fake that other unit tests use in
// place of Ceph: it must keep the same rules as the real adapters.
import { blockStoreContract } from '../support/block-store-contract.ts';
import { FakeBlockStore } from '../support/fake-block-store.ts';

blockStoreContract('FakeBlockStore', async () => {
  const store = new FakeBlockStore({ pools: ['vms', 'images', 'volumes', 'quarantine'] });
  return { operator: store, cloud: store, separateUsers: false, vms: 'vms', armedPool: 'images', quarantinePool: 'quarantine' };
});
