// The rbd operations the clouds use and the BlockStore port does not offer:
// snapshot protection (Glance and OpenNebula protect their clone bases),
// `rbd children` (OpenNebula's recursive delete walks it), and writing known
// bytes into an existing image without breaking its clone parentage (tests
// need a VM disk with content they can recognise after a capture).
import { spawn } from 'node:child_process';
import type { ImageSpec, SnapshotSpec } from '../../operator/domain/block-store.ts';
import { RbdCli } from '../../operator/ceph/rbd-cli.ts';
import { RbdCommandError, errorFromExit } from '../../operator/ceph/errors.ts';
import { formatImageSpec, formatSnapshotSpec } from '../../operator/ceph/names.ts';
import { execFileRun, type RunFn } from '../../operator/ceph/process.ts';

export interface RbdTool {
  protectSnapshot(snapshot: SnapshotSpec): Promise<void>;
  unprotectSnapshot(snapshot: SnapshotSpec): Promise<void>;
  /**
   * The clones of a snapshot, as `rbd children` prints them. Rejects when rbd
   * fails, which it does as a whole when one child sits in a pool the user
   * may not read (e.g. an operator's clone in the quarantine pool).
   */
  children(snapshot: SnapshotSpec): Promise<ImageSpec[]>;
  /**
   * Writes `content` at `offsetBytes` (default 0) of an existing image
   * through `rbd import-diff`, zeros included; bytes outside the range keep
   * their data, and a clone stays a clone.
   */
  write(image: ImageSpec, content: Buffer, offsetBytes?: number): Promise<void>;
}

export interface RbdToolOptions {
  cephConf?: string | undefined;
  /** cephx user without `client.`. */
  id?: string | undefined;
  rbdPath?: string | undefined;
  timeoutMs?: number | undefined;
  /** Where the programs start (default: this process); see process-host.ts. */
  run?: RunFn | undefined;
}

function parseSpec(text: string): ImageSpec {
  const parts = text.split('/');
  if (parts.length === 2) return { pool: parts[0] ?? '', image: parts[1] ?? '' };
  if (parts.length === 3) return { pool: parts[0] ?? '', namespace: parts[1], image: parts[2] ?? '' };
  throw new Error(`unexpected image spec ${JSON.stringify(text)} from rbd children`);
}

function u64(value: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(value));
  return b;
}

export class RbdToolCli implements RbdTool {
  readonly #rbd: string;
  readonly #global: string[];
  readonly #timeoutMs: number;
  readonly #env: NodeJS.ProcessEnv;
  readonly #exec: RunFn;

  constructor(options: RbdToolOptions = {}) {
    this.#exec = options.run ?? execFileRun;
    this.#rbd = options.rbdPath ?? 'rbd';
    this.#global = [];
    if (options.cephConf !== undefined) this.#global.push(`--conf=${options.cephConf}`);
    if (options.id !== undefined) this.#global.push(`--id=${options.id}`);
    this.#timeoutMs = options.timeoutMs ?? 30_000;
    this.#env = { ...process.env, TZ: 'UTC', LC_ALL: 'C' };
  }

  async #run(args: string[]): Promise<string> {
    const argv = [...this.#global, ...args];
    const r = await this.#exec(this.#rbd, argv, { timeoutMs: this.#timeoutMs, env: this.#env });
    if (r.exitCode === 0) return r.stdout;
    if (r.exitCode !== null) throw errorFromExit({ command: [this.#rbd, ...argv], exitCode: r.exitCode, stderr: r.stderr });
    throw new RbdCommandError(`rbd ${args.join(' ')} did not finish (${r.timedOut ? 'timed out' : r.signal ?? 'could not start'})`, {
      command: [this.#rbd, ...argv], exitCode: null, stderr: r.stderr, signal: r.signal, cause: r.spawnError,
    });
  }

  async protectSnapshot(snapshot: SnapshotSpec): Promise<void> {
    await this.#run(['snap', 'protect', '--', formatSnapshotSpec(snapshot)]);
  }

  async unprotectSnapshot(snapshot: SnapshotSpec): Promise<void> {
    await this.#run(['snap', 'unprotect', '--', formatSnapshotSpec(snapshot)]);
  }

  async children(snapshot: SnapshotSpec): Promise<ImageSpec[]> {
    const out = await this.#run(['children', '--', formatSnapshotSpec(snapshot)]);
    return out.split('\n').map((line) => line.trim()).filter((line) => line !== '').map(parseSpec);
  }

  async write(image: ImageSpec, content: Buffer, offsetBytes = 0): Promise<void> {
    const spec = formatImageSpec(image);
    const info = JSON.parse(await this.#run(['info', '--format', 'json', '--', spec])) as { size: number };
    if (offsetBytes + content.length > info.size) {
      throw new Error(`${content.length} bytes at ${offsetBytes} do not fit into ${spec} (${info.size} bytes)`);
    }
    // A diff stream (format "rbd diff v1") with the image's own size and one
    // data record: import-diff applies it in place, without a snapshot.
    const chunks = [Buffer.from('rbd diff v1\n'), Buffer.from('s'), u64(info.size), Buffer.from('w'), u64(offsetBytes), u64(content.length), content, Buffer.from('e')];
    const argv = [...this.#global, 'import-diff', '--no-progress', '-', spec];
    await new Promise<void>((resolve, reject) => {
      const child = spawn(this.#rbd, argv, { env: this.#env, stdio: ['pipe', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
      const timer = setTimeout(() => child.kill('SIGKILL'), this.#timeoutMs);
      child.on('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      child.on('close', (code) => {
        clearTimeout(timer);
        if (code === 0) resolve();
        else reject(code === null
          ? new RbdCommandError(`rbd import-diff into ${spec} was killed`, { command: [this.#rbd, ...argv], exitCode: null, stderr })
          : errorFromExit({ command: [this.#rbd, ...argv], exitCode: code, stderr }));
      });
      child.stdin.on('error', () => undefined);
      for (const chunk of chunks) child.stdin.write(chunk);
      child.stdin.end();
    });
  }
}

/**
 * A cloud's view of Ceph: the BlockStore adapter and the extra tool, as one
 * cephx user. `run` starts their programs elsewhere (a process host, as a
 * real cloud's own hosts would), except the tool's `write`, which streams.
 */
export function cloudRbd(options: { cephConf: string; id: string; run?: RunFn | undefined }): { rbd: RbdCli; rbdTool: RbdToolCli } {
  return { rbd: new RbdCli({ cephConf: options.cephConf, id: options.id, run: options.run }), rbdTool: new RbdToolCli(options) };
}
