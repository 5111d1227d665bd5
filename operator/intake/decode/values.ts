// Small value normalizers shared by the decoders.

/** `''`, null and undefined all mean "not given" in these payloads. */
export function nonEmpty(value: string | null | undefined): string | undefined {
  return value === null || value === undefined || value === '' ? undefined : value;
}

/**
 * A copy without the properties whose value is undefined, so that "not given"
 * is an absent key rather than a present-but-undefined one (matters for
 * equality checks and for JSON written to the ledger).
 */
export function compact<T extends object>(value: T): T {
  // Built by adding the defined keys rather than deleting the others from a
  // copy: a deletion turns the object into a slow dictionary-mode object for
  // everything that reads it afterwards (decode runs once per delivery).
  // for…in rather than Object.keys: no array of keys per object (the decoders' objects are literals, with no
  // inherited enumerable keys).
  const copy: Record<string, unknown> = {};
  const from = value as Record<string, unknown>;
  for (const key in from) {
    const v = from[key];
    if (v !== undefined) copy[key] = v;
  }
  return copy as T;
}
