// Composition root: builds the adapters from configuration and runs the
// operator. Nothing else in the program constructs adapters.
import { once } from 'node:events';
import { openLedgerDb, migrateToLatest, redactUrl } from './ledger/db.ts';
import { readManifests } from './kube/manifest-files.ts';
import { cloudsOf } from './kube/manifest-kinds.ts';
import { startCloudIntake, type CloudIntake } from './intake/cloud-intake.ts';
import { FileEnvSecretSource } from './secrets.ts';
import { UsageError } from './cli/errors.ts';
import type { Logger } from './log.ts';

export interface StandaloneOptions {
  dbUrl: string;
  manifests: string | undefined;
  secretsDir: string | undefined;
  logger: Logger;
  signal: AbortSignal;
  /** Called once every cloud's intake is consuming (tests wait for it). */
  onReady?: () => void;
}

export async function runStandalone(opts: StandaloneOptions): Promise<void> {
  const { logger } = opts;
  if (opts.manifests === undefined) {
    throw new UsageError('no cloud configured: pass --manifests DIR (or set QUARANTINE_MANIFESTS) with at least one Cloud resource; see examples/');
  }
  const clouds = cloudsOf(readManifests(opts.manifests));
  if (clouds.length === 0) {
    throw new UsageError(`no cloud configured: ${opts.manifests} holds no Cloud resource (apiVersion quarantine.forensics.dev/v1alpha1, kind Cloud); see examples/`);
  }
  const secrets = new FileEnvSecretSource(opts.secretsDir);
  const urls = new Map<string, string>();
  for (const c of clouds) urls.set(c.metadata.name, await secrets.get(c.spec.amqp.urlSecretRef));

  const ledger = openLedgerDb(opts.dbUrl);
  const intakes: CloudIntake[] = [];
  try {
    const applied = await migrateToLatest(ledger);
    logger.info({ db: redactUrl(opts.dbUrl), migrationsApplied: applied }, 'ledger ready');
    for (const c of clouds) {
      intakes.push(await startCloudIntake(c, urls.get(c.metadata.name) ?? '', ledger.db, logger));
    }
    logger.info({ clouds: clouds.map((c) => c.metadata.name) }, 'operator running');
    opts.onReady?.();
    if (!opts.signal.aborted) await once(opts.signal, 'abort');
    logger.info('stopping: draining in-flight notifications');
  } finally {
    await Promise.allSettled(intakes.map((i) => i.stop()));
    await ledger.close();
    logger.info('stopped');
  }
}
