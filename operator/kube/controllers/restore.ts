// QuarantineRestore: an investigator's request to materialize a quarantine as
// a new image, or export it to a file, recorded with its SHA-256. The reading
// itself is a transfer task in the ledger (capture/transfers.ts), run by the
// operator's transfer runner: a reconcile only records the task and reflects
// it into the status, so an export of hours ties up no controller worker and
// an interrupted one is reported, not lost. The resource is the record of
// what was asked; the task and the audit trail of what was done.
import type { Kysely } from 'kysely';
import type { LedgerSchema } from '../../ledger/schema.ts';
import type { QuarantineRestore } from '../../resources/restore.ts';
import type { BlockStore } from '../../domain/block-store.ts';
import { QuarantineStore } from '../../capture/quarantine-store.ts';
import { TransferStore, type TransferRow, type TransferSpec } from '../../capture/transfers.ts';
import { PermanentError, TemporaryError, type Controller } from '../runtime/index.ts';

/** What the controller needs of the operator: Ceph access per cloud and the transfer runner. */
export interface RestoreHost {
  blocksFor(cloud: string): BlockStore | undefined;
  readonly transfers: { submit(id: string): void };
}

/** How often a running task's progress is copied into the status. */
const PROGRESS_MS = 5_000;

export function restoreTaskId(r: { metadata: { name: string; namespace?: string | undefined; [k: string]: unknown } }): string {
  // The uid, so a request deleted and made again under the same name is a new task.
  const uid = r.metadata['uid'];
  return `kube:${typeof uid === 'string' && uid !== '' ? uid : `${r.metadata.namespace ?? 'default'}/${r.metadata.name}`}`;
}

const iso = (ms: number | null): string | undefined => (ms === null ? undefined : new Date(ms).toISOString());

export function restoreController(host: RestoreHost, db: Kysely<LedgerSchema>, progressMs = PROGRESS_MS): Controller<QuarantineRestore> {
  const tasks = new TransferStore(db);
  return {
    kind: 'QuarantineRestore',
    async reconcile(r, ctx) {
      const phase = r.status?.phase;
      if (phase === 'Succeeded' || phase === 'Failed') return;
      const id = restoreTaskId(r);
      let task = await tasks.get(id);
      if (task === undefined) {
        if (phase === 'Running') {
          // Started before restores were ledger tasks, by a process that is gone.
          await ctx.status({ fields: { phase: 'Failed', completedAt: ctx.clock.now().toISOString() }, conditions: [{ type: 'Complete', status: 'False', reason: 'Interrupted', message: 'the operator stopped while this ran; delete any partial result and create a new request' }] });
          await ctx.event('Warning', 'Interrupted', 'the restore was interrupted by an operator restart');
          return;
        }
        const q = await new QuarantineStore(db).get(r.spec.quarantineId);
        if (q === undefined) throw new PermanentError(`no quarantine ${r.spec.quarantineId}`, { reason: 'QuarantineNotFound' });
        if (host.blocksFor(q.cloud) === undefined) throw new TemporaryError(`no Ceph access for cloud ${q.cloud} yet`, 10_000, { reason: 'CloudNotReady' });
        let spec: TransferSpec;
        if (r.spec.target !== undefined) spec = { kind: 'restore', pool: r.spec.target.pool, ...(r.spec.target.namespace === undefined ? {} : { namespace: r.spec.target.namespace }), image: r.spec.target.image };
        else if (r.spec.export !== undefined) spec = { kind: 'export', path: r.spec.export.path };
        else throw new PermanentError('neither target nor export is set', { reason: 'InvalidSpec' });
        task = await tasks.request({
          id, quarantineId: q.id, cloud: q.cloud, spec, actor: `kubernetes:${r.metadata.namespace ?? 'default'}/${r.metadata.name}`,
          reason: r.spec.reason, caseId: r.spec.caseId, requestedBy: `kubernetes:${ctx.key}`,
        }, ctx.clock.now());
      }
      if (task.state === 'pending') host.transfers.submit(task.id);
      await reflect(task, ctx);
      return task.state === 'pending' || task.state === 'running' ? { requeueAfterMs: progressMs } : undefined;
    },
    // A request withdrawn before a worker took it is not run; one already running goes on (its result is evidence handling, audited).
    async deleted(_key, last, ctx) {
      const name = last?.metadata.name;
      if (last === undefined || name === undefined) return;
      const id = restoreTaskId({ metadata: { ...last.metadata, name } });
      if (await tasks.fail(id, 'pending', ctx.clock.now(), 'Cancelled', 'the QuarantineRestore was deleted before the task ran')) ctx.log.info({ transfer: id }, 'transfer cancelled: its request was deleted');
    },
  };
}

type Ctx = Parameters<Controller<QuarantineRestore>['reconcile']>[1];

async function reflect(t: TransferRow, ctx: Ctx): Promise<void> {
  const where = t.kind === 'export' ? { path: t.target } : { image: t.target };
  if (t.state === 'pending') {
    await ctx.status({ fields: { phase: 'Pending' }, conditions: [{ type: 'Complete', status: 'False', reason: 'Queued', message: `task ${t.id} waits for a worker` }] });
    return;
  }
  if (t.state === 'running') {
    const pct = t.total === null || t.total === 0 ? 0 : Math.min(99, Math.floor((100 * t.bytes) / t.total));
    await ctx.status({
      fields: { phase: 'Running', progress: pct, ...(t.started_at === null ? {} : { startedAt: iso(t.started_at) }) },
      conditions: [{ type: 'Complete', status: 'False', reason: 'Running', message: `task ${t.id} on ${t.owner ?? '?'}: reading ${t.quarantine_id}` }],
    });
    return;
  }
  const done = { ...(t.started_at === null ? {} : { startedAt: iso(t.started_at) }), completedAt: iso(t.completed_at) ?? ctx.clock.now().toISOString() };
  if (t.state === 'succeeded') {
    await ctx.status({
      fields: { phase: 'Succeeded', bytes: t.bytes, ...(t.sha256 === null ? {} : { sha256: t.sha256 }), progress: 100, ...done, ...where },
      conditions: [{ type: 'Complete', status: 'True', reason: 'Succeeded', message: `${t.bytes} bytes, sha256 ${t.sha256 ?? ''}` }],
    });
    await ctx.event('Normal', 'Succeeded', `${t.target}: sha256 ${t.sha256 ?? ''}`);
    return;
  }
  const reason = t.failure ?? 'Error';
  await ctx.status({
    fields: { phase: 'Failed', ...done, ...(t.sha256 === null ? {} : { sha256: t.sha256, bytes: t.bytes }) },
    conditions: [{ type: 'Complete', status: 'False', reason, message: t.error ?? reason }],
  });
  await ctx.event('Warning', reason, `${t.target}: ${t.error ?? reason}`);
}
