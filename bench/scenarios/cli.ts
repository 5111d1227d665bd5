// Start-up of the `quarantine` command: wall-clock time of whole processes
// (bin/quarantine, as a user runs it) for `--help` and a `trace ip` on a small
// SQLite ledger, next to a bare `node -e 0` on the same Node (the ceiling: no
// command can start faster). Runs alternate between the three so that a load
// change on the machine hits them alike; the first runs warm the compile cache
// and the page cache and are not counted.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import type { Context, Figure, Scenario } from '../scenario.ts';
import { summarize, round } from '../lib/stats.ts';
import { neutronFloatingIp, neutronPort, novaInstance, type VmSpec } from '../../test/sim/openstack-messages.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const node = join(root, 'node_modules', '.bin', 'node');
const bin = join(root, 'bin', 'quarantine');
const TARGET_MS = 300;

function timed(cmd: string, args: string[], env: NodeJS.ProcessEnv): number {
  const t0 = performance.now();
  const r = spawnSync(cmd, args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
  const ms = performance.now() - t0;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${String(r.status)}: ${r.stderr.toString()}`);
  return ms;
}

export const cli: Scenario = {
  name: 'cli',
  description: 'CLI start-up: bin/quarantine --help and trace ip, wall clock per process, next to a bare node -e 0',
  params: [
    { name: 'cli-runs', description: 'measured runs of each command', default: '30' },
    { name: 'cli-warmup', description: 'uncounted runs of each command first', default: '3' },
  ],
  async run(ctx: Context): Promise<Figure[]> {
    const runs = Number(ctx.param('cli-runs'));
    const warmup = Number(ctx.param('cli-warmup'));
    const dir = join(ctx.outDir, 'cli');
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    ctx.defer(() => rmSync(dir, { recursive: true, force: true }));
    const db = `sqlite:${join(dir, 'ledger.db')}`;
    // The compile cache of this run only, so that an earlier run's cache does not flatter the figure.
    const env = { ...process.env, NODE_COMPILE_CACHE: join(dir, 'compile-cache'), LOG_LEVEL: 'silent' };
    const t = (iso: string) => new Date(iso);
    const vm: VmSpec = { id: 'a9b0c1d2-0000-4000-8000-00000000000a', name: 'batch-17', project: 'proj-hep', user: 'alice', host: 'cmp-04', createdAt: t('2026-05-01T15:00:00Z'), ports: [{ portId: 'port-aaaa', address: '10.0.0.5', mac: 'fa:16:3e:00:00:0a', network: 'private' }] };
    writeFileSync(join(dir, 'msgs.jsonl'), [
      neutronPort({ ...vm.ports[0]!, project: vm.project, instanceId: vm.id }, 'create.end', t('2026-05-01T15:59:00Z')),
      novaInstance(vm, 'create.end', t('2026-05-01T16:00:00Z')),
      neutronFloatingIp({ id: 'fip-1', address: '188.185.194.218', network: 'ext-net', project: vm.project }, 'update.end', t('2026-05-01T16:05:00Z'), { portId: 'port-aaaa', fixedAddress: '10.0.0.5', instanceId: vm.id }),
    ].join('\n') + '\n');
    execFileSync(bin, ['--db', db, 'ingest', join(dir, 'msgs.jsonl')], { env, stdio: 'ignore' });

    const commands: Record<string, [string, string[]]> = {
      bare: [node, ['-e', '0']],
      help: [bin, ['--help']],
      trace: [bin, ['--db', db, 'trace', 'ip', '188.185.194.218', '--at', '2026-05-01T16:10:00Z']],
    };
    const samples: Record<string, number[]> = { bare: [], help: [], trace: [] };
    for (let i = 0; i < warmup + runs; i++) {
      ctx.progress.update(`cli: run ${i + 1} of ${warmup + runs}`);
      for (const [name, [cmd, args]] of Object.entries(commands)) {
        const ms = timed(cmd, args, env);
        if (i >= warmup) samples[name]?.push(ms);
      }
    }
    const s = Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, summarize([...v].sort((a, b) => a - b))]));
    const bare = s['bare']!;
    ctx.note(`Wall clock of whole processes, ${runs} runs each after ${warmup} uncounted ones, alternating; bin/quarantine is the shell wrapper users run (it execs Node 24 on operator/cli/main.ts). The ceiling is \`node -e 0\` on the same Node: Node's own start-up, which no command can beat. \`trace ip\` opens the SQLite ledger, checks its migrations and answers from a three-notification ledger, so the figure is start-up, not query time (see the trace scenario for that).`);
    const figure = (name: 'help' | 'trace', label: string): Figure[] => {
      const v = s[name]!;
      return [
        { figure: `cli.${name}.p50`, label: `${label}, p50`, value: round(v.p50, 0), unit: 'ms', ceiling: round(bare.p50, 0), target: { op: '<=', value: TARGET_MS }, params: { runs, warmup }, notes: `ceiling = node -e 0 (p50); min ${round(Math.min(...(samples[name] ?? [])), 0)} ms`, samples: samples[name] },
        { figure: `cli.${name}.p90`, label: `${label}, p90`, value: round(v.p90, 0), unit: 'ms', ceiling: round(bare.p90, 0), params: { runs, warmup }, notes: 'ceiling = node -e 0 (p90)' },
      ];
    };
    return [...figure('help', 'quarantine --help start-up'), ...figure('trace', 'quarantine trace ip start-up (SQLite)')];
  },
};
