// Random cloud histories for the ledger's order-independence property. A
// seeded generator plays a small mixed fleet (Nova VMs in two tenant networks
// drawing from one private range, their Neutron ports and floating IPs,
// OpenNebula VMs with NICs, routers with gateway addresses) and emits the decoded notifications the intake
// would produce from the shared fixtures' shapes: versioned, legacy, or both
// formats for one Nova event; full or id-only Neutron deletes; lost port
// create events. It keeps its own ground truth of who held which address when,
// stated from what the emitted messages say.
import type { DecodedNotification, DomainEvent, InstanceAction, InstanceAddress } from '../../operator/domain/events.ts';
import type { AddressTrace } from '../../operator/ledger/trace.ts';

export interface TruthInterval {
  address: string;
  /** `kind:instance` as the property compares holders (`floating:-` for a floating IP on a port of no known instance). */
  label: string;
  from: number;
  to: number | null;
}

export interface History {
  seed: number;
  notifications: DecodedNotification[];
  truth: TruthInterval[];
  /** Addresses and times to ask about. */
  queries: Array<{ address: string; at: number }>;
}

/** mulberry32: small, fast and good enough to drive a generator reproducibly. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const T0 = Date.parse('2026-05-01T00:00:00Z');

type Format = 'versioned' | 'legacy' | 'both';

interface NovaPort { id: string; mac: string; address: string; network: string; since: number; truth: TruthInterval; createLost: boolean }
interface NovaVm { id: string; format: Format; ports: NovaPort[]; project: string }
interface Fip { id: string; address: string; port: NovaPort | undefined; vm: NovaVm | undefined; truth: TruthInterval | undefined }
interface Router { id: string; gateway: { address: string; truth: TruthInterval } | undefined }
interface OneVmState { id: number; nics: Array<{ nicId: number; address: string; truth: TruthInterval }>; nextNic: number }

export function generateHistory(seed: number, steps = 40): History {
  const r = rng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)] as T;
  const chance = (p: number) => r() < p;
  let now = T0 + seed * 1_000;
  const tick = () => { now += 1_000 + Math.floor(r() * 120_000); return now; };
  const notifications: DecodedNotification[] = [];
  const truth: TruthInterval[] = [];
  let msg = 0;
  let serial = 0;
  const cloud = 'gen';

  const emit = (source: DecodedNotification['source'], events: DomainEvent[], at: number, eventType: string) => {
    msg += 1;
    notifications.push({
      cloud, source, wire: source === 'opennebula' ? 'opennebula-hook-message' : 'oslo-v2', messageId: `s${seed}-m${msg}`, idKind: 'message-id', eventType,
      occurredAt: new Date(at), occurredAtSource: 'message', receivedAt: new Date(at), context: {}, events, ignored: false, warnings: [],
    });
  };
  const open = (address: string, label: string, from: number): TruthInterval => {
    const t: TruthInterval = { address, label, from, to: null };
    truth.push(t);
    return t;
  };
  const close = (t: TruthInterval | undefined, at: number) => { if (t !== undefined && t.to === null) t.to = at; };

  // Private addresses repeat across the two tenant networks; each network hands out a free one.
  const networks = ['net-tenant-1', 'net-tenant-2'];
  const privatePool = Array.from({ length: 6 }, (_, i) => `10.0.0.${i + 2}`);
  const publicPool = Array.from({ length: 5 }, (_, i) => `203.0.113.${i + 10}`);
  const onePool = Array.from({ length: 5 }, (_, i) => `198.51.100.${i + 20}`);
  const usedPrivate = new Map<string, Set<string>>(networks.map((n) => [n, new Set()]));
  const usedPublic = new Set<string>();
  const usedOne = new Set<string>();
  const free = (pool: string[], used: Set<string>) => { const f = pool.filter((a) => !used.has(a)); return f.length === 0 ? undefined : pick(f); };

  const vms: NovaVm[] = [];
  const fips: Fip[] = [];
  const ones: OneVmState[] = [];
  const routers: Router[] = [];
  const gatewayPool = Array.from({ length: 4 }, (_, i) => `172.25.0.${i + 3}`);
  const usedGateway = new Set<string>();
  const routerEvent = (r: Router, action: 'create.end' | 'update.end', at: number) => {
    emit('neutron', [{
      type: 'router', action, idOnly: false,
      router: { id: r.id, name: `edge-${r.id}`, project: 'p1', ...(r.gateway === undefined ? { gatewayIps: null } : { gatewayNetworkId: 'ext-net', gatewayIps: [r.gateway.address] }) },
    }], at, `router.${action}`);
  };
  const setGateway = (r: Router, at: number) => {
    const address = free(gatewayPool, usedGateway);
    if (address === undefined) return;
    usedGateway.add(address);
    r.gateway = { address, truth: open(address, 'router-gateway:-', at) };
  };
  const clearGateway = (r: Router, at: number) => {
    if (r.gateway === undefined) return;
    close(r.gateway.truth, at);
    usedGateway.delete(r.gateway.address);
    r.gateway = undefined;
  };

  const novaAddress = (p: NovaPort, legacy: boolean): InstanceAddress => ({
    address: p.address, version: 4, mac: p.mac, network: 'private', kind: 'fixed', ...(legacy ? {} : { portId: p.id }),
  });
  const instanceEvents = (vm: NovaVm, action: InstanceAction, at: number, o: { addresses?: 'all' | 'none'; authoritative: boolean; state?: string }) => {
    const formats: Array<'versioned' | 'legacy'> = vm.format === 'both' ? ['versioned', 'legacy'] : [vm.format];
    for (const f of formats) {
      const legacy = f === 'legacy';
      // Legacy delete.* carry no address list at all.
      const addresses = o.addresses === undefined || (legacy && action.startsWith('delete')) ? undefined : o.addresses === 'none' ? [] : vm.ports.map((p) => novaAddress(p, legacy));
      emit('nova', [{
        type: 'instance', action, format: f,
        instance: { id: vm.id, name: `vm-${vm.id}`, project: vm.project, user: 'u1', host: 'cmp-1', ...(o.state === undefined ? {} : { state: o.state }) },
        addresses, addressesAuthoritative: o.authoritative && addresses !== undefined, localDelete: false, notScheduled: false,
      }], at, legacy ? `compute.instance.${action}` : `instance.${action}`);
    }
  };
  const newPort = (vm: NovaVm): NovaPort | undefined => {
    const network = vm.ports[0]?.network ?? pick(networks);
    const used = usedPrivate.get(network) as Set<string>;
    const address = free(privatePool, used);
    if (address === undefined) return undefined;
    used.add(address);
    serial += 1;
    const at = tick();
    // A lost port.create.end leaves only Nova's port_uuid to link port and instance; legacy payloads name no port, so never for them.
    const port: NovaPort = {
      id: `port-${seed}-${serial}`, mac: `fa:16:3e:00:${(serial >> 8).toString(16).padStart(2, '0')}:${(serial & 255).toString(16).padStart(2, '0')}`, address, network, since: at,
      truth: open(address, `fixed:${vm.id}`, at), createLost: vm.format !== 'legacy' && chance(0.25),
    };
    if (!port.createLost) {
      emit('neutron', [{ type: 'port', action: 'create.end', port: { id: port.id, deviceId: vm.id, deviceOwner: 'compute:nova', networkId: network, mac: port.mac, project: vm.project, fixedIps: [{ address }] }, idOnly: false }], at, 'port.create.end');
    }
    return port;
  };
  const deletePort = (vm: NovaVm, port: NovaPort, at: number) => {
    const fip = fips.find((f) => f.port === port);
    const idOnly = chance(0.3);
    emit('neutron', [{
      type: 'port', action: 'delete.end',
      port: idOnly ? { id: port.id, fixedIps: [] } : { id: port.id, deviceId: vm.id, deviceOwner: 'compute:nova', networkId: port.network, mac: port.mac, project: vm.project, fixedIps: [{ address: port.address }] },
      idOnly,
    }], at, 'port.delete.end');
    close(port.truth, at);
    (usedPrivate.get(port.network) as Set<string>).delete(port.address);
    // Neutron disassociates the port's floating IP silently.
    if (fip !== undefined) { close(fip.truth, at); fip.port = undefined; fip.vm = undefined; fip.truth = undefined; }
  };
  const fipEvent = (fip: Fip, action: 'create.end' | 'update.end', at: number) => {
    const details = chance(0.5);
    emit('neutron', [{
      type: 'floatingip', action, idOnly: false,
      floatingIp: {
        id: fip.id, address: fip.address, networkId: 'ext-net', project: 'p-ext', portId: fip.port?.id ?? null,
        fixedAddress: fip.port?.address ?? null, ...(details && fip.vm !== undefined ? { instanceId: fip.vm.id } : {}),
      },
    }], at, `floatingip.${action}`);
  };
  const associate = (fip: Fip, at: number) => {
    const candidates = vms.flatMap((vm) => vm.ports.filter((p) => p !== fip.port && !fips.some((f) => f.port === p)).map((p) => ({ vm, p })));
    if (candidates.length === 0) return false;
    close(fip.truth, at);
    const { vm, p } = pick(candidates);
    fip.port = p;
    fip.vm = vm;
    fip.truth = open(fip.address, `floating:${vm.id}`, at);
    return true;
  };

  const actions: Array<() => void> = [
    // Boot a Nova VM: its port (Neutron, maybe lost), then create.end with the full list.
    () => {
      serial += 1;
      const vm: NovaVm = { id: `vm-${seed}-${serial}`, format: pick(['versioned', 'legacy', 'both'] as const), ports: [], project: pick(['p1', 'p2']) };
      const port = newPort(vm);
      if (port === undefined) return;
      vm.ports.push(port);
      // The earliest message naming the address starts the truth.
      const at = tick();
      if (port.createLost) port.truth.from = at;
      instanceEvents(vm, 'create.end', at, { addresses: 'all', authoritative: true, state: 'active' });
      vms.push(vm);
    },
    // Delete a VM (normal or with the compute service down: same messages to the ledger): delete.start, ports deleted, delete.end.
    () => {
      if (vms.length === 0) return;
      const vm = pick(vms);
      instanceEvents(vm, 'delete.start', tick(), { addresses: 'all', authoritative: true, state: 'active' });
      for (const p of vm.ports) deletePort(vm, p, tick());
      const end = tick();
      instanceEvents(vm, 'delete.end', end, { addresses: 'none', authoritative: false, state: 'deleted' });
      vms.splice(vms.indexOf(vm), 1);
    },
    // Interface attach: a second port, then interface_attach.end with the full list.
    () => {
      const vm = vms.find((v) => v.ports.length === 1);
      if (vm === undefined) return;
      const port = newPort(vm);
      if (port === undefined) return;
      vm.ports.push(port);
      const at = tick();
      if (port.createLost) port.truth.from = at;
      instanceEvents(vm, 'interface_attach.end', at, { addresses: 'all', authoritative: true, state: 'active' });
    },
    // Interface detach: Nova deletes the port it created, then reports the remaining list.
    () => {
      const vm = vms.find((v) => v.ports.length > 1);
      if (vm === undefined) return;
      const port = vm.ports.pop() as NovaPort;
      deletePort(vm, port, tick());
      instanceEvents(vm, 'interface_detach.end', tick(), { addresses: 'all', authoritative: true, state: 'active' });
    },
    // Allocate a floating IP, sometimes associated at creation (a re-created address reuses a deleted one's).
    () => {
      const address = free(publicPool, usedPublic);
      if (address === undefined) return;
      usedPublic.add(address);
      serial += 1;
      const fip: Fip = { id: `fip-${seed}-${serial}`, address, port: undefined, vm: undefined, truth: undefined };
      const at = tick();
      if (chance(0.5)) associate(fip, at);
      fipEvent(fip, 'create.end', at);
      fips.push(fip);
    },
    // Associate, or move in one update to another port.
    () => {
      if (fips.length === 0) return;
      const fip = pick(fips);
      const at = tick();
      if (associate(fip, at)) fipEvent(fip, 'update.end', at);
    },
    // Disassociate.
    () => {
      const fip = fips.find((f) => f.port !== undefined);
      if (fip === undefined) return;
      const at = tick();
      close(fip.truth, at);
      fip.port = undefined; fip.vm = undefined; fip.truth = undefined;
      fipEvent(fip, 'update.end', at);
    },
    // Release a floating IP, associated or not.
    () => {
      if (fips.length === 0) return;
      const fip = pick(fips);
      const at = tick();
      close(fip.truth, at);
      const idOnly = chance(0.3);
      emit('neutron', [{ type: 'floatingip', action: 'delete.end', idOnly, floatingIp: idOnly ? { id: fip.id } : { id: fip.id, address: fip.address, portId: fip.port?.id ?? null } }], at, 'floatingip.delete.end');
      fips.splice(fips.indexOf(fip), 1);
      usedPublic.delete(fip.address);
    },
    // A router, with its gateway (SNAT) address set at creation or later.
    () => {
      serial += 1;
      const r: Router = { id: `router-${seed}-${serial}`, gateway: undefined };
      const at = tick();
      if (chance(0.7)) setGateway(r, at);
      routerEvent(r, 'create.end', at);
      routers.push(r);
    },
    // Gateway cleared, set, or moved to another address in one update.
    () => {
      if (routers.length === 0) return;
      const r = pick(routers);
      const at = tick();
      clearGateway(r, at);
      if (chance(0.6)) setGateway(r, at);
      routerEvent(r, 'update.end', at);
    },
    // A router deleted: its gateway address goes with it.
    () => {
      if (routers.length === 0) return;
      const r = pick(routers);
      const at = tick();
      clearGateway(r, at);
      const idOnly = chance(0.4);
      emit('neutron', [{ type: 'router', action: 'delete.end', idOnly, router: idOnly ? { id: r.id } : { id: r.id, project: 'p1', gatewayIps: [] } }], at, 'router.delete.end');
      routers.splice(routers.indexOf(r), 1);
    },
    // OpenNebula: a VM comes up with one or two NICs.
    () => {
      serial += 1;
      const vm: OneVmState = { id: 1000 + serial, nics: [], nextNic: 0 };
      const at = tick();
      for (let k = 0; k < (chance(0.5) ? 2 : 1); k += 1) {
        const address = free(onePool, usedOne);
        if (address === undefined) break;
        usedOne.add(address);
        vm.nics.push({ nicId: vm.nextNic++, address, truth: open(address, `nic:${vm.id}`, at) });
      }
      if (vm.nics.length === 0) return;
      oneEvent(vm, at, [3, 'ACTIVE'], [3, 'RUNNING']);
      ones.push(vm);
    },
    // OpenNebula: hot-detach a NIC (the next state document no longer lists it).
    () => {
      const vm = ones.find((v) => v.nics.length > 1);
      if (vm === undefined) return;
      const at = tick();
      const nic = vm.nics.shift() as OneVmState['nics'][number];
      close(nic.truth, at);
      usedOne.delete(nic.address);
      oneEvent(vm, at, [3, 'ACTIVE'], [25, 'HOTPLUG_NIC']);
    },
    // OpenNebula: terminate; DONE ends every NIC address.
    () => {
      if (ones.length === 0) return;
      const vm = pick(ones);
      const epilog = tick();
      oneEvent(vm, epilog, [3, 'ACTIVE'], [11, 'EPILOG']);
      const at = tick();
      for (const nic of vm.nics) { close(nic.truth, at); usedOne.delete(nic.address); }
      oneEvent(vm, at, [6, 'DONE'], [0, 'LCM_INIT']);
      ones.splice(ones.indexOf(vm), 1);
    },
  ];
  function oneEvent(vm: OneVmState, at: number, state: [number, string], lcm: [number, string]) {
    emit('opennebula', [{
      type: 'one_vm',
      vm: {
        id: vm.id, name: `one-${vm.id}`, uid: 5, uname: 'bob', gid: 100, gname: 'physics', stime: new Date(T0), disks: [], host: 'kvm-1',
        state: { code: state[0], name: state[1] }, lcmState: { code: lcm[0], name: lcm[1] },
        ...(state[0] === 6 ? { etime: new Date(at) } : {}),
        nics: vm.nics.map((n) => ({ nicId: n.nicId, ip: n.address, mac: `02:00:c6:33:64:${n.nicId}`, network: 'public', alias: false })),
      },
    }], at, 'opennebula.vm.state');
  }

  for (let i = 0; i < steps; i += 1) pick(actions)();

  const times = [...new Set(notifications.map((n) => n.occurredAt.getTime()))];
  const queries: History['queries'] = [];
  const addresses = [...new Set(truth.map((t) => t.address))];
  for (const address of addresses) {
    const edges = truth.filter((t) => t.address === address).flatMap((t) => (t.to === null ? [t.from] : [t.from, t.to]));
    for (const e of edges) queries.push({ address, at: e - 1 }, { address, at: e });
    for (let k = 0; k < 3; k += 1) queries.push({ address, at: pick(times) + 1 });
  }
  return { seed, notifications, truth, queries };
}

/** The ground truth's answer: sorted, de-duplicated `kind:instance` labels. */
export function truthAt(h: History, address: string, at: number): string[] {
  return [...new Set(h.truth.filter((t) => t.address === address && t.from <= at && (t.to === null || t.to > at)).map((t) => t.label))].sort();
}

/** The ledger's answer in the same terms. */
export function labels(trace: AddressTrace): string[] {
  return [...new Set(trace.holders.map((h) => `${h.kind}:${h.instance?.id ?? '-'}`))].sort();
}

/** Arrival schedules of one history: event order, shuffled, shuffled in random separate batches with duplicates. */
export function schedules(h: History, seed: number): Array<{ name: string; batches: DecodedNotification[][] }> {
  const r = rng(seed ^ 0x5eed);
  const shuffle = <T>(xs: readonly T[]): T[] => {
    const out = [...xs];
    for (let i = out.length - 1; i > 0; i -= 1) {
      const j = Math.floor(r() * (i + 1));
      [out[i], out[j]] = [out[j] as T, out[i] as T];
    }
    return out;
  };
  const split = (xs: readonly DecodedNotification[]): DecodedNotification[][] => {
    const out: DecodedNotification[][] = [[]];
    for (const x of xs) {
      if (r() < 0.3) out.push([]);
      (out.at(-1) as DecodedNotification[]).push(x);
    }
    return out.filter((b) => b.length > 0);
  };
  const withDuplicates = (xs: readonly DecodedNotification[]) => shuffle([...xs, ...xs.filter(() => r() < 0.3)]);
  return [
    { name: 'event order', batches: [h.notifications] },
    { name: 'reversed', batches: [[...h.notifications].reverse()] },
    { name: 'shuffled', batches: [shuffle(h.notifications)] },
    { name: 'shuffled, split, duplicated', batches: split(withDuplicates(h.notifications)) },
    { name: 'one by one, shuffled, duplicated', batches: withDuplicates(h.notifications).map((n) => [n]) },
  ];
}
