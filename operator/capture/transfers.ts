// Restores and exports as tasks in the ledger. Reading a large quarantine
// takes hours; a reconcile that awaited it would tie up a controller worker
// and lose all track of it when the process died. A task is recorded first
// (pending), claimed by one worker (running, with a claim it renews while it
// reads), and closed with its digest or its failure; a claim that lapses
// means its process is gone, and the task is failed as interrupted. Every end
// of a task is in the audit trail: a partial copy of evidence may exist.
import { existsSync, mkdirSync } from 'node:fs';
import { open as openFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Writable } from 'node:stream';
import { randomUUID } from 'node:crypto';
import type { Kysely, Selectable } from 'kysely';
import { z } from 'zod';
import type { LedgerSchema, TransfersTable } from '../ledger/schema.ts';
import type { BlockStore, ImageSpec } from '../domain/block-store.ts';
import { appendAudit } from '../ledger/audit.ts';
import type { Clock, Timer } from '../kube/runtime/clock.ts';
import { WorkQueue } from '../kube/runtime/queue.ts';
import type { Logger } from '../log.ts';
import { exportQuarantine, restoreQuarantine, QuarantineUnavailableError, RestoreTargetExistsError, type TransferResult } from './restore.ts';

export type TransferRow = Selectable<TransfersTable>;
export const TRANSFER_STATES = ['pending', 'running', 'succeeded', 'failed'] as const;
export type TransferState = (typeof TRANSFER_STATES)[number];
/** Why a task failed, as a CR condition reason. */
export type TransferFailure = 'TargetExists' | 'Unavailable' | 'Interrupted' | 'DigestMismatch' | 'Cancelled' | 'Error';

export const TransferSpec = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('restore'), pool: z.string().min(1), namespace: z.string().min(1).optional(), image: z.string().min(1) }),
  z.object({ kind: z.literal('export'), path: z.string().min(1) }),
]);
export type TransferSpec = z.infer<typeof TransferSpec>;

export interface NewTransfer {
  /** Stable for one request (a CR's uid, say), so asking twice records one task. */
  id?: string;
  quarantineId: string;
  cloud: string;
  spec: TransferSpec;
  actor: string;
  reason?: string | undefined;
  caseId?: string | undefined;
  requestedBy: string;
}

export function targetOf(spec: TransferSpec): string {
  return spec.kind === 'export' ? spec.path : `${spec.pool}/${spec.namespace === undefined ? '' : `${spec.namespace}/`}${spec.image}`;
}

export function specOf(row: TransferRow): TransferSpec {
  return TransferSpec.parse(JSON.parse(row.spec));
}

/** A task as the CLI and the API show it. */
export function transferView(t: TransferRow) {
  return {
    id: t.id, kind: t.kind, quarantine: t.quarantine_id, cloud: t.cloud, target: t.target, state: t.state,
    progress: t.state === 'succeeded' ? 100 : t.total === null || t.total === 0 ? 0 : Math.min(99, Math.floor((100 * t.bytes) / t.total)),
    bytes: t.bytes, sha256: t.sha256, matches: t.matches === null ? null : t.matches === 1, failure: t.failure, error: t.error,
    actor: t.actor, requestedBy: t.requested_by, owner: t.owner, reason: t.reason, caseId: t.case_id,
    createdAt: iso(t.created_at), startedAt: iso(t.started_at), completedAt: iso(t.completed_at),
  };
}
export type TransferView = ReturnType<typeof transferView>;

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

export class TransferStore {
  readonly #db: Kysely<LedgerSchema>;
  constructor(db: Kysely<LedgerSchema>) {
    this.#db = db;
  }

  /**
   * Records a pending task, or returns the one already recorded under that id.
   * `claim`: recorded as running for that owner at once, so that no operator
   * takes a task its requester runs itself (the CLI's own export).
   */
  async request(t: NewTransfer, now: Date, claim?: { owner: string; leaseMs: number }): Promise<TransferRow> {
    const id = t.id ?? randomUUID();
    await this.#db.insertInto('transfers').values({
      id, kind: t.spec.kind, quarantine_id: t.quarantineId, cloud: t.cloud, target: targetOf(t.spec), spec: JSON.stringify(t.spec),
      actor: t.actor, reason: t.reason ?? null, case_id: t.caseId ?? null, requested_by: t.requestedBy,
      state: claim === undefined ? 'pending' : 'running', owner: claim?.owner ?? null, claimed_until: claim === undefined ? null : now.getTime() + claim.leaseMs,
      bytes: 0, total: null, sha256: null, matches: null, failure: null, error: null, created_at: now.getTime(), started_at: claim === undefined ? null : now.getTime(), completed_at: null, updated_at: now.getTime(),
    }).onConflict((oc) => oc.column('id').doNothing()).execute();
    const row = await this.get(id);
    if (row === undefined) throw new Error(`transfer ${id} vanished as it was recorded`);
    return row;
  }

  get(id: string): Promise<TransferRow | undefined> {
    return this.#db.selectFrom('transfers').selectAll().where('id', '=', id).executeTakeFirst();
  }

  /** Newest first. */
  list(filter: { states?: readonly TransferState[]; quarantineId?: string; limit?: number } = {}): Promise<TransferRow[]> {
    let q = this.#db.selectFrom('transfers').selectAll();
    if (filter.states !== undefined) q = q.where('state', 'in', [...filter.states]);
    if (filter.quarantineId !== undefined) q = q.where('quarantine_id', '=', filter.quarantineId);
    return q.orderBy('created_at', 'desc').orderBy('id').limit(filter.limit ?? 1000).execute();
  }

  /** pending → running for this owner; false when another worker took it (or it is no longer pending). */
  async claim(id: string, owner: string, now: Date, leaseMs: number): Promise<boolean> {
    const r = await this.#db.updateTable('transfers').set({ state: 'running', owner, claimed_until: now.getTime() + leaseMs, started_at: now.getTime(), updated_at: now.getTime() })
      .where('id', '=', id).where('state', '=', 'pending').executeTakeFirst();
    return Number(r.numUpdatedRows) > 0;
  }

  /** Extends the claim and records progress; false when the task is no longer this owner's. */
  async renew(id: string, owner: string, now: Date, leaseMs: number, bytes: number, total: number | null): Promise<boolean> {
    const r = await this.#db.updateTable('transfers').set({ claimed_until: now.getTime() + leaseMs, bytes, total, updated_at: now.getTime() })
      .where('id', '=', id).where('state', '=', 'running').where('owner', '=', owner).executeTakeFirst();
    return Number(r.numUpdatedRows) > 0;
  }

  async succeed(id: string, owner: string, now: Date, r: TransferResult): Promise<boolean> {
    const mismatch = r.matches === false;
    const u = await this.#db.updateTable('transfers').set({
      state: mismatch ? 'failed' : 'succeeded', failure: mismatch ? 'DigestMismatch' : null,
      error: mismatch ? `read sha256 ${r.sha256} differs from the recorded ${r.recorded ?? ''}` : null,
      bytes: r.bytes, total: r.bytes, sha256: r.sha256, matches: r.matches === null ? null : r.matches ? 1 : 0,
      owner: null, claimed_until: null, completed_at: now.getTime(), updated_at: now.getTime(),
    }).where('id', '=', id).where('state', '=', 'running').where('owner', '=', owner).executeTakeFirst();
    return Number(u.numUpdatedRows) > 0;
  }

  /**
   * Fails a task that has not ended, with an audit record in the same
   * transaction. `owner` undefined: a pending task; a string: that owner's
   * running task; 'lapsed': a running task whose claim ran out before `now`.
   */
  async fail(id: string, who: { owner: string } | 'pending' | 'lapsed', now: Date, failure: TransferFailure, error: string, audited = true): Promise<boolean> {
    return this.#db.transaction().execute(async (trx) => {
      let q = trx.updateTable('transfers').set({ state: 'failed', failure, error, owner: null, claimed_until: null, completed_at: now.getTime(), updated_at: now.getTime() })
        .where('id', '=', id);
      if (who === 'pending') q = q.where('state', '=', 'pending');
      else if (who === 'lapsed') q = q.where('state', '=', 'running').where('claimed_until', '<', now.getTime());
      else q = q.where('state', '=', 'running').where('owner', '=', who.owner);
      const r = await q.executeTakeFirst();
      if (Number(r.numUpdatedRows) === 0) return false;
      if (audited) {
        const row = await trx.selectFrom('transfers').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
        await appendAudit(trx, {
          actor: row.actor, action: `${row.kind}.failed`, subject: row.quarantine_id, at: now,
          details: { transfer: row.id, [row.kind === 'export' ? 'destination' : 'image']: row.target, failure, error, bytes: row.bytes, ...(row.reason === null ? {} : { reason: row.reason }), ...(row.case_id === null ? {} : { caseId: row.case_id }) },
        });
      }
      return true;
    });
  }

  /** Running tasks whose claim ran out before `now`: their process is gone. */
  lapsed(now: Date): Promise<TransferRow[]> {
    return this.#db.selectFrom('transfers').selectAll().where('state', '=', 'running').where('claimed_until', '<', now.getTime()).execute();
  }
}

export interface TransferDeps {
  db: Kysely<LedgerSchema>;
  blocksFor: (cloud: string) => BlockStore | undefined;
  clock: Clock;
  /** This worker's name in claims. */
  owner: string;
  logger?: Logger | undefined;
  /** How long a claim holds without renewal (default 60 s), and how often it is renewed (default a fifth of that). */
  leaseMs?: number | undefined;
  signal?: AbortSignal | undefined;
}

export type RunOutcome = 'succeeded' | 'failed' | 'elsewhere' | 'waiting';

function classify(err: unknown, aborted: boolean): TransferFailure {
  if (aborted) return 'Interrupted';
  if (err instanceof RestoreTargetExistsError) return 'TargetExists';
  if (err instanceof QuarantineUnavailableError) return 'Unavailable';
  return 'Error';
}

/**
 * Runs one pending task to its end on this worker: claims it, reads while
 * renewing the claim, records the result. Unless asked to, never throws
 * for the transfer's own failures: they are in the row (and the audit trail).
 */
export interface RunOptions {
  /** Replaces the export's file (the CLI may write to standard output): the whole disk, zeros included; without it the file is written sparse. */
  sink?: Writable | undefined;
  onProgress?: ((bytes: number, total: number | null) => void) | undefined;
  /** Throws the transfer's own error after recording it (the CLI's exit code depends on it). */
  rethrow?: boolean | undefined;
}

export async function runTransfer(deps: TransferDeps, id: string, opts: RunOptions = {}): Promise<RunOutcome> {
  const { sink, onProgress } = opts;
  const store = new TransferStore(deps.db);
  const row = await store.get(id);
  // Claimed when it was recorded, by this very worker (see TransferStore.request).
  const mine = row?.state === 'running' && row.owner === deps.owner;
  if (row === undefined || (row.state !== 'pending' && !mine)) return 'elsewhere';
  const blocks = deps.blocksFor(row.cloud);
  // Ceph access comes when the cloud starts: the task waits for the next relist.
  if (blocks === undefined) return 'waiting';
  const leaseMs = deps.leaseMs ?? 60_000;
  if (!mine && !(await store.claim(id, deps.owner, deps.clock.now(), leaseMs))) return 'elsewhere';
  const spec = specOf(row);
  const abort = new AbortController();
  const onOuterAbort = (): void => abort.abort();
  deps.signal?.addEventListener('abort', onOuterAbort, { once: true });
  if (deps.signal?.aborted === true) abort.abort();
  let bytes = 0;
  let total: number | null = null;
  let timer: Timer | undefined;
  let lost = false;
  let finished = false;
  const renew = (): void => {
    // A renewal in flight as the task ends must not start another.
    if (finished) return;
    timer = deps.clock.setTimer(Math.max(1, Math.floor(leaseMs / 5)), () => {
      if (finished) return;
      void store.renew(id, deps.owner, deps.clock.now(), leaseMs, bytes, total).then((ok) => {
        if (ok || finished) return renew();
        // Failed as lapsed by someone else (this process stalled past its claim): stop reading.
        lost = true;
        abort.abort();
      }, (err: unknown) => {
        deps.logger?.warn({ transfer: id, err: err instanceof Error ? err.message : String(err) }, 'cannot renew the transfer claim; retrying');
        renew();
      });
    });
  };
  renew();
  const ctx = {
    db: deps.db, blocks, actor: row.actor, signal: abort.signal,
    onProgress: (b: number, t: number | null) => {
      bytes = b;
      total = t;
      onProgress?.(b, t);
    },
  };
  const details = { ...(row.reason === null ? {} : { reason: row.reason }), ...(row.case_id === null ? {} : { caseId: row.case_id }), transfer: id };
  // exportQuarantine audits its own failures (export.failed): the row's failure is then not audited twice.
  let auditedThere = false;
  try {
    let result: TransferResult;
    if (spec.kind === 'restore') {
      result = await restoreQuarantine(ctx, row.quarantine_id, { pool: spec.pool, namespace: spec.namespace, image: spec.image } satisfies ImageSpec, details);
    } else {
      if (sink !== undefined) {
        auditedThere = true;
        result = await exportQuarantine(ctx, row.quarantine_id, sink, spec.path, details);
      } else {
        if (existsSync(spec.path)) throw new RestoreTargetExistsError(`${spec.path} exists already; export never overwrites`);
        mkdirSync(dirname(spec.path), { recursive: true });
        // A sparse file: the allocated extents at their offsets, holes between them.
        const file = await openFile(spec.path, 'wx', 0o640);
        try {
          auditedThere = true;
          result = await exportQuarantine(ctx, row.quarantine_id, { file }, spec.path, details);
        } finally {
          await file.close();
        }
      }
    }
    finished = true;
    timer?.cancel();
    await store.succeed(id, deps.owner, deps.clock.now(), result);
    return result.matches === false ? 'failed' : 'succeeded';
  } catch (err) {
    finished = true;
    timer?.cancel();
    if (lost) return 'failed';
    const message = err instanceof Error ? err.message : String(err);
    await store.fail(id, { owner: deps.owner }, deps.clock.now(), classify(err, abort.signal.aborted), message, !auditedThere);
    deps.logger?.warn({ transfer: id, quarantine: row.quarantine_id, err: message }, `${spec.kind} failed`);
    if (opts.rethrow === true) throw err;
    return 'failed';
  } finally {
    deps.signal?.removeEventListener('abort', onOuterAbort);
  }
}

const RELIST = 'relist';

export interface TransferRunnerOptions extends Omit<TransferDeps, 'signal'> {
  /** Tasks run at once on this replica (default 2). */
  concurrency?: number | undefined;
  /** How often pending and lapsed tasks are looked for while leading (default 30 s). */
  relistMs?: number | undefined;
}

/**
 * The operator's worker for transfer tasks. While leading it looks for
 * pending tasks (and fails those whose worker died); a task it runs goes on
 * to its end across a change of leader, its claim keeping others off it.
 * Stopping the process interrupts what runs, which is then failed here.
 */
export class TransferRunner {
  readonly #o: TransferRunnerOptions;
  readonly #queue: WorkQueue;
  readonly #stop = new AbortController();
  #leading = false;

  constructor(o: TransferRunnerOptions) {
    this.#o = o;
    this.#queue = new WorkQueue({ clock: o.clock, concurrency: (o.concurrency ?? 2) + 1, process: (key) => this.#process(key) });
    this.#queue.start();
  }

  get store(): TransferStore {
    return new TransferStore(this.#o.db);
  }

  /** Runs a task soon (it is picked up by the next relist anyway). */
  submit(id: string): void {
    this.#queue.add(id);
  }

  lead(): void {
    if (this.#leading) return;
    this.#leading = true;
    this.#queue.add(RELIST);
  }

  /** Stops looking for new tasks; those running go on. */
  unlead(): void {
    this.#leading = false;
    this.#queue.cancelDelayed(RELIST);
  }

  idle(): Promise<void> {
    return this.#queue.idle();
  }

  async stop(): Promise<void> {
    this.#leading = false;
    this.#stop.abort();
    await this.#queue.stop();
  }

  /** Fails lapsed tasks and enqueues pending ones; returns what it found. */
  async relist(): Promise<{ pending: number; interrupted: number }> {
    const store = this.store;
    const now = this.#o.clock.now();
    let interrupted = 0;
    for (const t of await store.lapsed(now)) {
      if (await store.fail(t.id, 'lapsed', now, 'Interrupted', `the worker ${t.owner ?? ''} stopped while this ran (claim lapsed at ${new Date(t.claimed_until ?? 0).toISOString()}); delete any partial result and ask again`)) {
        interrupted++;
        this.#o.logger?.warn({ transfer: t.id, quarantine: t.quarantine_id, owner: t.owner }, `${t.kind} interrupted: its worker is gone`);
      }
    }
    const pending = await store.list({ states: ['pending'] });
    for (const t of pending) this.#queue.add(t.id);
    return { pending: pending.length, interrupted };
  }

  async #process(key: string): Promise<void> {
    try {
      if (key === RELIST) {
        if (this.#leading) await this.relist();
        return;
      }
      const outcome = await runTransfer({ ...this.#o, signal: this.#stop.signal }, key);
      if (outcome !== 'elsewhere' && outcome !== 'waiting') this.#o.logger?.info({ transfer: key, outcome }, 'transfer ended');
    } catch (err) {
      this.#o.logger?.error({ key, err: err instanceof Error ? err.message : String(err) }, 'transfer task failed to run; retried at the next relist');
    } finally {
      if (key === RELIST && this.#leading) this.#queue.addAfter(RELIST, this.#o.relistMs ?? 30_000);
    }
  }
}
