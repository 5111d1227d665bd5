// Validation of everything that ends up on an rbd command line. Names come
// from cloud notifications and custom resources, i.e. from outside; they are
// checked before a process is started so that a hostile or broken name can
// neither address another object (`..`, `/`, `@`) nor be read as an option
// (leading `-`). The rules are stricter than Ceph's own, and still admit every
// name the supported clouds produce (`<uuid>_disk.local`, `volume-<uuid>`,
// `one-12-34-0`, Glance's `snap`, trash snapshot uuids).

import type { ImageIdRef, ImageSpec, PoolRef, SnapshotSpec } from '../domain/block-store.ts';

export type NameKind =
  | 'pool'
  | 'namespace'
  | 'image'
  | 'snapshot'
  | 'image id'
  | 'metadata key'
  | 'metadata value'
  | 'config key'
  | 'config value'
  | 'cephx user';

export class InvalidNameError extends Error {
  readonly kind: NameKind;
  readonly value: string;
  readonly reason: string;

  constructor(kind: NameKind, value: string, reason: string) {
    super(`invalid ${kind} ${quote(value)}: ${reason}`);
    this.name = 'InvalidNameError';
    this.kind = kind;
    this.value = value;
    this.reason = reason;
  }
}

export const MAX_NAME_LENGTH = 255;
export const MAX_META_VALUE_LENGTH = 65536;

const NAME_CHARS = /^[A-Za-z0-9_.:+-]+$/;
const IMAGE_ID = /^[0-9a-f]+$/;
const MAX_IMAGE_ID_LENGTH = 64;
const CONFIG_KEY = /^rbd_[a-z0-9_]+$/;
const CEPHX_USER = /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/;
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

function quote(value: string): string {
  const shown = value.length > 80 ? `${value.slice(0, 80)}…` : value;
  return JSON.stringify(shown);
}

/** Why `value` is not a safe name component, or undefined when it is. */
export function nameProblem(value: string): string | undefined {
  if (value === '') return 'is empty';
  if (value.length > MAX_NAME_LENGTH) return `is ${value.length} characters long (at most ${MAX_NAME_LENGTH})`;
  if (CONTROL.test(value)) return 'contains a control character';
  if (/\s/.test(value)) return 'contains whitespace';
  if (value.includes('/')) return "contains '/', which separates pool, namespace and image";
  if (value.includes('@')) return "contains '@', which separates image and snapshot";
  if (value.includes(';')) return "contains ';'";
  if (value.includes('..')) return "contains '..'";
  if (/^\.+$/.test(value)) return 'consists of dots only';
  if (value.startsWith('-')) return "starts with '-' and would be read as an option";
  const bad = [...value].find((ch) => !NAME_CHARS.test(ch));
  if (bad !== undefined) return `contains ${JSON.stringify(bad)} (allowed: letters, digits and _ . : + -)`;
  return undefined;
}

function check(kind: NameKind, value: unknown, problem: (v: string) => string | undefined): string {
  if (typeof value !== 'string') throw new InvalidNameError(kind, String(value), 'is not a string');
  const why = problem(value);
  if (why !== undefined) throw new InvalidNameError(kind, value, why);
  return value;
}

export function validatePoolName(value: string): string {
  return check('pool', value, nameProblem);
}

export function validateNamespaceName(value: string): string {
  return check('namespace', value, nameProblem);
}

export function validateImageName(value: string): string {
  return check('image', value, nameProblem);
}

export function validateSnapshotName(value: string): string {
  return check('snapshot', value, nameProblem);
}

export function validateImageId(value: string): string {
  return check('image id', value, (v) => {
    if (v === '') return 'is empty';
    if (v.length > MAX_IMAGE_ID_LENGTH) return `is ${v.length} characters long (at most ${MAX_IMAGE_ID_LENGTH})`;
    if (!IMAGE_ID.test(v)) return 'is not a lower-case hex string';
    return undefined;
  });
}

export function validateMetaKey(value: string): string {
  return check('metadata key', value, nameProblem);
}

/** Free text (provenance JSON, case ids); passed after `--`, so a leading '-' is harmless. */
export function validateMetaValue(value: string): string {
  return check('metadata value', value, (v) => {
    if (v.length > MAX_META_VALUE_LENGTH) return `is ${v.length} characters long (at most ${MAX_META_VALUE_LENGTH})`;
    if (CONTROL.test(v)) return 'contains a control character';
    return undefined;
  });
}

export function validateConfigKey(value: string): string {
  return check('config key', value, (v) => (CONFIG_KEY.test(v) ? undefined : 'is not an rbd option name (rbd_[a-z0-9_]+)'));
}

export function validateConfigValue(value: string): string {
  return check('config value', value, (v) => {
    if (v === '') return 'is empty';
    if (v.length > 256) return `is ${v.length} characters long (at most 256)`;
    if (!NAME_CHARS.test(v)) return 'may only hold letters, digits and _ . : + -';
    return undefined;
  });
}

export function validateCephxUser(value: string): string {
  return check('cephx user', value, (v) => {
    if (v === '' || v.length > 128) return 'must be 1 to 128 characters long';
    if (!CEPHX_USER.test(v)) return 'may only hold letters, digits and _ . - (not first)';
    return undefined;
  });
}

export function validatePoolRef(ref: PoolRef): void {
  validatePoolName(ref.pool);
  if (ref.namespace !== undefined) validateNamespaceName(ref.namespace);
}

/** `pool` or `pool/namespace`. */
export function formatPoolSpec(ref: PoolRef): string {
  validatePoolRef(ref);
  return ref.namespace === undefined ? ref.pool : `${ref.pool}/${ref.namespace}`;
}

/** `pool/image` or `pool/namespace/image`. */
export function formatImageSpec(spec: ImageSpec): string {
  validateImageName(spec.image);
  return `${formatPoolSpec(spec)}/${spec.image}`;
}

/** `pool[/namespace]/image@snapshot`. */
export function formatSnapshotSpec(spec: SnapshotSpec): string {
  validateSnapshotName(spec.snapshot);
  return `${formatImageSpec(spec)}@${spec.snapshot}`;
}

/** `pool[/namespace]/<image id>`: how rbd addresses a trash entry. */
export function formatTrashSpec(ref: ImageIdRef): string {
  validateImageId(ref.imageId);
  return `${formatPoolSpec(ref)}/${ref.imageId}`;
}

/** Reads `pool/image` or `pool/namespace/image`, validating every part. */
export function parseImageSpec(text: string): ImageSpec {
  const parts = text.split('/');
  if (parts.length === 2) {
    const [pool = '', image = ''] = parts;
    return { pool: validatePoolName(pool), image: validateImageName(image) };
  }
  if (parts.length === 3) {
    const [pool = '', namespace = '', image = ''] = parts;
    return { pool: validatePoolName(pool), namespace: validateNamespaceName(namespace), image: validateImageName(image) };
  }
  throw new InvalidNameError('image', text, 'is not of the form pool/image or pool/namespace/image');
}
