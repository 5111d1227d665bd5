// The `quarantine` executable. Node's compile cache keeps the compiled code
// of the program's modules between runs (in the system's temporary directory,
// or NODE_COMPILE_CACHE), which roughly halves the time to load them.
import module from 'node:module';
import { reserveWorkerThreads } from '../ceph/worker-threads.ts';

// Before anything starts libuv's thread pool, which then keeps its size.
reserveWorkerThreads();
module.enableCompileCache?.();
const { runCli } = await import('./program.ts');
const { OutputClosed, writeAll } = await import('./output-fd.ts');
// A reader that stops reading (`| head`) ends the command quietly, as it would any other filter.
const quietly = (fd: number) => (s: string) => {
  try {
    writeAll(fd, s);
  } catch (err) {
    if (err instanceof OutputClosed) process.exit(0);
    throw err;
  }
};
const code = await runCli(process.argv.slice(2), { out: quietly(1), err: quietly(2), env: process.env });
process.exitCode = code;
