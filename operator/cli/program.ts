// The `quarantine` command line. Each subcommand parses its arguments, calls
// into the program, and maps the outcome to an exit code (see errors.ts).
import { Command, CommanderError, Option } from 'commander';
import { envConfig } from '../config.ts';
import { createLogger } from '../log.ts';
import { openLedgerDb, migrateToLatest, redactUrl, LedgerUrlError } from '../ledger/db.ts';
import { runStandalone } from '../main.ts';
import { ManifestError } from '../kube/manifest-files.ts';
import { EXIT, UsageError } from './errors.ts';

export interface Io {
  out: (s: string) => void;
  err: (s: string) => void;
  env: NodeJS.ProcessEnv;
}

export function buildProgram(io: Io): Command {
  const env = envConfig(io.env);
  const program = new Command('quarantine')
    .description('Keeps the evidence when a cloud VM is deleted: preserved disks, address history, audit trail.')
    .version('0.1.0')
    .addOption(new Option('--db <url>', 'ledger database: sqlite:PATH or postgres://…').env('QUARANTINE_DB').default(env.QUARANTINE_DB))
    .addOption(new Option('--log-level <level>', 'log level').choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default(env.LOG_LEVEL))
    .showSuggestionAfterError()
    .exitOverride()
    .configureOutput({ writeOut: io.out, writeErr: io.err });

  program
    .command('run')
    .description('run the operator standalone: clouds, policies and holds from YAML files, ledger in SQLite by default')
    .addOption(new Option('--manifests <dir>', 'directory (or file) of Cloud/QuarantinePolicy/QuarantineHold YAML').env('QUARANTINE_MANIFESTS'))
    .action(async (opts: { manifests?: string }) => {
      const global = program.opts<{ db: string; logLevel: string }>();
      const logger = createLogger({ level: global.logLevel });
      const ac = new AbortController();
      const stop = () => ac.abort();
      process.once('SIGTERM', stop);
      process.once('SIGINT', stop);
      try {
        await runStandalone({ dbUrl: global.db, manifests: opts.manifests, logger, signal: ac.signal });
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
        const applied = await migrateToLatest(ledger);
        io.out(applied.length === 0 ? `ledger ${redactUrl(global.db)} is up to date\n` : `applied ${applied.join(', ')} to ${redactUrl(global.db)}\n`);
      } finally {
        await ledger.close();
      }
    });

  return program;
}

/** Runs the CLI and returns the exit code; never calls process.exit itself. */
export async function runCli(argv: string[], io: Io): Promise<number> {
  let program: Command;
  try {
    program = buildProgram(io);
  } catch (err) {
    io.err(`quarantine: ${err instanceof Error ? err.message : String(err)}\n`);
    return EXIT.usage;
  }
  try {
    await program.parseAsync(argv, { from: 'user' });
    return process.exitCode === undefined ? EXIT.ok : Number(process.exitCode);
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version are exits too, with code 0; commander already printed them.
      if (err.exitCode === 0) return EXIT.ok;
      return EXIT.usage;
    }
    if (err instanceof UsageError || err instanceof LedgerUrlError || err instanceof ManifestError) {
      io.err(`quarantine: ${err.message}\n`);
      return EXIT.usage;
    }
    io.err(`quarantine: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
    return EXIT.failure;
  }
}
