// QuarantineRestore: an investigator's request to materialize a quarantine as
// a new image, or export it to a file, recorded with its SHA-256. Runs once;
// the resource is the record of what was done.
import { createWriteStream, existsSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Kysely } from 'kysely';
import type { LedgerSchema } from '../../ledger/schema.ts';
import type { Operator } from '../../operator.ts';
import type { QuarantineRestore } from '../../resources/restore.ts';
import { QuarantineStore } from '../../capture/quarantine-store.ts';
import { exportQuarantine, restoreQuarantine, QuarantineUnavailableError, RestoreTargetExistsError, type TransferResult } from '../../capture/restore.ts';
import { PermanentError, TemporaryError, type Controller } from '../runtime/index.ts';

export function restoreController(operator: Operator, db: Kysely<LedgerSchema>): Controller<QuarantineRestore> {
  const running = new Set<string>();
  return {
    kind: 'QuarantineRestore',
    async reconcile(r, ctx) {
      const phase = r.status?.phase;
      if (phase === 'Succeeded' || phase === 'Failed') return;
      if (running.has(ctx.key)) return;
      if (phase === 'Running') {
        // Started by a replica that is gone: a half-written target is not evidence.
        await ctx.status({ fields: { phase: 'Failed', completedAt: ctx.clock.now().toISOString() }, conditions: [{ type: 'Complete', status: 'False', reason: 'Interrupted', message: 'the operator stopped while this ran; delete any partial result and create a new request' }] });
        await ctx.event('Warning', 'Interrupted', 'the restore was interrupted by an operator restart');
        return;
      }
      const q = await new QuarantineStore(db).get(r.spec.quarantineId);
      if (q === undefined) throw new PermanentError(`no quarantine ${r.spec.quarantineId}`, { reason: 'QuarantineNotFound' });
      const blocks = operator.blocksFor(q.cloud);
      if (blocks === undefined) throw new TemporaryError(`no Ceph access for cloud ${q.cloud} yet`, 10_000, { reason: 'CloudNotReady' });
      const actor = `kubernetes:${r.metadata.namespace ?? 'default'}/${r.metadata.name}`;
      const details = { reason: r.spec.reason, caseId: r.spec.caseId };
      running.add(ctx.key);
      try {
        await ctx.status({ fields: { phase: 'Running', startedAt: ctx.clock.now().toISOString(), progress: 0 }, conditions: [{ type: 'Complete', status: 'False', reason: 'Running', message: `reading ${r.spec.quarantineId}` }] });
        let lastPct = -1;
        let pending: Promise<void> = Promise.resolve();
        const onProgress = (bytes: number, total: number | null) => {
          const pct = total === null || total === 0 ? 0 : Math.min(99, Math.floor((100 * bytes) / total));
          if (pct >= lastPct + 10) {
            lastPct = pct;
            pending = pending.then(() => ctx.status({ fields: { progress: pct } })).catch(() => undefined);
          }
        };
        let result: TransferResult & { image?: string; path?: string };
        if (r.spec.target !== undefined) {
          const t = r.spec.target;
          result = await restoreQuarantine({ db, blocks, actor, onProgress, signal: ctx.signal }, q.id, { pool: t.pool, namespace: t.namespace, image: t.image }, details);
        } else if (r.spec.export !== undefined) {
          const path = r.spec.export.path;
          if (existsSync(path)) throw new RestoreTargetExistsError(`${path} exists already; export never overwrites`);
          mkdirSync(dirname(path), { recursive: true });
          const sink = createWriteStream(path, { flags: 'wx', mode: 0o640 });
          result = { ...(await exportQuarantine({ db, blocks, actor, onProgress, signal: ctx.signal }, q.id, sink, path, details)), path };
        } else {
          throw new PermanentError('neither target nor export is set', { reason: 'InvalidSpec' });
        }
        await pending;
        const mismatch = result.matches === false;
        await ctx.status({
          fields: { phase: mismatch ? 'Failed' : 'Succeeded', bytes: result.bytes, sha256: result.sha256, progress: 100, completedAt: ctx.clock.now().toISOString(), ...(result.image === undefined ? {} : { image: result.image }), ...(result.path === undefined ? {} : { path: result.path }) },
          conditions: [mismatch
            ? { type: 'Complete', status: 'False', reason: 'DigestMismatch', message: `read sha256 ${result.sha256} differs from the recorded ${result.recorded ?? ''}` }
            : { type: 'Complete', status: 'True', reason: 'Succeeded', message: `${result.bytes} bytes, sha256 ${result.sha256}` }],
        });
        await ctx.event(mismatch ? 'Warning' : 'Normal', mismatch ? 'DigestMismatch' : 'Succeeded', `${result.image ?? result.path ?? ''}: sha256 ${result.sha256}`);
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        if (err instanceof QuarantineUnavailableError || err instanceof RestoreTargetExistsError || err instanceof PermanentError) {
          await ctx.status({ fields: { phase: 'Failed', completedAt: ctx.clock.now().toISOString() }, conditions: [{ type: 'Complete', status: 'False', reason: err instanceof RestoreTargetExistsError ? 'TargetExists' : 'Unavailable', message }] });
          throw new PermanentError(message, { reason: 'Failed', cause: err });
        }
        await ctx.status({ fields: { phase: 'Pending' }, conditions: [{ type: 'Complete', status: 'False', reason: 'Retrying', message }] });
        throw new TemporaryError(message, 15_000, { reason: 'Retrying', cause: err });
      } finally {
        running.delete(ctx.key);
      }
      return;
    },
  };
}
