// A Neutron stand-in: ports and floating IPs with the notifications Neutron's
// API layer publishes for them (exchange `neutron`, topic `notifications`),
// including the one it does not publish: deleting a port clears the floating
// IP associated with it internally, and only `port.delete.end` goes out.
import { randomBytes, randomUUID } from 'node:crypto';
import { SimBus } from './bus.ts';
import {
  neutronFloatingIpMessage, neutronPortMessage, neutronRouterMessage, type NeutronFloatingIpView, type NeutronPortView, type NeutronRouterView,
} from './openstack-messages.ts';
import { SimTimeline, systemClock, type SimClock } from './timeline.ts';

export interface NeutronActor {
  userId: string | null;
  projectId: string | null;
}

export interface NeutronSimOptions {
  /** Either a broker URL (the simulator opens and closes its own connection) or a shared bus. */
  amqpUrl?: string;
  bus?: SimBus;
  /** Neutron's control_exchange. */
  exchange?: string;
  /** `[oslo_messaging_notifications] topics`; the routing key is `<topic>.info`. */
  topic?: string;
  /** The API node: publisher `network.<host>`. */
  host?: string;
  clock?: SimClock;
  timeline?: SimTimeline;
  /** Neutron publishes `.start` before every API operation too; off to see only `.end`. */
  startEvents?: boolean;
  /** Declare oslo's default queue `<topic>.info` on the exchange, as the real notifier does. */
  defaultQueues?: boolean;
  /** The service user Nova talks to Neutron as (it shows in the context of port events Nova causes). */
  novaServiceActor?: NeutronActor;
  /** The external network floating IPs come from. */
  externalNetworkId?: string;
  /** First three octets of floating addresses, e.g. `203.0.113`. */
  floatingPrefix?: string;
}

export interface CreatePortRequest {
  project: string;
  /** Network label; each label gets its own network and subnet (10.<n>.0.0/24). */
  network?: string;
  id?: string;
  name?: string;
  address?: string;
  mac?: string;
  /** Instance UUID for a bound port; absent for a port made ahead by a user. */
  deviceId?: string;
  deviceOwner?: string;
  host?: string | null;
  /** Who calls the API (the context of the notifications). Default: the project's own user `user-<project>`. */
  actor?: NeutronActor;
}

interface Network {
  id: string;
  subnetId: string;
  index: number;
  next: number;
}

function snapshotPort(p: NeutronPortView): NeutronPortView {
  return { ...p, fixedIps: p.fixedIps.map((f) => ({ ...f })) };
}

function snapshotFip(f: NeutronFloatingIpView): NeutronFloatingIpView {
  return { ...f, portDetails: f.portDetails === null ? null : { ...f.portDetails } };
}

export class NeutronSim {
  readonly timeline: SimTimeline;
  readonly exchange: string;
  readonly routingKey: string;
  readonly publisher: string;
  readonly novaServiceActor: NeutronActor;
  readonly #bus: SimBus;
  readonly #ownBus: boolean;
  readonly #clock: SimClock;
  readonly #startEvents: boolean;
  readonly #externalNetworkId: string;
  readonly #floatingPrefix: string;
  readonly #routerId = randomUUID();
  readonly #networks = new Map<string, Network>();
  readonly #ports = new Map<string, NeutronPortView>();
  readonly #fips = new Map<string, NeutronFloatingIpView>();
  readonly #routers = new Map<string, NeutronRouterView>();
  #nextFloating = 10;

  private constructor(bus: SimBus, ownBus: boolean, options: NeutronSimOptions) {
    this.#bus = bus;
    this.#ownBus = ownBus;
    this.#clock = options.clock ?? systemClock;
    this.timeline = options.timeline ?? new SimTimeline(this.#clock);
    this.exchange = options.exchange ?? 'neutron';
    this.routingKey = `${options.topic ?? 'notifications'}.info`;
    this.publisher = `network.${options.host ?? 'controller-1'}`;
    this.#startEvents = options.startEvents ?? true;
    this.novaServiceActor = options.novaServiceActor ?? { userId: 'nova-service-user', projectId: 'service' };
    this.#externalNetworkId = options.externalNetworkId ?? randomUUID();
    this.#floatingPrefix = options.floatingPrefix ?? '203.0.113';
  }

  static async start(options: NeutronSimOptions): Promise<NeutronSim> {
    let bus = options.bus;
    const own = bus === undefined;
    if (bus === undefined) {
      if (options.amqpUrl === undefined) throw new Error('NeutronSim needs amqpUrl or bus');
      bus = await SimBus.connect(options.amqpUrl);
    }
    const sim = new NeutronSim(bus, own, options);
    await bus.exchange(sim.exchange);
    if (options.defaultQueues === true) await bus.defaultQueue(sim.exchange, sim.routingKey);
    return sim;
  }

  async stop(): Promise<void> {
    if (this.#ownBus) await this.#bus.close();
  }

  get externalNetworkId(): string {
    return this.#externalNetworkId;
  }

  port(id: string): NeutronPortView | undefined {
    const p = this.#ports.get(id);
    return p === undefined ? undefined : snapshotPort(p);
  }

  ports(): NeutronPortView[] {
    return [...this.#ports.values()].map(snapshotPort);
  }

  floatingIp(id: string): NeutronFloatingIpView | undefined {
    const f = this.#fips.get(id);
    return f === undefined ? undefined : snapshotFip(f);
  }

  floatingIps(): NeutronFloatingIpView[] {
    return [...this.#fips.values()].map(snapshotFip);
  }

  routers(): NeutronRouterView[] {
    return [...this.#routers.values()].map((r) => ({ ...r, gateway: r.gateway === null ? null : { ...r.gateway, addresses: [...r.gateway.addresses] } }));
  }

  /** POST /v2.0/routers, with a gateway on the external network when `gateway` is true (its address from the floating range). */
  async createRouter(req: { project: string; name?: string; gateway?: boolean; actor?: NeutronActor }): Promise<NeutronRouterView> {
    const now = this.#clock.now();
    const r: NeutronRouterView = {
      id: randomUUID(), name: req.name ?? 'router', project: req.project, createdAt: now, updatedAt: now, revision: 1,
      gateway: req.gateway === true ? { networkId: this.#externalNetworkId, subnetId: `${this.#externalNetworkId}-subnet`, addresses: [`${this.#floatingPrefix}.${this.#nextFloating++}`] } : null,
    };
    this.#routers.set(r.id, r);
    this.timeline.record({ source: 'neutron', kind: 'router-created', detail: { routerId: r.id, gateway: r.gateway?.addresses } });
    await this.#publishRouter(r, 'create.end', this.#actorFor(req.project, req.actor));
    return { ...r };
  }

  /** PUT /v2.0/routers/{id}: sets (a new address) or clears the gateway. */
  async setRouterGateway(id: string, gateway: boolean, options: { actor?: NeutronActor } = {}): Promise<NeutronRouterView> {
    const r = this.#routers.get(id);
    if (r === undefined) throw new Error(`no router ${id}`);
    r.gateway = gateway ? { networkId: this.#externalNetworkId, subnetId: `${this.#externalNetworkId}-subnet`, addresses: [`${this.#floatingPrefix}.${this.#nextFloating++}`] } : null;
    Object.assign(r, { updatedAt: this.#clock.now(), revision: r.revision + 1 });
    this.timeline.record({ source: 'neutron', kind: 'router-updated', detail: { routerId: id, gateway: r.gateway?.addresses } });
    await this.#publishRouter(r, 'update.end', this.#actorFor(r.project, options.actor));
    return { ...r };
  }

  async deleteRouter(id: string, options: { actor?: NeutronActor } = {}): Promise<void> {
    const r = this.#routers.get(id);
    if (r === undefined) throw new Error(`no router ${id}`);
    this.#routers.delete(id);
    this.timeline.record({ source: 'neutron', kind: 'router-deleted', detail: { routerId: id } });
    await this.#publishRouter(r, 'delete.end', this.#actorFor(r.project, options.actor));
  }

  async #publishRouter(r: NeutronRouterView, phase: 'create.end' | 'update.end' | 'delete.end', actor: NeutronActor): Promise<void> {
    const at = this.#clock.now();
    const messageId = randomUUID();
    await this.#bus.publish(this.exchange, this.routingKey, neutronRouterMessage(r, phase, at, { publisher: this.publisher, context: actor, messageId }));
    this.timeline.record({ source: 'neutron', kind: 'notification', eventType: `router.${phase}`, at, detail: { exchange: this.exchange, routingKey: this.routingKey, messageId, routerId: r.id, publisher: this.publisher } });
  }

  /** The network id behind a label (created on first use). */
  networkId(label: string): string {
    return this.#network(label).id;
  }

  /** The label a network id was created for. */
  networkLabel(networkId: string): string | undefined {
    for (const [label, n] of this.#networks) if (n.id === networkId) return label;
    return undefined;
  }

  #network(label: string): Network {
    let n = this.#networks.get(label);
    if (n === undefined) {
      n = { id: randomUUID(), subnetId: randomUUID(), index: this.#networks.size, next: 3 };
      this.#networks.set(label, n);
    }
    return n;
  }

  #actorFor(project: string, actor: NeutronActor | undefined): NeutronActor {
    return actor ?? { userId: `user-${project}`, projectId: project };
  }

  async #publishPort(p: NeutronPortView, phase: 'create.start' | 'create.end' | 'update.start' | 'update.end' | 'delete.start' | 'delete.end', actor: NeutronActor, request?: Record<string, unknown>): Promise<void> {
    if (phase.endsWith('.start') && !this.#startEvents) return;
    const at = this.#clock.now();
    const messageId = randomUUID();
    const body = neutronPortMessage(p, phase, at, {
      publisher: this.publisher, context: actor, messageId, ...(request === undefined ? {} : { request }),
    });
    await this.#bus.publish(this.exchange, this.routingKey, body);
    this.timeline.record({
      source: 'neutron', kind: 'notification', eventType: `port.${phase}`, instance: p.deviceId === '' ? undefined : p.deviceId, at,
      detail: { exchange: this.exchange, routingKey: this.routingKey, messageId, portId: p.id, publisher: this.publisher },
    });
  }

  async #publishFip(f: NeutronFloatingIpView, phase: 'create.start' | 'create.end' | 'update.start' | 'update.end' | 'delete.start' | 'delete.end', actor: NeutronActor, request?: Record<string, unknown>): Promise<void> {
    if (phase.endsWith('.start') && !this.#startEvents) return;
    const at = this.#clock.now();
    const messageId = randomUUID();
    const body = neutronFloatingIpMessage(f, phase, at, {
      publisher: this.publisher, context: actor, messageId, ...(request === undefined ? {} : { request }),
    });
    await this.#bus.publish(this.exchange, this.routingKey, body);
    this.timeline.record({
      source: 'neutron', kind: 'notification', eventType: `floatingip.${phase}`, instance: f.portDetails?.deviceId, at,
      detail: { exchange: this.exchange, routingKey: this.routingKey, messageId, floatingIpId: f.id, portId: f.portId, publisher: this.publisher },
    });
  }

  /** POST /v2.0/ports. */
  async createPort(req: CreatePortRequest): Promise<NeutronPortView> {
    const label = req.network ?? 'private';
    const net = this.#network(label);
    const now = this.#clock.now();
    const address = req.address ?? `10.${net.index}.0.${net.next++}`;
    const mac = req.mac ?? `fa:16:3e:${randomBytes(3).toString('hex').match(/../g)?.join(':') ?? '00:00:00'}`;
    const actor = this.#actorFor(req.project, req.actor);
    const port: NeutronPortView = {
      id: req.id ?? randomUUID(), name: req.name ?? '', networkId: net.id, project: req.project, mac,
      fixedIps: [{ address, subnetId: net.subnetId }], deviceId: req.deviceId ?? '',
      deviceOwner: req.deviceOwner ?? (req.deviceId === undefined ? '' : 'compute:nova'), bindingHost: req.host ?? null,
      status: 'DOWN', createdAt: now, updatedAt: now, revision: 1,
    };
    if (this.#ports.has(port.id)) throw new Error(`port ${port.id} exists`);
    const request: Record<string, unknown> = { network_id: net.id, tenant_id: req.project };
    if (req.deviceId !== undefined) Object.assign(request, { device_id: port.deviceId, device_owner: port.deviceOwner });
    if (port.bindingHost !== null) request['binding:host_id'] = port.bindingHost;
    await this.#publishPort(port, 'create.start', actor, request);
    this.#ports.set(port.id, port);
    this.timeline.record({ source: 'neutron', kind: 'port-created', instance: port.deviceId || undefined, detail: { portId: port.id, address, mac, network: label } });
    await this.#publishPort(port, 'create.end', actor);
    return snapshotPort(port);
  }

  /** PUT /v2.0/ports/{id} binding the port to an instance (Nova does this for ports a user made ahead). */
  async bindPort(id: string, deviceId: string, host: string | null, actor?: NeutronActor): Promise<NeutronPortView> {
    return this.#updatePort(id, { deviceId, deviceOwner: 'compute:nova', bindingHost: host }, actor ?? this.novaServiceActor);
  }

  /**
   * Nova's unbind of a port it did not create, at instance delete: device
   * and binding cleared, the port (and any floating IP on it) kept.
   */
  async unbindPort(id: string, actor?: NeutronActor): Promise<NeutronPortView> {
    return this.#updatePort(id, { deviceId: '', deviceOwner: '', bindingHost: null }, actor ?? this.novaServiceActor);
  }

  async #updatePort(id: string, change: Partial<Pick<NeutronPortView, 'deviceId' | 'deviceOwner' | 'bindingHost' | 'name'>>, actor: NeutronActor): Promise<NeutronPortView> {
    const port = this.#ports.get(id);
    if (port === undefined) throw new Error(`no port ${id}`);
    const request: Record<string, unknown> = {};
    if (change.deviceId !== undefined) request['device_id'] = change.deviceId;
    if (change.deviceOwner !== undefined) request['device_owner'] = change.deviceOwner;
    if (change.bindingHost !== undefined) request['binding:host_id'] = change.bindingHost;
    if (change.name !== undefined) request['name'] = change.name;
    await this.#publishPort(port, 'update.start', actor, request);
    Object.assign(port, change, { updatedAt: this.#clock.now(), revision: port.revision + 1 });
    this.timeline.record({ source: 'neutron', kind: 'port-updated', instance: port.deviceId || undefined, detail: { portId: id, change } });
    await this.#publishPort(port, 'update.end', actor);
    for (const f of this.#fips.values()) {
      if (f.portId === id) f.portDetails = this.#portDetails(port);
    }
    return snapshotPort(port);
  }

  /**
   * DELETE /v2.0/ports/{id}. A floating IP associated with the port is
   * disassociated inside the same transaction, with no floatingip
   * notification: only port.delete.start/end go out.
   */
  async deletePort(id: string, actor?: NeutronActor): Promise<void> {
    const port = this.#ports.get(id);
    if (port === undefined) throw new Error(`no port ${id}`);
    const who = actor ?? this.#actorFor(port.project, undefined);
    await this.#publishPort(port, 'delete.start', who);
    for (const f of this.#fips.values()) {
      if (f.portId !== id) continue;
      const before = { portId: f.portId, fixedAddress: f.fixedAddress };
      Object.assign(f, { portId: null, fixedAddress: null, routerId: null, portDetails: null, status: 'DOWN', updatedAt: this.#clock.now(), revision: f.revision + 1 });
      this.timeline.record({
        source: 'neutron', kind: 'fip-silently-disassociated', instance: port.deviceId || undefined,
        detail: { floatingIpId: f.id, address: f.address, portId: before.portId, fixedAddress: before.fixedAddress },
      });
    }
    this.#ports.delete(id);
    this.timeline.record({ source: 'neutron', kind: 'port-deleted', instance: port.deviceId || undefined, detail: { portId: id } });
    await this.#publishPort(port, 'delete.end', who);
  }

  #portDetails(port: NeutronPortView): NeutronFloatingIpView['portDetails'] {
    return { deviceId: port.deviceId, deviceOwner: port.deviceOwner, mac: port.mac, networkId: port.networkId, status: port.status, name: port.name };
  }

  #target(portId: string, fixedAddress: string | undefined): { port: NeutronPortView; fixed: string } {
    const port = this.#ports.get(portId);
    if (port === undefined) throw new Error(`no port ${portId}`);
    const fixed = fixedAddress ?? port.fixedIps[0]?.address;
    if (fixed === undefined) throw new Error(`port ${portId} has no fixed IP`);
    return { port, fixed };
  }

  /** POST /v2.0/floatingips, associated at once when `portId` is given. */
  async createFloatingIp(req: { project: string; address?: string; portId?: string; fixedAddress?: string; description?: string; actor?: NeutronActor }): Promise<NeutronFloatingIpView> {
    const now = this.#clock.now();
    const actor = this.#actorFor(req.project, req.actor);
    const fip: NeutronFloatingIpView = {
      id: randomUUID(), address: req.address ?? `${this.#floatingPrefix}.${this.#nextFloating++}`, floatingNetworkId: this.#externalNetworkId,
      project: req.project, portId: null, fixedAddress: null, routerId: null, status: 'DOWN', description: req.description ?? '',
      createdAt: now, updatedAt: now, revision: 0, portDetails: null,
    };
    if (req.portId !== undefined) {
      const { port, fixed } = this.#target(req.portId, req.fixedAddress);
      Object.assign(fip, { portId: port.id, fixedAddress: fixed, routerId: this.#routerId, status: 'ACTIVE', portDetails: this.#portDetails(port) });
    }
    const request: Record<string, unknown> = { floating_network_id: this.#externalNetworkId };
    if (req.portId !== undefined) request['port_id'] = req.portId;
    if (req.address !== undefined) request['floating_ip_address'] = req.address;
    await this.#publishFip(fip, 'create.start', actor, request);
    this.#fips.set(fip.id, fip);
    this.timeline.record({ source: 'neutron', kind: 'fip-created', instance: fip.portDetails?.deviceId, detail: { floatingIpId: fip.id, address: fip.address, portId: fip.portId } });
    await this.#publishFip(fip, 'create.end', actor);
    return snapshotFip(fip);
  }

  /**
   * PUT /v2.0/floatingips/{id} with a port: associates, or moves the address
   * from its current port to this one in a single update.
   */
  async associateFloatingIp(id: string, portId: string, options: { fixedAddress?: string; actor?: NeutronActor } = {}): Promise<NeutronFloatingIpView> {
    const fip = this.#fip(id);
    const { port, fixed } = this.#target(portId, options.fixedAddress);
    const actor = this.#actorFor(fip.project, options.actor);
    await this.#publishFip(fip, 'update.start', actor, { port_id: portId, ...(options.fixedAddress === undefined ? {} : { fixed_ip_address: options.fixedAddress }) });
    const previous = fip.portId;
    Object.assign(fip, { portId: port.id, fixedAddress: fixed, routerId: this.#routerId, status: 'ACTIVE', portDetails: this.#portDetails(port), updatedAt: this.#clock.now(), revision: fip.revision + 1 });
    this.timeline.record({ source: 'neutron', kind: 'fip-updated', instance: port.deviceId || undefined, detail: { floatingIpId: id, address: fip.address, from: previous, to: port.id } });
    await this.#publishFip(fip, 'update.end', actor);
    return snapshotFip(fip);
  }

  /** PUT /v2.0/floatingips/{id} with `port_id: null`. */
  async disassociateFloatingIp(id: string, options: { actor?: NeutronActor } = {}): Promise<NeutronFloatingIpView> {
    const fip = this.#fip(id);
    const actor = this.#actorFor(fip.project, options.actor);
    await this.#publishFip(fip, 'update.start', actor, { port_id: null });
    const previous = fip.portId;
    const device = fip.portDetails?.deviceId;
    Object.assign(fip, { portId: null, fixedAddress: null, routerId: null, status: 'DOWN', portDetails: null, updatedAt: this.#clock.now(), revision: fip.revision + 1 });
    this.timeline.record({ source: 'neutron', kind: 'fip-updated', instance: device, detail: { floatingIpId: id, address: fip.address, from: previous, to: null } });
    await this.#publishFip(fip, 'update.end', actor);
    return snapshotFip(fip);
  }

  /** An update that leaves the association alone (the ledger must not open a new interval). */
  async describeFloatingIp(id: string, description: string, options: { actor?: NeutronActor } = {}): Promise<NeutronFloatingIpView> {
    const fip = this.#fip(id);
    const actor = this.#actorFor(fip.project, options.actor);
    await this.#publishFip(fip, 'update.start', actor, { description });
    Object.assign(fip, { description, updatedAt: this.#clock.now(), revision: fip.revision + 1 });
    this.timeline.record({ source: 'neutron', kind: 'fip-updated', instance: fip.portDetails?.deviceId, detail: { floatingIpId: id, description } });
    await this.#publishFip(fip, 'update.end', actor);
    return snapshotFip(fip);
  }

  /** DELETE /v2.0/floatingips/{id}; delete.end still shows the last association. */
  async deleteFloatingIp(id: string, options: { actor?: NeutronActor } = {}): Promise<void> {
    const fip = this.#fip(id);
    const actor = this.#actorFor(fip.project, options.actor);
    await this.#publishFip(fip, 'delete.start', actor);
    this.#fips.delete(id);
    this.timeline.record({ source: 'neutron', kind: 'fip-deleted', instance: fip.portDetails?.deviceId, detail: { floatingIpId: id, address: fip.address, portId: fip.portId } });
    await this.#publishFip(fip, 'delete.end', actor);
  }

  #fip(id: string): NeutronFloatingIpView {
    const fip = this.#fips.get(id);
    if (fip === undefined) throw new Error(`no floating IP ${id}`);
    return fip;
  }
}
