// zod strips keys a schema does not name; for a resource that means a typo
// (`prefech: 5`) silently does nothing. Comparing what went in with what came
// out names every such key.

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Date);
}

/** Paths (`spec.amqp.prefech`, `spec.exchanges[1].nme`) present in `input` but dropped from `parsed`. */
export function unknownFieldPaths(input: unknown, parsed: unknown, path = ''): string[] {
  if (Array.isArray(input) && Array.isArray(parsed)) {
    return input.flatMap((v, i) => unknownFieldPaths(v, parsed[i], `${path}[${i}]`));
  }
  if (!isPlainObject(input) || !isPlainObject(parsed)) return [];
  return Object.keys(input).flatMap((key) => {
    const at = path === '' ? key : `${path}.${key}`;
    return key in parsed ? unknownFieldPaths(input[key], parsed[key], at) : [at];
  });
}
