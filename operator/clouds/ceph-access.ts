// The operator's own access to a cloud's Ceph cluster, from the Cloud's ceph
// section: its cephx user, and its key from a Secret written to a private file
// (the rbd CLI reads keys only from files).
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RbdCli } from '../ceph/rbd-cli.ts';
import type { Cloud } from '../kube/resources/cloud.ts';
import type { SecretSource } from '../secrets.ts';

export interface CephAccess {
  blocks: RbdCli;
  close(): void;
}

export async function cephAccess(cloud: Cloud, secrets: SecretSource): Promise<CephAccess | undefined> {
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
  const blocks = new RbdCli({
    cephConf: ceph.configFile, id: ceph.user, keyring,
    monHost: ceph.monitors === undefined ? undefined : ceph.monitors.join(','),
  });
  return {
    blocks,
    close() {
      if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
    },
  };
}
