// Checks an exported MISP event: its shape against MISP's core format (a zod
// schema of what draft-dulaunoy-misp-core-format says MUST be there, in the
// JSON types it says), every attribute's category against its type, and every
// object against its published template (test/fixtures/misp).
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { z } from 'zod';

const DIR = join(import.meta.dirname, '../fixtures/misp');

const templateSchema = z.object({
  uuid: z.string(), version: z.number(), 'meta-category': z.string(), requiredOneOf: z.array(z.string()),
  attributes: z.record(z.string(), z.object({ 'misp-attribute': z.string(), multiple: z.boolean().optional(), categories: z.array(z.string()).optional() })),
});
const fixture = z.object({ device: templateSchema, 'ip-port': templateSchema, 'network-connection': templateSchema, relationships: z.array(z.string()) })
  .parse(JSON.parse(readFileSync(join(DIR, 'object-templates.json'), 'utf8')));
const TEMPLATES = new Map(Object.entries(fixture).filter((e): e is [string, z.infer<typeof templateSchema>] => !Array.isArray(e[1])));
const CATEGORIES = z.record(z.string(), z.array(z.string())).parse(JSON.parse(readFileSync(join(DIR, 'categories.json'), 'utf8')));

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[1-8][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const uuid = z.string().regex(UUID, 'not a UUID');
const unixSeconds = z.string().regex(/^\d+$/, 'not Unix seconds as a string');
const isoTime = z.string().regex(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})$/, 'not an ISO 8601 time');
const distribution = z.enum(['0', '1', '2', '3', '4', '5']);

const attribute = z.strictObject({
  uuid, type: z.string().min(1), category: z.string().min(1), value: z.string().min(1), to_ids: z.boolean(), distribution, timestamp: unixSeconds,
  deleted: z.boolean(), comment: z.string(), object_relation: z.string().min(1).optional(), first_seen: isoTime.optional(), last_seen: isoTime.optional(),
});
const objectReference = z.strictObject({
  uuid, object_uuid: uuid, referenced_uuid: uuid, relationship_type: z.string().min(1), timestamp: unixSeconds, deleted: z.boolean(), comment: z.string(),
});
const object = z.strictObject({
  uuid, name: z.string().min(1), 'meta-category': z.string().min(1), description: z.string(), template_uuid: uuid, template_version: z.string().regex(/^\d+$/),
  timestamp: unixSeconds, distribution, sharing_group_id: z.string().regex(/^\d+$/), deleted: z.boolean(), comment: z.string(),
  first_seen: isoTime.optional(), last_seen: isoTime.optional(), Attribute: z.array(attribute.required({ object_relation: true })).min(1), ObjectReference: z.array(objectReference),
});
/** MISP's event format, as far as an export uses it. */
export const mispEventSchema = z.strictObject({
  Event: z.strictObject({
    uuid, info: z.string().min(1).max(256).regex(/^[^\n]*$/, 'info has a new line'), date: z.string().regex(/^\d{4}-\d{2}-\d{2}$/),
    threat_level_id: z.enum(['1', '2', '3', '4']), analysis: z.enum(['0', '1', '2']), distribution: z.enum(['0', '1', '2', '3', '4']), sharing_group_id: z.string().regex(/^\d+$/),
    published: z.boolean(), timestamp: unixSeconds, publish_timestamp: unixSeconds, attribute_count: z.string().regex(/^\d+$/),
    Tag: z.array(z.strictObject({ name: z.string().min(1), colour: z.string().regex(/^#[0-9A-Fa-f]{6}$/), exportable: z.boolean() })),
    Attribute: z.array(attribute.omit({ object_relation: true })),
    Object: z.array(object),
  }),
});

type Attr = z.infer<typeof attribute>;

function valueProblem(where: string, a: Attr): string | null {
  if ((a.type === 'ip-src' || a.type === 'ip-dst') && isIP(a.value) === 0) return `${where}: ${a.value} is not an IP address`;
  if (a.type === 'datetime' && !isoTime.safeParse(a.value).success) return `${where}: ${a.value} is not a datetime`;
  if (a.type === 'mac-address' && !/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/i.test(a.value)) return `${where}: ${a.value} is not a MAC address`;
  const categories = CATEGORIES[a.type];
  if (categories === undefined) return `${where}: type ${a.type} is not in categories.json`;
  if (!categories.includes(a.category)) return `${where}: category ${a.category} is not valid for type ${a.type}`;
  return null;
}

/** Every problem of the event, in document order; [] when MISP would take it as it is. */
export function mispProblems(doc: unknown): string[] {
  const parsed = mispEventSchema.safeParse(doc);
  if (!parsed.success) return parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
  const e = parsed.data.Event;
  const out: string[] = [];
  const uuids = new Set<string>();
  const unique = (where: string, u: string) => {
    if (uuids.has(u)) out.push(`${where}: uuid ${u} is used twice`);
    uuids.add(u);
  };
  unique('Event', e.uuid);
  e.Attribute.forEach((a, i) => {
    unique(`Attribute[${i}]`, a.uuid);
    const p = valueProblem(`Attribute[${i}]`, a);
    if (p !== null) out.push(p);
  });
  let count = e.Attribute.length;
  e.Object.forEach((o, i) => {
    const where = `Object[${i}] ${o.name}`;
    unique(where, o.uuid);
    const t = TEMPLATES.get(o.name);
    if (t === undefined) return void out.push(`${where}: no such template`);
    if (o.template_uuid !== t.uuid) out.push(`${where}: template_uuid ${o.template_uuid} is not the template's ${t.uuid}`);
    if (o.template_version !== String(t.version)) out.push(`${where}: template_version ${o.template_version} is not ${t.version}`);
    if (o['meta-category'] !== t['meta-category']) out.push(`${where}: meta-category ${o['meta-category']} is not ${t['meta-category']}`);
    const relations = o.Attribute.map((a) => a.object_relation);
    if (!t.requiredOneOf.some((r) => relations.includes(r))) out.push(`${where}: none of ${t.requiredOneOf.join(', ')}`);
    o.Attribute.forEach((a, j) => {
      const at = `${where}.Attribute[${j}] ${a.object_relation}`;
      unique(at, a.uuid);
      count += 1;
      const spec = t.attributes[a.object_relation];
      if (spec === undefined) return void out.push(`${at}: the template has no such relation`);
      if (a.type !== spec['misp-attribute']) out.push(`${at}: type ${a.type} is not the template's ${spec['misp-attribute']}`);
      if (spec.categories !== undefined && !spec.categories.includes(a.category)) out.push(`${at}: category ${a.category} is not one of the template's ${spec.categories.join(', ')}`);
      if (spec.multiple !== true && relations.filter((r) => r === a.object_relation).length > 1) out.push(`${at}: the template allows it once`);
      const p = valueProblem(at, a);
      if (p !== null) out.push(p);
    });
    for (const r of o.ObjectReference) {
      if (r.object_uuid !== o.uuid) out.push(`${where}: a reference from ${r.object_uuid}, not from the object`);
      if (!fixture.relationships.includes(r.relationship_type)) out.push(`${where}: relationship ${r.relationship_type} is not in MISP's list`);
    }
  });
  const objectUuids = new Set(e.Object.map((o) => o.uuid));
  for (const o of e.Object) for (const r of o.ObjectReference) if (!objectUuids.has(r.referenced_uuid)) out.push(`Object ${o.uuid}: reference to ${r.referenced_uuid}, which is not in the event`);
  if (String(count) !== e.attribute_count) out.push(`attribute_count ${e.attribute_count} but ${count} attributes`);
  return out;
}
