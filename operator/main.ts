// Composition root: builds the adapters from configuration and runs the
// operator. Nothing else in the program constructs adapters.
import { openLedgerDb, migrateToLatest, redactUrl } from './ledger/db.ts';
import { readManifests } from './kube/manifest-files.ts';
import { UsageError } from './cli/errors.ts';
import type { Logger } from './log.ts';

export interface StandaloneOptions {
  dbUrl: string;
  manifests: string | undefined;
  logger: Logger;
  signal: AbortSignal;
}

export async function runStandalone(opts: StandaloneOptions): Promise<void> {
  const { logger } = opts;
  const ledger = openLedgerDb(opts.dbUrl);
  try {
    const applied = await migrateToLatest(ledger);
    logger.info({ db: redactUrl(opts.dbUrl), migrationsApplied: applied }, 'ledger ready');
    if (opts.manifests === undefined) {
      throw new UsageError('no cloud configured: pass --manifests DIR (or set QUARANTINE_MANIFESTS) with at least one Cloud resource; see examples/');
    }
    const objects = readManifests(opts.manifests);
    const clouds = objects.filter((o) => o.kind === 'Cloud');
    if (clouds.length === 0) {
      throw new UsageError(`no cloud configured: ${opts.manifests} holds no Cloud resource (apiVersion quarantine.forensics.dev/v1alpha1, kind Cloud); see examples/`);
    }
    throw new UsageError(`found ${clouds.length} Cloud resource(s), but connecting to clouds is not available in this version yet`);
  } finally {
    await ledger.close();
  }
}
