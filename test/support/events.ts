// Builders of decoded notifications for ledger tests: each takes only what the
// test is about and fills the rest with plausible values.
import type {
  DecodedNotification, DomainEvent, FloatingIpSnapshot, InstanceAction, InstanceAddress, InstanceSnapshot, OneNic, OneVm, PortSnapshot,
} from '../../operator/domain/events.ts';

let counter = 0;

export const T0 = Date.parse('2026-05-01T16:00:00Z');
export const at = (minutes: number) => new Date(T0 + minutes * 60_000);

export function notification(events: DomainEvent[], when: Date, over: Partial<DecodedNotification> = {}): DecodedNotification {
  counter += 1;
  return {
    cloud: 'cern', source: 'nova', wire: 'oslo-v2', messageId: `msg-${counter}`, idKind: 'message-id', eventType: 'test',
    occurredAt: when, occurredAtSource: 'message', receivedAt: when, context: {}, events, ignored: false, warnings: [], ...over,
  };
}

export function instanceEvent(action: InstanceAction, instance: Partial<InstanceSnapshot> & { id: string }, addresses?: InstanceAddress[], over: { authoritative?: boolean; actor?: { user?: string }; format?: 'versioned' | 'legacy' } = {}): DomainEvent {
  return {
    type: 'instance', action, format: over.format ?? 'versioned', instance: { project: 'proj-a', user: 'alice', host: 'cmp-1', name: `vm-${instance.id}`, ...instance },
    addresses, addressesAuthoritative: over.authoritative ?? (addresses !== undefined), localDelete: false, notScheduled: false,
    ...(over.actor === undefined ? {} : { actor: over.actor }),
  };
}

export const fixed = (address: string, portId: string, network = 'private'): InstanceAddress => ({ address, version: 4, portId, network, mac: `fa:16:3e:${portId.slice(-2)}:00:01`, kind: 'fixed' });

export function portEvent(action: 'create.end' | 'update.end' | 'delete.end', port: Partial<PortSnapshot> & { id: string }): DomainEvent {
  return { type: 'port', action, port: { fixedIps: [], project: 'proj-a', networkId: 'net-1', ...port }, idOnly: false };
}

export function fipEvent(action: 'create.end' | 'update.end' | 'delete.end', fip: Partial<FloatingIpSnapshot> & { id: string; portId: string | null | undefined }): DomainEvent {
  return { type: 'floatingip', action, floatingIp: { address: '188.185.194.218', networkId: 'ext-net', project: 'proj-a', ...fip }, idOnly: false };
}

export function oneVmEvent(vm: Partial<OneVm> & { id: number; nics: OneNic[] }, state: [number, string], lcm: [number, string]): DomainEvent {
  return {
    type: 'one_vm',
    vm: {
      name: `one-${vm.id}`, uid: 5, uname: 'bob', gid: 100, gname: 'physics', stime: at(-60), disks: [], host: 'kvm-3',
      state: { code: state[0], name: state[1] }, lcmState: { code: lcm[0], name: lcm[1] }, ...vm,
    },
  };
}

export const nic = (nicId: number, ip: string, network = 'public'): OneNic => ({ nicId, ip, mac: `02:00:0a:00:00:${nicId.toString(16).padStart(2, '0')}`, network, alias: false });
