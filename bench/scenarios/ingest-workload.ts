// A small simulated OpenStack cloud that produces the notification stream the
// operator would see: instances created, power-cycled, updated and deleted
// (versioned Nova), their ports created and deleted, floating IPs allocated,
// associated, moved between instances, disassociated and released (Neutron),
// plus the instance.* types the operator records but ignores. Bodies come from
// the same builders the tests use, so their shape is the real wire format.
import { Rng } from '../lib/rng.ts';
import { neutronFloatingIp, neutronPort, novaInstance, type FipSpec, type VmSpec } from '../../test/sim/openstack-messages.ts';

export interface WireMessage {
  exchange: 'nova' | 'neutron';
  routingKey: string;
  body: Buffer;
  kind: string;
}

interface Vm extends VmSpec {
  powered: boolean;
  fip: Fip | undefined;
}

interface Fip extends FipSpec {
  holder: Vm | undefined;
}

interface Network {
  id: string;
  project: string;
  prefix: string;
  free: number[];
}

const NOVA_RK = 'versioned_notifications.info';
const NEUTRON_RK = 'notifications.info';

export function buildWorkload(count: number, seed = 20260501): { messages: WireMessage[]; mix: Record<string, number> } {
  const messages: WireMessage[] = [];
  const mix: Record<string, number> = {};
  for (const m of workloadStream(seed)) {
    if (messages.length === count) break;
    messages.push(m);
    mix[m.kind] = (mix[m.kind] ?? 0) + 1;
  }
  return { messages, mix };
}

/**
 * The same workload without end, one message at a time, each with its event
 * time: for runs too long to hold in memory (the first `count` messages are
 * buildWorkload's).
 */
export function* workloadStream(seed = 20260501): Generator<WireMessage & { at: number }> {
  const rng = new Rng(seed);
  const out: Array<WireMessage & { at: number }> = [];
  let clock = Date.parse('2026-03-02T08:00:00Z');
  const tick = () => {
    clock += 200 + rng.int(2800);
    return new Date(clock);
  };
  const nova = (body: string, kind: string) => out.push({ exchange: 'nova', routingKey: NOVA_RK, body: Buffer.from(body), kind, at: clock });
  const neutron = (body: string, kind: string) => out.push({ exchange: 'neutron', routingKey: NEUTRON_RK, body: Buffer.from(body), kind, at: clock });

  const projects = Array.from({ length: 120 }, (_, i) => `${rng.uuid().replace(/-/g, '')}`.slice(0, 24) + i.toString().padStart(8, '0'));
  const users = Array.from({ length: 400 }, () => rng.uuid().replace(/-/g, ''));
  const hosts = Array.from({ length: 40 }, (_, i) => `cmp${String(i).padStart(3, '0')}.cloud.example.org`);
  // Tenant networks mostly reuse the same private ranges, as tenants do.
  const prefixes = ['10.0.0.', '10.0.0.', '10.0.0.', '192.168.0.', '192.168.1.', '172.16.0.'];
  const networks: Network[] = projects.map((project) => ({
    id: rng.uuid(), project, prefix: rng.pick(prefixes), free: Array.from({ length: 250 }, (_, i) => i + 3),
  }));
  const publicNet = rng.uuid();
  const fips: Fip[] = Array.from({ length: 600 }, (_, i) => ({
    id: rng.uuid(), address: `188.185.${192 + (i >> 8)}.${i & 255}`, network: publicNet, project: '', holder: undefined,
  }));
  const allocated: Fip[] = [];
  const freeFips = [...fips];
  const vms: Vm[] = [];
  const activeTarget = 1500;
  let serial = 0;

  const portOf = (vm: Vm) => vm.ports[0]!;
  const portMsg = (vm: Vm, ev: 'create.end' | 'update.end' | 'delete.end', at: Date) => {
    const p = portOf(vm);
    return neutronPort({ portId: p.portId, address: p.address, mac: p.mac, network: p.network, project: vm.project, instanceId: vm.id, host: vm.host ?? '' }, ev, at);
  };

  const createVm = () => {
    const net = rng.pick(networks);
    if (net.free.length === 0) return;
    const host = net.free.splice(rng.int(net.free.length), 1)[0]!;
    serial += 1;
    const id = rng.uuid();
    const mac = `fa:16:3e:${[0, 0, 0].map(() => rng.int(256).toString(16).padStart(2, '0')).join(':')}`;
    const vm: Vm = {
      id, name: `vm-${serial}`, project: net.project, user: rng.pick(users), host: rng.pick(hosts), createdAt: new Date(clock),
      flavor: rng.pick(['m1.small', 'm1.medium', 'm1.large', 'g1.xlarge']),
      ports: [{ portId: rng.uuid(), address: `${net.prefix}${host}`, mac, network: net.id }],
      powered: true, fip: undefined,
    };
    vms.push(vm);
    neutron(portMsg(vm, 'create.end', tick()), 'port.create.end');
    nova(novaInstance(vm, 'create.start', tick(), { state: 'building', taskState: 'spawning', withIps: false }), 'instance.create.start');
    nova(novaInstance(vm, 'create.end', tick()), 'instance.create.end');
  };

  const releaseAddress = (vm: Vm) => {
    const p = portOf(vm);
    const net = networks.find((n) => n.id === p.network);
    net?.free.push(Number(p.address.split('.').at(-1)));
  };

  const deleteVm = (vm: Vm) => {
    vms.splice(vms.indexOf(vm), 1);
    nova(novaInstance(vm, 'delete.start', tick(), { state: 'active', taskState: 'deleting' }), 'instance.delete.start');
    nova(novaInstance(vm, 'shutdown.start', tick(), { state: 'active', taskState: 'deleting' }), 'instance.shutdown.start');
    nova(novaInstance(vm, 'shutdown.end', tick(), { state: 'active', taskState: 'deleting', withIps: false }), 'instance.shutdown.end');
    // Neutron drops the floating association silently with the port.
    neutron(portMsg(vm, 'delete.end', tick()), 'port.delete.end');
    if (vm.fip !== undefined) {
      vm.fip.holder = undefined;
      vm.fip = undefined;
    }
    const at = tick();
    nova(novaInstance(vm, 'delete.end', at, { state: 'deleted', withIps: false, deletedAt: at }), 'instance.delete.end');
    releaseAddress(vm);
  };

  const associate = (fip: Fip, vm: Vm, kind: string) => {
    if (fip.holder !== undefined) fip.holder.fip = undefined;
    fip.holder = vm;
    vm.fip = fip;
    const p = portOf(vm);
    neutron(neutronFloatingIp(fip, 'update.end', tick(), { portId: p.portId, fixedAddress: p.address, instanceId: vm.id }), kind);
  };

  for (;;) {
    yield* out;
    out.length = 0;
    const r = rng.next();
    const fill = vms.length < activeTarget;
    if (vms.length === 0 || (fill && r < 0.5) || r < 0.12) {
      createVm();
    } else if (r < 0.24) {
      deleteVm(rng.pick(vms));
    } else if (r < 0.36) {
      const vm = rng.pick(vms);
      const action = vm.powered ? 'power_off' : 'power_on';
      vm.powered = !vm.powered;
      nova(novaInstance(vm, `${action}.start`, tick(), { state: vm.powered ? 'stopped' : 'active', taskState: vm.powered ? 'powering-on' : 'powering-off' }), `instance.${action}.start`);
      nova(novaInstance(vm, `${action}.end`, tick(), { state: vm.powered ? 'active' : 'stopped' }), `instance.${action}.end`);
    } else if (r < 0.46) {
      const vm = rng.pick(vms);
      nova(novaInstance(vm, 'update', tick()), 'instance.update');
    } else if (r < 0.52) {
      // Not an instance action the operator follows: recorded as evidence, otherwise ignored.
      const vm = rng.pick(vms);
      nova(novaInstance(vm, 'reboot.start', tick(), { taskState: 'rebooting' }), 'instance.reboot.start (ignored)');
      nova(novaInstance(vm, 'reboot.end', tick()), 'instance.reboot.end (ignored)');
    } else if (r < 0.58) {
      neutron(portMsg(rng.pick(vms), 'update.end', tick()), 'port.update.end');
    } else if (r < 0.70) {
      const vm = rng.pick(vms);
      if (vm.fip !== undefined) continue;
      let fip = allocated.find((f) => f.holder === undefined && rng.chance(0.3));
      if (fip === undefined && freeFips.length > 0) {
        fip = freeFips.splice(rng.int(freeFips.length), 1)[0]!;
        fip.project = vm.project;
        allocated.push(fip);
        neutron(neutronFloatingIp(fip, 'create.end', tick(), { portId: null }), 'floatingip.create.end');
      }
      if (fip !== undefined) associate(fip, vm, 'floatingip.update.end (associate)');
    } else if (r < 0.78) {
      const held = allocated.filter((f) => f.holder !== undefined);
      const target = rng.pick(vms);
      if (held.length === 0 || target.fip !== undefined) continue;
      associate(rng.pick(held), target, 'floatingip.update.end (move)');
    } else if (r < 0.86) {
      const held = allocated.filter((f) => f.holder !== undefined);
      if (held.length === 0) continue;
      const fip = rng.pick(held);
      fip.holder!.fip = undefined;
      fip.holder = undefined;
      neutron(neutronFloatingIp(fip, 'update.end', tick(), { portId: null }), 'floatingip.update.end (disassociate)');
    } else if (r < 0.9) {
      const idle = allocated.filter((f) => f.holder === undefined);
      if (idle.length === 0) continue;
      const fip = rng.pick(idle);
      allocated.splice(allocated.indexOf(fip), 1);
      freeFips.push(fip);
      neutron(neutronFloatingIp(fip, 'delete.end', tick(), { portId: null }), 'floatingip.delete.end');
    } else {
      const vm = rng.pick(vms);
      nova(novaInstance(vm, 'update', tick(), { state: vm.powered ? 'active' : 'stopped' }), 'instance.update');
    }
  }
}
