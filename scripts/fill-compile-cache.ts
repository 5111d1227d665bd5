// Fills Node's compile cache with every module of the operator, for each set
// of flags a launcher starts Node with (operator/process-memory.ts), so that
// a process started with that cache compiles nothing and strips no types.
//
// Why: a module missing from the cache is type-stripped when it loads, and
// the stripper (a WebAssembly module) stays in the process for good: about
// 15 MiB of the operator's RSS (bench/notes/run-rss.md). V8 keys the cache by
// its flags and Node by user id, so a cache filled under other flags or by
// another user is never read: the image's is filled by the image's user.
//
//   node scripts/fill-compile-cache.ts [DIR]
//
// DIR defaults to what bin/quarantine uses; the image fills its own at build.
import module from 'node:module';
import { spawnSync } from 'node:child_process';
import { chmodSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { LAUNCH_FLAG_SETS, defaultCompileCacheDir } from '../operator/process-memory.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const self = fileURLToPath(import.meta.url);

/** Every module of the operator but the executable's entry, which runs the CLI when loaded. */
function operatorModules(): string[] {
  const entry = join(root, 'operator', 'cli', 'main.ts');
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') && p !== entry) out.push(p);
    }
  };
  walk(join(root, 'operator'));
  return out.sort();
}

async function fill(dir: string): Promise<void> {
  const status = module.enableCompileCache(dir);
  if (status.status === module.constants.compileCacheStatus.FAILED) throw new Error(`cannot use ${dir} as a compile cache: ${status.message ?? 'no reason given'}`);
  for (const file of operatorModules()) await import(pathToFileURL(file).href);
  module.flushCompileCache();
}

const [first, second] = process.argv.slice(2);
if (first === '--child') {
  try {
    await fill(second ?? defaultCompileCacheDir(root));
  } catch (err) {
    process.stderr.write(`fill-compile-cache: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  }
  process.exit(0);
}
if (first !== undefined && first.startsWith('-')) {
  process.stderr.write('usage: node scripts/fill-compile-cache.ts [DIR]\n');
  process.exit(2);
}
const dir = resolve(first ?? defaultCompileCacheDir(root));
for (const flags of LAUNCH_FLAG_SETS) {
  // The modules, then the entry, run as `quarantine --version`: loading it runs the CLI.
  const steps = [[...flags, self, '--child', dir], [...flags, join(root, 'operator', 'cli', 'main.ts'), '--version']];
  for (const args of steps) {
    // Pipes, not /dev/null: the root filesystem of an image being built has no /dev.
    const r = spawnSync(process.execPath, args, { stdio: ['pipe', 'pipe', 'inherit'], env: { ...process.env, NODE_COMPILE_CACHE: dir } });
    if (r.status !== 0) {
      if (r.error !== undefined || r.signal !== null) process.stderr.write(`fill-compile-cache: node ${args.join(' ')} ended with ${r.error?.message ?? r.signal}\n`);
      process.exit(1);
    }
  }
}
// Node writes its entries for their owner alone; the image hands its cache to root once its user has filled it.
// Another user's entries (a cache shared by two users, each keyed apart) are theirs to leave as they are.
const chmodOwn = (path: string, mode: number) => {
  try {
    chmodSync(path, mode);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') throw err;
  }
};
const readable = (d: string) => {
  chmodOwn(d, 0o755);
  for (const e of readdirSync(d, { withFileTypes: true })) {
    if (e.isDirectory()) readable(join(d, e.name));
    else chmodOwn(join(d, e.name), 0o644);
  }
};
readable(dir);
process.stderr.write(`fill-compile-cache: ${operatorModules().length} modules in ${dir}, for ${LAUNCH_FLAG_SETS.length} sets of Node flags\n`);
