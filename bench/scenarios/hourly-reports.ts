// Running instances reported every hour (Nova's `exists`, the same addresses
// and full list each time), applied and derived as the intake does, hour
// after hour: what one report costs once the ledger holds a long history of
// them, beside what it cost in the first hours. Cloud operators keep VMs for
// months; the ledger keeps every report of them, so a report's cost must not
// grow with that history.
import { performance } from 'node:perf_hooks';
import type { Kysely } from 'kysely';
import type { Figure } from '../scenario.ts';
import { round } from '../lib/stats.ts';
import { prepare } from '../../operator/intake/pipeline.ts';
import { applyBatch, type Recorded } from '../../operator/ledger/apply.ts';
import { deriveAll } from '../../operator/ledger/derive-pending.ts';
import type { LedgerSchema } from '../../operator/ledger/schema.ts';
import { neutronPort, novaInstance, type VmSpec } from '../../test/sim/openstack-messages.ts';

const T = Date.parse('2026-01-05T00:00:00Z');
const H = 3_600_000;
/** Hours averaged at each end: one hour alone is a single batch, as noisy as a batch is. */
const WINDOW = 5;

const hex = (i: number, width: number) => i.toString(16).padStart(width, '0');

function fleet(instances: number): VmSpec[] {
  return Array.from({ length: instances }, (_, i) => ({
    id: `7d3e0000-0000-4000-8000-${hex(i, 12)}`, name: `batch-${i}`, project: `project-${i % 20}`, user: `user-${i % 50}`, host: `kvm-${i % 40}`,
    createdAt: new Date(T),
    ports: [{ portId: `9a1c0000-0000-4000-8000-${hex(i, 12)}`, address: `10.${20 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`, mac: `fa:16:3e:${hex((i >> 16) & 255, 2)}:${hex((i >> 8) & 255, 2)}:${hex(i & 255, 2)}`, network: `net-${i % 20}` }],
  }));
}

function record(body: string, exchange: 'nova' | 'neutron', at: number): Recorded {
  const p = prepare(body, { cloud: 'bench', exchange, routingKey: exchange === 'nova' ? 'versioned_notifications.info' : 'notifications.info', receivedAt: new Date(at + 1_000) });
  if (!p.ok) throw new Error(`an hourly report does not decode: ${p.error.message}`);
  return p.recorded;
}

/** As the intake: batches of `batch`, then the pass that derives what they touched. */
async function applyHour(db: Kysely<LedgerSchema>, recorded: readonly Recorded[], batch: number): Promise<void> {
  for (let i = 0; i < recorded.length; i += batch) await applyBatch(db, recorded.slice(i, i + batch), undefined, { deferDerivation: { at: 0 } });
  await deriveAll(db, { cloud: 'bench' });
}

export interface HourlyResult {
  /** µs of wall time per report over the first WINDOW hours and the last WINDOW hours. */
  firstUs: number;
  lastUs: number;
  /** The same over the WINDOW hours ending at each fifth of the run: where the cost goes as history grows. */
  byHour: Record<string, number>;
  seconds: number;
}

export async function hourlyReports(db: Kysely<LedgerSchema>, instances: number, hours: number, batch: number, progress: (text: string) => void): Promise<HourlyResult> {
  const vms = fleet(instances);
  await applyHour(db, vms.flatMap((vm) => [
    record(neutronPort({ ...(vm.ports[0] as VmSpec['ports'][number]), project: vm.project, instanceId: vm.id }, 'create.end', new Date(T + 1_000)), 'neutron', T + 1_000),
    record(novaInstance(vm, 'create.end', new Date(T + 2_000)), 'nova', T + 2_000),
  ]), batch);
  const perHour: number[] = [];
  const t0 = performance.now();
  for (let hour = 1; hour <= hours; hour += 1) {
    // Decoded before the clock starts: the figure is the ledger's cost, as the apply scenario's.
    const reports = vms.map((vm) => record(novaInstance(vm, 'exists', new Date(T + hour * H)), 'nova', T + hour * H));
    const start = performance.now();
    await applyHour(db, reports, batch);
    perHour.push(((performance.now() - start) * 1000) / instances);
    if (hour % 10 === 0) progress(`hour ${hour}/${hours}: ${Math.round(perHour.at(-1) as number)} µs per report`);
  }
  const mean = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const byHour: Record<string, number> = {};
  for (let k = 1; k <= 5; k += 1) {
    const end = Math.max(WINDOW, Math.round((hours * k) / 5));
    byHour[String(end)] = round(mean(perHour.slice(end - WINDOW, end)));
  }
  return { firstUs: mean(perHour.slice(0, WINDOW)), lastUs: mean(perHour.slice(-WINDOW)), byHour, seconds: (performance.now() - t0) / 1000 };
}

export function hourlyFigure(engine: 'sqlite' | 'postgres', instances: number, hours: number, r: HourlyResult): Figure {
  const engineName = engine === 'sqlite' ? 'SQLite (file)' : 'PostgreSQL';
  return {
    figure: `apply.${engine}.hourly`,
    label: `applying and deriving an hourly report of a running instance after ${hours} hours, ${engineName}, µs per report`,
    value: round(r.lastUs),
    unit: 'µs',
    ceiling: round(r.firstUs),
    params: { instances, hours, window: WINDOW, firstUs: round(r.firstUs), lastUs: round(r.lastUs), usByHour: r.byHour, seconds: round(r.seconds, 1) },
    notes: `${instances} instances reported every hour (versioned \`exists\`, the same address and list), applied in one batch per hour and derived by the intake's pass; ` +
      `mean of the last ${WINDOW} hours; ceiling = the same in the first ${WINDOW} hours, when the ledger held no history of them; ` +
      `by hour ${Object.entries(r.byHour).map(([h, us]) => `${h}: ${us}`).join(', ')} µs`,
  };
}
