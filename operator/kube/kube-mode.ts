// The operator in Kubernetes: every replica watches Clouds and
// QuarantinePolicies and consumes (competing consumers, idempotent apply on
// the shared ledger); the replica holding the Lease also runs the
// controllers, the capture reconcilers and the sweep.
import { UsageError } from '../cli/errors.ts';
import { CloudStarter } from './cloud-starter.ts';
import { parseListen } from '../http/listen.ts';
import * as k8s from '@kubernetes/client-node';
import { once } from 'node:events';
import { logEnd, startCheckpointer, type Checkpointer } from '../ledger/checkpoint-thread.ts';
import { openLedgerDb, migrateToLatest, redactUrl } from '../ledger/db.ts';
import { waitForLedger } from '../ledger/health.ts';
import type { ComposeOperator, Operator } from '../operator.ts';
import { startHttp } from '../http/server.ts';
import { Informer, systemClock } from './runtime/index.ts';
import { customObjectClient, KubeSecretSource } from './runtime/kube.ts';
import { ControllerManager } from './runtime/manager.ts';
import { resourceForKind } from './runtime/controller.ts';
import { Cloud } from '../resources/cloud.ts';
import { QuarantinePolicy } from '../resources/policy.ts';
import { policyFromResource } from '../resources/mapping.ts';
import { cloudController } from './controllers/cloud.ts';
import { policyController } from './controllers/policy.ts';
import { holdController } from './controllers/hold.ts';
import { caseController } from './controllers/case.ts';
import { restoreController } from './controllers/restore.ts';
import type { Logger } from '../log.ts';
import { useAuditKeys, type AuditKeyRing } from '../ledger/audit.ts';
import { AuditAnchorer, fileAnchorSink, logAnchorSink, type AnchorSink } from '../ledger/audit-anchor.ts';
import { EventRecorder } from './runtime/events.ts';
import { coreEventSink } from './runtime/kube.ts';

export interface KubernetesOptions {
  dbUrl: string;
  kubeconfig: string | undefined;
  namespace: string;
  identity: string;
  leaseName: string;
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
  listen: string | undefined;
  apiToken: string | undefined;
  /** PEM certificate and key: HTTPS instead of HTTP on `listen`. */
  tls?: { cert: string; key: string } | undefined;
  logger: Logger;
  signal: AbortSignal;
  auditKeys?: AuditKeyRing | undefined;
  anchorFile?: string | undefined;
  anchorIntervalMs?: number | undefined;
  /** Notification bodies older than this expire (audited); undefined keeps them. */
  bodyRetentionMs?: number | undefined;
  /** Wait for an unreachable ledger database at start (default) rather than fail. */
  waitForDb?: boolean;
  onReady?: (operator: Operator, manager: ControllerManager) => void;
  /** Builds the operator and its adapters: the composition root's (main.ts), as in standalone mode. */
  compose: ComposeOperator;
}

function loadConfig(path: string | undefined): k8s.KubeConfig {
  const kc = new k8s.KubeConfig();
  if (path !== undefined) kc.loadFromFile(path);
  else if (process.env['KUBERNETES_SERVICE_HOST'] !== undefined) kc.loadFromCluster();
  else kc.loadFromDefault();
  return kc;
}

export async function runKubernetes(o: KubernetesOptions): Promise<void> {
  const { logger } = o;
  const kc = loadConfig(o.kubeconfig);
  const ledger = openLedgerDb(o.dbUrl);
  useAuditKeys(ledger.db, o.auditKeys);
  const stops: Array<() => Promise<void> | void> = [];
  let anchorer: AuditAnchorer | undefined;
  let checkpointer: Checkpointer | undefined;
  const operator = o.compose({
    ledger, secrets: new KubeSecretSource(kc, o.namespace), logger, identity: o.identity,
    ...(o.bodyRetentionMs === undefined ? {} : { bodyRetentionMs: o.bodyRetentionMs }),
  });
  try {
    await waitForLedger(ledger.db, { wait: o.waitForDb ?? true, logger, signal: o.signal, where: redactUrl(o.dbUrl) });
    const applied = await migrateToLatest(ledger);
    logger.info({ db: redactUrl(o.dbUrl), migrationsApplied: applied, identity: o.identity, auditKey: o.auditKeys?.current.id ?? null }, 'ledger ready');
    checkpointer = await startCheckpointer(ledger, { onEnd: logEnd(logger) });
    if (o.auditKeys === undefined) logger.warn('no audit key (secrets.auditKey in the chart): the audit trail is not keyed, and whoever can write the database can rewrite it');
    // The head goes to the log and, as an AuditHead Event on the leader Lease, to the API server.
    const events = new EventRecorder({ sink: coreEventSink(kc), clock: systemClock, log: logger, instance: o.identity });
    const leaseRef = { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: o.leaseName, namespace: o.namespace } };
    const eventSink: AnchorSink = (a) => events.record(leaseRef, 'Normal', 'AuditHead', `audit head ${a.seq}:${a.hash} at ${a.at}${a.mac === null ? '' : ` mac ${a.mac}`}`);
    anchorer = new AuditAnchorer({
      db: ledger.db, keys: o.auditKeys, logger, intervalMs: o.anchorIntervalMs,
      sinks: [logAnchorSink(logger), eventSink, ...(o.anchorFile === undefined ? [] : [fileAnchorSink(o.anchorFile)])],
    });
    anchorer.start();

    // Clouds: every replica consumes, so every replica starts each cloud's intake.
    const starter = new CloudStarter({
      host: operator, clock: systemClock, logger,
      desired: (name) => {
        const obj = clouds.list().find((c) => c.metadata.name === name);
        if (obj === undefined) return undefined;
        const parsed = Cloud.safeParse(obj);
        return parsed.success ? { valid: true, cloud: parsed.data } : { valid: false, reason: parsed.error.issues[0]?.message ?? 'invalid' };
      },
    });
    starter.start();
    const clouds = new Informer({ source: customObjectClient(kc, resourceForKind('Cloud')), clock: systemClock, log: logger.child({ informer: 'Cloud' }), resyncMs: 60_000, onChange: (key) => starter.enqueue(key.split('/').pop() ?? key) });
    const policies = new Informer({
      source: customObjectClient(kc, resourceForKind('QuarantinePolicy')), clock: systemClock, log: logger.child({ informer: 'QuarantinePolicy' }), resyncMs: 60_000,
      onChange: () => {
        const valid = policies.list().flatMap((p) => {
          const r = QuarantinePolicy.safeParse(p);
          return r.success ? [policyFromResource(r.data)] : [];
        });
        operator.setPolicies(valid);
      },
    });
    await policies.start();
    await clouds.start();
    stops.push(() => clouds.stop(), () => policies.stop(), () => starter.stop());

    const manager = new ControllerManager({
      kubeConfig: kc, namespace: o.namespace, identity: o.identity, leaseName: o.leaseName, log: logger,
      leaseDurationMs: o.leaseDurationMs, renewDeadlineMs: o.renewDeadlineMs, retryPeriodMs: o.retryPeriodMs,
      controllers: [cloudController(operator, ledger.db), policyController(operator, ledger.db), holdController(ledger.db), restoreController(operator, ledger.db), caseController(ledger.db)] as never,
      onStartedLeading: () => operator.becomeLeader(),
      onStoppedLeading: () => operator.stopLeading(),
    });
    // Every kind reports, at zero on a follower (its controllers run only while it leads).
    const kinds = ['Cloud', 'QuarantinePolicy', 'QuarantineHold', 'QuarantineRestore', 'QuarantineCase'];
    operator.metrics.observeReconciles(() => kinds.map((kind) => ({ kind, failing: manager.runners.filter((r) => r.kind === kind).reduce((n, r) => n + r.failing, 0) })));
    manager.start();
    stops.unshift(() => manager.stop());

    if (o.listen !== undefined) {
      const listen = parseListen(o.listen);
      if (typeof listen === 'string') throw new UsageError(listen);
      const http = await startHttp({ host: listen.host, port: listen.port, db: ledger.db, metrics: operator.metrics, apiToken: o.apiToken, ready: () => operator.readiness(), logger, tls: o.tls });
      stops.push(() => http.close());
      logger.info({ listen: http.url, api: o.apiToken === undefined ? 'disabled (no token)' : 'enabled' }, 'http listening');
    }
    await starter.idle();
    logger.info({ identity: o.identity, lease: `${o.namespace}/${o.leaseName}` }, 'operator running in Kubernetes');
    o.onReady?.(operator, manager);
    if (!o.signal.aborted) await once(o.signal, 'abort');
    logger.info('stopping: giving up the lease and draining in-flight notifications');
  } finally {
    for (const stop of stops) await stop();
    await operator.stop();
    await anchorer?.stop();
    // After the last commits of this process.
    await checkpointer?.stop();
    await ledger.close();
  }
}
