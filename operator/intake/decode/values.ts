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
  const copy = { ...value };
  for (const key of Object.keys(copy)) {
    if (Reflect.get(copy, key) === undefined) Reflect.deleteProperty(copy, key);
  }
  return copy;
}
