// The simulated cloud's programs (`rbd rm`, `rbd ls`, …) started from a small
// process of its own, as a real cloud starts them on its own hosts, instead
// of from the process they run beside. Starting a program forks the process
// that asks, on the thread that asks: from the operator's process (the bench
// and the end-to-end tests run the operator in-process, with 128 librbd
// worker threads and a large address space) each start held its event loop
// for about 0.2 s, and a burst of 60 Nova deletions (some 300 `rbd`
// processes) held it for most of a minute, which the operator's captures
// then waited out between their librbd calls. The host is a plain Node
// process with its own small event loop; its forks cost what a small
// process's forks cost and stop nothing in the operator's.
import { fork, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import type { RunFn, RunResult } from '../../operator/ceph/process.ts';

/** A program to run, as the host receives it. */
export interface HostRequest {
  readonly id: number;
  readonly file: string;
  readonly args: readonly string[];
  readonly timeoutMs: number;
  readonly env: Readonly<Record<string, string>>;
}

/** Its result, as the host sends it back: a start failure as its message and code, which cross the channel. */
export interface HostReply {
  readonly id: number;
  readonly result: Omit<RunResult, 'spawnError'> & { readonly spawnError?: { readonly message: string; readonly code?: string | undefined } | undefined };
}

export interface ProcessHost {
  /** Runs a program in the host, with execFileRun's contract (never rejects). */
  readonly run: RunFn;
  /** Programs handed to the host and not yet answered. */
  readonly pending: number;
  /** The host's process id, when it is a process (what its programs cost shows in its children's CPU time). */
  readonly pid: number | undefined;
  /** Stops the host once its programs are answered; later runs fail to start. */
  close(): Promise<void>;
}

/** Where a host gets a channel: a forked Node process in real use, a fake in tests. */
export interface HostChannel {
  send(request: HostRequest): void;
  /** Whether the channel keeps this process alive: only while programs are running, so a host never left open holds a test up. */
  hold(held: boolean): void;
  onReply(listener: (reply: HostReply) => void): void;
  /** Called once when the channel is gone (the host exited or was closed). */
  onClose(listener: (reason: string) => void): void;
  close(): Promise<void>;
}

/** Wraps a channel as a RunFn host. */
export function processHost(channel: HostChannel, pid?: number): ProcessHost {
  let next = 1;
  let gone: string | undefined;
  const waiting = new Map<number, (result: RunResult) => void>();
  const failed = (reason: string): RunResult => ({ exitCode: null, signal: null, stdout: '', stderr: '', timedOut: false, spawnError: new Error(`the process host is gone: ${reason}`) });
  channel.onReply(({ id, result }) => {
    const resolve = waiting.get(id);
    if (resolve === undefined) return;
    waiting.delete(id);
    if (waiting.size === 0) channel.hold(false);
    const { spawnError, ...rest } = result;
    resolve(spawnError === undefined ? rest : { ...rest, spawnError: Object.assign(new Error(spawnError.message), { code: spawnError.code }) });
  });
  channel.onClose((reason) => {
    gone ??= reason;
    for (const resolve of waiting.values()) resolve(failed(reason));
    waiting.clear();
  });
  return {
    run: (file, args, options) =>
      new Promise<RunResult>((resolve) => {
        if (gone !== undefined) {
          resolve(failed(gone));
          return;
        }
        const id = next++;
        if (waiting.size === 0) channel.hold(true);
        waiting.set(id, resolve);
        const env: Record<string, string> = {};
        for (const [key, value] of Object.entries(options.env)) if (value !== undefined) env[key] = value;
        channel.send({ id, file, args: [...args], timeoutMs: options.timeoutMs, env });
      }),
    get pending() {
      return waiting.size;
    },
    pid,
    async close() {
      gone ??= 'closed';
      await channel.close();
    },
  };
}

/** Forks the host process (test/sim/process-host-main.ts) and talks to it over Node's IPC channel. */
export function startProcessHost(): ProcessHost {
  const child: ChildProcess = fork(join(import.meta.dirname, 'process-host-main.ts'), [], {
    // Not the parent's flags (a profiler, an inspector): the host is plain.
    execArgv: [],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const hold = (held: boolean): void => {
    if (held) {
      child.ref();
      child.channel?.ref();
    } else {
      child.unref();
      child.channel?.unref();
    }
  };
  hold(false);
  const closeListeners: ((reason: string) => void)[] = [];
  child.once('exit', (code, signal) => {
    for (const listener of closeListeners) listener(`exited (${signal ?? code ?? 'unknown'})`);
  });
  child.once('error', (error) => {
    for (const listener of closeListeners) listener(error.message);
  });
  return processHost({
    send: (request) => {
      child.send(request);
    },
    hold,
    onReply: (listener) => {
      child.on('message', (message) => listener(message as HostReply));
    },
    onClose: (listener) => {
      closeListeners.push(listener);
    },
    close: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        // Disconnecting ends the host once its programs are answered (process-host-main.ts).
        hold(true);
        if (child.connected) child.disconnect();
        await exited;
      }
    },
  }, child.pid);
}
