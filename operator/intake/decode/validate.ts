// Runs a zod schema and turns its complaints into a DecodeError that names
// the offending field path, e.g. `payload["nova_object.data"].uuid`.
import type { z } from 'zod';
import { DecodeError, type DecodeErrorReason } from './errors.ts';

const MAX_ISSUES = 5;

function pathText(root: string, path: readonly PropertyKey[]): string {
  let text = root;
  for (const key of path) {
    if (typeof key === 'number') text += `[${key}]`;
    else if (typeof key === 'string' && /^[A-Za-z_$][\w$]*$/.test(key)) text += text === '' ? key : `.${key}`;
    else text += `[${JSON.stringify(String(key))}]`;
  }
  return text === '' ? '(root)' : text;
}

/**
 * Parses `value` or throws DecodeError(reason). `root` is the path of `value`
 * inside the message (e.g. `payload`), so the error names the full field path.
 */
export function parseWith<S extends z.ZodType>(
  schema: S,
  value: unknown,
  reason: DecodeErrorReason,
  root: string,
  what: string,
): z.output<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issues = result.error.issues;
  const shown = issues.slice(0, MAX_ISSUES).map((issue) => `${pathText(root, issue.path)}: ${issue.message}`);
  const more = issues.length > MAX_ISSUES ? ` (and ${issues.length - MAX_ISSUES} more)` : '';
  throw new DecodeError(reason, `${what}: ${shown.join('; ')}${more}`);
}
