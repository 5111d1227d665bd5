// Composition root: builds the adapters from configuration and runs the
// operator, in both modes. Nothing else in the program constructs the
// operator's adapters (Ceph access, the cloud's API): standalone runs here,
// and the Kubernetes mode (kube/kube-mode.ts) is handed composeOperator.
import { parseListen } from './http/listen.ts';
import { once } from 'node:events';
import { logEnd, startCheckpointer, type Checkpointer } from './ledger/checkpoint-thread.ts';
import { openLedgerDb, migrateToLatest, redactUrl } from './ledger/db.ts';
import { waitForLedger } from './ledger/health.ts';
import { resourcesFromManifests } from './resources/manifest-kinds.ts';
import { FileEnvSecretSource } from './secrets.ts';
import { Operator, type CloudAdapters, type OperatorParts } from './operator.ts';
import type { SecretSource } from './secrets.ts';
import type { Cloud } from './resources/cloud.ts';
import { cephAccess } from './clouds/ceph-access.ts';
import { startCloudIntake } from './intake/cloud-intake.ts';
import { OpenStackClient } from './clouds/openstack.ts';
import { OpenNebulaClient } from './reconcile/opennebula-client.ts';
import type { CloudInventory } from './domain/inventory.ts';
import type { CloudApi, IdentityDirectory } from './domain/cloud-api.ts';
import type { KubernetesOptions } from './kube/kube-mode.ts';
import { UsageError } from './cli/errors.ts';
import type { Logger } from './log.ts';
import { startHttp } from './http/server.ts';
import { useAuditKeys, type AuditKeyRing } from './ledger/audit.ts';
import { AuditAnchorer, fileAnchorSink, logAnchorSink } from './ledger/audit-anchor.ts';
import { HoldError } from './capture/holds.ts';

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
  /** Signs the audit trail; without it the trail stays unkeyed (a warning says so). */
  auditKeys?: AuditKeyRing | undefined;
  /** Append-only file the audit head is anchored to, besides the log. */
  anchorFile?: string | undefined;
  anchorIntervalMs?: number | undefined;
  /** Notification bodies older than this expire (audited); undefined keeps them. */
  bodyRetentionMs?: number | undefined;
  /** Wait for an unreachable ledger database at start (default) rather than fail. */
  waitForDb?: boolean;
  /** PEM certificate and key: HTTPS instead of HTTP on `listen`. */
  tls?: { cert: string; key: string } | undefined;
}

/** The adapters of a cloud, from its resource and the mode's secrets. */
export function cloudAdapters(secrets: SecretSource): CloudAdapters {
  return {
    ceph: (cloud: Cloud) => cephAccess(cloud, secrets),
    intake: startCloudIntake,
    async cloudApi(cloud: Cloud): Promise<CloudApi | undefined> {
      const a = cloud.spec.api;
      if (a === undefined) return undefined;
      return new OpenStackClient({
        authUrl: a.authUrl, region: a.region, interface: a.interface,
        applicationCredentialId: await secrets.get(a.applicationCredentialIdSecretRef),
        applicationCredentialSecret: await secrets.get(a.applicationCredentialSecretRef),
      });
    },
    async identity(cloud: Cloud): Promise<IdentityDirectory | undefined> {
      const a = cloud.spec.api;
      if (cloud.spec.type !== 'openstack' || a === undefined) return undefined;
      return new OpenStackClient({
        authUrl: a.authUrl, region: a.region, interface: a.interface, timeoutMs: cloud.spec.reconcile.timeoutSeconds * 1000,
        applicationCredentialId: await secrets.get(a.applicationCredentialIdSecretRef),
        applicationCredentialSecret: await secrets.get(a.applicationCredentialSecretRef),
      });
    },
    async inventory(cloud: Cloud): Promise<CloudInventory | undefined> {
      const r = cloud.spec.reconcile;
      const timeoutMs = r.timeoutSeconds * 1000;
      if (cloud.spec.type === 'openstack' && cloud.spec.api !== undefined) {
        const a = cloud.spec.api;
        return new OpenStackClient({
          authUrl: a.authUrl, region: a.region, interface: a.interface, timeoutMs, pageSize: r.pageSize,
          applicationCredentialId: await secrets.get(a.applicationCredentialIdSecretRef),
          applicationCredentialSecret: await secrets.get(a.applicationCredentialSecretRef),
        });
      }
      if (cloud.spec.type === 'opennebula' && cloud.spec.xmlrpc !== undefined) {
        return new OpenNebulaClient({ url: cloud.spec.xmlrpc.url, session: await secrets.get(cloud.spec.xmlrpc.sessionSecretRef), timeoutMs, pageSize: r.pageSize });
      }
      return undefined;
    },
  };
}

/** The operator with its adapters, for either mode. */
export function composeOperator(parts: OperatorParts): Operator {
  return new Operator({ ...parts, adapters: cloudAdapters(parts.secrets) });
}

/** The Kubernetes mode, composed here like the standalone one. */
export async function runKubernetes(o: Omit<KubernetesOptions, 'compose'>): Promise<void> {
  const kube = await import('./kube/kube-mode.ts');
  await kube.runKubernetes({ ...o, compose: composeOperator });
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
  useAuditKeys(ledger.db, opts.auditKeys);
  const stops: Array<() => Promise<void>> = [];
  let anchorer: AuditAnchorer | undefined;
  let checkpointer: Checkpointer | undefined;
  const operator = composeOperator({
    ledger, secrets, logger, ...(opts.orphanGraceMs === undefined ? {} : { orphanGraceMs: opts.orphanGraceMs }),
    ...(opts.bodyRetentionMs === undefined ? {} : { bodyRetentionMs: opts.bodyRetentionMs }),
  });
  try {
    await waitForLedger(ledger.db, { wait: opts.waitForDb ?? true, logger, signal: opts.signal, where: redactUrl(opts.dbUrl) });
    const applied = await migrateToLatest(ledger);
    logger.info({ db: redactUrl(opts.dbUrl), migrationsApplied: applied, auditKey: opts.auditKeys?.current.id ?? null, auditAnchorFile: opts.anchorFile ?? null }, 'ledger ready');
    checkpointer = await startCheckpointer(ledger, { onEnd: logEnd(logger) });
    if (opts.auditKeys === undefined) logger.warn('no audit key (QUARANTINE_AUDIT_KEY_FILE): the audit trail is not keyed, and whoever can write the database can rewrite it');
    anchorer = new AuditAnchorer({
      db: ledger.db, keys: opts.auditKeys, logger, intervalMs: opts.anchorIntervalMs,
      sinks: [logAnchorSink(logger), ...(opts.anchorFile === undefined ? [] : [fileAnchorSink(opts.anchorFile)])],
    });
    anchorer.start();
    operator.setPolicies(resources.policies);
    await operator.syncHolds(resources.holds).catch((err: unknown) => {
      throw err instanceof HoldError ? new UsageError(`${opts.manifests ?? ''}: ${err.message}`) : err;
    });
    for (const c of resources.clouds) await operator.addCloud(c);
    // Standalone means one process: it is the leader.
    await operator.becomeLeader();
    if (opts.listen !== undefined) {
      const listen = parseListen(opts.listen);
      if (typeof listen === 'string') throw new UsageError(listen);
      const http = await startHttp({ host: listen.host, port: listen.port, db: ledger.db, metrics: operator.metrics, apiToken: opts.apiToken, ready: () => operator.readiness(), logger, tls: opts.tls });
      stops.push(() => http.close());
      // Not `url`: that key is redacted (it usually holds credentials).
      logger.info({ listen: http.url, api: opts.apiToken === undefined ? 'disabled (no token)' : 'enabled' }, 'http listening');
    }
    logger.info({ clouds: resources.clouds.map((c) => c.metadata.name), policies: resources.policies.map((p) => p.name), holds: resources.holds.length }, 'operator running');
    opts.onReady?.(operator);
    if (!opts.signal.aborted) await once(opts.signal, 'abort');
    logger.info('stopping: draining in-flight notifications');
  } finally {
    for (const stop of stops) await stop();
    await operator.stop();
    // The last head, after everything this process wrote.
    await anchorer?.stop();
    // After the last commits of this process.
    await checkpointer?.stop();
    await ledger.close();
    logger.info('stopped');
  }
}
