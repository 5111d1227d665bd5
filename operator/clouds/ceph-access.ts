// The operator's own access to a cloud's Ceph cluster, from the Cloud's ceph
// section: its cephx user, its key from a Secret written to a private file
// (both librados and the rbd CLI read keys from a keyring file), and the
// driver. librbd is the default; when it cannot be loaded the CLI is used and
// `fallback` says why, so that the Cloud can report it.
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BlockStore } from '../domain/block-store.ts';
import { RbdCli } from '../ceph/rbd-cli.ts';
import { LibrbdStore } from '../ceph/librbd.ts';
import { LibrbdUnavailableError } from '../ceph/librbd-ffi.ts';
import type { Cloud } from '../resources/cloud.ts';
import type { SecretSource } from '../secrets.ts';

export type CephDriver = 'librbd' | 'cli';

export interface CephAccess {
  blocks: BlockStore;
  /** The driver in use. */
  driver: CephDriver;
  /** Why librbd was asked for and the CLI is used instead. */
  fallback?: string | undefined;
  /** Closes the cluster connection (librbd) and removes the keyring file. */
  close(): Promise<void>;
}

export interface CephAccessOptions {
  /** For tests: stands in for the librbd adapter's constructor. */
  readonly librbd?: ((options: ConstructorParameters<typeof LibrbdStore>[0]) => BlockStore & { close(): Promise<void> }) | undefined;
}

export async function cephAccess(cloud: Cloud, secrets: SecretSource, options: CephAccessOptions = {}): Promise<CephAccess | undefined> {
  const ceph = cloud.spec.ceph;
  if (ceph === undefined) return undefined;
  let dir: string | undefined;
  let keyring: string | undefined;
  if (ceph.keyringSecretRef !== undefined) {
    const key = (await secrets.get(ceph.keyringSecretRef)).trim();
    dir = mkdtempSync(join(process.env['XDG_RUNTIME_DIR'] ?? tmpdir(), 'qop-keyring-'));
    keyring = join(dir, 'keyring');
    // Either a whole keyring file or just the base64 key is accepted in the Secret.
    const body = key.includes('[client.') ? key : `[client.${ceph.user}]\n\tkey = ${key}\n`;
    writeFileSync(keyring, body, { mode: 0o600 });
  }
  const connection = {
    cephConf: ceph.configFile, id: ceph.user, keyring,
    monHost: ceph.monitors === undefined ? undefined : ceph.monitors.join(','),
  };
  const removeKeyring = (): void => {
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  };
  let fallback: string | undefined;
  if (ceph.driver === 'librbd') {
    try {
      const blocks = (options.librbd ?? ((o) => new LibrbdStore(o)))(connection);
      return {
        blocks,
        driver: 'librbd',
        async close() {
          try {
            await blocks.close();
          } finally {
            removeKeyring();
          }
        },
      };
    } catch (error) {
      if (!(error instanceof LibrbdUnavailableError)) {
        removeKeyring();
        throw error;
      }
      fallback = `${error.message}; using the rbd CLI instead`;
    }
  }
  return {
    blocks: new RbdCli(connection),
    driver: 'cli',
    fallback,
    async close() {
      removeKeyring();
    },
  };
}
