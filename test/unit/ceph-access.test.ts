// Which Ceph driver a Cloud gets: librbd by default, the CLI on request, and
// the CLI with a stated reason when librbd cannot be loaded (never silently).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { cephAccess } from '../../operator/clouds/ceph-access.ts';
import { Cloud } from '../../operator/resources/cloud.ts';
import { RbdCli } from '../../operator/ceph/rbd-cli.ts';
import { LibrbdUnavailableError } from '../../operator/ceph/librbd-ffi.ts';
import { FakeBlockStore } from '../support/fake-block-store.ts';
import type { SecretSource } from '../../operator/secrets.ts';

function cloud(ceph: Record<string, unknown>): Cloud {
  return Cloud.parse({
    apiVersion: 'quarantine.forensics.dev/v1alpha1',
    kind: 'Cloud',
    metadata: { name: 'cern' },
    spec: {
      type: 'openstack',
      amqp: { urlSecretRef: { name: 'amqp', key: 'url' } },
      ceph: { monitors: ['127.0.0.1:6789'], quarantine: { pool: 'quarantine' }, keyringSecretRef: { name: 'ceph', key: 'key' }, ...ceph },
    },
  });
}

const secrets: SecretSource = { get: async () => 'AQBfakefakefakefakefakefakefakefakefake==' };

class ClosableFake extends FakeBlockStore {
  closed = 0;
  async close(): Promise<void> {
    this.closed++;
  }
}

test('the driver defaults to librbd in the schema', () => {
  assert.equal(cloud({}).spec.ceph?.driver, 'librbd');
  assert.throws(() => cloud({ driver: 'krbd' }), /driver/);
});

test('librbd: the adapter gets the connection settings, and close() closes it and removes the keyring', async () => {
  const store = new ClosableFake();
  let given: unknown;
  const access = await cephAccess(cloud({}), secrets, { librbd: (o) => ((given = o), store) });
  assert.ok(access !== undefined);
  assert.equal(access.driver, 'librbd');
  assert.equal(access.fallback, undefined);
  assert.equal(access.blocks, store);
  const keyring = (given as { keyring: string }).keyring;
  assert.match(readFileSync(keyring, 'utf8'), /^\[client\.quarantine-operator\]\n\tkey = AQB/);
  assert.deepEqual({ ...(given as object), keyring: 'k' }, { cephConf: undefined, id: 'quarantine-operator', keyring: 'k', monHost: '127.0.0.1:6789' });
  await access.close();
  assert.equal(store.closed, 1);
  assert.equal(existsSync(keyring), false);
});

test('librbd that cannot be loaded: the CLI, with the reason to report', async () => {
  const access = await cephAccess(cloud({}), secrets, {
    librbd: () => {
      throw new LibrbdUnavailableError('librbd cannot be loaded: librbd.so.1: cannot open shared object file');
    },
  });
  assert.ok(access?.blocks instanceof RbdCli);
  assert.equal(access.driver, 'cli');
  assert.match(access.fallback ?? '', /librbd\.so\.1: cannot open shared object file; using the rbd CLI instead/);
  await access.close();
});

test('driver cli: the CLI, and no fallback to report', async () => {
  let asked = false;
  const access = await cephAccess(cloud({ driver: 'cli' }), secrets, { librbd: () => ((asked = true), new ClosableFake()) });
  assert.ok(access?.blocks instanceof RbdCli);
  assert.equal(access.fallback, undefined);
  assert.equal(asked, false);
  await access.close();
});

