// The two ways a reconcile can fail, and what the runtime does about each:
// a TemporaryError is retried with backoff, a PermanentError waits for the
// object to change. Anything else thrown counts as temporary.

/** CamelCase, as conditions and Events want their reason. */
export type Reason = string;

export class TemporaryError extends Error {
  override name = 'TemporaryError';
  /** The least time before the next try; repeated failures back off further. */
  readonly delayMs: number;
  readonly reason: Reason;
  constructor(message: string, delayMs = 5_000, options: { reason?: Reason; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.delayMs = delayMs;
    this.reason = options.reason ?? 'TemporaryFailure';
  }
}

export class PermanentError extends Error {
  override name = 'PermanentError';
  readonly reason: Reason;
  constructor(message: string, options: { reason?: Reason; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.reason = options.reason ?? 'PermanentFailure';
  }
}

/** The HTTP status of an API error from client-node or one of our fakes, if it has one. */
export function httpStatus(err: unknown): number | undefined {
  if (err === null || typeof err !== 'object') return undefined;
  const e = err as { code?: unknown; statusCode?: unknown };
  if (typeof e.code === 'number') return e.code;
  if (typeof e.statusCode === 'number') return e.statusCode;
  return undefined;
}
