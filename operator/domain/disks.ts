// How clouds name their RBD disks, and what a name tells about its VM.
// Nova: `<instance uuid>_disk`, `_disk.local`, `_disk.eph<N>`, `_disk.swap`,
// `_disk.config`, `_disk.rescue`; Cinder: `volume-<volume uuid>`; OpenNebula:
// `one-<image>-<vm>-<disk>` (per-VM clone) and `one-sys-<vm>-<disk>` (volatile).

export type DiskRole = 'root' | 'ephemeral' | 'swap' | 'config' | 'rescue' | 'volume' | 'other';

export type DiskOwner =
  | { cloudType: 'openstack'; instanceId: string; disk: string; role: DiskRole }
  | { cloudType: 'openstack'; volumeId: string; disk: 'volume'; role: 'volume' }
  | { cloudType: 'opennebula'; instanceId: string; disk: string; role: DiskRole; imageId?: number };

const UUID = '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}';
const NOVA = new RegExp(`^(${UUID})_(disk(?:\\.[a-z0-9]+)?)$`, 'i');
const CINDER = new RegExp(`^volume-(${UUID})$`, 'i');
const ONE_CLONE = /^one-(\d+)-(\d+)-(\d+)$/;
const ONE_SYS = /^one-sys-(\d+)-(\d+)$/;

function novaRole(disk: string): DiskRole {
  if (disk === 'disk') return 'root';
  if (disk === 'disk.local' || /^disk\.eph\d+$/.test(disk)) return 'ephemeral';
  if (disk === 'disk.swap') return 'swap';
  if (disk === 'disk.config') return 'config';
  if (disk === 'disk.rescue') return 'rescue';
  return 'other';
}

export function ownerOfImageName(name: string): DiskOwner | undefined {
  let m = NOVA.exec(name);
  if (m) return { cloudType: 'openstack', instanceId: (m[1] ?? '').toLowerCase(), disk: m[2] ?? 'disk', role: novaRole(m[2] ?? '') };
  m = CINDER.exec(name);
  if (m) return { cloudType: 'openstack', volumeId: (m[1] ?? '').toLowerCase(), disk: 'volume', role: 'volume' };
  m = ONE_CLONE.exec(name);
  if (m) return { cloudType: 'opennebula', instanceId: m[2] ?? '', disk: `disk-${m[3]}`, role: m[3] === '0' ? 'root' : 'ephemeral', imageId: Number(m[1]) };
  m = ONE_SYS.exec(name);
  if (m) return { cloudType: 'opennebula', instanceId: m[1] ?? '', disk: `sys-${m[2]}`, role: 'ephemeral' };
  return undefined;
}

/** Whether the policy's disk choice covers this role. Config drives and swap are never evidence worth keeping. */
export function roleWanted(role: DiskRole, disks: { root: boolean; ephemeral: boolean; volumes: boolean }): boolean {
  if (role === 'root') return disks.root;
  if (role === 'ephemeral' || role === 'other') return disks.ephemeral;
  if (role === 'volume') return disks.volumes;
  return false;
}

/** Images of an instance in a pool listing (Nova's own prefix rule; OpenNebula's naming). */
export function imagesOfInstance(names: readonly string[], cloudType: 'openstack' | 'opennebula', instanceId: string): string[] {
  return names.filter((n) => {
    const o = ownerOfImageName(n);
    return o !== undefined && 'instanceId' in o && o.cloudType === cloudType && o.instanceId === instanceId.toLowerCase();
  });
}
