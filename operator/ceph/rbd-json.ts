// Readers for `rbd ... --format json` output (field names as printed by Ceph
// Pacific 16.2). rbd prints booleans of some commands as the strings "true" /
// "false", and times as ctime strings in the process's local time zone: the
// adapter runs rbd with TZ=UTC and these readers take the strings as UTC.
// Unknown fields are ignored so that newer releases still parse.

import { z } from 'zod';
import type {
  DiskUsage,
  ImageInfo,
  ParentInfo,
  SnapshotInfo,
  SnapshotNamespaceKind,
  TrashEntry,
  PoolRef,
} from '../domain/block-store.ts';

export class RbdOutputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RbdOutputError';
  }
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const CTIME = /^(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) ([A-Z][a-z]{2}) +(\d{1,2}) (\d{2}):(\d{2}):(\d{2}) (\d{4})$/;

/** "Sun Jun  1 12:00:00 2031" (as printed under TZ=UTC) → Date. */
export function parseCtimeUtc(text: string): Date {
  const m = CTIME.exec(text.trim());
  const month = m === null ? -1 : MONTHS.indexOf(m[1] ?? '');
  if (m === null || month < 0) throw new RbdOutputError(`not a ctime timestamp: ${JSON.stringify(text)}`);
  const [day, hour, minute, second, year] = [m[2], m[3], m[4], m[5], m[6]].map(Number) as [number, number, number, number, number];
  return new Date(Date.UTC(year, month, day, hour, minute, second));
}

const ctime = z.string().transform((text, ctx) => {
  try {
    return parseCtimeUtc(text);
  } catch (error) {
    ctx.addIssue({ code: 'custom', message: (error as Error).message });
    return z.NEVER;
  }
});

const boolish = z.union([z.boolean(), z.enum(['true', 'false'])]).transform((v) => v === true || v === 'true');
const bytes = z.number().int().nonnegative();
const emptyToUndefined = (v: string | undefined): string | undefined => (v === undefined || v === '' ? undefined : v);

const infoParentSchema = z.object({
  pool: z.string(),
  pool_namespace: z.string().optional(),
  image: z.string(),
  id: z.string().optional(),
  snapshot: z.string(),
  trash: boolish.optional(),
  overlap: bytes.optional(),
});

function toParent(p: z.infer<typeof infoParentSchema>): ParentInfo {
  return {
    pool: p.pool,
    namespace: emptyToUndefined(p.pool_namespace),
    image: p.image,
    imageId: p.id,
    snapshot: p.snapshot,
    inTrash: p.trash,
    overlapBytes: p.overlap,
  };
}

export const infoSchema = z.object({
  name: z.string(),
  id: z.string(),
  size: bytes,
  objects: z.number().int(),
  object_size: bytes,
  format: z.number().int(),
  snapshot_count: z.number().int().optional(),
  features: z.array(z.string()).default([]),
  op_features: z.array(z.string()).default([]),
  flags: z.array(z.string()).default([]),
  create_timestamp: ctime.optional(),
  access_timestamp: ctime.optional(),
  modify_timestamp: ctime.optional(),
  parent: infoParentSchema.optional(),
});

export const snapshotListSchema = z.array(
  z.object({
    id: z.number().int(),
    name: z.string(),
    size: bytes,
    protected: boolish,
    timestamp: ctime,
    namespace: z.object({ type: z.string(), original_name: z.string().optional() }).optional(),
  }),
);

export const trashListSchema = z.array(
  z.object({
    id: z.string(),
    name: z.string(),
    source: z.string(),
    deleted_at: ctime,
    status: z.string(),
    parent: infoParentSchema.optional(),
  }),
);

export const duSchema = z.object({
  images: z.array(
    z.object({
      name: z.string(),
      id: z.string(),
      snapshot: z.string().optional(),
      provisioned_size: bytes,
      used_size: bytes,
    }),
  ),
  total_provisioned_size: bytes.optional(),
  total_used_size: bytes.optional(),
});

export const nameListSchema = z.array(z.string());
export const namespaceListSchema = z.array(z.object({ name: z.string() }));
export const metaListSchema = z.record(z.string(), z.string());

/** JSON.parse + schema, with one error type for both ways of failing. */
export function parseJsonOutput<S extends z.ZodType>(stdout: string, schema: S): z.output<S> {
  let raw: unknown;
  try {
    raw = JSON.parse(stdout);
  } catch {
    throw new RbdOutputError(`output is not JSON: ${JSON.stringify(stdout.slice(0, 200))}`);
  }
  const result = schema.safeParse(raw);
  if (!result.success) throw new RbdOutputError(`unexpected output: ${z.prettifyError(result.error)}`);
  return result.data;
}

export function parseImageInfo(stdout: string): ImageInfo {
  const i = parseJsonOutput(stdout, infoSchema);
  return {
    name: i.name,
    id: i.id,
    sizeBytes: i.size,
    objectSizeBytes: i.object_size,
    objectCount: i.objects,
    format: i.format,
    snapshotCount: i.snapshot_count ?? 0,
    features: i.features,
    opFeatures: i.op_features,
    flags: i.flags,
    createdAt: i.create_timestamp,
    modifiedAt: i.modify_timestamp,
    accessedAt: i.access_timestamp,
    parent: i.parent === undefined ? undefined : toParent(i.parent),
  };
}

const NAMESPACE_KINDS: ReadonlySet<string> = new Set(['user', 'trash', 'group', 'mirror']);

export function parseSnapshotList(stdout: string): SnapshotInfo[] {
  return parseJsonOutput(stdout, snapshotListSchema).map((s) => {
    const type = s.namespace?.type ?? 'user';
    return {
      id: s.id,
      name: s.name,
      sizeBytes: s.size,
      protected: s.protected,
      createdAt: s.timestamp,
      namespace: (NAMESPACE_KINDS.has(type) ? type : 'other') as SnapshotNamespaceKind,
      originalName: s.namespace?.original_name,
    };
  });
}

const TRASH_STATUS = /^(protected until|expired at) (.+)$/;

export function parseTrashList(stdout: string, where: PoolRef): TrashEntry[] {
  return parseJsonOutput(stdout, trashListSchema).map((t) => {
    const m = TRASH_STATUS.exec(t.status);
    if (m === null) throw new RbdOutputError(`unexpected trash status ${JSON.stringify(t.status)} for ${t.id}`);
    return {
      pool: where.pool,
      namespace: where.namespace,
      id: t.id,
      name: t.name,
      source: t.source,
      deletedAt: t.deleted_at,
      expiresAt: parseCtimeUtc(m[2] ?? ''),
      expired: m[1] === 'expired at',
      parent: t.parent === undefined ? undefined : toParent(t.parent),
    };
  });
}

export function parseDiskUsage(stdout: string): DiskUsage {
  const du = parseJsonOutput(stdout, duSchema);
  const rows = du.images.map((r) => ({
    image: r.name,
    id: r.id,
    snapshot: r.snapshot,
    provisionedBytes: r.provisioned_size,
    usedBytes: r.used_size,
  }));
  // rbd prints the totals only for pool and namespace listings.
  const heads = rows.filter((r) => r.snapshot === undefined);
  return {
    rows,
    totalProvisionedBytes: du.total_provisioned_size ?? heads.reduce((sum, r) => sum + r.provisionedBytes, 0),
    totalUsedBytes: du.total_used_size ?? rows.reduce((sum, r) => sum + r.usedBytes, 0),
  };
}

export function parseNameList(stdout: string): string[] {
  return parseJsonOutput(stdout, nameListSchema);
}

export function parseNamespaceList(stdout: string): string[] {
  return parseJsonOutput(stdout, namespaceListSchema).map((n) => n.name);
}

/** rbd prints nothing at all, not `{}`, for an image without metadata. */
export function parseMetaList(stdout: string): Record<string, string> {
  if (stdout.trim() === '') return {};
  return { ...parseJsonOutput(stdout, metaListSchema) };
}

/** `image-meta get` and `config pool get` print the bare value and a newline. */
export function parseBareValue(stdout: string): string {
  return stdout.endsWith('\n') ? stdout.slice(0, -1) : stdout;
}

const diffSchema = z.array(z.object({ offset: bytes, length: bytes, exists: boolish }));

/** `rbd diff --format json` from creation: the extents holding data (`exists` false would be a discard). */
export function parseDiffExtents(stdout: string): { offset: number; length: number }[] {
  return parseJsonOutput(stdout, diffSchema).filter((e) => e.exists).map((e) => ({ offset: e.offset, length: e.length }));
}
