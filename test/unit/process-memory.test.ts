// Every launcher of the operator starts it with the memory settings of
// operator/process-memory.ts: a launcher that lost them would bring back a
// heap and malloc arenas several times the ledger's needs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IMAGE_COMPILE_CACHE_DIR, MEMORY_ENV, NODE_MEMORY_FLAGS, defaultCompileCacheDir } from '../../operator/process-memory.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));
const read = (path: string) => readFileSync(`${root}${path}`, 'utf8');
const env = Object.entries(MEMORY_ENV).map(([k, v]) => `${k}=${v}`);

test('the image (Dockerfile and scripts/build-image-tar.sh) runs Node with the memory flags and environment', () => {
  const dockerfile = read('Dockerfile');
  const entrypoint = z.array(z.string()).parse(JSON.parse(/^ENTRYPOINT (.*)$/m.exec(dockerfile)?.[1] ?? 'null'));
  assert.deepEqual(entrypoint.slice(1, -1), [...NODE_MEMORY_FLAGS]);
  for (const e of env) assert.match(dockerfile, new RegExp(`^ENV ${e}$`, 'm'));
  const described = z.object({ entrypoint: z.array(z.string()), env: z.array(z.string()) })
    .parse(JSON.parse(execFileSync('bash', [`${root}scripts/build-image-tar.sh`, '--describe'], { encoding: 'utf8' })));
  assert.deepEqual(described.entrypoint.slice(1, -1), [...NODE_MEMORY_FLAGS]);
  for (const e of env) assert.ok(described.env.includes(e), `build-image-tar.sh sets no ${e}`);
});

test('bin/quarantine runs Node with the memory flags and, unless already set, the environment', () => {
  const script = read('bin/quarantine');
  assert.match(script, new RegExp(`exec "\\$node" ${NODE_MEMORY_FLAGS.join(' ')} "\\$root/operator/cli/main.ts" "\\$@"`));
  for (const [k, v] of Object.entries(MEMORY_ENV)) assert.ok(script.includes(`export ${k}="\${${k}:-${v}}"`), `bin/quarantine sets no ${k}`);
  // And Node accepts the flags.
  execFileSync(`${root}node_modules/.bin/node`, [...NODE_MEMORY_FLAGS, '-e', '0']);
});

/** The flags bin/quarantine starts Node with for these arguments: a module loaded first prints them and ends the process. */
function launchFlags(args: readonly string[]): string[] {
  const probe = 'data:text/javascript,process.stdout.write(JSON.stringify(process.execArgv));process.exit(0)';
  const out = execFileSync(`${root}bin/quarantine`, args, { encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: `--import=${probe}` } });
  return z.array(z.string()).parse(JSON.parse(out));
}

test('bin/quarantine keeps the small semi-spaces for the commands that apply notifications, and Node\'s default for the others', () => {
  const applying = [['run'], ['run', '--kubernetes'], ['--db', 'sqlite:x', 'run'], ['--db=sqlite:x', 'ingest', '-'], ['--log-level', 'debug', '--log-format', 'text', 'ingest', 'f'],
    ['--audit-key-file', 'k', 'run']];
  for (const args of applying) assert.deepEqual(launchFlags(args), [...NODE_MEMORY_FLAGS], args.join(' '));
  // A global option's value is not the command, even when it reads like one.
  const oneShot = [['trace', 'log', 'x'], ['--db', 'run', 'trace', 'ip', 'a'], ['--db', 'ingest', 'case', 'report', 'c'], ['--help'], [], ['export-intervals', '--from', 'run']];
  for (const args of oneShot) assert.deepEqual(launchFlags(args), [], args.join(' '));
});

test('bin/quarantine skips the value of every global option that takes one, and only of those', async () => {
  const { buildProgram } = await import('../../operator/cli/program.ts');
  const program = buildProgram({ out: () => undefined, err: () => undefined, env: {} });
  const taking = program.options.filter((o) => o.required || o.optional).map((o) => o.long).sort();
  const skipped = /^\s*(--[\w|-]+)\) skip=1 ;;$/m.exec(read('bin/quarantine'))?.[1]?.split('|').sort();
  assert.deepEqual(skipped, taking);
});

test('every launcher names a compile cache that it fills before the operator runs', () => {
  const script = read('bin/quarantine');
  assert.ok(script.includes(`export NODE_COMPILE_CACHE="\${NODE_COMPILE_CACHE:-${defaultCompileCacheDir('$root')}}"`), 'bin/quarantine names no compile cache');
  assert.match(read('scripts/bootstrap.sh'), /^node_modules\/\.bin\/node scripts\/fill-compile-cache\.ts$/m);
  const dockerfile = read('Dockerfile');
  assert.match(dockerfile, new RegExp(`^ENV NODE_COMPILE_CACHE=${IMAGE_COMPILE_CACHE_DIR}$`, 'm'));
  // Filled by the image's user: Node keys the cache by user id.
  assert.match(dockerfile, new RegExp(`--reuid=10001 --regid=10001 --clear-groups node scripts/fill-compile-cache\\.ts ${IMAGE_COMPILE_CACHE_DIR} `));
  const described = z.object({ env: z.array(z.string()) }).parse(JSON.parse(execFileSync('bash', [`${root}scripts/build-image-tar.sh`, '--describe'], { encoding: 'utf8' })));
  assert.ok(described.env.includes(`NODE_COMPILE_CACHE=${IMAGE_COMPILE_CACHE_DIR}`));
  assert.match(read('scripts/build-image-tar.sh'), new RegExp(`chroot --userspec="\\$uid:\\$gid" "\\$rootfs" /usr/local/bin/node /app/scripts/fill-compile-cache\\.ts ${IMAGE_COMPILE_CACHE_DIR} `));
});

/** Whether a bin/quarantine command loaded Node's type stripper, with this compile cache. */
function strippedTypes(cache: string, args: readonly string[]): boolean {
  const probe = "data:text/javascript,process.on('exit',()=>process.stderr.write(JSON.stringify(process.moduleLoadList.some((m)=>/amaro/.test(m)))))";
  const r = spawnSync(`${root}bin/quarantine`, args, { encoding: 'utf8', env: { ...process.env, NODE_COMPILE_CACHE: cache, NODE_OPTIONS: `--import=${probe}` } });
  assert.equal(r.status, 0, r.stderr);
  return z.boolean().parse(JSON.parse(r.stderr.trim().split('\n').pop() ?? ''));
}

/** Whether importing a module of the operator, under `run`'s flags and with this compile cache, loaded Node's type stripper. */
function loadsStripperWithRunFlags(cache: string, module: string): boolean {
  const code = `await import(${JSON.stringify(`${root}${module}`)}); process.stdout.write(JSON.stringify(process.moduleLoadList.some((m) => /amaro/.test(m))));`;
  const out = execFileSync(`${root}node_modules/.bin/node`, [...NODE_MEMORY_FLAGS, '--input-type=module', '-e', code], { encoding: 'utf8', env: { ...process.env, NODE_COMPILE_CACHE: cache } });
  return z.boolean().parse(JSON.parse(out));
}

test('a filled compile cache keeps the type stripper out of the CLI, under the flags of `run` and of every other command', () => {
  const dir = mkdtempSync(join(tmpdir(), 'compile-cache-'));
  try {
    const commands = [['--version'], ['run', '--help']];
    // Empty, the cache does not: so the probe sees the stripper when it is there.
    for (const args of commands) assert.equal(strippedTypes(join(dir, 'empty'), args), true, args.join(' '));
    execFileSync(`${root}node_modules/.bin/node`, [`${root}scripts/fill-compile-cache.ts`, join(dir, 'filled')], { stdio: 'ignore' });
    for (const args of commands) assert.equal(strippedTypes(join(dir, 'filled'), args), false, args.join(' '));
    // `run --help` stops at the CLI: the modules `run` itself loads are those of the composition root.
    assert.equal(loadsStripperWithRunFlags(join(dir, 'empty'), 'operator/main.ts'), true);
    assert.equal(loadsStripperWithRunFlags(join(dir, 'filled'), 'operator/main.ts'), false);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
