// Small value normalizers shared by the decoders.

/** `''`, null and undefined all mean "not given" in these payloads. */
export function nonEmpty(value: string | null | undefined): string | undefined {
  return value === null || value === undefined || value === '' ? undefined : value;
}

/**
 * Drops properties whose value is undefined, so that "not given" is an absent
 * key rather than a present-but-undefined one (matters for equality and JSON).
 */
export function compact<T extends object>(value: T): T {
  const out: Partial<T> = {};
  for (const key of Object.keys(value) as (keyof T)[]) {
    if (value[key] !== undefined) out[key] = value[key];
  }
  return out as T;
}
