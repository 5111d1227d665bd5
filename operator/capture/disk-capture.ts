// What every capture reconciler shares: the cloud's settings, its ports, and
// the capture of one disk under a recorded decision (admission checked again
// at that moment, the outcome counted).
import type { Kysely } from 'kysely';
import type { LedgerSchema } from '../ledger/schema.ts';
import type { BlockStore } from '../domain/block-store.ts';
import type { Clock } from '../kube/runtime/clock.ts';
import type { Policy } from '../domain/policy.ts';
import { roleWanted, type DiskRole } from '../domain/disks.ts';
import { appendAudit } from '../ledger/audit.ts';
import type { CaptureEngine, CaptureSource } from './engine.ts';
import type { IntentStore } from './intents.ts';
import { holdingOf } from './intents.ts';
import { admits, type Decision } from './lifecycle.ts';
import { provenanceOf } from './provenance.ts';
import type { Logger } from '../log.ts';

export interface CloudCaptureConfig {
  cloud: string;
  cloudType: 'openstack' | 'opennebula';
  watchedPools: string[];
  trash: { arm: boolean; expireSeconds: number; scanIntervalSeconds: number };
}

export interface CaptureStats {
  captures: number;
  failed: number;
  /** onDelete: the cloud removed the disk before the snapshot (the race lost). */
  racesLost: number;
  racesWon: number;
  refusedFull: number;
  adoptedOrphans: number;
}

export const emptyStats = (): CaptureStats => ({ captures: 0, failed: 0, racesLost: 0, racesWon: 0, refusedFull: 0, adoptedOrphans: 0 });

export interface CaptureContext {
  config: CloudCaptureConfig;
  db: Kysely<LedgerSchema>;
  blocks: BlockStore;
  engine: CaptureEngine;
  intents: IntentStore;
  policies: () => readonly Policy[];
  logger: Logger;
  clock: Clock;
  stats: CaptureStats;
  /** Told about every onDelete-style race: did the snapshot come before the cloud's removal. */
  onRace?: ((mode: string, result: 'won' | 'lost') => void) | undefined;
  /** Told about every capture attempt: result and seconds since the deletion was announced. */
  onCapture?: ((mode: string, result: 'quarantined' | 'failed' | 'refused', seconds: number) => void) | undefined;
  /** Told about every new quarantine: its digest and isolation are owed at once. */
  onCaptured?: ((id: string) => void) | undefined;
}

export interface DiskToCapture {
  intentId: string;
  instanceId: string;
  disk: string;
  role: DiskRole;
  decision: Decision;
  source: CaptureSource;
  messageId: string | null;
  /** When the deletion was announced: capture latency counts from here. */
  since: Date;
}

/**
 * Captures one disk as the intent's decision says: `captured`, `not` (not
 * wanted, refused or failed), or `elsewhere` (another worker holds its step
 * and will finish it).
 */
export async function captureDisk(ctx: CaptureContext, d: DiskToCapture): Promise<'captured' | 'not' | 'elsewhere'> {
  const { decision: p } = d;
  if (!roleWanted(d.role, p.disks)) return 'not';
  const report = (result: 'quarantined' | 'failed' | 'refused') => ctx.onCapture?.(p.mode, result, Math.max(0, (ctx.clock.now().getTime() - d.since.getTime()) / 1000));
  if (p.capacity === 'full' || (p.limits !== undefined && !admits(p.limits, await holdingOf(ctx.db, p.policy)))) {
    ctx.stats.refusedFull += 1;
    report('refused');
    await appendAudit(ctx.db, { actor: 'quarantine-operator', action: 'capture.refused', subject: `${ctx.config.cloud}/${d.instanceId}`, details: { disk: d.disk, policy: p.policy, reason: 'capacity full (onFull: refuse)' } });
    ctx.logger.warn({ instance: d.instanceId, disk: d.disk, policy: p.policy }, 'capture refused: the policy is at capacity');
    return 'not';
  }
  const provenance = await provenanceOf(ctx.db, ctx.config.cloud, d.instanceId, d.messageId);
  const row = await ctx.engine.capture({
    cloud: ctx.config.cloud, instanceId: d.instanceId, disk: d.disk, mode: p.mode, source: d.source, provenance, intentId: d.intentId,
    policy: { name: p.policy, retentionMs: p.retentionMs, flatten: p.flatten, isolate: p.isolate },
  });
  if (row.state === 'failed') {
    ctx.stats.failed += 1;
    report('failed');
    return 'not';
  }
  if (row.state !== 'quarantined') return 'elsewhere';
  ctx.stats.captures += 1;
  report('quarantined');
  ctx.onCaptured?.(row.id);
  // Isolation flattens already; a policy that opts out of it may still want the plain flatten.
  if (p.flatten && !p.isolate) void ctx.engine.flatten(row.id).catch((err: unknown) => ctx.logger.error({ quarantine: row.id, err: String(err) }, 'flatten failed; retried at the next start'));
  return 'captured';
}

export function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
