// `npm run soak:ledger -- --histories N [--from SEED] [--steps K] [--db URL]`:
// the ledger's order-independence property over many generated histories
// (test/support/histories.ts), raw deliveries run through the intake's real
// decoders. Each history is applied in event order,
// reversed, shuffled, and shuffled in random separate batches with duplicates;
// every trace answer is compared with the history's ground truth. Exits 1 on
// the first history that disagrees, 2 on a bad argument.
import { parseArgs } from 'node:util';
import { openLedgerDb, migrateToLatest, redactUrl } from '../operator/ledger/db.ts';
import { checkSeed, describeMismatches } from '../test/support/ledger-property.ts';

function int(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!/^\d+$/.test(value)) {
    process.stderr.write(`soak:ledger: --${name} must be a whole number, got "${value}"\n`);
    process.exit(2);
  }
  return Number(value);
}

let args;
try {
  args = parseArgs({ options: { histories: { type: 'string' }, from: { type: 'string' }, steps: { type: 'string' }, db: { type: 'string' } } }).values;
} catch (e) {
  process.stderr.write(`soak:ledger: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(2);
}
const histories = int('histories', args.histories, 200);
const from = int('from', args.from, 1);
const steps = int('steps', args.steps, 40);
const url = args.db ?? 'sqlite::memory:';

const ledger = openLedgerDb(url);
await migrateToLatest(ledger);
const started = Date.now();
let checked = 0;
try {
  for (let seed = from; seed < from + histories; seed += 1) {
    const ms = await checkSeed(ledger.db, seed, steps);
    if (ms.length > 0) {
      process.stdout.write(`FAIL: history ${seed}: ${ms.length} wrong answers\n${describeMismatches(ms, 8)}\n`);
      process.exitCode = 1;
      break;
    }
    checked += 1;
    if (seed % 50 === 0) process.stderr.write(`  ${seed - from + 1}/${histories} histories\n`);
  }
} finally {
  await ledger.close();
}
if (process.exitCode !== 1) process.stdout.write(`ok: ${checked} histories × 5 arrival schedules on ${redactUrl(url)}, every trace answer equals the ground truth (${((Date.now() - started) / 1000).toFixed(1)} s)\n`);
