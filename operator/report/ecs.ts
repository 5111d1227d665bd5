// Elastic Common Schema documents for the ELK stacks sites run: an address
// interval (who held an address over [from, to)) and an attributed log line.
// Only ECS 8.x fields; what ECS has no field for goes into `labels`.
import type { Holder } from '../ledger/trace.ts';

export const ECS_VERSION = '8.12.0';

export type EcsDocument = Record<string, unknown>;

function owner(h: Holder): Record<string, unknown> {
  const project = h.instance?.project ?? h.project;
  const user = h.instance?.user ?? null;
  const doc: Record<string, unknown> = {};
  const cloud: Record<string, unknown> = {};
  if (h.instance !== null) cloud['instance'] = { id: h.instance.id, ...(h.instance.name === null ? {} : { name: h.instance.name }) };
  if (project !== null) cloud['project'] = { id: project };
  if (Object.keys(cloud).length > 0) doc['cloud'] = cloud;
  if (user !== null) doc['user'] = { id: user };
  if (h.network !== null) doc['network'] = { name: h.network };
  const labels: Record<string, string> = { cloud: h.cloud, address_kind: h.kind };
  if (h.port !== null) labels['port'] = h.port;
  if (h.instance?.host != null) labels['hypervisor'] = h.instance.host;
  doc['labels'] = labels;
  return doc;
}

/** An address interval: `@timestamp` and `event.start` its start, `event.end` its end if closed. */
export function intervalEcs(address: string, h: Holder): EcsDocument {
  const o = owner(h);
  const who = h.instance === null ? `${h.kind} address of project ${h.project ?? '-'}` : `${h.instance.name ?? h.instance.id} (${h.instance.project ?? h.project ?? '-'}/${h.instance.user ?? '-'})`;
  return {
    '@timestamp': h.from,
    ecs: { version: ECS_VERSION },
    event: { kind: 'event', category: ['network'], type: ['info'], action: 'address-held', dataset: 'quarantine.address_interval', module: 'quarantine', start: h.from, ...(h.to === null ? {} : { end: h.to }) },
    message: `${address} held by ${who} from ${h.from} to ${h.to ?? 'now'}`,
    ...o,
    related: { ip: [address], ...(h.instance?.user != null ? { user: [h.instance.user] } : {}) },
  };
}

/** A log line attributed to one holder (or to nobody: no owner fields). */
export function attributionEcs(line: { source: string; line: number; address: string; at: string; text: string }, h: Holder | null): EcsDocument {
  const base: EcsDocument = {
    '@timestamp': line.at,
    ecs: { version: ECS_VERSION },
    event: { kind: 'event', category: ['network'], type: ['connection'], action: h === null ? 'unattributed' : 'attributed', dataset: 'quarantine.attribution', module: 'quarantine', original: line.text },
    source: { ip: line.address },
    message: h === null ? `${line.address} at ${line.at}: nobody held it` : `${line.address} at ${line.at}: ${h.instance?.name ?? h.instance?.id ?? h.kind} (${h.instance?.project ?? h.project ?? '-'}/${h.instance?.user ?? '-'})`,
    tags: [`log:${line.source}:${line.line}`],
    related: { ip: [line.address], ...(h?.instance?.user != null ? { user: [h.instance.user] } : {}) },
  };
  if (h === null) return base;
  const o = owner(h);
  return { ...base, ...o };
}
