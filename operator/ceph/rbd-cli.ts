// BlockStore over the `rbd` command-line tool. One process per call costs
// ~40-60 ms (start, librados connect, cephx); in exchange the operator needs
// no native binding and a hung cluster cannot hang the operator's own process.
//
// Every argv is built from validated parts (./names.ts) and passed to
// execFile/spawn as an array; positional arguments follow `--`, so that not
// even a value that slipped through could be read as an option. rbd runs with
// TZ=UTC because it prints and parses times in local time.

import { resolve as resolvePath } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ChildProcess } from 'node:child_process';
import type {
  AllocatedRead,
  AllocationMap,
  BlockStore,
  ExtentData,
  DiskUsage,
  ExportHandle,
  ImageIdRef,
  ImageInfo,
  ImageRef,
  ImageSpec,
  ParentInfo,
  ImportSource,
  NamespaceRef,
  PoolRef,
  SnapshotInfo,
  SnapshotListOptions,
  SnapshotRef,
  SnapshotSpec,
  TransferOptions,
  TrashEntry,
  TrashListOptions,
  TrashMoveOptions,
  TrashRemoveOptions,
  TrashRestoreOptions,
} from '../domain/block-store.ts';
import { isImageIdRef, isSnapshotSpec } from '../domain/block-store.ts';
import {
  InvalidRequestError,
  RbdAbortedError,
  RbdCommandError,
  RbdError,
  RbdNotFoundError,
  RbdTimeoutError,
  RbdUnexpectedOutputError,
  describeCommand,
  errorFromExit,
} from './errors.ts';
import {
  formatImageSpec,
  formatSnapshotSpec,
  formatTrashSpec,
  validateCephxUser,
  validateConfigKey,
  validateConfigValue,
  validateImageId,
  validateImageName,
  validateMetaKey,
  validateMetaValue,
  validateNamespaceName,
  validatePoolName,
  validatePoolRef,
  validateSnapshotName,
} from './names.ts';
import { coalesced, normalizeExtents } from './extents.ts';
import { readDiffStream, writeDiffStream } from './rbd-diff-stream.ts';
import { execFileRun, nodeSpawnFn, terminate } from './process.ts';
import type { RunFn, RunResult, SpawnFn } from './process.ts';
import {
  RbdOutputError,
  parseBareValue,
  parseDiffExtents,
  parseDiskUsage,
  parseImageInfo,
  parseMetaList,
  parseNameList,
  parseNamespaceList,
  parseSnapshotList,
  parseTrashList,
} from './rbd-json.ts';
import { DEFAULT_TIMEOUT_MS, DEFAULT_TRANSFER_TIMEOUT_MS, MIN_TRASH_EXPIRY_LEAD_MS, type CephConnectionOptions } from './connection.ts';

export interface RbdCliOptions extends CephConnectionOptions {
  readonly rbdPath?: string | undefined;
  /** Environment for rbd; default process.env. TZ and LC_ALL are always overridden. */
  readonly env?: NodeJS.ProcessEnv | undefined;
  readonly now?: (() => Date) | undefined;
  readonly run?: RunFn | undefined;
  readonly spawn?: SpawnFn | undefined;
}

const MAX_STDERR = 64 * 1024;
/** Bytes per data record fed to rbd import-diff: one default RBD object. */
const WRITE_CHUNK_BYTES = 4 * 1024 * 1024;
// `rbd config pool get` of a key the pool does not set: exit 2 and this text.
const POOL_CONFIG_UNSET = /is not set\s*$/m;

interface Failure extends RunResult {
  readonly aborted?: boolean | undefined;
}

/** `words options -- positionals`. */
function cmd(words: readonly string[], options: readonly string[], positionals: readonly string[] = []): string[] {
  return positionals.length === 0 ? [...words, ...options] : [...words, ...options, '--', ...positionals];
}

function poolOptions(where: PoolRef): string[] {
  validatePoolRef(where);
  return where.namespace === undefined ? ['--pool', where.pool] : ['--pool', where.pool, '--namespace', where.namespace];
}

/** By name: a positional spec; by id: options, which is how rbd reaches trashed images. */
function imageTarget(ref: ImageRef): { options: string[]; positionals: string[] } {
  if (isImageIdRef(ref)) return { options: [...poolOptions(ref), '--image-id', validateImageId(ref.imageId)], positionals: [] };
  return { options: [], positionals: [formatImageSpec(ref)] };
}

function checkPath(kind: string, value: string): string {
  if (value === '' || /[\u0000-\u001f]/.test(value)) throw new InvalidRequestError(`invalid ${kind} ${JSON.stringify(value)}`);
  return value;
}

function checkTimeout(name: string, value: number): number {
  if (!Number.isFinite(value) || value <= 0) throw new InvalidRequestError(`${name} must be a positive number of milliseconds, got ${value}`);
  return value;
}

export class RbdCli implements BlockStore {
  readonly #rbd: string;
  readonly #globalArgs: readonly string[];
  readonly #timeoutMs: number;
  readonly #transferTimeoutMs: number;
  readonly #env: NodeJS.ProcessEnv;
  readonly #now: () => Date;
  readonly #run: RunFn;
  readonly #spawn: SpawnFn;

  constructor(options: RbdCliOptions = {}) {
    this.#rbd = checkPath('rbd path', options.rbdPath ?? 'rbd');
    const global: string[] = [];
    if (options.cephConf !== undefined) global.push(`--conf=${checkPath('ceph.conf path', options.cephConf)}`);
    if (options.id !== undefined) global.push(`--id=${validateCephxUser(options.id)}`);
    if (options.keyring !== undefined) global.push(`--keyring=${checkPath('keyring path', options.keyring)}`);
    if (options.monHost !== undefined) global.push(`--mon-host=${checkPath('monitor address list', options.monHost)}`);
    this.#globalArgs = Object.freeze(global);
    this.#timeoutMs = checkTimeout('timeoutMs', options.timeoutMs ?? DEFAULT_TIMEOUT_MS);
    this.#transferTimeoutMs = checkTimeout('transferTimeoutMs', options.transferTimeoutMs ?? DEFAULT_TRANSFER_TIMEOUT_MS);
    this.#env = { ...(options.env ?? process.env), TZ: 'UTC', LC_ALL: 'C' };
    this.#now = options.now ?? (() => new Date());
    this.#run = options.run ?? execFileRun;
    this.#spawn = options.spawn ?? nodeSpawnFn;
  }

  // --- images -------------------------------------------------------------------

  async listImages(where: PoolRef): Promise<string[]> {
    return this.#json(cmd(['ls'], ['--format', 'json', ...poolOptions(where)]), parseNameList);
  }

  async info(image: ImageRef): Promise<ImageInfo> {
    const target = imageTarget(image);
    return this.#json(cmd(['info'], ['--format', 'json', ...target.options], target.positionals), parseImageInfo);
  }

  /** Each call is its own process: there is nothing to keep open. */
  keepOpen(images: readonly ImageSpec[]): () => Promise<void> {
    for (const image of images) formatImageSpec(image);
    return async () => undefined;
  }

  async imageId(image: ImageSpec): Promise<string> {
    return (await this.info(image)).id;
  }

  async imageSize(image: ImageSpec): Promise<number> {
    return (await this.info(image)).sizeBytes;
  }

  async imageParent(image: ImageSpec): Promise<ParentInfo | undefined> {
    return (await this.info(image)).parent;
  }

  async createImage(image: ImageSpec, sizeBytes: number): Promise<void> {
    if (!Number.isSafeInteger(sizeBytes) || sizeBytes <= 0) {
      throw new InvalidRequestError(`image size must be a positive whole number of bytes, got ${sizeBytes}`);
    }
    await this.#exec(cmd(['create'], ['--size', `${sizeBytes}B`], [formatImageSpec(image)]));
  }

  async removeImage(image: ImageSpec): Promise<void> {
    await this.#exec(cmd(['rm'], ['--no-progress'], [formatImageSpec(image)]));
  }

  // --- snapshots ------------------------------------------------------------------

  async createSnapshot(snapshot: SnapshotSpec): Promise<void> {
    await this.#exec(cmd(['snap', 'create'], ['--no-progress'], [formatSnapshotSpec(snapshot)]));
  }

  async listSnapshots(image: ImageRef, options: SnapshotListOptions = {}): Promise<SnapshotInfo[]> {
    const target = imageTarget(image);
    const all = options.includeTrash === true ? ['--all'] : [];
    return this.#json(cmd(['snap', 'ls'], ['--format', 'json', ...all, ...target.options], target.positionals), parseSnapshotList);
  }

  async removeSnapshot(snapshot: SnapshotRef): Promise<void> {
    if (isImageIdRef(snapshot)) {
      const byId = imageTarget(snapshot).options;
      await this.#exec(cmd(['snap', 'rm'], ['--no-progress', ...byId, '--snap', validateSnapshotName(snapshot.snapshot)]));
      return;
    }
    await this.#exec(cmd(['snap', 'rm'], ['--no-progress'], [formatSnapshotSpec(snapshot)]));
  }

  async purgeSnapshots(image: ImageRef): Promise<void> {
    const target = imageTarget(image);
    await this.#exec(cmd(['snap', 'purge'], ['--no-progress', ...target.options], target.positionals));
  }

  // --- clones -------------------------------------------------------------------------

  async clone(parent: SnapshotSpec, child: ImageSpec): Promise<void> {
    // v2 whatever the cluster's min-compat-client: v1 cannot cross namespaces
    // and needs a protected parent snapshot that the cloud could not delete.
    const args = cmd(['clone'], ['--rbd-default-clone-format=2'], [formatSnapshotSpec(parent), formatImageSpec(child)]);
    await this.#exec(args);
  }

  async flatten(image: ImageSpec): Promise<void> {
    await this.#exec(cmd(['flatten'], ['--no-progress'], [formatImageSpec(image)]), this.#transferTimeoutMs);
  }

  async renewObjectMap(image: ImageSpec): Promise<void> {
    const spec = formatImageSpec(image);
    const { features } = await this.info(image);
    if (!features.includes('exclusive-lock')) return;
    // `object-map rebuild` alone keeps a claim on an object that is not there; the map is dropped and made anew.
    const mapped = ['fast-diff', 'object-map'].filter((f) => features.includes(f));
    if (mapped.length > 0) await this.#exec(cmd(['feature', 'disable'], [], [spec, ...mapped]));
    await this.#exec(cmd(['feature', 'enable'], [], [spec, 'object-map', 'fast-diff']));
    await this.#exec(cmd(['object-map', 'rebuild'], ['--no-progress'], [spec]), this.#transferTimeoutMs);
  }

  // --- trash ----------------------------------------------------------------------------

  async moveToTrash(image: ImageSpec, options: TrashMoveOptions = {}): Promise<string> {
    const spec = formatImageSpec(image);
    const expiry = options.expiresAt === undefined ? [] : ['--expires-at', this.#expiryArgument(options.expiresAt)];
    // `trash mv` does not print the id that every later trash call needs.
    const { id } = await this.info(image);
    await this.#exec(cmd(['trash', 'mv'], expiry, [spec]));
    return id;
  }

  /**
   * `@<epoch>`, read by rbd through /bin/date. rbd stores the expiry up to one
   * second early; one second more keeps the deferment from ending before asked.
   */
  #expiryArgument(expiresAt: Date): string {
    const at = expiresAt.getTime();
    if (Number.isNaN(at)) throw new InvalidRequestError('trash expiry is not a valid date');
    const lead = at - this.#now().getTime();
    if (lead < MIN_TRASH_EXPIRY_LEAD_MS) {
      throw new InvalidRequestError(
        `trash expiry ${expiresAt.toISOString()} is not at least ${MIN_TRASH_EXPIRY_LEAD_MS / 1000} s in the future ` +
          '(rbd would turn a past date into the year 2106); leave it out to expire at once',
      );
    }
    return `@${Math.ceil(at / 1000) + 1}`;
  }

  async listTrash(where: PoolRef, options: TrashListOptions = {}): Promise<TrashEntry[]> {
    const all = options.all === true ? ['--all'] : [];
    const args = cmd(['trash', 'ls'], ['--format', 'json', '--long', ...all, ...poolOptions(where)]);
    const location: PoolRef = where.namespace === undefined ? { pool: where.pool } : { pool: where.pool, namespace: where.namespace };
    return this.#json(args, (stdout) => parseTrashList(stdout, location));
  }

  async restoreFromTrash(entry: ImageIdRef, options: TrashRestoreOptions = {}): Promise<void> {
    const rename = options.name === undefined ? [] : ['--image', validateImageName(options.name)];
    await this.#exec(cmd(['trash', 'restore'], rename, [formatTrashSpec(entry)]));
  }

  async removeFromTrash(entry: ImageIdRef, options: TrashRemoveOptions = {}): Promise<void> {
    const force = options.force === true ? ['--force'] : [];
    await this.#exec(cmd(['trash', 'rm'], ['--no-progress', ...force], [formatTrashSpec(entry)]));
  }

  // --- image metadata --------------------------------------------------------------------

  async getMeta(image: ImageSpec, key: string): Promise<string> {
    const stdout = await this.#exec(cmd(['image-meta', 'get'], [], [formatImageSpec(image), validateMetaKey(key)]));
    return parseBareValue(stdout);
  }

  async setMeta(image: ImageSpec, key: string, value: string): Promise<void> {
    await this.#exec(cmd(['image-meta', 'set'], [], [formatImageSpec(image), validateMetaKey(key), validateMetaValue(value)]));
  }

  async removeMeta(image: ImageSpec, key: string): Promise<void> {
    await this.#exec(cmd(['image-meta', 'remove'], [], [formatImageSpec(image), validateMetaKey(key)]));
  }

  async listMeta(image: ImageSpec): Promise<Record<string, string>> {
    return this.#json(cmd(['image-meta', 'list'], ['--format', 'json'], [formatImageSpec(image)]), parseMetaList);
  }

  // --- usage --------------------------------------------------------------------------------

  async diskUsage(target: ImageSpec | PoolRef): Promise<DiskUsage> {
    const args =
      'image' in target
        ? cmd(['du'], ['--format', 'json'], [formatImageSpec(target)])
        : cmd(['du'], ['--format', 'json', ...poolOptions(target)]);
    return this.#json(args, parseDiskUsage);
  }

  // --- pool config and namespaces --------------------------------------------------------------

  async getPoolConfig(pool: string, key: string): Promise<string | undefined> {
    try {
      const stdout = await this.#exec(cmd(['config', 'pool', 'get'], [], [validatePoolName(pool), validateConfigKey(key)]));
      return parseBareValue(stdout);
    } catch (error) {
      if (error instanceof RbdNotFoundError && POOL_CONFIG_UNSET.test(error.stderr)) return undefined;
      throw error;
    }
  }

  async setPoolConfig(pool: string, key: string, value: string): Promise<void> {
    const args = cmd(['config', 'pool', 'set'], [], [validatePoolName(pool), validateConfigKey(key), validateConfigValue(value)]);
    await this.#exec(args);
  }

  async removePoolConfig(pool: string, key: string): Promise<void> {
    await this.#exec(cmd(['config', 'pool', 'remove'], [], [validatePoolName(pool), validateConfigKey(key)]));
  }

  async createNamespace(where: NamespaceRef): Promise<void> {
    const args = ['--pool', validatePoolName(where.pool), '--namespace', validateNamespaceName(where.namespace)];
    await this.#exec(cmd(['namespace', 'create'], args));
  }

  async removeNamespace(where: NamespaceRef): Promise<void> {
    const args = ['--pool', validatePoolName(where.pool), '--namespace', validateNamespaceName(where.namespace)];
    await this.#exec(cmd(['namespace', 'remove'], args));
  }

  async listNamespaces(pool: string): Promise<string[]> {
    return this.#json(cmd(['namespace', 'ls'], ['--format', 'json', '--pool', validatePoolName(pool)]), parseNamespaceList);
  }

  // --- whole-image transfers -------------------------------------------------------------------

  exportImage(source: ImageSpec | SnapshotSpec, options: TransferOptions = {}): ExportHandle {
    const spec = isSnapshotSpec(source) ? formatSnapshotSpec(source) : formatImageSpec(source);
    const argv = [...this.#globalArgs, ...cmd(['export'], ['--no-progress'], [spec, '-'])];
    const out = new PassThrough();
    // The stream's consumer is told through the stream itself; these keep an
    // unobserved failure from crashing the process.
    out.on('error', () => {});
    if (options.signal?.aborted === true) {
      const error = this.#failure(argv, { exitCode: null, signal: null, stdout: '', stderr: '', timedOut: false, aborted: true }, 0);
      out.destroy(error);
      const done = Promise.reject(error);
      done.catch(() => {});
      return { stream: out, done };
    }
    const started = this.#start(argv, 'ignore', options);
    started.child.stdout?.pipe(out, { end: false });
    const done = started.finished.then(
      () => {
        out.end();
      },
      (error: unknown) => {
        out.destroy(error as Error);
        throw error;
      },
    );
    done.catch(() => {});
    // A consumer that stops reading early must not leave rbd blocked on a full pipe.
    out.once('close', () => {
      if (!started.settled()) started.abort();
    });
    return { stream: out, done };
  }

  // --- sparse reads -----------------------------------------------------------------------------

  async allocatedExtents(source: ImageSpec | SnapshotSpec): Promise<AllocationMap> {
    const spec = isSnapshotSpec(source) ? formatSnapshotSpec(source) : formatImageSpec(source);
    const { sizeBytes } = await this.#json(cmd(['info'], ['--format', 'json'], [spec]), parseImageInfo);
    // A clone's diff from creation includes what it reads through its parent.
    const extents = await this.#json(cmd(['diff'], ['--format', 'json'], [spec]), parseDiffExtents);
    return { sizeBytes, extents: normalizeExtents(extents, sizeBytes) };
  }

  async readAllocated(source: ImageSpec | SnapshotSpec, options: TransferOptions = {}): Promise<AllocatedRead> {
    const spec = isSnapshotSpec(source) ? formatSnapshotSpec(source) : formatImageSpec(source);
    const argv = [...this.#globalArgs, ...cmd(['export-diff'], ['--no-progress'], [spec, '-'])];
    if (options.signal?.aborted === true) {
      throw this.#failure(argv, { exitCode: null, signal: null, stdout: '', stderr: '', timedOut: false, aborted: true }, 0);
    }
    const started = this.#start(argv, 'ignore', options);
    // Awaited below where it matters; a reader that leaves early aborts rbd, and that rejection is nobody's error.
    started.finished.catch(() => {});
    const stdout = started.child.stdout;
    if (stdout === null) throw new RbdCommandError('rbd export-diff: no stdout pipe', { command: [this.#rbd, ...argv], exitCode: null, stderr: '' });
    const output = stdout;
    const records = readDiffStream(output)[Symbol.asyncIterator]();
    // A stream that breaks off is rbd's failure when rbd failed, and garbage otherwise.
    const failure = async (error: unknown): Promise<unknown> => {
      if (stdout.readableEnded || stdout.destroyed) {
        const outcome = await started.finished.then(() => undefined, (e: unknown) => e);
        if (outcome !== undefined) return outcome;
      } else if (!started.settled()) {
        started.abort();
        await started.finished.catch(() => {});
      }
      if (!(error instanceof RbdOutputError)) return error;
      const command = [this.#rbd, ...argv];
      return new RbdUnexpectedOutputError(`${describeCommand(command)}: ${error.message}`, { command, exitCode: 0, stderr: '', cause: error });
    };
    const next = async (): Promise<IteratorResult<Awaited<ReturnType<typeof records.next>>['value']>> => {
      try {
        return await records.next();
      } catch (error) {
        throw await failure(error);
      }
    };
    let sizeBytes: number | undefined;
    const early: ExtentData[] = [];
    while (sizeBytes === undefined) {
      const r = await next();
      if (r.done === true) throw await failure(new RbdOutputError('export-diff stream has no size record'));
      if (r.value.kind === 'size') sizeBytes = r.value.sizeBytes;
      else if (r.value.kind === 'data') early.push(r.value);
    }
    async function* pieces(): AsyncGenerator<ExtentData> {
      try {
        yield* early;
        for (let r = await next(); r.done !== true; r = await next()) {
          if (r.value.kind === 'data') yield { offset: r.value.offset, data: r.value.data };
        }
        await started.finished;
      } finally {
        if (!started.settled()) started.abort();
        // A pipe left unread would keep the process alive after rbd is gone.
        if (!output.readableEnded) output.destroy();
      }
    }
    return { sizeBytes, pieces: pieces() };
  }

  async importImage(source: ImportSource, destination: ImageSpec, options: TransferOptions = {}): Promise<void> {
    const spec = formatImageSpec(destination);
    const fromPath = 'path' in source;
    // An absolute path cannot be mistaken for an option or for stdin's `-`.
    const input = fromPath ? resolvePath(checkPath('import path', source.path)) : '-';
    const argv = [...this.#globalArgs, ...cmd(['import'], ['--no-progress'], [input, spec])];
    if (options.signal?.aborted === true) {
      throw this.#failure(argv, { exitCode: null, signal: null, stdout: '', stderr: '', timedOut: false, aborted: true }, 0);
    }
    const started = this.#start(argv, fromPath ? 'ignore' : 'pipe', options);
    if ('path' in source) return started.finished;
    const stdin = started.child.stdin;
    if (stdin === null) throw new RbdCommandError('rbd import: no stdin pipe', { command: [this.#rbd, ...argv], exitCode: null, stderr: '' });
    // A failing source must kill rbd before its stdin closes: rbd would take
    // the early end of input for the end of the image and succeed.
    let sourceError: Error | undefined;
    source.stream.once('error', (error: Error) => {
      sourceError = error;
      started.abort('SIGKILL');
    });
    const [fed, finished] = await Promise.allSettled([pipeline(source.stream, stdin), started.finished]);
    if (sourceError !== undefined) {
      const command = [this.#rbd, ...argv];
      throw new RbdAbortedError(
        `${describeCommand(command)} was killed because its source failed (${sourceError.message}); ` +
          'the destination image may exist with partial data',
        { command, exitCode: null, stderr: '', cause: sourceError },
      );
    }
    if (finished.status === 'rejected') throw finished.reason;
    if (fed.status === 'rejected') {
      const command = [this.#rbd, ...argv];
      throw new RbdCommandError(`${describeCommand(command)}: feeding the image to rbd failed`, { command, exitCode: 0, stderr: '', cause: fed.reason });
    }
  }

  async writeExtents(image: ImageSpec, pieces: AsyncIterable<ExtentData>, options: TransferOptions = {}): Promise<number> {
    const spec = formatImageSpec(image);
    const argv = [...this.#globalArgs, ...cmd(['import-diff'], ['--no-progress'], ['-', spec])];
    if (options.signal?.aborted === true) {
      throw this.#failure(argv, { exitCode: null, signal: null, stdout: '', stderr: '', timedOut: false, aborted: true }, 0);
    }
    const started = this.#start(argv, 'pipe', options);
    const stdin = started.child.stdin;
    if (stdin === null) throw new RbdCommandError('rbd import-diff: no stdin pipe', { command: [this.#rbd, ...argv], exitCode: null, stderr: '' });
    let written = 0;
    let sourceError: unknown;
    // A failing source must kill rbd before its stdin closes, as for import.
    async function* counted(): AsyncGenerator<ExtentData> {
      try {
        for await (const piece of coalesced(pieces, WRITE_CHUNK_BYTES)) {
          yield piece;
          written += piece.data.length;
        }
      } catch (error) {
        sourceError = error;
        started.abort('SIGKILL');
        throw error;
      }
    }
    const [fed, finished] = await Promise.allSettled([pipeline(Readable.from(writeDiffStream(counted())), stdin), started.finished]);
    if (sourceError !== undefined) {
      if (sourceError instanceof RbdError) throw sourceError;
      const command = [this.#rbd, ...argv];
      throw new RbdAbortedError(`${describeCommand(command)} was killed because its source failed (${(sourceError as Error).message}); part of the data may be written`, { command, exitCode: null, stderr: '', cause: sourceError });
    }
    if (finished.status === 'rejected') throw finished.reason;
    if (fed.status === 'rejected') {
      const command = [this.#rbd, ...argv];
      throw new RbdCommandError(`${describeCommand(command)}: feeding the data to rbd failed`, { command, exitCode: 0, stderr: '', cause: fed.reason });
    }
    return written;
  }

  // --- process plumbing -----------------------------------------------------------------------

  /** Runs rbd to completion; resolves with stdout, rejects with a typed RbdError. */
  async #exec(args: readonly string[], timeoutMs: number = this.#timeoutMs): Promise<string> {
    const argv = [...this.#globalArgs, ...args];
    const result = await this.#run(this.#rbd, argv, { timeoutMs, env: this.#env });
    if (result.exitCode === 0 && result.spawnError === undefined) return result.stdout;
    throw this.#failure(argv, result, timeoutMs);
  }

  async #json<T>(args: readonly string[], parse: (stdout: string) => T): Promise<T> {
    const stdout = await this.#exec(args);
    try {
      return parse(stdout);
    } catch (error) {
      if (!(error instanceof RbdOutputError)) throw error;
      const command = [this.#rbd, ...this.#globalArgs, ...args];
      throw new RbdUnexpectedOutputError(`${describeCommand(command)}: ${error.message}`, {
        command,
        exitCode: 0,
        stderr: '',
        cause: error,
      });
    }
  }

  #failure(argv: readonly string[], result: Failure, timeoutMs: number): RbdError {
    const command = [this.#rbd, ...argv];
    const details = { command, exitCode: result.exitCode, stderr: result.stderr, signal: result.signal };
    const what = describeCommand(command);
    if (result.timedOut) return new RbdTimeoutError(`${what} timed out after ${timeoutMs} ms and was killed`, { ...details, timeoutMs });
    if (result.aborted === true) return new RbdAbortedError(`${what} was aborted`, details);
    if (result.spawnError !== undefined) {
      return new RbdCommandError(`could not start ${this.#rbd}: ${result.spawnError.message}`, { ...details, cause: result.spawnError });
    }
    if (result.exitCode === null) return new RbdCommandError(`${what} was killed by ${result.signal ?? 'a signal'}`, details);
    return errorFromExit({ ...details, exitCode: result.exitCode });
  }

  /** Starts a streaming rbd process under the transfer time limit and the caller's abort signal. */
  #start(
    argv: readonly string[],
    stdin: 'ignore' | 'pipe',
    options: TransferOptions,
  ): { child: ChildProcess; finished: Promise<void>; settled: () => boolean; abort: (signal?: NodeJS.Signals) => void } {
    const timeoutMs = checkTimeout('timeoutMs', options.timeoutMs ?? this.#transferTimeoutMs);
    const child = this.#spawn(this.#rbd, argv, { env: this.#env, stdin });
    let stderr = '';
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (chunk: string) => {
      stderr = (stderr + chunk).slice(-MAX_STDERR);
    });
    let stop: 'timeout' | 'abort' | undefined;
    let settled = false;
    const abort = (signal?: NodeJS.Signals): void => {
      stop ??= 'abort';
      if (signal === undefined) terminate(child);
      else child.kill(signal);
    };
    const onAbort = (): void => abort();
    const timer = setTimeout(() => {
      stop ??= 'timeout';
      terminate(child);
    }, timeoutMs);
    options.signal?.addEventListener('abort', onAbort, { once: true });

    const finished = new Promise<void>((resolve, reject) => {
      const finish = (result: Failure): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        options.signal?.removeEventListener('abort', onAbort);
        if (result.exitCode === 0 && result.spawnError === undefined) resolve();
        else reject(this.#failure(argv, result, timeoutMs));
      };
      child.on('error', (error) => {
        // Only a failed spawn ends the process here; other errors (a kill that
        // failed) are followed by 'close' as usual.
        if (child.pid === undefined) finish({ exitCode: null, signal: null, stdout: '', stderr, timedOut: false, spawnError: error });
      });
      child.once('close', (code, signal) => {
        finish({ exitCode: code, signal, stdout: '', stderr, timedOut: stop === 'timeout' && code !== 0, aborted: stop === 'abort' && code !== 0 });
      });
    });
    return { child, finished, settled: () => settled, abort };
  }
}
