// Exit codes of the `quarantine` command, one meaning each, so scripts can rely on them.
export const EXIT = {
  ok: 0,
  /** A query answered "nothing" (e.g. no holder of an address at that time). */
  notFound: 1,
  /** Bad argument, option or configuration: a one-line message on stderr. */
  usage: 2,
  /** Some inputs were rejected (e.g. by `ingest`); the rest was processed. */
  partial: 3,
  /** Anything unexpected. */
  failure: 4,
  /** Evidence verification failed: the audit trail or a quarantine's digest does not check out. */
  evidence: 5,
} as const;

/** An error the user can fix by changing the command line or configuration. */
export class UsageError extends Error {
  override name = 'UsageError';
}
