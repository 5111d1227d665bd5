// The `quarantine` command line. Each subcommand parses its arguments, calls
// into the program, and maps the outcome to an exit code (see errors.ts).
// Only commander and these small CLI modules load at start: every action
// imports what it needs, so `--help` and a trace start in a fraction of a
// second (BENCHMARKS.md, "CLI start-up").
import { Command, CommanderError, Option } from 'commander';
import type { LogFormat } from '../log.ts';
import { DEFAULT_LIMITS } from '../intake/decode/limits.ts';
import type { LedgerDb } from '../ledger/db.ts';
import { EXIT, NotFoundError, UsageError, exitCodeOf } from './errors.ts';
import { parseInstant } from './time-arg.ts';
import { emitList, emitStructured, withOutput, type Column, type OutputOptions } from './output.ts';
import { renderTable } from './table.ts';
import { canonicalIp } from '../domain/ip.ts';
import { namedCell } from '../domain/owner-names.ts';
import { addCaptureCommands } from './capture-commands.ts';
import { addTraceLogCommand } from './trace-log.ts';
import { addCaseCommands } from './case-commands.ts';
import { addExportIntervalsCommand } from './export-intervals.ts';
import { addHoldCommands } from './hold-commands.ts';
import { addAuditCommands } from './audit-commands.ts';
import { addLedgerCommands } from './ledger-commands.ts';
import { addCompletionCommand } from './completion.ts';

/** sqlite:./quarantine.db; kept equal to ledger/db.ts's DEFAULT_DB_URL by a test, without loading that module here. */
export const DEFAULT_DB_URL = 'sqlite:./quarantine.db';
// A ledger check that does not wait never logs: no need to load the logger (pino) for it.
const noWaitLogger = { warn: () => {} };
const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/** An ISO time without milliseconds when they are zero: 2026-05-01T16:10:00Z. */
export function shortTime(t: string | null | undefined): string | undefined {
  return t === null || t === undefined ? undefined : t.replace(/\.000Z$/, 'Z');
}

export interface Io {
  out: (s: string) => void;
  err: (s: string) => void;
  env: NodeJS.ProcessEnv;
}

/** What the actions report back besides throwing: the exit code of a completed command. */
export interface Status {
  code: number;
}

export function buildProgram(io: Io, status: Status = { code: EXIT.ok }): Command {
  const program = new Command('quarantine')
    .description('Keeps the evidence when a cloud VM is deleted: preserved disks, address history, audit trail.')
    .version('0.1.0')
    .addOption(new Option('--db <url>', 'ledger database: sqlite:PATH or postgres://…').env('QUARANTINE_DB').default(DEFAULT_DB_URL))
    .addOption(new Option('--log-level <level>', 'log level').choices(LOG_LEVELS).env('LOG_LEVEL').default('info'))
    .addOption(new Option('--log-format <format>', 'log lines as JSON (for collectors) or text (for reading)').choices(['json', 'text']).env('QUARANTINE_LOG_FORMAT').default('json'))
    .addOption(new Option('--audit-key-file <path>', 'the audit key(s) the trail is signed with, one per line, current first (or QUARANTINE_AUDIT_KEY)').env('QUARANTINE_AUDIT_KEY_FILE'))
    .showSuggestionAfterError()
    .exitOverride()
    .configureOutput({ writeOut: io.out, writeErr: io.err });

  program
    .command('run')
    .description('run the operator standalone: clouds, policies and holds from YAML files, ledger in SQLite by default')
    .addOption(new Option('--manifests <dir>', 'directory (or file) of Cloud/QuarantinePolicy/QuarantineHold YAML').env('QUARANTINE_MANIFESTS'))
    .addOption(new Option('--secrets <dir>', 'directory laid out like mounted Secrets: DIR/<secret>/<key> (or QUARANTINE_SECRET_<SECRET>_<KEY> variables)').env('QUARANTINE_SECRETS'))
    .addOption(new Option('--listen <host:port>', 'serve /metrics, /healthz, /readyz and the query API here').env('QUARANTINE_LISTEN'))
    .addOption(new Option('--api-token-file <path>', 'bearer token of the query API (or QUARANTINE_API_TOKEN)').env('QUARANTINE_API_TOKEN_FILE'))
    .addOption(new Option('--tls-cert <path>', 'PEM certificate (chain): serve HTTPS on --listen').env('QUARANTINE_TLS_CERT_FILE'))
    .addOption(new Option('--tls-key <path>', 'PEM private key of --tls-cert').env('QUARANTINE_TLS_KEY_FILE'))
    .addOption(new Option('--audit-anchor-file <path>', 'append the audit head to this file at an interval (default in standalone mode: beside an SQLite ledger)').env('QUARANTINE_AUDIT_ANCHOR_FILE'))
    .addOption(new Option('--body-retention-days <days>', 'expire notification bodies received more than DAYS ago (audited; held ones are kept); default: keep them').env('QUARANTINE_BODY_RETENTION_DAYS'))
    .option('--no-wait-db', 'exit (code 2) at start when the ledger database does not answer, instead of waiting for it')
    .option('--kubernetes', 'run as a Kubernetes controller: resources from the API server, leader election with a Lease')
    .addOption(new Option('--kubeconfig <path>', 'kubeconfig (default: in-cluster, then ~/.kube/config)').env('KUBECONFIG'))
    .action(async (opts: { manifests?: string; secrets?: string; listen?: string; apiTokenFile?: string; tlsCert?: string; tlsKey?: string; kubernetes?: boolean; kubeconfig?: string; auditAnchorFile?: string; bodyRetentionDays?: string; waitDb: boolean }) => {
      const global = program.opts<{ db: string; logLevel: string; logFormat: LogFormat; auditKeyFile?: string }>();
      const { anchorFileFor, anchorIntervalMs, loadAuditKeys } = await import('../ledger/audit-keys.ts');
      const audit = {
        auditKeys: loadAuditKeys(io.env, global.auditKeyFile), anchorIntervalMs: anchorIntervalMs(io.env),
        anchorFile: opts.kubernetes === true ? opts.auditAnchorFile : anchorFileFor(global.db, io.env, opts.auditAnchorFile),
      };
      let bodyRetentionMs: number | undefined;
      if (opts.bodyRetentionDays !== undefined && opts.bodyRetentionDays !== '') {
        const { retentionFromDays, BodyRetentionError } = await import('../ledger/body-retention.ts');
        try {
          bodyRetentionMs = retentionFromDays(Number(opts.bodyRetentionDays));
        } catch (err) {
          throw err instanceof BodyRetentionError ? new UsageError(`--body-retention-days: ${err.message}`) : err;
        }
      }
      const retention = bodyRetentionMs === undefined ? {} : { bodyRetentionMs };
      const { createLogger } = await import('../log.ts');
      const logger = createLogger({ level: global.logLevel, format: global.logFormat });
      const ac = new AbortController();
      const stop = () => ac.abort();
      process.once('SIGTERM', stop);
      process.once('SIGINT', stop);
      try {
        let apiToken = io.env['QUARANTINE_API_TOKEN'];
        if (opts.apiTokenFile !== undefined) {
          const { readFileSync } = await import('node:fs');
          try {
            apiToken = readFileSync(opts.apiTokenFile, 'utf8').trim();
          } catch (err) {
            throw new UsageError(`cannot read --api-token-file ${opts.apiTokenFile}: ${err instanceof Error ? err.message : String(err)}`);
          }
        }
        const token = apiToken === '' ? undefined : apiToken;
        if ((opts.tlsCert === undefined) !== (opts.tlsKey === undefined)) throw new UsageError('--tls-cert and --tls-key go together');
        let tls: { cert: string; key: string } | undefined;
        if (opts.tlsCert !== undefined && opts.tlsKey !== undefined) {
          const { readFileSync } = await import('node:fs');
          const read = (path: string, flag: string) => {
            try {
              return readFileSync(path, 'utf8');
            } catch (err) {
              throw new UsageError(`cannot read ${flag} ${path}: ${err instanceof Error ? err.message : String(err)}`);
            }
          };
          tls = { cert: read(opts.tlsCert, '--tls-cert'), key: read(opts.tlsKey, '--tls-key') };
        }
        // Checked here so that both modes refuse a bad address before starting anything.
        if (opts.listen !== undefined) {
          const { parseListen } = await import('../http/listen.ts');
          const listen = parseListen(opts.listen);
          if (typeof listen === 'string') throw new UsageError(listen);
        }
        if (opts.kubernetes === true) {
          if (opts.manifests !== undefined) throw new UsageError('--manifests is for standalone mode; with --kubernetes the resources come from the API server');
          const { runKubernetes } = await import('../main.ts');
          const seconds = (name: string, dflt: number) => {
            const v = io.env[name];
            if (v === undefined || v === '') return dflt * 1000;
            const n = Number(v);
            if (!Number.isFinite(n) || n <= 0) throw new UsageError(`${name}="${v}" is not a number of seconds`);
            return n * 1000;
          };
          const { hostname } = await import('node:os');
          await runKubernetes({
            dbUrl: global.db, kubeconfig: opts.kubeconfig, logger, signal: ac.signal, listen: opts.listen, apiToken: token, waitForDb: opts.waitDb, tls,
            namespace: io.env['POD_NAMESPACE'] ?? 'quarantine-system', identity: io.env['POD_NAME'] ?? `${hostname()}-${process.pid}`,
            leaseName: io.env['QUARANTINE_LEADER_LEASE'] ?? 'quarantine-operator',
            leaseDurationMs: seconds('QUARANTINE_LEADER_LEASE_DURATION_SECONDS', 15),
            renewDeadlineMs: seconds('QUARANTINE_LEADER_RENEW_DEADLINE_SECONDS', 10),
            retryPeriodMs: seconds('QUARANTINE_LEADER_RETRY_PERIOD_SECONDS', 2),
            ...audit, ...retention,
          });
        } else {
          const { runStandalone } = await import('../main.ts');
          await runStandalone({ dbUrl: global.db, manifests: opts.manifests, secretsDir: opts.secrets, logger, signal: ac.signal, listen: opts.listen, apiToken: token, ...audit, ...retention, waitForDb: opts.waitDb, tls });
        }
      } finally {
        process.off('SIGTERM', stop);
        process.off('SIGINT', stop);
      }
    });

  program
    .command('migrate')
    .description('bring the ledger schema up to date (run also does this at start)')
    .action(async () => {
      const global = program.opts<{ db: string }>();
      const { openLedgerDb, migrateToLatest, redactUrl } = await import('../ledger/db.ts');
      const { waitForLedger } = await import('../ledger/health.ts');
      const ledger = openLedgerDb(global.db);
      try {
        await waitForLedger(ledger.db, { wait: false, logger: noWaitLogger, where: redactUrl(global.db), hint: '' });
        const applied = await migrateToLatest(ledger);
        io.out(applied.length === 0 ? `ledger ${redactUrl(global.db)} is up to date\n` : `applied ${applied.join(', ')} to ${redactUrl(global.db)}\n`);
      } finally {
        await ledger.close();
      }
    });

  const withLedger = async <T>(fn: (ledger: LedgerDb) => Promise<T>): Promise<T> => {
    const global = program.opts<{ db: string; auditKeyFile?: string }>();
    const url = global.db;
    const { openLedgerDb, migrateToLatest, redactUrl } = await import('../ledger/db.ts');
    const { waitForLedger } = await import('../ledger/health.ts');
    const { useAuditKeys } = await import('../ledger/audit.ts');
    const { loadAuditKeys } = await import('../ledger/audit-keys.ts');
    const keys = loadAuditKeys(io.env, global.auditKeyFile);
    const ledger = openLedgerDb(url);
    useAuditKeys(ledger.db, keys);
    try {
      // A database that does not answer is one line, not a stack trace from the migrator.
      await waitForLedger(ledger.db, { wait: false, logger: noWaitLogger, where: redactUrl(url), hint: '' });
      await migrateToLatest(ledger);
      return await fn(ledger);
    } finally {
      await ledger.close();
    }
  };
  /**
   * withLedger for the commands that answer from address intervals (trace,
   * case, export). As the query API: what the operator has applied and
   * acknowledged but not yet derived (a pass runs about every second, and one
   * a crash interrupted only once the operator is back) is derived first, or a
   * trace would still name an instance deleted since.
   */
  const withDerivedLedger = <T>(fn: (ledger: LedgerDb) => Promise<T>): Promise<T> =>
    withLedger(async (ledger) => {
      // Asked here as well as by deriveAll: derive-pending.ts loads zod, which a command on a ledger with
      // nothing pending must not load (test/unit/cli-startup.test.ts).
      if ((await ledger.db.selectFrom('derive_pending').select('id').limit(1).executeTakeFirst()) !== undefined) {
        const { deriveAll } = await import('../ledger/derive-pending.ts');
        await deriveAll(ledger.db);
      }
      return fn(ledger);
    });

  program
    .command('ingest')
    .description('feed raw notification bodies from files through the consumer\'s decode-and-apply path (.jsonl: one body per line)')
    .option('--cloud <name>', 'the cloud these notifications come from', 'default')
    .option('--max-body-bytes <n>', 'larger bodies are rejected unread, as by the consumer (its Cloud\'s spec.amqp.maxBodyBytes)', String(DEFAULT_LIMITS.maxBodyBytes))
    .option('--max-event-age-days <n>', 'event times further before the receive time are implausible, as by the consumer (its Cloud\'s spec.amqp.maxEventAgeDays)', String(DEFAULT_LIMITS.maxEventAgeMs / 86_400_000))
    .option('--max-event-lead-seconds <n>', 'event times further after the receive time are implausible (spec.amqp.maxEventLeadSeconds)', String(DEFAULT_LIMITS.maxEventLeadMs / 1000))
    .addOption(new Option('--manifests <dir>', 'the Cloud and QuarantinePolicy resources: delete warnings then record capture intents, as live intake does').env('QUARANTINE_MANIFESTS'))
    .argument('<file...>', 'files holding one body each (JSON or OpenNebula XML), or .jsonl files')
    .action(async (files: string[], opts: { cloud: string; maxBodyBytes: string; maxEventAgeDays: string; maxEventLeadSeconds: string; manifests?: string }) => {
      const whole = (flag: string, text: string, min: number): number => {
        const n = Number(text);
        if (!Number.isInteger(n) || n < min) throw new UsageError(`${flag} "${text}" is not a whole number of at least ${min}`);
        return n;
      };
      const maxBodyBytes = whole('--max-body-bytes', opts.maxBodyBytes, 1);
      const maxEventAgeMs = whole('--max-event-age-days', opts.maxEventAgeDays, 1) * 86_400_000;
      const maxEventLeadMs = whole('--max-event-lead-seconds', opts.maxEventLeadSeconds, 0) * 1000;
      const { ingestFiles, ingestCaptureOf } = await import('./ingest.ts');
      const capture = await ingestCaptureOf(opts.cloud, opts.manifests);
      const { counts, rejections, intents, warnings } = await withLedger(async (l) => {
        const open = () => l.db.selectFrom('capture_intents').select((eb) => eb.fn.countAll<number>().as('n')).where('cloud', '=', opts.cloud).where('state', '=', 'open').executeTakeFirstOrThrow();
        const before = Number((await open()).n);
        const r = await ingestFiles(l.db, opts.cloud, files, () => new Date(), { maxBodyBytes, maxEventAgeMs, maxEventLeadMs }, capture.capture);
        return { ...r, intents: Number((await open()).n) - before };
      });
      for (const r of rejections) io.err(`${r.where}: rejected (${r.reason}): ${r.message}\n`);
      io.out(`applied ${counts.applied}, duplicate ${counts.duplicate}, ignored ${counts.ignored}, rejected ${counts.rejected}\n`);
      if (capture.capture !== undefined) io.out(`capture intents opened: ${intents} (the operator running cloud ${opts.cloud} captures what Ceph still holds)\n`);
      else if (warnings > 0 && capture.note !== undefined) io.err(`${warnings} delete warning(s) read; ${capture.note}\n`);
      if (counts.rejected > 0) status.code = EXIT.partial;
    });

  const trace = program.command('trace').description('answer who held an address when, or what an instance did');
  type Holder = Awaited<ReturnType<typeof import('../ledger/trace.ts').traceAddress>>['holders'][number];
  // The default table fits 120 columns; -o wide adds the rest.
  const holderColumns: Array<Column<Holder>> = [
    { header: 'CLOUD', value: (h) => h.cloud, max: 12 },
    { header: 'KIND', value: (h) => h.kind, wide: true },
    { header: 'INSTANCE', value: (h) => h.instance?.id ?? (h.router === undefined ? undefined : `router ${h.router.id}`), max: 36 },
    { header: 'NAME', value: (h) => h.instance?.name ?? h.router?.name, max: 16 },
    { header: 'PROJECT', value: (h) => (h.instance === null ? h.project : namedCell(h.instance.project, h.instance.projectName, h.instance.projectNameSource, h.instance.projectNameReadAt)), wide: true },
    { header: 'USER', value: (h) => (h.instance === null ? undefined : namedCell(h.instance.user, h.instance.userName, h.instance.userNameSource, h.instance.userNameReadAt)), max: 12 },
    { header: 'HOST', value: (h) => h.instance?.host, wide: true },
    { header: 'NETWORK', value: (h) => h.network, wide: true },
    { header: 'PORT', value: (h) => h.port, wide: true },
    // `~`: a bound learnt from the cloud's API, not a notification: the holding may have begun (ended) earlier (later); -o json says how far.
    { header: 'FROM', value: (h) => `${h.fromUncertainSince === undefined ? '' : '~'}${shortTime(h.from) ?? ''}` },
    { header: 'TO', value: (h) => (h.to === null ? 'now' : `${h.toUncertainUntil === undefined ? '' : '~'}${shortTime(h.to) ?? ''}`) },
    { header: 'DELETED', value: (h) => shortTime(h.instance?.deletedAt), wide: true },
    // no: the asked time lies in a window where the holding is not known for certain.
    { header: 'SURE', value: (h) => (h.uncertain === true ? 'no' : 'yes'), wide: true },
  ];
  withOutput(trace
    .command('ip')
    .description('who held ADDRESS at TIME, or at any time from T1 to T2 (every holder, with its network)')
    .argument('<address>', 'IPv4 or IPv6 address')
    .option('--at <time>', 'ISO 8601 time with offset, e.g. 2026-05-01T18:13:16+02:00')
    .option('--from <time>', 'start of a window (with --to): every holder during [from, to)')
    .option('--to <time>', 'end of the window')
    .option('--cloud <name>', 'only this cloud'))
    .action(async (address: string, opts: OutputOptions & { at?: string; from?: string; to?: string; cloud?: string }) => {
      const window = opts.from !== undefined || opts.to !== undefined;
      if (window === (opts.at !== undefined)) throw new UsageError('give either --at TIME or --from T1 --to T2');
      if (window && (opts.from === undefined || opts.to === undefined)) throw new UsageError('a window needs both --from and --to');
      const canonical = canonicalIp(address);
      if (canonical === undefined) throw new UsageError(`"${address}" is not an IP address (IPv4 dotted quad or IPv6)`);
      let result: { address: string; at?: string; from?: string; to?: string; holders: Holder[] };
      if (window) {
        const from = parseInstant(opts.from ?? '', '--from');
        const to = parseInstant(opts.to ?? '', '--to');
        if (to.getTime() <= from.getTime()) throw new UsageError('--to must be later than --from');
        const { holdersDuring } = await import('../ledger/attribute.ts');
        const holders = await withDerivedLedger((l) => holdersDuring(l.db, canonical, from, to, opts.cloud));
        result = { address: canonical, from: from.toISOString(), to: to.toISOString(), holders };
      } else {
        const at = parseInstant(opts.at ?? '', '--at');
        // Most calls are answered without loading the query builder; the rest take the full path.
        const { traceDirect } = await import('../ledger/trace-direct.ts');
        const direct = await traceDirect(program.opts<{ db: string }>().db, canonical, at, opts.cloud);
        if (direct !== undefined) result = direct;
        else {
          const { traceAddress } = await import('../ledger/trace.ts');
          result = await withDerivedLedger((l) => traceAddress(l.db, canonical, at, opts.cloud));
        }
      }
      if (result.holders.length === 0 && !(await emitStructured(io, opts, result))) io.out(`nobody held ${canonical} ${result.at !== undefined ? `at ${result.at}` : `from ${result.from ?? ''} to ${result.to ?? ''}`}\n`);
      else if (result.holders.length > 0) await emitList(io, opts, holderColumns, result.holders, result);
      if (result.holders.length === 0) status.code = EXIT.notFound;
    });
  withOutput(trace
    .command('instance')
    .description('an instance\'s life: owner, host, addresses over time, notifications')
    .argument('<id>', 'instance UUID (OpenStack) or VM id (OpenNebula)')
    .option('--cloud <name>', 'only this cloud'))
    .action(async (id: string, opts: OutputOptions & { cloud?: string }) => {
      const { instanceHistory } = await import('../ledger/instance-history.ts');
      const found = await withDerivedLedger((l) => instanceHistory(l.db, id, opts.cloud));
      // JSON and YAML answer "nothing" with an empty list; all formats exit 1.
      if (found.length === 0 && !(await emitStructured(io, opts, []))) throw new NotFoundError(`no instance ${id} in the ledger${opts.cloud === undefined ? '' : ` of cloud ${opts.cloud}`}`);
      if (found.length === 0) status.code = EXIT.notFound;
      if (found.length === 0 || (await emitStructured(io, opts, found.length === 1 ? found[0] : found))) return;
      const t = { headers: opts.headers };
      for (const x of found) {
        io.out(renderTable(['FIELD', 'VALUE'], [['cloud', x.cloud], ['id', x.id], ['name', x.name], ['project', namedCell(x.project, x.projectName, x.projectNameSource, x.projectNameReadAt)], ['user', namedCell(x.user, x.userName, x.userNameSource, x.userNameReadAt)], ['host', x.host],
          ['image', x.image], ['flavor', x.flavor], ['state', x.state], ['created', x.createdAt], ['deleted', x.deletedAt], ['deleted by', x.deletedBy]], t));
        io.out('\n' + renderTable(['ADDRESS', 'KIND', 'NETWORK', 'PORT', 'FROM', 'TO'], x.addresses.map((a) => [a.address, a.kind, a.network, a.port, `${a.fromUncertainSince === undefined ? '' : '~'}${shortTime(a.from) ?? ''}`, a.to === null ? 'now' : `${a.toUncertainUntil === undefined ? '' : '~'}${shortTime(a.to) ?? ''}`]), t));
        io.out('\n' + renderTable(['AT', 'EVENT', 'PUBLISHER', 'MESSAGE'], x.events.map((e) => [shortTime(e.at), e.eventType, e.publisher, e.messageId]), t));
      }
    });

  addTraceLogCommand(trace, io, status, withDerivedLedger);

  addCaptureCommands(program, io, status, withLedger);
  addCaseCommands(program, io, status, withDerivedLedger);
  addExportIntervalsCommand(program, io, withDerivedLedger);
  addHoldCommands(program, io, status, withLedger);
  addAuditCommands(program, io, status, withLedger);
  addLedgerCommands(program, io, withLedger);
  addCompletionCommand(program, io);

  return program;
}

/** Runs the CLI and returns the exit code; never calls process.exit itself. */
export async function runCli(argv: string[], io: Io): Promise<number> {
  let program: Command;
  const status: Status = { code: EXIT.ok };
  try {
    program = buildProgram(io, status);
  } catch (err) {
    io.err(`quarantine: ${err instanceof Error ? err.message : String(err)}\n`);
    return EXIT.usage;
  }
  try {
    await program.parseAsync(argv, { from: 'user' });
    return status.code;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version are exits too, with code 0; commander already printed them.
      if (err.exitCode === 0) return EXIT.ok;
      return EXIT.usage;
    }
    const code = exitCodeOf(err);
    // A user's mistake or a finding is one line; only a bug shows its stack.
    if (code !== EXIT.failure) io.err(`quarantine: ${err instanceof Error ? err.message : String(err)}\n`);
    else io.err(`quarantine: unexpected failure (please report it): ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
    return code;
  }
}
