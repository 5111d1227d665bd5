// Random cloud histories for the ledger's order-independence property. A
// seeded generator plays a small mixed fleet (Nova VMs in two tenant networks
// drawing from one private range, their Neutron ports and floating IPs,
// OpenNebula VMs with NICs, routers with gateway addresses) and emits the raw
// deliveries the clouds would put on the bus, in the shared fixtures' formats
// (test/support/cloud-messages.ts): Nova versioned, legacy, or both for one
// event; oslo 2.0 envelopes or bare v1 messages; full or id-only Neutron
// deletes; lost port create events; OpenNebula hook documents (bare, base64
// or in a HOOK_MESSAGE) whose times are whole seconds, so that a hot NIC
// detach often reports HOTPLUG_NIC and RUNNING in the same second as each
// other and as the document before. The property runs them through the
// intake's real decoders. The generator keeps its own ground truth of who held
// which address when, stated from what the messages say.
import type { AddressTrace } from '../../operator/ledger/trace.ts';
import type { Recorded } from '../../operator/ledger/apply.ts';
import {
  neutronFloatingIpMessage, neutronPortMessage, neutronRouterMessage, novaLegacyMessage, novaVersionedMessage, osloEnvelope,
  type NeutronFloatingIpView, type NeutronPortView, type NovaInstanceView,
} from '../sim/openstack-messages.ts';
import { decodeRaw, oneDelivery, osloDelivery, osloWire, type OneForm, type OneHistory, type OneVmDoc, type OsloWire, type RawMessage } from './cloud-messages.ts';

export interface TruthInterval {
  address: string;
  /** `kind:instance` as the property compares holders (`floating:-` for a floating IP on a port of no known instance). */
  label: string;
  from: number;
  to: number | null;
}

export interface History {
  seed: number;
  /** In event order. */
  messages: RawMessage[];
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

/** A history's messages through the intake's decoders, for cloud `cloud`. */
export function decodeHistory(h: History, cloud: string): Recorded[] {
  return h.messages.map((m) => decodeRaw(m, cloud));
}

const T0 = Date.parse('2026-05-01T00:00:00Z');

type Format = 'versioned' | 'legacy' | 'both';

interface NovaPort { id: string; mac: string; address: string; network: string; since: number; truth: TruthInterval; createLost: boolean }
interface NovaVm { id: string; format: Format; ports: NovaPort[]; project: string; createdAt: Date }
interface Fip { id: string; address: string; port: NovaPort | undefined; vm: NovaVm | undefined; truth: TruthInterval | undefined }
interface Router { id: string; gateway: { address: string; truth: TruthInterval } | undefined }
interface OneNicState { nicId: number; address: string; truth: TruthInterval }
interface OneVmState { id: number; nics: OneNicState[]; nextNic: number; history: OneHistory[]; state: [number, number]; lastAt: number; stime: number }

export function generateHistory(seed: number, steps = 40): History {
  const r = rng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)] as T;
  const chance = (p: number) => r() < p;
  let now = T0 + seed * 1_000;
  const tick = () => { now += 1_000 + Math.floor(r() * 120_000); return now; };
  const messages: RawMessage[] = [];
  const truth: TruthInterval[] = [];
  let msg = 0;
  let serial = 0;
  const messageId = () => { msg += 1; return `s${seed}-m${msg}`; };
  // Delivered a little after the event; the receive time is evidence, not the event time.
  const received = (at: number) => new Date(at + 50 + Math.floor(r() * 2_000));
  const wire = (): OsloWire => (chance(0.25) ? 'v1' : 'v2');

  const emitOslo = (exchange: 'nova' | 'neutron', envelope: string, at: number) => {
    messages.push(osloDelivery(osloWire(envelope, wire()), exchange, received(at)));
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
  const neutron = { publisher: 'network.controller', context: { userId: 'u-admin', projectId: 'p1' } };
  const iso = (at: number) => new Date(Math.floor(at / 1000) * 1000);

  const routerEvent = (rt: Router, action: 'create.end' | 'update.end' | 'delete.end', at: number) => {
    emitOslo('neutron', neutronRouterMessage({
      id: rt.id, name: `edge-${rt.id}`, project: 'p1', createdAt: iso(T0), updatedAt: iso(at), revision: msg,
      gateway: rt.gateway === undefined ? null : { networkId: 'ext-net', subnetId: 'ext-subnet', addresses: [rt.gateway.address] },
    }, action, new Date(at), { ...neutron, messageId: messageId() }), at);
  };
  const setGateway = (rt: Router, at: number) => {
    const address = free(gatewayPool, usedGateway);
    if (address === undefined) return;
    usedGateway.add(address);
    rt.gateway = { address, truth: open(address, 'router-gateway:-', at) };
  };
  const clearGateway = (rt: Router, at: number) => {
    if (rt.gateway === undefined) return;
    close(rt.gateway.truth, at);
    usedGateway.delete(rt.gateway.address);
    rt.gateway = undefined;
  };

  const novaView = (vm: NovaVm, state: string, addresses: 'all' | 'none', at: number): NovaInstanceView => ({
    uuid: vm.id, displayName: `vm-${vm.id}`, project: vm.project, user: 'u1', host: 'cmp-1', node: 'cmp-1', imageUuid: 'img-1',
    flavor: { flavorid: '1', name: 'm1.small', rootGb: 1, ephemeralGb: 0, swap: 0, vcpus: 1, memoryMb: 512 },
    state, taskState: null, powerState: state === 'deleted' ? 'shutdown' : 'running', createdAt: vm.createdAt, launchedAt: vm.createdAt,
    updatedAt: new Date(at), terminatedAt: state === 'deleted' ? new Date(at) : null, deletedAt: state === 'deleted' ? new Date(at) : null,
    addresses: addresses === 'none' ? [] : vm.ports.map((p) => ({ portId: p.id, address: p.address, mac: p.mac, network: 'private' })),
    blockDevices: [], availabilityZone: 'nova', keyName: null, metadata: {}, reservationId: `r-${vm.id}`, instanceName: `instance-${vm.id}`, tags: [],
  });
  const instanceEvents = (vm: NovaVm, action: string, at: number, addresses: 'all' | 'none', state: string) => {
    const actor = { user: 'u1', project: vm.project, requestId: `req-${seed}-${msg}` };
    if (vm.format !== 'legacy') {
      emitOslo('nova', novaVersionedMessage(novaView(vm, state, addresses, at), `instance.${action}`, new Date(at), {
        publisher: 'nova-compute:cmp-1', actor, kind: action.startsWith('create.') ? 'create' : 'action', messageId: messageId(),
      }), at);
    }
    if (vm.format !== 'versioned') {
      // Legacy delete.* carry no address list at all.
      emitOslo('nova', novaLegacyMessage(novaView(vm, state, addresses, at), `compute.instance.${action}`, new Date(at), {
        publisher: 'compute.cmp-1', actor, withFixedIps: !action.startsWith('delete'), messageId: messageId(),
      }), at);
    }
  };
  const portView = (vm: NovaVm, p: NovaPort, at: number): NeutronPortView => ({
    id: p.id, name: '', networkId: p.network, project: vm.project, mac: p.mac, fixedIps: [{ address: p.address, subnetId: `sub-${p.network}` }],
    deviceId: vm.id, deviceOwner: 'compute:nova', bindingHost: 'cmp-1', status: 'ACTIVE', createdAt: iso(p.since), updatedAt: iso(at), revision: 1,
  });
  // Nova creates and deletes an instance's ports with its service user.
  const novaService = { publisher: 'network.controller', context: { userId: 'nova-service', projectId: 'service' } };
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
    if (!port.createLost) emitOslo('neutron', neutronPortMessage(portView(vm, port, at), 'create.end', new Date(at), { ...novaService, messageId: messageId() }), at);
    return port;
  };
  const deletePort = (vm: NovaVm, port: NovaPort, at: number) => {
    const fip = fips.find((f) => f.port === port);
    // Before Neutron 9.0 delete.end named only the id.
    const envelope = chance(0.3)
      ? osloEnvelope({ publisher: 'network.controller', eventType: 'port.delete.end', at: new Date(at), payload: { port_id: port.id }, messageId: messageId(), context: novaService.context })
      : neutronPortMessage(portView(vm, port, at), 'delete.end', new Date(at), { ...novaService, messageId: messageId() });
    emitOslo('neutron', envelope, at);
    close(port.truth, at);
    (usedPrivate.get(port.network) as Set<string>).delete(port.address);
    // Neutron disassociates the port's floating IP silently.
    if (fip !== undefined) { close(fip.truth, at); fip.port = undefined; fip.vm = undefined; fip.truth = undefined; }
  };
  const fipView = (fip: Fip, at: number, details: boolean): NeutronFloatingIpView => ({
    id: fip.id, address: fip.address, floatingNetworkId: 'ext-net', project: 'p-ext', portId: fip.port?.id ?? null, fixedAddress: fip.port?.address ?? null,
    routerId: fip.port === undefined ? null : 'router-x', status: fip.port === undefined ? 'DOWN' : 'ACTIVE', description: '', createdAt: iso(T0), updatedAt: iso(at), revision: msg,
    portDetails: details && fip.port !== undefined && fip.vm !== undefined
      ? { deviceId: fip.vm.id, deviceOwner: 'compute:nova', mac: fip.port.mac, networkId: fip.port.network, status: 'ACTIVE', name: '' } : null,
  });
  const fipEvent = (fip: Fip, action: 'create.end' | 'update.end', at: number) => {
    // Neutron before fip-port-details names no instance.
    emitOslo('neutron', neutronFloatingIpMessage(fipView(fip, at, chance(0.5)), action, new Date(at), { ...neutron, messageId: messageId() }), at);
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

  // OpenNebula: times are whole seconds (the hook's x-published-at). A state
  // often follows the VM's previous one within the same second.
  const oneForm = (): OneForm => pick(['vm', 'vm', 'vm-base64', 'hook-message'] as const);
  const oneAt = (vm: OneVmState | undefined, sameSecond: number): number => {
    if (vm !== undefined && chance(sameSecond)) return vm.lastAt;
    return Math.floor(tick() / 1000) * 1000;
  };
  const oneEvent = (vm: OneVmState, at: number, state: [number, number], listed: Array<{ nicId: number; address: string; attach?: boolean }>) => {
    vm.lastAt = at;
    const [prevState, prevLcm] = vm.state;
    vm.state = state;
    const doc: OneVmDoc = {
      id: vm.id, name: `one-${vm.id}`, uid: 5, uname: 'bob', gid: 100, gname: 'physics', state: state[0], lcmState: state[1], prevState, prevLcmState: prevLcm,
      stime: vm.stime, etime: state[0] === 6 ? at / 1000 : 0, deployId: `dom-${vm.id}`, host: 'kvm-1',
      nics: listed.map((n) => ({ nicId: n.nicId, ip: n.address, network: 'public', ...(n.attach === true ? { attach: true } : {}) })),
      history: vm.history.map((h) => ({ ...h })),
    };
    messages.push(oneDelivery(doc, at, oneForm(), received(at)));
  };
  /** oned's close_cp_history: a hot NIC operation closes the current history record and opens the next. */
  const newRecord = (vm: OneVmState, at: number, action: number) => {
    const h = vm.history.at(-1) as OneHistory;
    const previous = h.action;
    h.etime = at / 1000; h.retime = at / 1000; h.action = action; h.uid = 5; h.gid = 100; h.requestId = 7000 + msg;
    vm.history.push({ seq: h.seq + 1, stime: at / 1000, etime: 0, rstime: at / 1000, retime: 0, estime: 0, action: previous, uid: -1, gid: -1, requestId: -1 });
  };
  const RUNNING: [number, number] = [3, 3];
  const HOTPLUG_NIC: [number, number] = [3, 25];

  const actions: Array<() => void> = [
    // Boot a Nova VM: its port (Neutron, maybe lost), then create.end with the full list.
    () => {
      serial += 1;
      const vm: NovaVm = { id: `vm-${seed}-${serial}`, format: pick(['versioned', 'legacy', 'both'] as const), ports: [], project: pick(['p1', 'p2']), createdAt: iso(now) };
      const port = newPort(vm);
      if (port === undefined) return;
      vm.ports.push(port);
      // The earliest message naming the address starts the truth.
      const at = tick();
      if (port.createLost) port.truth.from = at;
      instanceEvents(vm, 'create.end', at, 'all', 'active');
      vms.push(vm);
    },
    // Delete a VM (normal or with the compute service down: same messages to the ledger): delete.start, ports deleted, delete.end.
    () => {
      if (vms.length === 0) return;
      const vm = pick(vms);
      instanceEvents(vm, 'delete.start', tick(), 'all', 'active');
      for (const p of vm.ports) deletePort(vm, p, tick());
      instanceEvents(vm, 'delete.end', tick(), 'none', 'deleted');
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
      instanceEvents(vm, 'interface_attach.end', at, 'all', 'active');
    },
    // Interface detach: Nova deletes the port it created, then reports the remaining list.
    () => {
      const vm = vms.find((v) => v.ports.length > 1);
      if (vm === undefined) return;
      const port = vm.ports.pop() as NovaPort;
      deletePort(vm, port, tick());
      instanceEvents(vm, 'interface_detach.end', tick(), 'all', 'active');
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
      const envelope = chance(0.3)
        ? osloEnvelope({ publisher: 'network.controller', eventType: 'floatingip.delete.end', at: new Date(at), payload: { floatingip_id: fip.id }, messageId: messageId(), context: neutron.context })
        : neutronFloatingIpMessage(fipView(fip, at, false), 'delete.end', new Date(at), { ...neutron, messageId: messageId() });
      emitOslo('neutron', envelope, at);
      fips.splice(fips.indexOf(fip), 1);
      usedPublic.delete(fip.address);
    },
    // A router, with its gateway (SNAT) address set at creation or later.
    () => {
      serial += 1;
      const rt: Router = { id: `router-${seed}-${serial}`, gateway: undefined };
      const at = tick();
      if (chance(0.7)) setGateway(rt, at);
      routerEvent(rt, 'create.end', at);
      routers.push(rt);
    },
    // Gateway cleared, set, or moved to another address in one update.
    () => {
      if (routers.length === 0) return;
      const rt = pick(routers);
      const at = tick();
      clearGateway(rt, at);
      if (chance(0.6)) setGateway(rt, at);
      routerEvent(rt, 'update.end', at);
    },
    // A router deleted: its gateway address goes with it.
    () => {
      if (routers.length === 0) return;
      const rt = pick(routers);
      const at = tick();
      clearGateway(rt, at);
      if (chance(0.4)) {
        emitOslo('neutron', osloEnvelope({ publisher: 'network.controller', eventType: 'router.delete.end', at: new Date(at), payload: { router_id: rt.id }, messageId: messageId(), context: neutron.context }), at);
      } else {
        routerEvent(rt, 'delete.end', at);
      }
      routers.splice(routers.indexOf(rt), 1);
    },
    // OpenNebula: a VM comes up (RUNNING) with one or two NICs.
    () => {
      serial += 1;
      const at = oneAt(undefined, 0);
      const vm: OneVmState = {
        id: 1000 + serial, nics: [], nextNic: 0, state: [1, 0], lastAt: at, stime: at / 1000 - 20,
        history: [{ seq: 0, stime: at / 1000 - 15, etime: 0, rstime: at / 1000, retime: 0, estime: 0, action: 0, uid: -1, gid: -1, requestId: -1 }],
      };
      for (let k = 0; k < (chance(0.5) ? 2 : 1); k += 1) {
        const address = free(onePool, usedOne);
        if (address === undefined) break;
        usedOne.add(address);
        vm.nics.push({ nicId: vm.nextNic++, address, truth: open(address, `nic:${vm.id}`, at) });
      }
      if (vm.nics.length === 0) return;
      oneEvent(vm, at, RUNNING, vm.nics);
      ones.push(vm);
    },
    // OpenNebula: hot-attach a NIC: HOTPLUG_NIC lists it (ATTACH = YES), then RUNNING lists it, or not when the attach failed.
    () => {
      const vm = ones.find((v) => v.nics.length === 1);
      if (vm === undefined) return;
      const address = free(onePool, usedOne);
      if (address === undefined) return;
      usedOne.add(address);
      // Not back in the VM's last second: the address may have been another VM's until now.
      const at = oneAt(vm, 0);
      newRecord(vm, at, 23);
      const nic = { nicId: vm.nextNic++, address, truth: open(address, `nic:${vm.id}`, at) };
      oneEvent(vm, at, HOTPLUG_NIC, [...vm.nics, { ...nic, attach: true }]);
      const end = oneAt(vm, 0.7);
      if (chance(0.2)) {
        close(nic.truth, end);
        usedOne.delete(address);
      } else {
        vm.nics.push(nic);
      }
      oneEvent(vm, end, RUNNING, vm.nics);
    },
    // OpenNebula: hot-detach a NIC: HOTPLUG_NIC still lists it (ATTACH = YES), the RUNNING after it no longer does;
    // both most often in the second of the VM's previous state.
    () => {
      const vm = ones.find((v) => v.nics.length > 1);
      if (vm === undefined) return;
      const at = oneAt(vm, 0.5);
      newRecord(vm, at, 24);
      const k = Math.floor(r() * vm.nics.length);
      const nic = vm.nics[k] as OneNicState;
      oneEvent(vm, at, HOTPLUG_NIC, vm.nics.map((n) => (n === nic ? { ...n, attach: true } : n)));
      vm.nics.splice(k, 1);
      const end = oneAt(vm, 0.8);
      close(nic.truth, end);
      usedOne.delete(nic.address);
      oneEvent(vm, end, RUNNING, vm.nics);
    },
    // OpenNebula: terminate (SHUTDOWN, EPILOG, DONE); DONE ends every NIC address.
    () => {
      if (ones.length === 0) return;
      const vm = pick(ones);
      const h = vm.history.at(-1) as OneHistory;
      h.action = 27; h.uid = 5; h.gid = 100; h.requestId = 9000 + msg;
      oneEvent(vm, oneAt(vm, 0.3), [3, 12], vm.nics);
      const epilog = oneAt(vm, 0.5);
      h.retime = epilog / 1000; h.estime = epilog / 1000;
      oneEvent(vm, epilog, [3, 11], vm.nics);
      const at = oneAt(vm, 0.5);
      h.etime = at / 1000;
      for (const nic of vm.nics) { close(nic.truth, at); usedOne.delete(nic.address); }
      oneEvent(vm, at, [6, 0], vm.nics);
      ones.splice(ones.indexOf(vm), 1);
    },
  ];

  for (let i = 0; i < steps; i += 1) pick(actions)();

  const times = [...new Set(truth.flatMap((t) => (t.to === null ? [t.from] : [t.from, t.to])))];
  const queries: History['queries'] = [];
  const addresses = [...new Set(truth.map((t) => t.address))];
  for (const address of addresses) {
    const edges = truth.filter((t) => t.address === address).flatMap((t) => (t.to === null ? [t.from] : [t.from, t.to]));
    for (const e of edges) queries.push({ address, at: e - 1 }, { address, at: e });
    for (let k = 0; k < 3; k += 1) queries.push({ address, at: pick(times) + 1 });
  }
  return { seed, messages, truth, queries };
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
export function schedules(h: History, seed: number): Array<{ name: string; batches: RawMessage[][] }> {
  const r = rng(seed ^ 0x5eed);
  const shuffle = <T>(xs: readonly T[]): T[] => {
    const out = [...xs];
    for (let i = out.length - 1; i > 0; i -= 1) {
      const j = Math.floor(r() * (i + 1));
      [out[i], out[j]] = [out[j] as T, out[i] as T];
    }
    return out;
  };
  const split = (xs: readonly RawMessage[]): RawMessage[][] => {
    const out: RawMessage[][] = [[]];
    for (const x of xs) {
      if (r() < 0.3) out.push([]);
      (out.at(-1) as RawMessage[]).push(x);
    }
    return out.filter((b) => b.length > 0);
  };
  const withDuplicates = (xs: readonly RawMessage[]) => shuffle([...xs, ...xs.filter(() => r() < 0.3)]);
  return [
    { name: 'event order', batches: [h.messages] },
    { name: 'reversed', batches: [[...h.messages].reverse()] },
    { name: 'shuffled', batches: [shuffle(h.messages)] },
    { name: 'shuffled, split, duplicated', batches: split(withDuplicates(h.messages)) },
    { name: 'one by one, shuffled, duplicated', batches: withDuplicates(h.messages).map((n) => [n]) },
  ];
}
