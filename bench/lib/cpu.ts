// Where the CPU went during a measurement: this process versus the whole
// machine. On two cores, "the operator used one core and the machine was
// saturated" and "the operator idled while waiting on the database" call for
// different fixes.
import { readdirSync, readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';

function machineTicks(): { busy: number; total: number } | undefined {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
    const v = line.trim().split(/\s+/).slice(1).map(Number);
    const idle = (v[3] ?? 0) + (v[4] ?? 0);
    const total = v.reduce((s, x) => s + x, 0);
    return { busy: total - idle, total };
  } catch {
    return undefined;
  }
}

export interface CpuShare {
  /** This process, in percent of one core. */
  processPct: number;
  /** The whole machine, in percent of all cores. */
  machinePct: number | undefined;
}

export function cpuMeter(): () => CpuShare {
  const t0 = performance.now();
  const p0 = process.cpuUsage();
  const m0 = machineTicks();
  return () => {
    const wallUs = (performance.now() - t0) * 1000;
    const p = process.cpuUsage(p0);
    const m1 = machineTicks();
    const machinePct = m0 !== undefined && m1 !== undefined && m1.total > m0.total ? (100 * (m1.busy - m0.busy)) / (m1.total - m0.total) : undefined;
    return { processPct: Math.round((100 * (p.user + p.system)) / Math.max(1, wallUs)), machinePct: machinePct === undefined ? undefined : Math.round(machinePct) };
  };
}

const TICKS_PER_SECOND = 100;

function ticksOf(names: readonly string[]): Map<string, number> {
  const out = new Map<string, number>(names.map((n) => [n, 0]));
  let pids: string[] = [];
  try {
    pids = readdirSync('/proc').filter((p) => /^\d+$/.test(p));
  } catch {
    return out;
  }
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const open = stat.indexOf('(');
      const close = stat.lastIndexOf(')');
      const comm = stat.slice(open + 1, close);
      const name = names.find((n) => comm.startsWith(n));
      if (name === undefined) continue;
      // Fields after the command: state is field 3, utime and stime are fields 14 and 15.
      const rest = stat.slice(close + 2).split(' ');
      out.set(name, (out.get(name) ?? 0) + Number(rest[11]) + Number(rest[12]));
    } catch {
      // The process ended between listing and reading.
    }
  }
  return out;
}

/** CPU of other programs by command name (e.g. the broker, the database server), in percent of one core. */
export function serviceCpuMeter(names: readonly string[]): () => Record<string, number> {
  const t0 = performance.now();
  const before = ticksOf(names);
  return () => {
    const seconds = (performance.now() - t0) / 1000;
    const after = ticksOf(names);
    const out: Record<string, number> = {};
    for (const n of names) out[n] = Math.round((100 * ((after.get(n) ?? 0) - (before.get(n) ?? 0))) / TICKS_PER_SECOND / Math.max(1e-3, seconds));
    return out;
  };
}

/**
 * CPU seconds of a process's children that have ended and been waited for
 * (cutime + cstime): what the programs a process host started have cost.
 */
export function childrenCpuSeconds(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // cutime and cstime are fields 16 and 17; rest starts at field 3.
    return (Number(rest[13]) + Number(rest[14])) / TICKS_PER_SECOND;
  } catch {
    return undefined;
  }
}
