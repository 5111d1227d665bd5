// Neutron API notifications for ports, floating IPs and router interfaces.
// Payloads are the API's response bodies (`{"port": {...}}`), request bodies
// for *.start, and `{"<res>_id": id[, "<res>": {...}]}` for delete.end.
import { z } from 'zod';
import type { FloatingIpEvent, FloatingIpSnapshot, PortEvent, PortSnapshot, RouterEvent, RouterInterfaceEvent } from '../../domain/events.ts';
import { DecodeError } from './errors.ts';
import type { OsloMessage } from './oslo.ts';
import { parseWith } from './validate.ts';
import { compact, nonEmpty } from './values.ts';

const text = z.string().nullish();
// Where null ("cleared") and absent ("not said") mean different things.
const clearable = z.string().nullable().optional();

const Port = z.object({
  id: z.string().min(1),
  device_id: text,
  device_owner: text,
  network_id: text,
  mac_address: text,
  tenant_id: text,
  project_id: text,
  'binding:host_id': text,
  status: text,
  fixed_ips: z.array(z.object({ ip_address: z.string().min(1), subnet_id: text })).nullish(),
});

// update.start's request body may leave the id to `payload.id`.
const FloatingIpFields = z.object({
  id: text,
  floating_ip_address: text,
  floating_network_id: text,
  port_id: clearable,
  fixed_ip_address: clearable,
  router_id: clearable,
  tenant_id: text,
  project_id: text,
  status: text,
  port_details: z.object({ device_id: text }).nullish(),
});
const FloatingIp = FloatingIpFields.extend({ id: z.string().min(1) });

const RouterInterface = z.object({
  id: z.string().min(1),
  port_id: z.string().min(1),
  subnet_id: text,
  network_id: text,
  tenant_id: text,
  project_id: text,
});

const Router = z.object({
  id: z.string().min(1),
  name: text,
  tenant_id: text,
  project_id: text,
  // null: no gateway; absent: not said.
  external_gateway_info: z.object({
    network_id: text,
    external_fixed_ips: z.array(z.object({ ip_address: z.string().min(1), subnet_id: text })).nullish(),
  }).nullable().optional(),
});
const RouterBody = z.object({ router: Router });
const RouterDelete = z.object({ router_id: z.string().min(1), router: Router.nullish() });

const SinglePort = z.object({ port: Port });
const BulkPorts = z.object({ ports: z.array(Port) });
const PortDelete = z.object({ port_id: z.string().min(1), port: Port.nullish() });
const FloatingIpBody = z.object({ floatingip: FloatingIp });
const FloatingIpRequest = z.object({ id: text, floatingip: FloatingIpFields });
const FloatingIpDelete = z.object({ floatingip_id: z.string().min(1), floatingip: FloatingIp.nullish() });
const RouterInterfaceBody = z.object({ router_interface: RouterInterface });

type PortData = z.output<typeof Port>;
type FloatingIpFieldsData = z.output<typeof FloatingIpFields>;

function portSnapshot(port: PortData): PortSnapshot {
  return compact({
    id: port.id,
    deviceId: nonEmpty(port.device_id),
    deviceOwner: nonEmpty(port.device_owner),
    networkId: nonEmpty(port.network_id),
    mac: nonEmpty(port.mac_address),
    project: nonEmpty(port.tenant_id) ?? nonEmpty(port.project_id),
    host: nonEmpty(port['binding:host_id']),
    fixedIps: (port.fixed_ips ?? []).map((ip) => compact({ address: ip.ip_address, subnetId: nonEmpty(ip.subnet_id) })),
    status: nonEmpty(port.status),
  });
}

function floatingIpSnapshot(fip: FloatingIpFieldsData, id: string): FloatingIpSnapshot {
  return compact({
    id,
    address: nonEmpty(fip.floating_ip_address),
    networkId: nonEmpty(fip.floating_network_id),
    portId: fip.port_id,
    fixedAddress: fip.fixed_ip_address,
    routerId: fip.router_id,
    project: nonEmpty(fip.tenant_id) ?? nonEmpty(fip.project_id),
    instanceId: nonEmpty(fip.port_details?.device_id),
    status: nonEmpty(fip.status),
  });
}

type PortAction = PortEvent['action'];
type FloatingIpAction = FloatingIpEvent['action'];

function portEvents(action: Exclude<PortAction, 'delete.end'>, message: OsloMessage): PortEvent[] {
  const { payload, eventType } = message;
  // Bulk creates answer with a list; everything else with one object.
  const ports =
    typeof payload === 'object' && payload !== null && 'ports' in payload
      ? parseWith(BulkPorts, payload, 'bad-payload', 'payload', eventType).ports
      : [parseWith(SinglePort, payload, 'bad-payload', 'payload', eventType).port];
  return ports.map((port) => ({ type: 'port', action, port: portSnapshot(port), idOnly: false }));
}

function portDeleted(message: OsloMessage): PortEvent {
  const p = parseWith(PortDelete, message.payload, 'bad-payload', 'payload', message.eventType);
  if (p.port === null || p.port === undefined) {
    return { type: 'port', action: 'delete.end', port: { id: p.port_id, fixedIps: [] }, idOnly: true };
  }
  return { type: 'port', action: 'delete.end', port: portSnapshot({ ...p.port, id: p.port_id }), idOnly: false };
}

function floatingIpEvent(action: Exclude<FloatingIpAction, 'update.start' | 'delete.end'>, message: OsloMessage): FloatingIpEvent {
  const { floatingip } = parseWith(FloatingIpBody, message.payload, 'bad-payload', 'payload', message.eventType);
  return { type: 'floatingip', action, floatingIp: floatingIpSnapshot(floatingip, floatingip.id), idOnly: false };
}

function floatingIpRequested(message: OsloMessage): FloatingIpEvent {
  const p = parseWith(FloatingIpRequest, message.payload, 'bad-payload', 'payload', message.eventType);
  const id = nonEmpty(p.id) ?? nonEmpty(p.floatingip.id);
  if (id === undefined) {
    throw new DecodeError('bad-payload', `${message.eventType}: payload.id: Required (and no payload.floatingip.id)`);
  }
  return { type: 'floatingip', action: 'update.start', floatingIp: floatingIpSnapshot(p.floatingip, id), idOnly: false };
}

function floatingIpDeleted(message: OsloMessage): FloatingIpEvent {
  const p = parseWith(FloatingIpDelete, message.payload, 'bad-payload', 'payload', message.eventType);
  if (p.floatingip === null || p.floatingip === undefined) {
    return {
      type: 'floatingip',
      action: 'delete.end',
      floatingIp: { id: p.floatingip_id },
      idOnly: true,
    };
  }
  return {
    type: 'floatingip',
    action: 'delete.end',
    floatingIp: floatingIpSnapshot(p.floatingip, p.floatingip_id),
    idOnly: false,
  };
}

function routerInterface(action: RouterInterfaceEvent['action'], message: OsloMessage): RouterInterfaceEvent {
  const { router_interface: ri } = parseWith(RouterInterfaceBody, message.payload, 'bad-payload', 'payload', message.eventType);
  return compact({
    type: 'router_interface' as const,
    action,
    routerId: ri.id,
    portId: ri.port_id,
    subnetId: nonEmpty(ri.subnet_id),
    networkId: nonEmpty(ri.network_id),
    project: nonEmpty(ri.tenant_id) ?? nonEmpty(ri.project_id),
  });
}

type RouterData = z.output<typeof Router>;

function routerSnapshot(r: RouterData, id: string): RouterEvent['router'] {
  const gw = r.external_gateway_info;
  return compact({
    id,
    name: nonEmpty(r.name),
    project: nonEmpty(r.tenant_id) ?? nonEmpty(r.project_id),
    gatewayNetworkId: gw === null || gw === undefined ? undefined : nonEmpty(gw.network_id),
    gatewayIps: gw === undefined ? undefined : gw === null ? null : (gw.external_fixed_ips ?? []).map((ip) => ip.ip_address),
  });
}

function routerEvent(action: 'create.end' | 'update.end', message: OsloMessage): RouterEvent {
  const { router } = parseWith(RouterBody, message.payload, 'bad-payload', 'payload', message.eventType);
  return { type: 'router', action, router: routerSnapshot(router, router.id), idOnly: false };
}

function routerDeleted(message: OsloMessage): RouterEvent {
  const p = parseWith(RouterDelete, message.payload, 'bad-payload', 'payload', message.eventType);
  if (p.router === null || p.router === undefined) return { type: 'router', action: 'delete.end', router: { id: p.router_id }, idOnly: true };
  return { type: 'router', action: 'delete.end', router: routerSnapshot(p.router, p.router_id), idOnly: false };
}

export type NeutronEvent = PortEvent | FloatingIpEvent | RouterInterfaceEvent | RouterEvent;

/** Events of a Neutron notification, or undefined when its type is not one we use. */
export function decodeNeutron(message: OsloMessage): NeutronEvent[] | undefined {
  switch (message.eventType) {
    case 'port.create.end':
      return portEvents('create.end', message);
    case 'port.update.end':
      return portEvents('update.end', message);
    case 'port.exists':
      return portEvents('exists', message);
    case 'port.delete.end':
      return [portDeleted(message)];
    case 'floatingip.create.end':
      return [floatingIpEvent('create.end', message)];
    case 'floatingip.update.end':
      return [floatingIpEvent('update.end', message)];
    case 'floatingip.exists':
      return [floatingIpEvent('exists', message)];
    case 'floatingip.update.start':
      return [floatingIpRequested(message)];
    case 'floatingip.delete.end':
      return [floatingIpDeleted(message)];
    case 'router.create.end':
      return [routerEvent('create.end', message)];
    case 'router.update.end':
      return [routerEvent('update.end', message)];
    case 'router.delete.end':
      return [routerDeleted(message)];
    case 'router.interface.create':
      return [routerInterface('create', message)];
    case 'router.interface.delete':
      return [routerInterface('delete', message)];
    default:
      return undefined;
  }
}
