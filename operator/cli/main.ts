// The `quarantine` executable. Node's compile cache keeps the compiled code
// of the program's modules between runs (in the system's temporary directory,
// or NODE_COMPILE_CACHE), which roughly halves the time to load them.
import module from 'node:module';
import { reserveWorkerThreads } from '../ceph/worker-threads.ts';

// Before anything starts libuv's thread pool, which then keeps its size.
reserveWorkerThreads();
module.enableCompileCache?.();
const { runCli } = await import('./program.ts');
const code = await runCli(process.argv.slice(2), {
  out: (s) => process.stdout.write(s),
  err: (s) => process.stderr.write(s),
  env: process.env,
});
process.exitCode = code;
