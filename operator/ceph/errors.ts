// Typed failures of the block store. The rbd CLI exits with the positive errno
// of the failed librbd call, which is what the mapping below relies on.

import { getSystemErrorMessage } from 'node:util';

export interface RbdErrorDetails {
  /** argv as run, program first; never holds a secret (see redactArgv). */
  readonly command: readonly string[];
  /** null when the process did not exit by itself (signal, timeout, spawn failure). */
  readonly exitCode: number | null;
  readonly stderr: string;
  readonly signal?: string | null | undefined;
  readonly cause?: unknown;
}

export class RbdError extends Error {
  readonly command: readonly string[];
  readonly exitCode: number | null;
  readonly stderr: string;
  readonly signal: string | null;

  constructor(message: string, details: RbdErrorDetails) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = new.target.name;
    this.command = redactArgv(details.command);
    this.exitCode = details.exitCode;
    this.stderr = details.stderr;
    this.signal = details.signal ?? null;
  }
}

/** ENOENT: pool, namespace, image, snapshot, trash entry or metadata key. */
export class RbdNotFoundError extends RbdError {}
/** EPERM / EACCES: cephx caps, or a trash entry whose deferment has not expired. */
export class RbdPermissionDeniedError extends RbdError {}
/** EBUSY: the image is open elsewhere (watchers) or a snapshot is in use. */
export class RbdBusyError extends RbdError {}
/** ENOTEMPTY: removal of an image that still has snapshots. */
export class RbdHasSnapshotsError extends RbdError {}
/** EEXIST: the image, snapshot or namespace is already there. */
export class RbdExistsError extends RbdError {}
/** EINVAL, and command-line usage errors (which rbd reports with exit code 1). */
export class RbdInvalidArgumentError extends RbdError {}
/** The process ran past its time limit and was killed. */
export class RbdTimeoutError extends RbdError {
  readonly timeoutMs: number;
  constructor(message: string, details: RbdErrorDetails & { readonly timeoutMs: number }) {
    super(message, details);
    this.timeoutMs = details.timeoutMs;
  }
}
/** The caller aborted the operation; the process was killed. */
export class RbdAbortedError extends RbdError {}
/** rbd succeeded but printed something the adapter cannot read. */
export class RbdUnexpectedOutputError extends RbdError {}
/** Anything else: other errno values, a signal, rbd not installed. */
export class RbdCommandError extends RbdError {}

/**
 * A request that is refused before any process starts (a past trash expiry, a
 * non-positive size). Names have their own InvalidNameError in ./names.ts.
 */
export class InvalidRequestError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvalidRequestError';
  }
}

const ERRNO_NAMES: Readonly<Record<number, string>> = {
  1: 'EPERM',
  2: 'ENOENT',
  5: 'EIO',
  11: 'EAGAIN',
  13: 'EACCES',
  16: 'EBUSY',
  17: 'EEXIST',
  18: 'EXDEV',
  22: 'EINVAL',
  28: 'ENOSPC',
  30: 'EROFS',
  34: 'ERANGE',
  38: 'ENOSYS',
  39: 'ENOTEMPTY',
  95: 'EOPNOTSUPP',
  108: 'ESHUTDOWN',
  110: 'ETIMEDOUT',
  122: 'EDQUOT',
};

export function errnoName(code: number): string | undefined {
  return ERRNO_NAMES[code];
}

type RbdErrorClass = new (message: string, details: RbdErrorDetails) => RbdError;

const BY_EXIT_CODE: ReadonlyMap<number, RbdErrorClass> = new Map<number, RbdErrorClass>([
  [1, RbdPermissionDeniedError],
  [2, RbdNotFoundError],
  [13, RbdPermissionDeniedError],
  [16, RbdBusyError],
  [17, RbdExistsError],
  [22, RbdInvalidArgumentError],
  [39, RbdHasSnapshotsError],
]);

// rbd exits with 1 (EXIT_FAILURE) for its own argument parsing errors too;
// those must not read as "permission denied".
const USAGE_ERROR = /unrecognised option|unknown option|too many arguments|error parsing|invalid option|the required argument|must specify|cannot be specified/i;

/** The class for a non-zero exit of rbd. */
export function errorClassForExit(exitCode: number, stderr: string): RbdErrorClass {
  if (exitCode === 1 && USAGE_ERROR.test(stderr)) return RbdInvalidArgumentError;
  return BY_EXIT_CODE.get(exitCode) ?? RbdCommandError;
}

export function errorFromExit(details: RbdErrorDetails & { readonly exitCode: number }): RbdError {
  const ErrorClass = errorClassForExit(details.exitCode, details.stderr);
  const errno = errnoName(details.exitCode);
  const code = errno === undefined ? `exit ${details.exitCode}` : `exit ${details.exitCode} ${errno}`;
  return new ErrorClass(`${describeCommand(details.command)} failed (${code}): ${summarizeStderr(details.stderr)}`, details);
}

// librbd prefixes its log lines with a timestamp, thread id and level.
const LOG_PREFIX = /^\d{4}-\d\d-\d\dT\S+\s+\S+\s+-?\d+\s+/;
// Progress text has no newline, so a log line may follow it on the same line.
const PROGRESS = /^[A-Za-z ]+: \d+% complete\.\.\.(?:done|failed)?\.?/;
const MAX_SUMMARY = 400;

/**
 * The line of stderr that says what went wrong: rbd's own last `rbd:` line when
 * there is one (librbd's log lines before it are detail), else the last line.
 */
export function summarizeStderr(stderr: string): string {
  const lines = stderr
    .split('\n')
    .map((line) => line.replace(PROGRESS, '').replace(LOG_PREFIX, '').trim())
    .filter((line) => line !== '');
  const rbdLines = lines.filter((line) => line.startsWith('rbd:'));
  const chosen = rbdLines.at(-1) ?? lines.at(-1) ?? '(no output on stderr)';
  return chosen.length > MAX_SUMMARY ? `${chosen.slice(0, MAX_SUMMARY)}…` : chosen;
}

/** The command without its global connection options, for messages. */
export function describeCommand(command: readonly string[]): string {
  const words: string[] = [];
  for (let i = 0; i < command.length; i++) {
    const word = command[i] ?? '';
    if (CONNECTION_OPTIONS.has(word)) {
      i++;
      continue;
    }
    if ([...CONNECTION_OPTIONS].some((option) => word.startsWith(`${option}=`)) || word === '--') continue;
    words.push(word);
  }
  return words.join(' ');
}

const CONNECTION_OPTIONS = new Set(['--conf', '-c', '--id', '--name', '-n', '--keyring', '-k', '--mon-host', '-m', '--cluster']);
const SECRET_OPTIONS = new Set(['--key', '--keyfile']);

/** Replaces the values of options that carry a secret. */
export function redactArgv(argv: readonly string[]): readonly string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const word = argv[i] ?? '';
    const option = word.split('=', 1)[0] ?? '';
    if (SECRET_OPTIONS.has(option)) {
      if (word.includes('=')) {
        out.push(`${option}=<redacted>`);
      } else {
        out.push(word, '<redacted>');
        i++;
      }
      continue;
    }
    out.push(word);
  }
  return Object.freeze(out);
}

/**
 * The typed error for a librbd/librados call that returned `-errno`: the same
 * class the rbd CLI's exit code (that same errno) maps to, so callers cannot
 * tell the adapters apart by their failures.
 */
export function errorFromErrno(call: string, target: string, errno: number, timeoutMs?: number): RbdError {
  const command = Object.freeze(['librbd', call, target]);
  const name = errnoName(errno);
  const code = name === undefined ? `errno ${errno}` : `errno ${errno} ${name}`;
  const message = `${call} ${target} failed (${code}): ${describeErrno(errno)}`;
  const details = { command, exitCode: errno, stderr: '' };
  if (errno === 110 && timeoutMs !== undefined) return new RbdTimeoutError(message, { ...details, timeoutMs });
  const ErrorClass = BY_EXIT_CODE.get(errno) ?? RbdCommandError;
  return new ErrorClass(message, details);
}

function describeErrno(errno: number): string {
  try {
    return getSystemErrorMessage(-errno);
  } catch {
    return 'unknown error';
  }
}
