// Exit codes of the `quarantine` command, one meaning each, so scripts can rely
// on them (README, "Exit codes"). Commands throw the errors below, or set
// Status.code for an outcome that is not an error (a partial ingest).
export const EXIT = {
  ok: 0,
  /** Nothing found: no holder of an address then, an unknown id, cloud or hold. */
  notFound: 1,
  /** Bad argument, option or configuration: a one-line message on stderr. */
  usage: 2,
  /** Some inputs were rejected (e.g. by `ingest`, or a sweep that failed some deletions); the rest was processed. */
  partial: 3,
  /** A bug: anything unexpected (with a stack trace, to be reported). */
  failure: 4,
  /** Evidence verification failed: the audit trail or a quarantine's digest does not check out. */
  evidence: 5,
  /** The same code under the name the output helpers use. */
  verificationFailed: 5,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** An error the user can fix by changing the command line or configuration. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** What the command was asked about does not exist (an unknown id, cloud or hold). */
export class NotFoundError extends Error {
  override name = 'NotFoundError';
}

/** Evidence that does not verify; the message says which and how. */
export class VerificationError extends Error {
  override name = 'VerificationError';
}

// By name, so that classifying an error never loads the (heavy) module that defines it.
const BY_NAME: Record<string, ExitCode> = {
  UsageError: EXIT.usage,
  LedgerUrlError: EXIT.usage,
  ManifestError: EXIT.usage,
  SecretNotFoundError: EXIT.usage,
  InvalidNameError: EXIT.usage,
  HoldError: EXIT.usage,
  RestoreTargetExistsError: EXIT.usage,
  LedgerUnavailableError: EXIT.usage,
  AuditKeyError: EXIT.usage,
  NotFoundError: EXIT.notFound,
  QuarantineUnavailableError: EXIT.notFound,
  VerificationError: EXIT.verificationFailed,
};

/** The exit code an error thrown by a command maps to; EXIT.failure (a bug) for anything not classified. */
export function exitCodeOf(err: unknown): ExitCode {
  return err instanceof Error ? (BY_NAME[err.name] ?? EXIT.failure) : EXIT.failure;
}
