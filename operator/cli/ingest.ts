// `quarantine ingest`: raw notification bodies from files, through the same
// decode-and-apply path as the AMQP consumer: the same bytes (never re-encoded
// text), the same limits, the same verdicts. A bad file is reported and the
// rest are still applied. Given the cloud's policies, a delete warning writes
// its capture intent in the same transaction, as live intake does: the
// operator then captures whatever of those disks Ceph still holds.
import { readFileSync, statSync } from 'node:fs';
import type { Kysely } from 'kysely';
import type { LedgerSchema } from '../ledger/schema.ts';
import { applyBatch, type Recorded } from '../ledger/apply.ts';
import { prepare, emptyCounts, type IngestCounts } from '../intake/pipeline.ts';
import { DEFAULT_LIMITS, type DecodeLimits } from '../intake/decode/index.ts';
import type { Policy } from '../domain/policy.ts';
import { recordCaptureIntents } from '../capture/intents.ts';
import { signalsOf } from '../capture/lifecycle.ts';

export interface Rejection {
  where: string;
  reason: string;
  message: string;
}

interface Body {
  where: string;
  bytes: Uint8Array;
}

const NEWLINE = 0x0a;

/** The bodies in one file, or the reason it cannot be read. */
function bodiesOf(file: string, limits: DecodeLimits): Body[] | Rejection {
  let bytes: Buffer;
  try {
    const st = statSync(file);
    if (!st.isFile()) return { where: file, reason: 'unreadable', message: 'not a file' };
    // A single-body file larger than a body may be is refused unread, as the consumer does.
    if (!file.endsWith('.jsonl') && st.size > limits.maxBodyBytes) {
      return { where: file, reason: 'too-large', message: `body of ${st.size} bytes exceeds the limit of ${limits.maxBodyBytes} bytes; not read` };
    }
    bytes = readFileSync(file);
  } catch (err) {
    return { where: file, reason: 'unreadable', message: err instanceof Error ? err.message : String(err) };
  }
  if (!file.endsWith('.jsonl')) return [{ where: file, bytes }];
  // Splitting on the newline byte is safe in UTF-8 (it never occurs inside a character),
  // so each line's bytes reach the decoder untouched.
  const out: Body[] = [];
  let start = 0;
  for (let line = 1; start <= bytes.length; line++) {
    let end = bytes.indexOf(NEWLINE, start);
    if (end === -1) end = bytes.length;
    const slice = bytes.subarray(start, end);
    if (slice.toString('latin1').trim() !== '') out.push({ where: `${file}:${line}`, bytes: slice });
    start = end + 1;
  }
  return out;
}

/** The capture side of ingest: the cloud's policies (only for a cloud whose disks are captured). */
export interface IngestCapture {
  policies: readonly Policy[];
}

export async function ingestFiles(
  db: Kysely<LedgerSchema>, cloud: string, files: string[], now: () => Date = () => new Date(), limits: Partial<DecodeLimits> = {}, capture?: IngestCapture,
): Promise<{ counts: IngestCounts; rejections: Rejection[]; warnings: number }> {
  const effective = { ...DEFAULT_LIMITS, ...limits };
  const intents = capture === undefined ? undefined : (trx: Kysely<LedgerSchema>, n: Parameters<typeof recordCaptureIntents>[1]) => recordCaptureIntents(trx, n, { cloud, policies: () => capture.policies });
  const counts = emptyCounts();
  const rejections: Rejection[] = [];
  /** Delete warnings read (each may open capture intents). */
  let warnings = 0;
  const reject = (r: Rejection) => {
    counts.rejected += 1;
    rejections.push(r);
  };
  let batch: Array<{ where: string; recorded: Recorded }> = [];
  const flush = async () => {
    if (batch.length === 0) return;
    const pending = batch;
    batch = [];
    try {
      for (const outcome of await applyBatch(db, pending.map((p) => p.recorded), intents)) counts[outcome] += 1;
    } catch {
      // One body that makes apply fail must not take the others with it:
      // each gets its own transaction and its own verdict.
      for (const p of pending) {
        try {
          for (const outcome of await applyBatch(db, [p.recorded], intents)) counts[outcome] += 1;
        } catch (err) {
          reject({ where: p.where, reason: 'apply-failed', message: err instanceof Error ? err.message : String(err) });
        }
      }
    }
  };
  for (const file of files) {
    const bodies = bodiesOf(file, effective);
    if (!Array.isArray(bodies)) {
      reject(bodies);
      continue;
    }
    for (const b of bodies) {
      const p = prepare(b.bytes, { cloud, receivedAt: now(), limits: effective });
      if (!p.ok) {
        reject({ where: b.where, reason: p.error.reason, message: p.error.message });
        continue;
      }
      if (signalsOf(p.recorded.notification).some((x) => x.kind === 'warning' || x.kind === 'soft')) warnings += 1;
      batch.push({ where: b.where, recorded: p.recorded });
      if (batch.length >= 500) await flush();
    }
  }
  await flush();
  return { counts, rejections, warnings };
}

/**
 * Whether ingest records capture intents, and with which policies: those of
 * the manifests, for a Cloud there whose disks are captured. `note` says
 * why not otherwise, for when delete warnings were read.
 */
export async function ingestCaptureOf(cloud: string, manifests: string | undefined): Promise<{ capture?: IngestCapture; note?: string }> {
  if (manifests === undefined) return { note: 'no capture intents recorded for them: pass --manifests (or QUARANTINE_MANIFESTS) with the Cloud and its policies to have their disks captured' };
  const { resourcesFromManifests } = await import('../resources/manifest-kinds.ts');
  const { UsageError } = await import('./errors.ts');
  const res = resourcesFromManifests(manifests);
  const c = res.clouds.find((x) => x.metadata.name === cloud);
  if (c === undefined) throw new UsageError(`${manifests} has no Cloud named ${cloud} (--cloud)`);
  if (c.spec.ceph === undefined) return { note: `Cloud ${cloud} has no ceph section: its disks are not captured` };
  return { capture: { policies: res.policies } };
}
