// Composition root: builds the adapters from configuration and runs the
// operator. Nothing else in the program constructs adapters.
import { once } from 'node:events';
import { openLedgerDb, migrateToLatest, redactUrl } from './ledger/db.ts';
import { waitForLedger } from './ledger/health.ts';
import { resourcesFromManifests } from './kube/manifest-kinds.ts';
import { FileEnvSecretSource } from './secrets.ts';
import { Operator } from './operator.ts';
import { UsageError } from './cli/errors.ts';
import type { Logger } from './log.ts';
import { startHttp } from './http/server.ts';

export interface StandaloneOptions {
  dbUrl: string;
  manifests: string | undefined;
  secretsDir: string | undefined;
  logger: Logger;
  signal: AbortSignal;
  /** Called once every cloud's intake is consuming (tests wait for it). */
  onReady?: (operator: Operator) => void;
  orphanGraceMs?: number;
  /** host:port for metrics, probes and the query API; none = no HTTP listener. */
  listen?: string | undefined;
  apiToken?: string | undefined;
  /** Wait for an unreachable ledger database at start (default) rather than fail. */
  waitForDb?: boolean;
}

export async function runStandalone(opts: StandaloneOptions): Promise<void> {
  const { logger } = opts;
  if (opts.manifests === undefined) {
    throw new UsageError('no cloud configured: pass --manifests DIR (or set QUARANTINE_MANIFESTS) with at least one Cloud resource; see examples/');
  }
  const resources = resourcesFromManifests(opts.manifests);
  if (resources.clouds.length === 0) {
    throw new UsageError(`no cloud configured: ${opts.manifests} holds no Cloud resource (apiVersion quarantine.forensics.dev/v1alpha1, kind Cloud); see examples/`);
  }
  const secrets = new FileEnvSecretSource(opts.secretsDir);
  // Every secret is resolved before anything starts, so a missing one fails fast and clearly.
  for (const c of resources.clouds) await secrets.get(c.spec.amqp.urlSecretRef);

  const ledger = openLedgerDb(opts.dbUrl);
  const stops: Array<() => Promise<void>> = [];
  const operator = new Operator({ ledger, secrets, logger, ...(opts.orphanGraceMs === undefined ? {} : { orphanGraceMs: opts.orphanGraceMs }) });
  try {
    await waitForLedger(ledger.db, { wait: opts.waitForDb ?? true, logger, signal: opts.signal, where: redactUrl(opts.dbUrl) });
    const applied = await migrateToLatest(ledger);
    logger.info({ db: redactUrl(opts.dbUrl), migrationsApplied: applied }, 'ledger ready');
    operator.setPolicies(resources.policies);
    await operator.syncHolds(resources.holds);
    for (const c of resources.clouds) await operator.addCloud(c);
    // Standalone means one process: it is the leader.
    await operator.becomeLeader();
    if (opts.listen !== undefined) {
      const m = /^(.*):(\d+)$/.exec(opts.listen);
      if (m === null) throw new UsageError(`--listen "${opts.listen}" is not HOST:PORT`);
      const http = await startHttp({ host: (m[1] ?? '').replace(/^\[|\]$/g, ''), port: Number(m[2]), db: ledger.db, metrics: operator.metrics, apiToken: opts.apiToken, ready: () => operator.readiness(), logger });
      stops.push(() => http.close());
      logger.info({ url: http.url, api: opts.apiToken === undefined ? 'disabled (no token)' : 'enabled' }, 'http listening');
    }
    logger.info({ clouds: resources.clouds.map((c) => c.metadata.name), policies: resources.policies.map((p) => p.name), holds: resources.holds.length }, 'operator running');
    opts.onReady?.(operator);
    if (!opts.signal.aborted) await once(opts.signal, 'abort');
    logger.info('stopping: draining in-flight notifications');
  } finally {
    for (const stop of stops) await stop();
    await operator.stop();
    await ledger.close();
    logger.info('stopped');
  }
}
