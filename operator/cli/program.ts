// The `quarantine` command line. Each subcommand parses its arguments, calls
// into the program, and maps the outcome to an exit code (see errors.ts).
import { Command, CommanderError, Option } from 'commander';
import { envConfig } from '../config.ts';
import { createLogger, silentLogger } from '../log.ts';
import { openLedgerDb, migrateToLatest, redactUrl, LedgerUrlError } from '../ledger/db.ts';
import { LedgerUnavailableError, waitForLedger } from '../ledger/health.ts';
import { runStandalone } from '../main.ts';
import { ManifestError } from '../kube/manifest-files.ts';
import { SecretNotFoundError } from '../secrets.ts';
import { EXIT, UsageError } from './errors.ts';
import { ingestFiles } from './ingest.ts';
import { DEFAULT_LIMITS } from '../intake/decode/index.ts';
import { parseInstant } from './time-arg.ts';
import { renderTable } from './table.ts';
import { traceAddress, type Holder } from '../ledger/trace.ts';
import { instanceHistory } from '../ledger/instance-history.ts';
import type { LedgerDb } from '../ledger/db.ts';
import { addCaptureCommands } from './capture-commands.ts';
import { addTraceLogCommand } from './trace-log.ts';
import { addCaseCommands } from './case-commands.ts';
import { addExportIntervalsCommand } from './export-intervals.ts';
import { addHoldCommands } from './hold-commands.ts';
import { addAuditCommands } from './audit-commands.ts';
import { AuditKeyError, useAuditKeys } from '../ledger/audit.ts';
import { anchorFileFor, anchorIntervalMs, loadAuditKeys } from '../ledger/audit-keys.ts';
import { HoldError } from '../capture/holds.ts';

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
  const env = envConfig(io.env);
  const program = new Command('quarantine')
    .description('Keeps the evidence when a cloud VM is deleted: preserved disks, address history, audit trail.')
    .version('0.1.0')
    .addOption(new Option('--db <url>', 'ledger database: sqlite:PATH or postgres://…').env('QUARANTINE_DB').default(env.QUARANTINE_DB))
    .addOption(new Option('--log-level <level>', 'log level').choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default(env.LOG_LEVEL))
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
    .addOption(new Option('--audit-anchor-file <path>', 'append the audit head to this file at an interval (default in standalone mode: beside an SQLite ledger)').env('QUARANTINE_AUDIT_ANCHOR_FILE'))
    .option('--no-wait-db', 'exit (code 2) at start when the ledger database does not answer, instead of waiting for it')
    .option('--kubernetes', 'run as a Kubernetes controller: resources from the API server, leader election with a Lease')
    .addOption(new Option('--kubeconfig <path>', 'kubeconfig (default: in-cluster, then ~/.kube/config)').env('KUBECONFIG'))
    .action(async (opts: { manifests?: string; secrets?: string; listen?: string; apiTokenFile?: string; kubernetes?: boolean; kubeconfig?: string; auditAnchorFile?: string; waitDb: boolean }) => {
      const global = program.opts<{ db: string; logLevel: string; auditKeyFile?: string }>();
      const audit = {
        auditKeys: loadAuditKeys(io.env, global.auditKeyFile), anchorIntervalMs: anchorIntervalMs(io.env),
        anchorFile: opts.kubernetes === true ? opts.auditAnchorFile : anchorFileFor(global.db, io.env, opts.auditAnchorFile),
      };
      const logger = createLogger({ level: global.logLevel });
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
        if (opts.kubernetes === true) {
          if (opts.manifests !== undefined) throw new UsageError('--manifests is for standalone mode; with --kubernetes the resources come from the API server');
          const { runKubernetes } = await import('../kube/kube-mode.ts');
          const seconds = (name: string, dflt: number) => {
            const v = io.env[name];
            if (v === undefined || v === '') return dflt * 1000;
            const n = Number(v);
            if (!Number.isFinite(n) || n <= 0) throw new UsageError(`${name}="${v}" is not a number of seconds`);
            return n * 1000;
          };
          const { hostname } = await import('node:os');
          await runKubernetes({
            dbUrl: global.db, kubeconfig: opts.kubeconfig, logger, signal: ac.signal, listen: opts.listen, apiToken: token, waitForDb: opts.waitDb,
            namespace: io.env['POD_NAMESPACE'] ?? 'quarantine-system', identity: io.env['POD_NAME'] ?? `${hostname()}-${process.pid}`,
            leaseName: io.env['QUARANTINE_LEADER_LEASE'] ?? 'quarantine-operator',
            leaseDurationMs: seconds('QUARANTINE_LEADER_LEASE_DURATION_SECONDS', 15),
            renewDeadlineMs: seconds('QUARANTINE_LEADER_RENEW_DEADLINE_SECONDS', 10),
            retryPeriodMs: seconds('QUARANTINE_LEADER_RETRY_PERIOD_SECONDS', 2),
            ...audit,
          });
        } else {
          await runStandalone({ dbUrl: global.db, manifests: opts.manifests, secretsDir: opts.secrets, logger, signal: ac.signal, listen: opts.listen, apiToken: token, ...audit, waitForDb: opts.waitDb });
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
      const ledger = openLedgerDb(global.db);
      try {
        await waitForLedger(ledger.db, { wait: false, logger: silentLogger, where: redactUrl(global.db), hint: '' });
        const applied = await migrateToLatest(ledger);
        io.out(applied.length === 0 ? `ledger ${redactUrl(global.db)} is up to date\n` : `applied ${applied.join(', ')} to ${redactUrl(global.db)}\n`);
      } finally {
        await ledger.close();
      }
    });

  const withLedger = async <T>(fn: (ledger: LedgerDb) => Promise<T>): Promise<T> => {
    const global = program.opts<{ db: string; auditKeyFile?: string }>();
    const url = global.db;
    const keys = loadAuditKeys(io.env, global.auditKeyFile);
    const ledger = openLedgerDb(url);
    useAuditKeys(ledger.db, keys);
    try {
      // A database that does not answer is one line, not a stack trace from the migrator.
      await waitForLedger(ledger.db, { wait: false, logger: silentLogger, where: redactUrl(url), hint: '' });
      await migrateToLatest(ledger);
      return await fn(ledger);
    } finally {
      await ledger.close();
    }
  };
  const output = () => new Option('-o, --output <format>', 'output format').choices(['table', 'json']).default('table');

  program
    .command('ingest')
    .description('feed raw notification bodies from files through the consumer\'s decode-and-apply path (.jsonl: one body per line)')
    .option('--cloud <name>', 'the cloud these notifications come from', 'default')
    .option('--max-body-bytes <n>', 'larger bodies are rejected unread, as by the consumer (its Cloud\'s spec.amqp.maxBodyBytes)', String(DEFAULT_LIMITS.maxBodyBytes))
    .argument('<file...>', 'files holding one body each (JSON or OpenNebula XML), or .jsonl files')
    .action(async (files: string[], opts: { cloud: string; maxBodyBytes: string }) => {
      const maxBodyBytes = Number(opts.maxBodyBytes);
      if (!Number.isInteger(maxBodyBytes) || maxBodyBytes < 1) throw new UsageError(`--max-body-bytes "${opts.maxBodyBytes}" is not a positive whole number`);
      const { counts, rejections } = await withLedger((l) => ingestFiles(l.db, opts.cloud, files, () => new Date(), { maxBodyBytes }));
      for (const r of rejections) io.err(`${r.where}: rejected (${r.reason}): ${r.message}\n`);
      io.out(`applied ${counts.applied}, duplicate ${counts.duplicate}, ignored ${counts.ignored}, rejected ${counts.rejected}\n`);
      if (counts.rejected > 0) status.code = EXIT.partial;
    });

  const trace = program.command('trace').description('answer who held an address when, or what an instance did');
  trace
    .command('ip')
    .description('who held ADDRESS at TIME, or at any time from T1 to T2 (every holder, with its network)')
    .argument('<address>', 'IPv4 or IPv6 address')
    .option('--at <time>', 'ISO 8601 time with offset, e.g. 2026-05-01T18:13:16+02:00')
    .option('--from <time>', 'start of a window (with --to): every holder during [from, to)')
    .option('--to <time>', 'end of the window')
    .option('--cloud <name>', 'only this cloud')
    .addOption(output())
    .action(async (address: string, opts: { at?: string; from?: string; to?: string; cloud?: string; output: string }) => {
      const window = opts.from !== undefined || opts.to !== undefined;
      if (window === (opts.at !== undefined)) throw new UsageError('give either --at TIME or --from T1 --to T2');
      if (window && (opts.from === undefined || opts.to === undefined)) throw new UsageError('a window needs both --from and --to');
      if (!/^[0-9a-fA-F:.]+$/.test(address)) throw new UsageError(`"${address}" is not an IP address`);
      let result: { address: string; at?: string; from?: string; to?: string; holders: Holder[] };
      if (window) {
        const from = parseInstant(opts.from ?? '', '--from');
        const to = parseInstant(opts.to ?? '', '--to');
        if (to.getTime() <= from.getTime()) throw new UsageError('--to must be later than --from');
        const { holdersDuring } = await import('../ledger/attribute.ts');
        const holders = await withLedger((l) => holdersDuring(l.db, address, from, to, opts.cloud));
        result = { address, from: from.toISOString(), to: to.toISOString(), holders };
      } else {
        result = await withLedger((l) => traceAddress(l.db, address, parseInstant(opts.at ?? '', '--at'), opts.cloud));
      }
      if (opts.output === 'json') io.out(`${JSON.stringify(result, null, 2)}\n`);
      else if (result.holders.length === 0) io.out(`nobody held ${address} ${result.at !== undefined ? `at ${result.at}` : `from ${result.from ?? ''} to ${result.to ?? ''}`}\n`);
      else io.out(renderTable(['CLOUD', 'KIND', 'INSTANCE', 'NAME', 'PROJECT', 'USER', 'HOST', 'NETWORK', 'PORT', 'FROM', 'TO', 'DELETED'],
        result.holders.map((h) => [h.cloud, h.kind, h.instance?.id, h.instance?.name, h.instance?.project ?? h.project, h.instance?.user, h.instance?.host, h.network, h.port, h.from, h.to ?? 'now', h.instance?.deletedAt])));
      if (result.holders.length === 0) status.code = EXIT.notFound;
    });
  trace
    .command('instance')
    .description('an instance\'s life: owner, host, addresses over time, notifications')
    .argument('<id>', 'instance UUID (OpenStack) or VM id (OpenNebula)')
    .option('--cloud <name>', 'only this cloud')
    .addOption(output())
    .action(async (id: string, opts: { cloud?: string; output: string }) => {
      const found = await withLedger((l) => instanceHistory(l.db, id, opts.cloud));
      if (opts.output === 'json') io.out(`${JSON.stringify(found.length === 1 ? found[0] : found, null, 2)}\n`);
      else if (found.length === 0) io.out(`no instance ${id} in the ledger\n`);
      else {
        for (const h of found) {
          io.out(renderTable(['FIELD', 'VALUE'], [['cloud', h.cloud], ['id', h.id], ['name', h.name], ['project', h.project], ['user', h.user], ['host', h.host],
            ['image', h.image], ['flavor', h.flavor], ['state', h.state], ['created', h.createdAt], ['deleted', h.deletedAt], ['deleted by', h.deletedBy]]));
          io.out('\n' + renderTable(['ADDRESS', 'KIND', 'NETWORK', 'PORT', 'FROM', 'TO'], h.addresses.map((a) => [a.address, a.kind, a.network, a.port, a.from, a.to ?? 'now'])));
          io.out('\n' + renderTable(['AT', 'EVENT', 'PUBLISHER', 'MESSAGE'], h.events.map((e) => [e.at, e.eventType, e.publisher, e.messageId])));
        }
      }
      if (found.length === 0) status.code = EXIT.notFound;
    });

  addTraceLogCommand(trace, io, status, withLedger);

  addCaptureCommands(program, io, status, withLedger);
  addCaseCommands(program, io, status, withLedger);
  addExportIntervalsCommand(program, io, withLedger);
  addHoldCommands(program, io, status, withLedger);
  addAuditCommands(program, io, status, withLedger);

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
    if (err instanceof UsageError || err instanceof LedgerUrlError || err instanceof LedgerUnavailableError || err instanceof ManifestError || err instanceof SecretNotFoundError || err instanceof AuditKeyError || err instanceof HoldError) {
      io.err(`quarantine: ${err.message}\n`);
      return EXIT.usage;
    }
    io.err(`quarantine: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
    return EXIT.failure;
  }
}
