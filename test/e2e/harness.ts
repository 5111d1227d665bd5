// Runs the real operator (standalone mode, in this process) against the test
// environment's broker and Ceph, configured by manifest files as a user would,
// and gives tests a second ledger connection to check what it recorded.
import { mkdtempSync, mkdirSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { runStandalone } from '../../operator/main.ts';
import type { Operator } from '../../operator/operator.ts';
import { openLedgerDb, type LedgerDb } from '../../operator/ledger/db.ts';
import { RbdCli } from '../../operator/ceph/rbd-cli.ts';
import { startProcessHost } from '../sim/process-host.ts';
import type { QuarantineRow } from '../../operator/capture/quarantine-store.ts';
import { createLogger, silentLogger, type Logger } from '../../operator/log.ts';
import { appendFileSync } from 'node:fs';
import { requireEnv, uniqueSuffix } from '../support/env.ts';

export const env = {
  amqpUrl: requireEnv('QTEST_AMQP_URL'),
  cephConf: requireEnv('QTEST_CEPH_CONF'),
  cloudId: requireEnv('QTEST_CEPH_CLOUD_ID'),
  operatorId: requireEnv('QTEST_CEPH_OPERATOR_ID'),
  quarantinePool: requireEnv('QTEST_CEPH_QUARANTINE_POOL'),
};

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function until<T>(fn: () => Promise<T | undefined | false>, what: string, ms = 30_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(50);
  }
}

export interface OperatorSetup {
  type: 'openstack' | 'opennebula';
  exchanges: string[];
  mode: 'trash' | 'softDelete' | 'onDelete';
  watchedPools?: string[];
  armTrash?: boolean;
  retention?: string;
  releaseResources?: boolean;
  api?: { authUrl: string; id: string; secret: string };
  orphanGraceMs?: number;
  trashScanSeconds?: number;
  /** The policy's capture.isolate; absent = the schema's default (isolate). */
  isolate?: boolean;
  /** The Cloud's spec.ceph.driver; absent = the schema's default (librbd). */
  driver?: 'librbd' | 'cli';
}

export interface RunningOperator {
  cloud: string;
  policy: string;
  dir: string;
  dbUrl: string;
  operator: Operator;
  ledger: LedgerDb;
  operatorBlocks: RbdCli;
  cloudBlocks: RbdCli;
  quarantinesOf(instanceId: string): Promise<QuarantineRow[]>;
  waitForQuarantine(instanceId: string, ms?: number): Promise<QuarantineRow>;
  /** Leaves the watched pools as found: without the trash settings the operator armed them with (armTrash). */
  disarmTrash(): Promise<void>;
  /** Stops the operator but keeps the ledger open for checks and cleanup. */
  halt(): Promise<void>;
  stop(): Promise<void>;
}

export { sha256Of } from '../support/ceph-checks.ts';

export interface Setup {
  cloud: string;
  policy: string;
  dir: string;
  dbUrl: string;
  manifests: string;
  secrets: string;
}

/** The files a user would write: manifests, secrets, and the ledger's place. */
export function writeSetup(o: OperatorSetup): Setup {
  const s = uniqueSuffix();
  const dir = mkdtempSync(join(tmpdir(), 'qop-e2e-'));
  const cloud = `cloud-${s}`;
  const policy = `policy-${s}`;
  mkdirSync(join(dir, 'manifests'));
  mkdirSync(join(dir, 'secrets', 'rabbit'), { recursive: true });
  writeFileSync(join(dir, 'secrets', 'rabbit', 'url'), env.amqpUrl);
  const spec: Record<string, unknown> = {
    type: o.type,
    amqp: { urlSecretRef: { name: 'rabbit', key: 'url' }, exchanges: o.exchanges.map((name) => ({ name })), prefetch: 100 },
    ceph: {
      configFile: env.cephConf, user: env.operatorId, watchedPools: o.watchedPools ?? ['vms'], quarantine: { pool: env.quarantinePool },
      trash: { arm: o.armTrash ?? false, expireSeconds: 3600, scanIntervalSeconds: o.trashScanSeconds ?? 1 },
      ...(o.driver === undefined ? {} : { driver: o.driver }),
    },
  };
  if (o.api !== undefined) {
    mkdirSync(join(dir, 'secrets', 'openstack'));
    writeFileSync(join(dir, 'secrets', 'openstack', 'id'), o.api.id);
    writeFileSync(join(dir, 'secrets', 'openstack', 'secret'), o.api.secret);
    spec['api'] = { authUrl: o.api.authUrl, applicationCredentialIdSecretRef: { name: 'openstack', key: 'id' }, applicationCredentialSecretRef: { name: 'openstack', key: 'secret' } };
  }
  writeFileSync(join(dir, 'manifests', 'cloud.yaml'), stringify({ apiVersion: 'quarantine.forensics.dev/v1alpha1', kind: 'Cloud', metadata: { name: cloud }, spec }));
  writeFileSync(join(dir, 'manifests', 'policy.yaml'), stringify({
    apiVersion: 'quarantine.forensics.dev/v1alpha1', kind: 'QuarantinePolicy', metadata: { name: policy },
    spec: { selector: { clouds: [cloud] }, capture: { mode: o.mode, releaseResources: o.releaseResources ?? false, ...(o.isolate === undefined ? {} : { isolate: o.isolate }) }, retention: { duration: o.retention ?? '1h' }, sweep: { schedule: '0 0 1 1 *' } },
  }));
  return { cloud, policy, dir, dbUrl: `sqlite:${join(dir, 'ledger.db')}`, manifests: join(dir, 'manifests'), secrets: join(dir, 'secrets') };
}

/**
 * The operator's log: silent, unless QTEST_OPERATOR_LOG names a file, which
 * then gets every line at LOG_LEVEL (default debug), for diagnosing a test or
 * a bench run after the fact.
 */
function operatorLogger(): Logger {
  const file = process.env['QTEST_OPERATOR_LOG'];
  if (file === undefined || file === '') return silentLogger;
  return createLogger({ level: process.env['LOG_LEVEL'] ?? 'debug', format: 'json', write: (line) => appendFileSync(file, line) });
}

export async function startOperator(o: OperatorSetup): Promise<RunningOperator> {
  const { cloud, policy, dir, dbUrl } = writeSetup(o);
  const ac = new AbortController();
  let ready!: (op: Operator) => void;
  const isReady = new Promise<Operator>((r) => { ready = r; });
  const run = runStandalone({
    dbUrl, manifests: join(dir, 'manifests'), secretsDir: join(dir, 'secrets'), logger: operatorLogger(), signal: ac.signal,
    onReady: (op) => ready(op), orphanGraceMs: o.orphanGraceMs ?? 500,
  });
  const operator = await Promise.race([isReady, run.then(() => { throw new Error('the operator stopped before it was ready'); })]);
  const ledger = openLedgerDb(dbUrl);
  const operatorBlocks = new RbdCli({ cephConf: env.cephConf, id: env.operatorId });
  // The cloud's programs start from a host of their own, as a real cloud's do: forked from this process, which
  // runs the operator, each start would hold the operator's event loop (a burst of removals, most of a minute).
  const cloudHost = startProcessHost();
  const cloudBlocks = new RbdCli({ cephConf: env.cephConf, id: env.cloudId, run: cloudHost.run });
  const quarantinesOf = (instanceId: string) => ledger.db.selectFrom('quarantines').selectAll().where('cloud', '=', cloud).where('instance_id', '=', instanceId).execute();
  return {
    cloud, policy, dir, dbUrl, operator, ledger, operatorBlocks, cloudBlocks, quarantinesOf,
    waitForQuarantine: (instanceId, ms = 30_000) => until(async () => (await quarantinesOf(instanceId)).find((q) => q.state === 'quarantined' || q.state === 'failed'), `a quarantine of ${instanceId}`, ms),
    async disarmTrash() {
      // A setting that is not there (the pool never armed) is as good as removed.
      for (const pool of o.watchedPools ?? ['vms']) {
        await operatorBlocks.removePoolConfig(pool, 'rbd_move_to_trash_on_remove').catch(() => undefined);
        await operatorBlocks.removePoolConfig(pool, 'rbd_move_to_trash_on_remove_expire_seconds').catch(() => undefined);
      }
    },
    async halt() {
      ac.abort();
      await run;
    },
    async stop() {
      ac.abort();
      await run;
      await ledger.close();
      await cloudHost.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
