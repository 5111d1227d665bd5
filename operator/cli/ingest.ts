// `quarantine ingest`: raw notification bodies from files, through the same
// decode-and-apply path as the AMQP consumer.
import { readFileSync, statSync } from 'node:fs';
import type { Kysely } from 'kysely';
import type { LedgerSchema } from '../ledger/schema.ts';
import { applyBatch, type Recorded } from '../ledger/apply.ts';
import { prepare, emptyCounts, type IngestCounts } from '../intake/pipeline.ts';
import { UsageError } from './errors.ts';

export interface Rejection {
  where: string;
  reason: string;
  message: string;
}

interface Body {
  where: string;
  text: string;
}

function bodiesOf(file: string): Body[] {
  let text: string;
  try {
    if (!statSync(file).isFile()) throw new UsageError(`${file} is not a file`);
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new UsageError(`cannot read ${file}: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (!file.endsWith('.jsonl')) return [{ where: file, text }];
  return text.split('\n').flatMap((line, i) => (line.trim() === '' ? [] : [{ where: `${file}:${i + 1}`, text: line }]));
}

export async function ingestFiles(db: Kysely<LedgerSchema>, cloud: string, files: string[], now: () => Date = () => new Date()): Promise<{ counts: IngestCounts; rejections: Rejection[] }> {
  const counts = emptyCounts();
  const rejections: Rejection[] = [];
  let batch: Recorded[] = [];
  const flush = async () => {
    if (batch.length === 0) return;
    for (const outcome of await applyBatch(db, batch)) counts[outcome] += 1;
    batch = [];
  };
  for (const file of files) {
    for (const b of bodiesOf(file)) {
      const p = prepare(b.text, { cloud, receivedAt: now() });
      if (!p.ok) {
        counts.rejected += 1;
        rejections.push({ where: b.where, reason: p.error.reason, message: p.error.message });
        continue;
      }
      batch.push(p.recorded);
      if (batch.length >= 500) await flush();
    }
  }
  await flush();
  return { counts, rejections };
}
