// Raw message bodies and deliveries as the clouds put them on the bus, for
// generated histories: oslo.messaging 2.0 envelopes or bare v1 messages
// (test/sim/openstack-messages.ts builds the payloads on the upstream samples'
// shapes) and OpenNebula VM documents as hooks/opennebula/quarantine-publish
// sends them (the bare `<VM>`, plain or base64, with its x-message-id,
// x-published-at and x-opennebula-hook headers), or wrapped in oned's
// HOOK_MESSAGE as shared/fixtures/opennebula shows it.
import { createHash } from 'node:crypto';
import type { DeliveryMeta } from '../../operator/intake/decode/index.ts';
import { decodeNotification } from '../../operator/intake/decode/index.ts';
import type { Recorded } from '../../operator/ledger/apply.ts';
import { vmLcmStateName, vmStateName } from '../../operator/domain/opennebula-states.ts';

/** One delivery: the body as received and what the broker said about it (the cloud is the consumer's). */
export interface RawMessage {
  body: string;
  meta: Omit<DeliveryMeta, 'cloud'>;
}

export type OsloWire = 'v2' | 'v1';

/** The 2.0 envelope as built, or the bare v1 message inside it (`_context_*` inline, no envelope). */
export function osloWire(envelope: string, wire: OsloWire): string {
  if (wire === 'v2') return envelope;
  return (JSON.parse(envelope) as { 'oslo.message': string })['oslo.message'];
}

export function osloDelivery(body: string, exchange: 'nova' | 'neutron', receivedAt: Date): RawMessage {
  return { body, meta: { exchange, routingKey: 'notifications.info', receivedAt } };
}

export interface OneHistory {
  seq: number;
  stime: number;
  etime: number;
  rstime: number;
  retime: number;
  estime: number;
  action: number;
  uid: number;
  gid: number;
  requestId: number;
}

export interface OneNicDoc {
  nicId: number;
  ip: string;
  network: string;
  /** Being attached or detached (HOTPLUG_NIC). */
  attach?: boolean;
}

export interface OneVmDoc {
  id: number;
  name: string;
  uid: number;
  uname: string;
  gid: number;
  gname: string;
  state: number;
  lcmState: number;
  prevState: number;
  prevLcmState: number;
  /** Epoch seconds. */
  stime: number;
  etime: number;
  deployId: string;
  host: string;
  nics: OneNicDoc[];
  history: OneHistory[];
}

const el = (name: string, value: string | number) => `<${name}>${value}</${name}>`;
const hex = (n: number) => n.toString(16).padStart(2, '0');
/** OpenNebula's default MAC: 02:00 and the IPv4 address. */
export function oneMac(ip: string): string {
  return `02:00:${ip.split('.').map((o) => hex(Number(o))).join(':')}`;
}

/** The extended `<VM>` document oned hands to hooks, on the shape of the shared sample (VM 800). */
export function oneVmDocument(vm: OneVmDoc): string {
  const perms = ['OWNER_U', 'OWNER_M', 'OWNER_A', 'GROUP_U', 'GROUP_M', 'GROUP_A', 'OTHER_U', 'OTHER_M', 'OTHER_A'].map((k, i) => el(k, i < 2 ? 1 : 0)).join('');
  const context = [el('DISK_ID', 1), ...vm.nics.flatMap((n, i) => [el(`ETH${i}_IP`, n.ip), el(`ETH${i}_MAC`, oneMac(n.ip))]), el('NETWORK', 'YES'), el('TARGET', 'hda')].join('');
  const nics = vm.nics.map((n) => `<NIC>${[
    el('AR_ID', 0), ...(n.attach === true ? [el('ATTACH', 'YES')] : []), el('BRIDGE', 'br0'), el('BRIDGE_TYPE', 'linux'), el('CLUSTER_ID', 0),
    el('IP', n.ip), el('MAC', oneMac(n.ip)), el('MODEL', 'virtio'), el('NAME', `NIC${n.nicId}`), el('NETWORK', n.network), el('NETWORK_ID', 0),
    el('NIC_ID', n.nicId), el('SECURITY_GROUPS', 0), el('TARGET', `one-${vm.id}-${n.nicId}`), el('VN_MAD', 'bridge'),
  ].join('')}</NIC>`).join('');
  const history = vm.history.map((h) => `<HISTORY>${[
    el('OID', vm.id), el('SEQ', h.seq), el('HOSTNAME', vm.host), el('HID', 1), el('CID', 0), el('STIME', h.stime), el('ETIME', h.etime),
    el('VM_MAD', 'kvm'), el('TM_MAD', 'ceph'), el('DS_ID', 0), el('PSTIME', h.seq === 0 ? h.stime : 0), el('PETIME', h.seq === 0 ? h.stime : 0),
    el('RSTIME', h.rstime), el('RETIME', h.retime), el('ESTIME', h.estime), el('EETIME', 0), el('ACTION', h.action), el('UID', h.uid),
    el('GID', h.gid), el('REQUEST_ID', h.requestId),
  ].join('')}</HISTORY>`).join('');
  return [
    '<VM>', el('ID', vm.id), el('UID', vm.uid), el('GID', vm.gid), el('UNAME', vm.uname), el('GNAME', vm.gname), el('NAME', vm.name),
    `<PERMISSIONS>${perms}</PERMISSIONS>`, el('LAST_POLL', 0), el('STATE', vm.state), el('LCM_STATE', vm.lcmState),
    el('PREV_STATE', vm.prevState), el('PREV_LCM_STATE', vm.prevLcmState), el('RESCHED', 0), el('STIME', vm.stime), el('ETIME', vm.etime),
    el('DEPLOY_ID', vm.deployId), '<MONITORING/><SCHED_ACTIONS/>',
    '<TEMPLATE>', el('AUTOMATIC_REQUIREMENTS', '(CLUSTER_ID = 0)'), `<CONTEXT>${context}</CONTEXT>`, el('CPU', '0.1'), el('MEMORY', 96), nics,
    `<NIC_DEFAULT>${el('MODEL', 'virtio')}</NIC_DEFAULT>`, `<OS>${el('UUID', vm.deployId)}</OS>`, el('TEMPLATE_ID', 0), el('TM_MAD_SYSTEM', 'ceph'),
    el('VMID', vm.id), '</TEMPLATE>', `<USER_TEMPLATE>${el('ARCH', 'x86_64')}</USER_TEMPLATE>`,
    `<HISTORY_RECORDS>${history}</HISTORY_RECORDS>`, '</VM>',
  ].join('');
}

/** The hook (template `ARGUMENTS` name) that fires on a state. */
export function oneHookName(state: number, lcm: number): string {
  if (state === 6) return 'vm-done';
  const names: Record<number, string> = { 3: 'vm-running', 25: 'vm-hotplug-nic', 65: 'vm-hotplug-nic-poweroff', 12: 'vm-shutdown', 11: 'vm-epilog', 23: 'vm-cleanup-delete' };
  return names[lcm] ?? 'vm-custom';
}

export type OneForm = 'vm' | 'vm-base64' | 'hook-message';

/**
 * One hook run as the publisher sends it: `at` in whole seconds (x-published-at
 * is epoch seconds), the message id `one-<VM>-<hook>-<sha256 of the body>`.
 */
export function oneDelivery(vm: OneVmDoc, at: number, form: OneForm, receivedAt: Date): RawMessage {
  const doc = oneVmDocument(vm);
  const hook = oneHookName(vm.state, vm.lcmState);
  const xml = form === 'hook-message'
    ? `<HOOK_MESSAGE>${el('HOOK_TYPE', 'STATE')}${el('HOOK_OBJECT', 'VM')}${el('STATE', vmStateName(vm.state) ?? '')}${el('LCM_STATE', vmLcmStateName(vm.lcmState) ?? '')}${el('RESOURCE_ID', vm.id)}${el('REMOTE_HOST', vm.host)}${doc}</HOOK_MESSAGE>`
    : doc;
  const body = form === 'vm-base64' ? Buffer.from(xml, 'utf8').toString('base64') : xml;
  return {
    body,
    meta: {
      exchange: 'opennebula', routingKey: 'notifications.info', receivedAt,
      headers: {
        'x-message-id': `one-${vm.id}-${hook}-${createHash('sha256').update(xml, 'utf8').digest('hex')}`,
        'x-published-at': String(Math.floor(at / 1000)),
        'x-opennebula-hook': hook,
        'x-opennebula-vm-id': String(vm.id),
      },
    },
  };
}

/** Runs the intake's real decoder over a delivery; a body it refuses is a defect of the generator. */
export function decodeRaw(m: RawMessage, cloud: string): Recorded {
  const r = decodeNotification(m.body, { ...m.meta, cloud });
  if (!r.ok) throw new Error(`generated message refused by the decoder (${r.error.reason}): ${r.error.message}\n${m.body.slice(0, 400)}`);
  if (r.notification.ignored) throw new Error(`generated message ignored by the decoder: ${r.notification.eventType}`);
  return { notification: r.notification, body: m.body };
}
