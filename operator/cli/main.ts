// The `quarantine` executable. Node's compile cache keeps the compiled code
// of the program's modules between runs, which roughly halves the time to
// load them. Its launchers name it before Node starts (NODE_COMPILE_CACHE,
// operator/process-memory.ts); started by hand, it uses bin/quarantine's
// rather than one in the shared temporary directory.
import module from 'node:module';
import { fileURLToPath } from 'node:url';
import { reserveWorkerThreads } from '../ceph/worker-threads.ts';
import { defaultCompileCacheDir } from '../process-memory.ts';

// Before anything starts libuv's thread pool, which then keeps its size.
reserveWorkerThreads();
if (process.env['NODE_COMPILE_CACHE'] === undefined) module.enableCompileCache?.(defaultCompileCacheDir(fileURLToPath(new URL('../..', import.meta.url))));
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
