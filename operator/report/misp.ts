// A case as a MISP event in MISP's core JSON format, for sharing with the SOC:
// an ip-src attribute per address of the report with its owner in the comment,
// a `device` object per instance (misp-objects has no VM template), an
// `ip-port` object per holder of an address, attributed to its instance, and a
// `network-connection` object per log line (the first MAX_LINE_OBJECTS).
// UUIDs derive from the case and the ledger's keys, so exporting the same case
// again yields the same event, which MISP then updates instead of duplicating.
import { createHash } from 'node:crypto';
import type { CaseReport } from '../capture/case-report.ts';
import type { Holder } from '../ledger/trace.ts';
import { ATTRIBUTED_TO, DEVICE, IP_PORT, NETWORK_CONNECTION, type ObjectTemplate } from './misp-templates.ts';

/** More lines than this stay in report.json only: MISP slows down with tens of thousands of objects in one event. */
export const MAX_LINE_OBJECTS = 500;

export interface MispAttribute {
  uuid: string;
  type: string;
  category: string;
  value: string;
  to_ids: boolean;
  distribution: string;
  timestamp: string;
  deleted: boolean;
  comment: string;
  object_relation?: string;
  first_seen?: string;
  last_seen?: string;
}

export interface MispObjectReference {
  uuid: string;
  object_uuid: string;
  referenced_uuid: string;
  relationship_type: string;
  timestamp: string;
  deleted: boolean;
  comment: string;
}

export interface MispObject {
  uuid: string;
  name: string;
  'meta-category': string;
  description: string;
  template_uuid: string;
  template_version: string;
  timestamp: string;
  distribution: string;
  sharing_group_id: string;
  deleted: boolean;
  comment: string;
  first_seen?: string;
  last_seen?: string;
  Attribute: MispAttribute[];
  ObjectReference: MispObjectReference[];
}

export interface MispEvent {
  Event: {
    uuid: string;
    info: string;
    date: string;
    threat_level_id: string;
    analysis: string;
    distribution: string;
    sharing_group_id: string;
    published: boolean;
    timestamp: string;
    publish_timestamp: string;
    attribute_count: string;
    Tag: Array<{ name: string; colour: string; exportable: boolean }>;
    Attribute: MispAttribute[];
    Object: MispObject[];
  };
}

// A fixed namespace: the UUIDs are name-based (RFC 4122 version 5) under it.
const NAMESPACE = Buffer.from('6f1c7d2e9a4b4c3d8e5f0a1b2c3d4e5f', 'hex');

export function uuid5(name: string): string {
  const h = createHash('sha1').update(NAMESPACE).update(name).digest();
  h[6] = ((h[6] ?? 0) & 0x0f) | 0x50;
  h[8] = ((h[8] ?? 0) & 0x3f) | 0x80;
  const x = h.subarray(0, 16).toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

// Only the organisation that made the export sees it until someone there decides otherwise:
// the event names users of the cloud.
const YOUR_ORGANISATION_ONLY = '0';
const INHERIT_EVENT = '5';
const THREAT_UNDEFINED = '4';
const ANALYSIS_ONGOING = '1';

const who = (h: Holder): string => {
  if (h.instance === null) return `${h.kind} address of project ${h.project ?? 'unknown'} in cloud ${h.cloud}`;
  const i = h.instance;
  return `instance ${i.name === null ? i.id : `${i.name} (${i.id})`} of project ${i.project ?? h.project ?? 'unknown'}, user ${i.user ?? 'unknown'}, host ${i.host ?? 'unknown'}, cloud ${h.cloud}`;
};

const holderKey = (address: string, h: Holder): string => `${h.cloud}|${address}|${h.kind}|${h.instance?.id ?? h.project ?? ''}|${h.from}`;

export function caseMisp(r: CaseReport): MispEvent {
  const ts = String(Math.floor(Date.parse(r.generatedAt) / 1000));
  const base = `case:${r.case.name}:${r.case.createdAt}`;
  const attribute = (key: string, t: ObjectTemplate | null, relation: string, fields: { type?: string; category?: string; value: string; comment?: string; first_seen?: string; last_seen?: string }): MispAttribute => {
    const spec = t?.relations[relation];
    const type = spec?.type ?? fields.type;
    const category = spec?.category ?? fields.category;
    if (type === undefined || category === undefined) throw new Error(`no type for ${relation}`);
    return {
      uuid: uuid5(`${base}:${key}:${relation}:${fields.value}`), type, category, value: fields.value, to_ids: false, distribution: INHERIT_EVENT, timestamp: ts, deleted: false,
      comment: fields.comment ?? '', ...(t === null ? {} : { object_relation: relation }),
      ...(fields.first_seen === undefined ? {} : { first_seen: fields.first_seen }), ...(fields.last_seen === undefined ? {} : { last_seen: fields.last_seen }),
    };
  };
  const object = (key: string, t: ObjectTemplate, comment: string, values: Array<[string, string]>, seen: { first?: string | null; last?: string | null } = {}): MispObject => ({
    uuid: uuid5(`${base}:${key}`), name: t.name, 'meta-category': t.metaCategory, description: t.description, template_uuid: t.uuid, template_version: String(t.version),
    timestamp: ts, distribution: INHERIT_EVENT, sharing_group_id: '0', deleted: false, comment,
    ...(seen.first == null ? {} : { first_seen: seen.first }), ...(seen.last == null ? {} : { last_seen: seen.last }),
    Attribute: values.map(([relation, value]) => attribute(key, t, relation, { value })), ObjectReference: [],
  });
  const reference = (from: MispObject, to: MispObject, comment: string): MispObjectReference => ({
    uuid: uuid5(`${from.uuid}>${to.uuid}`), object_uuid: from.uuid, referenced_uuid: to.uuid, relationship_type: ATTRIBUTED_TO, timestamp: ts, deleted: false, comment,
  });

  const objects: MispObject[] = [];
  const devices = new Map<string, MispObject>();
  const disks = new Map<string, string[]>();
  for (const q of r.quarantines) {
    const k = `${q.cloud}|${q.instance}`;
    disks.set(k, [...(disks.get(k) ?? []), `${q.disk} at ${q.location} (${q.state}, isolation ${q.isolation}${q.sha256 === null ? '' : `, sha256 ${q.sha256}`})`]);
  }
  for (const i of r.instances) {
    const k = `${i.cloud}|${i.id}`;
    const addresses = [...new Set(i.addresses.map((a) => a.address))];
    const mac = i.addresses.find((a) => a.mac !== null)?.mac ?? null;
    const held = disks.get(k) ?? [];
    const description = [
      `Virtual machine ${i.id} in cloud ${i.cloud}`, `project ${i.projectName ?? i.project ?? 'unknown'}`, `user ${i.userName ?? i.user ?? 'unknown'}`, `host ${i.host ?? 'unknown'}`,
      ...(i.image === null ? [] : [`image ${i.image}`]), ...(i.flavor === null ? [] : [`flavor ${i.flavor}`]),
      `created ${i.createdAt ?? i.firstSeenAt}`, ...(i.deletedAt === null ? [] : [`deleted ${i.deletedAt}${i.deletedBy === null ? '' : ` by ${i.deletedBy}`}`]),
      ...(held.length === 0 ? [] : [`quarantined disks: ${held.join('; ')}`]),
    ].join(', ');
    const d = object(`device:${k}`, DEVICE, `${i.cloud}/${i.id}`, [
      ['name', i.name ?? i.id], ['alias', i.id], ['device-type', 'Other'], ['description', description],
      ...addresses.map((a): [string, string] => ['ip-address', a]), ...(mac === null ? [] : [['MAC-address', mac] as [string, string]]),
    ], { first: i.createdAt ?? i.firstSeenAt, last: i.deletedAt });
    devices.set(k, d);
    objects.push(d);
  }

  // One ip-port object per holder of an address over the report's lines, with how many lines fell on it.
  const holdings = new Map<string, { address: string; holder: Holder; lines: number; first: string; last: string }>();
  for (const line of r.lines) for (const h of line.holders) {
    const k = holderKey(line.address, h);
    const x = holdings.get(k);
    if (x === undefined) holdings.set(k, { address: line.address, holder: h, lines: 1, first: line.at, last: line.at });
    else {
      x.lines += 1;
      if (line.at < x.first) x.first = line.at;
      if (line.at > x.last) x.last = line.at;
    }
  }
  const holderObjects = new Map<string, MispObject>();
  for (const [k, x] of [...holdings].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    const h = x.holder;
    const o = object(`holder:${k}`, IP_PORT, `${h.kind} address`, [
      ['ip-src', x.address], ['first-seen', h.from], ...(h.to === null ? [] : [['last-seen', h.to] as [string, string]]),
      ['text', `${x.address} held by ${who(h)} from ${h.from} to ${h.to ?? 'now'}; ${x.lines} log line${x.lines === 1 ? '' : 's'} of the report on it, ${x.first} to ${x.last}`],
    ], { first: h.from, last: h.to });
    const device = h.instance === null ? undefined : devices.get(`${h.cloud}|${h.instance.id}`);
    if (device !== undefined) o.ObjectReference.push(reference(o, device, 'held by the instance'));
    holderObjects.set(k, o);
    objects.push(o);
  }

  for (const line of r.lines.slice(0, MAX_LINE_OBJECTS)) {
    const o = object(`line:${line.source}:${line.line}`, NETWORK_CONNECTION, `${line.source}:${line.line}: ${line.text}`.slice(0, 1024), [['ip-src', line.address], ['first-packet-seen', line.at]], { first: line.at });
    for (const h of line.holders) {
      const target = holderObjects.get(holderKey(line.address, h));
      if (target !== undefined) o.ObjectReference.push(reference(o, target, 'the address\'s holder at that time'));
    }
    objects.push(o);
  }

  // An attribute per address: what a SOC correlates on, the owner where the ledger knows one.
  const byAddress = new Map<string, { first: string; last: string; lines: number; owners: Set<string> }>();
  for (const line of r.lines) {
    let a = byAddress.get(line.address);
    if (a === undefined) byAddress.set(line.address, a = { first: line.at, last: line.at, lines: 0, owners: new Set() });
    a.lines += 1;
    if (line.at < a.first) a.first = line.at;
    if (line.at > a.last) a.last = line.at;
    for (const h of line.holders) a.owners.add(who(h));
  }
  const attributes = [...byAddress].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([address, a]) => attribute(`address:${address}`, null, 'address', {
    type: 'ip-src', category: 'Network activity', value: address, first_seen: a.first, last_seen: a.last,
    comment: `${a.lines} log line${a.lines === 1 ? '' : 's'}; ${a.owners.size === 0 ? 'no holder in the ledger at those times' : `held by ${[...a.owners].sort().join('; ')}`}`,
  }));
  if (r.lines.length > MAX_LINE_OBJECTS) {
    attributes.push(attribute('lines-left-out', null, 'note', {
      type: 'text', category: 'Internal reference', value: `${r.lines.length - MAX_LINE_OBJECTS} more log lines are in the case report (report.json); the ip-port objects count all of them`,
    }));
  }

  const first = r.lines.reduce<string | null>((m, l) => (m === null || l.at < m ? l.at : m), null);
  const c = r.counts;
  return {
    Event: {
      uuid: uuid5(base),
      info: `Case ${r.case.name}: ${c.lines} log lines, ${c.attributed} attributed to ${c.instances} instance${c.instances === 1 ? '' : 's'}`.slice(0, 256),
      date: (first ?? r.case.createdAt).slice(0, 10),
      threat_level_id: THREAT_UNDEFINED, analysis: ANALYSIS_ONGOING, distribution: YOUR_ORGANISATION_ONLY, sharing_group_id: '0',
      published: false, timestamp: ts, publish_timestamp: '0',
      attribute_count: String(attributes.length + objects.reduce((n, o) => n + o.Attribute.length, 0)),
      Tag: [
        { name: 'tlp:amber', colour: '#FFC000', exportable: true },
        { name: `quarantine:case="${r.case.name.replace(/"/g, '')}"`, colour: '#5B4C8A', exportable: true },
      ],
      Attribute: attributes,
      Object: objects,
    },
  };
}
