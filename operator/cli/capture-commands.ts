// The quarantine commands of the CLI: for investigators (images, export,
// restore, verify) and the security team (sweep); holds and the audit trail
// have files of their own.
// Modules beyond commander load inside the actions (see program.ts).
import { existsSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { Option, type Command } from 'commander';
import type { LedgerDb } from '../ledger/db.ts';
import type { CaptureState, QuarantineRow } from '../capture/quarantine-store.ts';
import type { CephAccess } from '../clouds/ceph-access.ts';
import type { QuarantineView as View } from '../capture/quarantine-view.ts';
import type { NewTransfer, RunOptions, TransferRow, TransferView } from '../capture/transfers.ts';
import { parseInstant } from './time-arg.ts';
import { EXIT, NotFoundError, UsageError, VerificationError } from './errors.ts';
import { emitList, emitRecord, emitStructured, withOutput, type Column, type OutputOptions } from './output.ts';
import type { Io, Status } from './program.ts';
import { os } from './os-user.ts';

// Kept equal to quarantine-store.ts's CAPTURE_STATES by a test (that module loads only when a command runs).
const CAPTURE_STATES = ['planned', 'snapshotting', 'cloning', 'quarantined', 'flattening', 'expired', 'purged', 'failed'] as const;
export const CLI_CAPTURE_STATES: readonly string[] = CAPTURE_STATES;

type WithLedger = <T>(fn: (l: LedgerDb) => Promise<T>) => Promise<T>;

const human = (n: number | null): string => {
  if (n === null) return '-';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < u.length - 1) { v /= 1024; i++; }
  return `${v.toFixed(i === 0 ? 0 : 1)} ${u[i]}`;
};

/** Ceph access for the cloud a quarantine belongs to, from the same manifests `run` uses. */
async function cephFor(cloud: string, manifests: string | undefined, secretsDir: string | undefined): Promise<CephAccess> {
  if (manifests === undefined) throw new UsageError(`reading quarantines needs the Cloud ${cloud}'s ceph settings: pass --manifests DIR (or set QUARANTINE_MANIFESTS)`);
  const { resourcesFromManifests } = await import('../resources/manifest-kinds.ts');
  const { cephAccess } = await import('../clouds/ceph-access.ts');
  const { FileEnvSecretSource } = await import('../secrets.ts');
  const c = resourcesFromManifests(manifests).clouds.find((x) => x.metadata.name === cloud);
  if (c === undefined) throw new UsageError(`${manifests} has no Cloud named ${cloud}`);
  const access = await cephAccess(c, new FileEnvSecretSource(secretsDir));
  if (access === undefined) throw new UsageError(`Cloud ${cloud} has no ceph section`);
  return access;
}

function progress(io: Io, enabled: boolean) {
  let last = 0;
  return (bytes: number, total: number | null) => {
    if (!enabled || Date.now() - last < 250) return;
    last = Date.now();
    io.err(`\r${human(bytes)}${total === null ? '' : ` of ${human(total)} (${Math.floor((100 * bytes) / Math.max(total, 1))}%)`}   `);
  };
}

/** The quarantine, or NotFoundError (exit 1). */
async function quarantineOrNotFound(l: LedgerDb, id: string): Promise<QuarantineRow> {
  const { QuarantineStore } = await import('../capture/quarantine-store.ts');
  const q = await new QuarantineStore(l.db).get(id);
  if (q === undefined) throw new NotFoundError(`no quarantine ${id}`);
  return q;
}

/**
 * Runs an export or a restore in this process as a transfer task: recorded
 * in the ledger like the operator's, so `transfers ls` and the API show it,
 * and if this process dies the operator reports the task interrupted.
 */
async function runAsTask(l: LedgerDb, ceph: CephAccess, t: Omit<NewTransfer, 'requestedBy'>, opts: RunOptions): Promise<TransferRow> {
  const { TransferStore, runTransfer } = await import('../capture/transfers.ts');
  const { systemClock } = await import('../kube/runtime/clock.ts');
  const { hostname } = await import('node:os');
  const owner = `cli:${hostname()}:${process.pid}`;
  const store = new TransferStore(l.db);
  const leaseMs = 60_000;
  // Claimed as it is recorded: a running operator must not take the task this process runs.
  const row = await store.request({ ...t, requestedBy: owner }, new Date(), { owner, leaseMs });
  await runTransfer({ db: l.db, blocksFor: () => ceph.blocks, clock: systemClock, owner, leaseMs }, row.id, { ...opts, rethrow: true });
  const done = await store.get(row.id);
  if (done === undefined) throw new Error(`transfer ${row.id} vanished`);
  return done;
}

const transferColumns: Array<Column<TransferView>> = [
  { header: 'ID', value: (v) => v.id, max: 44 },
  { header: 'KIND', value: (v) => v.kind },
  { header: 'QUARANTINE', value: (v) => v.quarantine, max: 40 },
  { header: 'TARGET', value: (v) => v.target, max: 40 },
  { header: 'STATE', value: (v) => v.state },
  { header: '%', value: (v) => String(v.progress) },
  { header: 'FAILURE', value: (v) => v.failure },
  { header: 'OWNER', value: (v) => v.owner, wide: true },
  { header: 'REQUESTED-BY', value: (v) => v.requestedBy, wide: true },
  { header: 'CREATED', value: (v) => v.createdAt?.replace(/\.\d{3}Z$/, 'Z') },
  { header: 'COMPLETED', value: (v) => v.completedAt?.replace(/\.\d{3}Z$/, 'Z'), wide: true },
  { header: 'SHA256', value: (v) => v.sha256, wide: true },
];
const imageColumns: Array<Column<View>> = [
  { header: 'ID', value: (v) => v.id },
  { header: 'CLOUD', value: (v) => v.cloud, max: 12 },
  { header: 'INSTANCE', value: (v) => v.instance, max: 36 },
  { header: 'DISK', value: (v) => v.disk, max: 10 },
  { header: 'MODE', value: (v) => v.mode },
  { header: 'POLICY', value: (v) => v.policy, wide: true },
  { header: 'STATE', value: (v) => v.state },
  { header: 'ISOLATION', value: (v) => v.isolation },
  { header: 'SIZE', value: (v) => human(v.bytes) },
  { header: 'SOURCE', value: (v) => v.source, wide: true },
  { header: 'LOCATION', value: (v) => v.location, wide: true },
  { header: 'CAPTURED', value: (v) => v.capturedAt?.replace(/\.\d{3}Z$/, 'Z') },
  { header: 'EXPIRES', value: (v) => v.expiresAt?.replace(/\.\d{3}Z$/, 'Z') },
  { header: 'HELD', value: (v) => v.heldBy.join(',') },
  { header: 'SHA256', value: (v) => v.sha256, wide: true },
];

export function addCaptureCommands(program: Command, io: Io, status: Status, withLedger: WithLedger): void {
  const cephOpts = (c: Command) => c
    .addOption(new Option('--manifests <dir>', 'the Cloud resources (for their ceph settings)').env('QUARANTINE_MANIFESTS'))
    .addOption(new Option('--secrets <dir>', 'secrets directory (DIR/<secret>/<key>)').env('QUARANTINE_SECRETS'))
    .addOption(new Option('--actor <name>', 'who is doing this, for the audit trail').default(os.user()));

  const images = program.command('images').description('the quarantined disks');
  withOutput(images.command('ls')
    .description('list quarantines')
    .option('--cloud <name>').option('--instance <id>')
    .addOption(new Option('--state <state>', 'only this state').choices([...CAPTURE_STATES]))
    .option('--all', 'include purged and failed'))
    .action(async (o: OutputOptions & { cloud?: string; instance?: string; state?: CaptureState; all?: boolean }) => {
      await withLedger(async (l) => {
        const { QuarantineStore } = await import('../capture/quarantine-store.ts');
        const { holdsCovering } = await import('../capture/holds.ts');
        const store = new QuarantineStore(l.db);
        const states = o.state !== undefined ? [o.state] : o.all === true ? undefined : (['planned', 'snapshotting', 'cloning', 'quarantined', 'flattening', 'expired'] as CaptureState[]);
        const rows = await store.list({ ...(o.cloud === undefined ? {} : { cloud: o.cloud }), ...(o.instance === undefined ? {} : { instanceId: o.instance }), ...(states === undefined ? {} : { states }) });
        // A cloud or instance the ledger has never seen is "nothing found", not an empty success.
        if (rows.length === 0 && (o.cloud !== undefined || o.instance !== undefined)) {
          let q = l.db.selectFrom('instances').select('instance_id');
          if (o.cloud !== undefined) q = q.where('cloud', '=', o.cloud);
          if (o.instance !== undefined) q = q.where('instance_id', '=', o.instance);
          const known = (await q.limit(1).executeTakeFirst()) !== undefined || (await store.list({ ...(o.cloud === undefined ? {} : { cloud: o.cloud }), ...(o.instance === undefined ? {} : { instanceId: o.instance }) })).length > 0;
          if (!known) {
            if (!(await emitStructured(io, o, []))) io.err(`quarantine: no ${o.cloud !== undefined ? `cloud ${o.cloud}` : ''}${o.cloud !== undefined && o.instance !== undefined ? ' with ' : ''}${o.instance !== undefined ? `instance ${o.instance}` : ''} in the ledger\n`);
            status.code = EXIT.notFound;
            return;
          }
        }
        const held = await holdsCovering(l.db, rows, new Date());
        const { quarantineView: view } = await import('../capture/quarantine-view.ts');
        await emitList(io, o, imageColumns, rows.map((r) => view(r, held.get(r.id))));
      });
    });
  withOutput(images.command('show')
    .description('one quarantine with its provenance')
    .argument('<id>'))
    .action(async (id: string, o: OutputOptions) => {
      await withLedger(async (l) => {
        const q = await quarantineOrNotFound(l, id);
        const { holdsCovering } = await import('../capture/holds.ts');
        const { quarantineView: view } = await import('../capture/quarantine-view.ts');
        const v = view(q, (await holdsCovering(l.db, [q], new Date())).get(q.id));
        const { provenance, ...flat } = v;
        await emitRecord(io, o, Object.entries(flat).map(([k, val]) => [k, Array.isArray(val) ? val.join(',') : val === null ? null : String(val)]), v);
        if (o.output === 'table' || o.output === 'wide') io.out(`\nprovenance:\n${JSON.stringify(provenance, null, 2)}\n`);
      });
    });

  const transfers = program.command('transfers').description('restores and exports: queued, running and ended, whoever started them');
  withOutput(transfers.command('ls')
    .description('list transfer tasks, newest first')
    .option('--quarantine <id>', 'only those of this quarantine')
    .addOption(new Option('--state <state>', 'only this state').choices(['pending', 'running', 'succeeded', 'failed'])))
    .action(async (o: OutputOptions & { quarantine?: string; state?: 'pending' | 'running' | 'succeeded' | 'failed' }) => {
      await withLedger(async (l) => {
        const { TransferStore, transferView } = await import('../capture/transfers.ts');
        const rows = await new TransferStore(l.db).list({ ...(o.quarantine === undefined ? {} : { quarantineId: o.quarantine }), ...(o.state === undefined ? {} : { states: [o.state] }) });
        await emitList(io, o, transferColumns, rows.map(transferView));
      });
    });
  withOutput(transfers.command('show')
    .description('one transfer task')
    .argument('<id>'))
    .action(async (id: string, o: OutputOptions) => {
      await withLedger(async (l) => {
        const { TransferStore, transferView } = await import('../capture/transfers.ts');
        const t = await new TransferStore(l.db).get(id);
        if (t === undefined) throw new NotFoundError(`no transfer ${id}`);
        const v = transferView(t);
        await emitRecord(io, o, Object.entries(v).map(([k, val]) => [k, val === null ? null : String(val)]), v);
      });
    });

  withOutput(images.command('isolate')
    .description('plan the isolation of quarantines captured before isolation existed (digest again, then copy out of the cloud\'s pool); the running operator does it')
    .argument('[id]', 'one quarantine')
    .option('--all-legacy', 'every quarantine captured before isolation existed')
    .option('--cloud <name>', 'with --all-legacy: only this cloud\'s')
    .option('--dry-run', 'list them, change nothing')
    .addOption(new Option('--actor <name>', 'who is doing this, for the audit trail').default(os.user())))
    .action(async (id: string | undefined, o: OutputOptions & { allLegacy?: boolean; cloud?: string; dryRun?: boolean; actor: string }) => {
      if ((id === undefined) === (o.allLegacy !== true)) throw new UsageError('images isolate takes one quarantine ID or --all-legacy');
      if (id !== undefined && o.cloud !== undefined) throw new UsageError('--cloud goes with --all-legacy');
      await withLedger(async (l) => {
        const { QuarantineStore } = await import('../capture/quarantine-store.ts');
        const { isolationLabel } = await import('../capture/isolation-label.ts');
        const store = new QuarantineStore(l.db, o.actor);
        let rows: QuarantineRow[];
        if (id !== undefined) {
          const q = await quarantineOrNotFound(l, id);
          if (q.state !== 'quarantined' || q.isolation !== null) {
            throw new UsageError(`${id} is ${q.state}${q.isolation === null ? '' : `, isolation ${isolationLabel(q)}`}: only a quarantined disk captured before isolation existed can be planned`);
          }
          rows = [q];
        } else {
          rows = await store.legacyUnisolated(o.cloud);
        }
        const planned: QuarantineRow[] = [];
        for (const q of rows) {
          if (o.dryRun === true || (await store.planLegacyIsolation(q.id, new Date(), { by: o.actor, wasFlattened: q.flattened === 1 }))) planned.push(q);
        }
        const result = planned.map((q) => ({ id: q.id, cloud: q.cloud, location: `${q.location_pool}/${q.location_namespace === null ? '' : `${q.location_namespace}/`}${q.location_image}`, was: isolationLabel(q), next: o.dryRun === true ? 'would be digested, then isolated' : 'digesting' }));
        if (!(await emitStructured(io, o, result))) {
          io.out(`${o.dryRun === true ? 'would plan' : 'planned'} the isolation of ${planned.length} quarantine(s)${planned.length > 0 ? `: ${planned.map((q) => q.id).join(', ')}` : ''}${o.dryRun === true || planned.length === 0 ? '' : '; the operator digests and isolates them at its next relist'}\n`);
        }
      });
    });

  cephOpts(program.command('export'))
    .description('stream a quarantine to a file (or - for stdout) while computing its SHA-256')
    .argument('<id>')
    .requiredOption('--file <path>', 'destination file, or - for standard output')
    .option('--case <id>', 'case id for the audit trail').option('--reason <text>', 'why, for the audit trail')
    .action(async (id: string, o: { file: string; manifests?: string; secrets?: string; actor: string; case?: string; reason?: string }) => {
      // The trail records where evidence went, wherever the command was run from.
      const destination = o.file === '-' ? 'stdout' : resolve(o.file);
      const why = { ...(o.case === undefined ? {} : { caseId: o.case }), ...(o.reason === undefined ? {} : { reason: o.reason }) };
      await withLedger(async (l) => {
        const q = await quarantineOrNotFound(l, id);
        if (o.file !== '-') {
          const dir = dirname(o.file);
          const refusal = existsSync(o.file) ? new UsageError(`${o.file} exists already; export never overwrites`)
            : !existsSync(dir) || !statSync(dir).isDirectory() ? new UsageError(`--file ${o.file}: the directory ${dir} does not exist`) : undefined;
          if (refusal !== undefined) {
            const { auditFailedExport } = await import('../capture/restore.ts');
            await auditFailedExport({ db: l.db, actor: o.actor }, id, destination, refusal, why);
            throw refusal;
          }
        }
        const ceph = await cephFor(q.cloud, o.manifests, o.secrets);
        const { Writable } = await import('node:stream');
        try {
          // A file is written sparse (the allocated extents at their offsets); standard output gets every byte.
          const sink = o.file === '-' ? new Writable({ write: (c: Buffer, _e, done) => { process.stdout.write(c, done); } }) : undefined;
          const t = await runAsTask(l, ceph, { quarantineId: id, cloud: q.cloud, spec: { kind: 'export', path: destination }, actor: o.actor, ...why }, { sink, onProgress: progress(io, o.file !== '-' && process.stderr.isTTY === true) });
          io.err(`${process.stderr.isTTY === true ? '\r' : ''}exported ${id}: ${t.bytes} bytes, sha256 ${t.sha256 ?? ''}${t.matches === 0 ? ' — DIFFERS from the recorded digest' : ''} (task ${t.id})\n`);
          if (t.matches === 0) throw new VerificationError(`${id}: ${t.error ?? 'the exported data differs from the recorded digest'}`);
        } finally {
          await ceph.close();
        }
      });
    });

  cephOpts(program.command('verify'))
    .description('re-read a quarantine and compare its SHA-256 with the recorded one')
    .argument('<id>')
    .addOption(new Option('-o, --output <format>', 'text, json or yaml').choices(['table', 'json', 'yaml']).default('table'))
    .action(async (id: string, o: { manifests?: string; secrets?: string; actor: string; output: 'table' | 'json' | 'yaml' }) => {
      await withLedger(async (l) => {
        const q = await quarantineOrNotFound(l, id);
        const ceph = await cephFor(q.cloud, o.manifests, o.secrets);
        const { verifyQuarantine } = await import('../capture/restore.ts');
        try {
          const r = await verifyQuarantine({ db: l.db, blocks: ceph.blocks, actor: o.actor }, id);
          if (!(await emitStructured(io, { output: o.output, headers: true }, r))) {
            io.out(`${id}: sha256 ${r.sha256} (${r.bytes} bytes, ${r.readBytes} of them allocated and read) ${r.matches === null ? 'recorded now (first read)' : r.matches ? 'matches the recorded digest' : `DIFFERS from the recorded ${r.recorded}`}\n`);
          }
          if (r.matches === false) status.code = EXIT.verificationFailed;
        } finally {
          await ceph.close();
        }
      });
    });

  cephOpts(program.command('restore'))
    .description('materialize a quarantine as a new RBD image (the quarantine is never modified)')
    .argument('<id>')
    .requiredOption('--to <pool/image>', 'the new image, e.g. forensics/case-42-disk (pool/[namespace/]image)')
    .option('--case <id>').option('--reason <text>')
    .action(async (id: string, o: { to: string; manifests?: string; secrets?: string; actor: string; case?: string; reason?: string }) => {
      const { parseImageSpec } = await import('../ceph/names.ts');
      let target;
      try {
        target = parseImageSpec(o.to);
      } catch (err) {
        throw new UsageError(`--to ${err instanceof Error ? err.message : String(err)}`);
      }
      await withLedger(async (l) => {
        const q = await quarantineOrNotFound(l, id);
        const ceph = await cephFor(q.cloud, o.manifests, o.secrets);
        try {
          const t = await runAsTask(l, ceph, {
            quarantineId: id, cloud: q.cloud, spec: { kind: 'restore', pool: target.pool, ...(target.namespace === undefined ? {} : { namespace: target.namespace }), image: target.image }, actor: o.actor,
            ...(o.case === undefined ? {} : { caseId: o.case }), ...(o.reason === undefined ? {} : { reason: o.reason }),
          }, { onProgress: progress(io, process.stderr.isTTY === true) });
          io.out(`restored ${id} to ${t.target}: ${t.bytes} bytes, sha256 ${t.sha256 ?? ''}\n`);
          if (t.matches === 0) throw new VerificationError(`${id}: ${t.error ?? 'the restored data differs from the recorded digest'}`);
        } finally {
          await ceph.close();
        }
      });
    });

  cephOpts(program.command('sweep'))
    .description('delete expired, unheld quarantines now (and enforce capacity), as the scheduled sweep does')
    .option('--dry-run', 'report what would be deleted, delete nothing')
    .addOption(new Option('-o, --output <format>', 'text, json or yaml').choices(['table', 'json', 'yaml']).default('table'))
    .action(async (o: { dryRun?: boolean; manifests?: string; secrets?: string; actor: string; output: 'table' | 'json' | 'yaml' }) => {
      if (o.manifests === undefined) throw new UsageError('sweep needs the Cloud and QuarantinePolicy resources: pass --manifests DIR (or set QUARANTINE_MANIFESTS)');
      const { resourcesFromManifests } = await import('../resources/manifest-kinds.ts');
      const { cephAccess } = await import('../clouds/ceph-access.ts');
      const { FileEnvSecretSource } = await import('../secrets.ts');
      const { sweep } = await import('../capture/sweep.ts');
      const res = resourcesFromManifests(o.manifests);
      const secrets = new FileEnvSecretSource(o.secrets);
      const access = new Map<string, CephAccess>();
      try {
        for (const c of res.clouds) {
          const a = await cephAccess(c, secrets);
          if (a !== undefined) access.set(c.metadata.name, a);
        }
        await withLedger(async (l) => {
          const { createLogger } = await import('../log.ts');
          const r = await sweep({ db: l.db, blocksFor: (c) => access.get(c)?.blocks, logger: createLogger({ level: 'warn' }), actor: `${o.actor} (quarantine sweep)` },
            { now: new Date(), dryRun: o.dryRun === true, policies: res.policies, clouds: [...access.keys()] });
          if (!(await emitStructured(io, { output: o.output, headers: true }, r))) {
            const list = r.dryRun ? r.wouldDelete : r.deleted;
            io.out(`${r.dryRun ? 'would delete' : 'deleted'} ${list.length} quarantine(s)${list.length > 0 ? `: ${list.map((d) => `${d.id} (${d.reason})`).join(', ')}` : ''}; kept ${r.held.length} held; ${r.failed.length} failed\n`);
            for (const f of r.failed) io.err(`${f.id}: ${f.error}\n`);
          }
          if (r.failed.length > 0) status.code = EXIT.partial;
        });
      } finally {
        for (const a of access.values()) await a.close();
      }
    });
}
