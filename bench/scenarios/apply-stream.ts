// The streamed apply's own process (see runStream in apply.ts): generates the
// ingest workload, decodes it and applies it one batch at a time as the
// intake does (derivation passes, bench/lib/intake-apply.ts), with
// nothing held beforehand, so that its RSS is the ledger's own: Node, the
// driver, SQLite's page cache and one batch, and, as the operator runs, the
// thread that checkpoints a SQLite file's WAL (its memory counts too). Run as
// `node [NODE OPTIONS] bench/scenarios/apply-stream.ts DB_URL N BATCH`;
// prints `progress DONE` lines and a final `result {json}` line.
import { performance } from 'node:perf_hooks';
import { workloadStream } from './ingest-workload.ts';
import { prepare } from '../../operator/intake/pipeline.ts';
import type { Recorded } from '../../operator/ledger/apply.ts';
import { intakeApply } from '../lib/intake-apply.ts';
import { migrateToLatest, openLedgerDb } from '../../operator/ledger/db.ts';
import { startCheckpointer } from '../../operator/ledger/checkpoint-thread.ts';

export interface StreamResult {
  notifications: number;
  seconds: number;
  startRss: number;
  peakRss: number;
  /** V8's heap after a full collection at the end: what the apply keeps alive. */
  liveHeap: number | undefined;
  cpuUs: number;
}

async function main(url: string, n: number, batch: number): Promise<StreamResult> {
  const ledger = openLedgerDb(url);
  try {
    await migrateToLatest(ledger);
    const checkpointer = await startCheckpointer(ledger);
    const startRss = process.memoryUsage.rss();
    let peakRss = startRss;
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    let done = 0;
    let part: Recorded[] = [];
    // As the intake applies: derivation in passes over the batches of about a second.
    const intake = intakeApply(ledger.db, batch);
    const flush = async () => {
      await intake.apply(part);
      done += part.length;
      part = [];
      peakRss = Math.max(peakRss, process.memoryUsage.rss());
      if ((done / batch) % 50 === 0) process.stdout.write(`progress ${done} ${Math.round(peakRss)}\n`);
    };
    for (const m of workloadStream()) {
      if (done + part.length === n) break;
      // Received half a second after the event: the decoder's time window follows the workload's clock.
      const p = prepare(m.body, { cloud: 'bench', exchange: m.exchange, routingKey: m.routingKey, receivedAt: new Date(m.at + 500) });
      if (!p.ok) throw new Error(`workload message ${done + part.length} does not decode: ${p.error.message}`);
      part.push(p.recorded);
      if (part.length === batch) await flush();
    }
    if (part.length > 0) await flush();
    await intake.finish();
    await checkpointer.stop();
    const seconds = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(c0);
    const gc = (globalThis as { gc?: () => void }).gc;
    gc?.();
    return { notifications: n, seconds, startRss, peakRss, liveHeap: gc === undefined ? undefined : process.memoryUsage().heapUsed, cpuUs: cpu.user + cpu.system };
  } finally {
    await ledger.close();
  }
}

if (import.meta.main) {
  const [url, n, batch] = process.argv.slice(2);
  if (url === undefined || n === undefined || batch === undefined) throw new Error('usage: apply-stream.ts DB_URL N BATCH');
  const result = await main(url, Number(n), Number(batch));
  process.stdout.write(`result ${JSON.stringify(result)}\n`);
}
