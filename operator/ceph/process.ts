// Running a program with an argument array (never through a shell) under a
// time limit. The rbd adapter takes these as injectable functions so that its
// unit tests can count and inspect the processes it would start.

import { execFile, spawn as nodeSpawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';

export interface RunOptions {
  readonly timeoutMs: number;
  readonly env: NodeJS.ProcessEnv;
}

export interface RunResult {
  /** null when killed by a signal or when the program could not be started. */
  readonly exitCode: number | null;
  readonly signal: string | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly timedOut: boolean;
  /** Set when the process could not be started at all (ENOENT, EACCES). */
  readonly spawnError?: Error | undefined;
}

export type RunFn = (file: string, args: readonly string[], options: RunOptions) => Promise<RunResult>;

export interface SpawnOptions {
  readonly env: NodeJS.ProcessEnv;
  readonly stdin: 'ignore' | 'pipe';
}

export type SpawnFn = (file: string, args: readonly string[], options: SpawnOptions) => ChildProcess;

const MAX_BUFFER = 64 * 1024 * 1024;
/** After SIGTERM, how long a process may take before it gets SIGKILL. */
export const KILL_GRACE_MS = 2000;

/** Terminates, then kills if it lingers. */
export function terminate(child: ChildProcess): void {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const timer = setTimeout(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }, KILL_GRACE_MS);
  timer.unref();
  child.once('exit', () => clearTimeout(timer));
}

/** execFile with our own timer, so that "timed out" is known exactly. Never rejects. */
export const execFileRun: RunFn = (file, args, options) =>
  new Promise<RunResult>((resolve) => {
    let timedOut = false;
    const child = execFile(
      file,
      [...args],
      { env: options.env, encoding: 'utf8', maxBuffer: MAX_BUFFER, windowsHide: true },
      (error, stdout, stderr) => {
        clearTimeout(timer);
        if (error === null) {
          resolve({ exitCode: 0, signal: null, stdout, stderr, timedOut: false });
          return;
        }
        const spawnFailed = typeof error.code === 'string' && error.code !== 'ERR_CHILD_PROCESS_STDIO_MAXBUFFER';
        resolve({
          exitCode: typeof error.code === 'number' ? error.code : null,
          signal: error.signal ?? null,
          stdout,
          stderr: error.code === 'ERR_CHILD_PROCESS_STDIO_MAXBUFFER' ? `${stderr}\n${error.message}` : stderr,
          timedOut,
          spawnError: spawnFailed ? error : undefined,
        });
      },
    );
    const timer = setTimeout(() => {
      timedOut = true;
      terminate(child);
    }, options.timeoutMs);
  });

export const nodeSpawnFn: SpawnFn = (file, args, options) =>
  nodeSpawn(file, [...args], { env: options.env, stdio: [options.stdin, 'pipe', 'pipe'], windowsHide: true });
