// The demo: the real operator, standalone on its embedded SQLite ledger,
// watching a simulated OpenStack cloud (test/sim) that acts on a real RabbitMQ
// and a real Ceph cluster brought up by scripts/demo.sh. Three VMs boot, a
// floating IP moves from one to another, two VMs are deleted (one of them
// under a legal hold), and an investigator then asks the questions the
// operator exists to answer, through the `quarantine` command itself. Every
// answer is checked against what the story did, so a wrong one fails the run.
//
// Reads the environment file of test/env/up.sh (QTEST_*), and
// QUARANTINE_DEMO_DIR (default <repo>/.demo) for everything it writes.
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, createReadStream, existsSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { isAbsolute, join, relative, resolve } from 'node:path';
import { pino } from 'pino';
import type { Logger } from '../operator/log.ts';
import { runStandalone } from '../operator/main.ts';
import { openLedgerDb, type LedgerDb } from '../operator/ledger/db.ts';
import { RbdCli } from '../operator/ceph/rbd-cli.ts';
import { holdsCovering } from '../operator/capture/holds.ts';
import type { QuarantineRow } from '../operator/capture/quarantine-store.ts';
import { SimBus } from '../test/sim/bus.ts';
import { NeutronSim } from '../test/sim/neutron.ts';
import { NovaSim, type NovaServer } from '../test/sim/nova.ts';
import { cloudRbd } from '../test/sim/rbd-tool.ts';
import type { SimStep } from '../test/sim/timeline.ts';
import * as out from './print.ts';
import { CLOUD, HOLD, POLICY, RETENTION, writeDemoSetup } from './manifests.ts';

const ROOT = resolve(import.meta.dirname, '..');
const FLOATING_IP = '188.185.194.218';
const GLANCE_IMAGE = 'debian-12';
const DISK_BYTES = 8 * 1024 * 1024;
const EXIT_INTERRUPTED = 130;

interface Cast {
  name: string;
  user: string;
  project: string;
  host: string;
}

const ALICE_VM: Cast = { name: 'hep-batch-07', user: 'alice', project: 'hep', host: 'compute-1' };
const BOB_VM: Cast = { name: 'hep-web-02', user: 'bob', project: 'hep', host: 'compute-2' };
const CAROL_VM: Cast = { name: 'astro-sim-01', user: 'carol', project: 'astro', host: 'compute-1' };

class Interrupted extends Error {}
class StoryFailed extends Error {}

function need(name: string): string {
  const v = process.env[name];
  if (v === undefined || v === '') {
    throw new StoryFailed(`${name} is not set: run the demo with \`bash scripts/demo.sh\`, which brings up RabbitMQ and Ceph and sets it`);
  }
  return v;
}

/** Paths as a person would type them from the repository root. */
function shown(path: string): string {
  const r = relative(ROOT, path);
  return r === '' ? '.' : r.startsWith('..') || isAbsolute(r) ? path : r;
}

// --- what is running, so that Ctrl-C and the end of the story stop all of it ------------------

let interrupted = false;
const children = new Set<ChildProcess>();
const stops: Array<() => Promise<void>> = [];

function checkInterrupted(): void {
  if (interrupted) throw new Interrupted('interrupted');
}

/** Runs the registered stops, newest first, each once. */
async function stopAll(): Promise<void> {
  while (stops.length > 0) {
    const stop = stops.pop();
    await stop?.().catch((err: unknown) => out.warn(`while stopping: ${err instanceof Error ? err.message : String(err)}`));
  }
}

function onSignal(signal: NodeJS.Signals): void {
  // A terminal's Ctrl-C reaches us directly and again through scripts/demo.sh.
  if (interrupted) return;
  interrupted = true;
  out.blank();
  out.step(`Interrupted (${signal}): stopping the operator and the simulated cloud`);
  for (const c of children) c.kill('SIGTERM');
  setTimeout(() => process.exit(EXIT_INTERRUPTED), 20_000).unref();
  void stopAll().finally(() => process.exit(EXIT_INTERRUPTED));
}

process.on('SIGINT', onSignal);
process.on('SIGTERM', onSignal);

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function pause(ms: number): Promise<void> {
  checkInterrupted();
  await sleep(ms);
  checkInterrupted();
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, ms = 30_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    checkInterrupted();
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new StoryFailed(`waited ${ms / 1000} s for ${what}`);
    await sleep(100);
  }
}

/** Runs bin/quarantine as a person would, from the repository root. */
function quarantineCli(args: string[]): Promise<{ code: number; stdout: string; stderr: string; cmdline: string }> {
  checkInterrupted();
  const cmdline = ['bin/quarantine', ...args].join(' ');
  return new Promise((done, reject) => {
    const child = spawn(join(ROOT, 'bin', 'quarantine'), args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => {
      children.delete(child);
      if (interrupted) reject(new Interrupted('interrupted'));
      else done({ code: code ?? 1, stdout, stderr, cmdline });
    });
  });
}

/** Rows of one of the CLI's tables (columns are separated by two spaces or more). */
function parseTable(text: string): Array<Record<string, string>> {
  const lines = text.split('\n').filter((l) => l.trim() !== '');
  const header = (lines[0] ?? '').trim().split(/\s{2,}/);
  return lines.slice(1).map((line) => {
    const cells = line.trim().split(/\s{2,}/);
    return Object.fromEntries(header.map((h, i) => [h, cells[i] ?? '']));
  });
}

async function fileSha256(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest('hex');
}

/**
 * The operator's log goes to a file (JSON lines, as in production); its
 * warnings and errors also show up in the story, where a person sees them.
 */
function operatorLogger(file: string): { logger: Logger; close: () => void } {
  const fd = openSync(file, 'a', 0o600);
  const sink = {
    write(line: string) {
      writeSync(fd, line);
      try {
        const rec = JSON.parse(line) as { level?: number; msg?: string; err?: string };
        if ((rec.level ?? 0) >= 40) out.warn(`operator: ${rec.msg ?? ''}${rec.err === undefined ? '' : `: ${rec.err}`}`);
      } catch {
        // not JSON: the file has it anyway
      }
    },
  };
  const logger = pino({
    name: 'quarantine-operator', level: 'info',
    redact: { paths: ['*.password', '*.url', '*.keyring', '*.secret', 'password', 'url', 'keyring', 'secret'], censor: '***' },
  }, sink);
  return { logger, close: () => closeSync(fd) };
}

// --- the story --------------------------------------------------------------------------------

interface Vm extends Cast {
  server: NovaServer;
  address: string;
  diskSha256: string;
}

async function story(): Promise<void> {
  const env = {
    amqpUrl: need('QTEST_AMQP_URL'),
    vhost: process.env['QTEST_AMQP_VHOST'] ?? '',
    cephConf: need('QTEST_CEPH_CONF'),
    cephDir: process.env['QTEST_CEPH_DIR'] ?? '',
    cloudId: need('QTEST_CEPH_CLOUD_ID'),
    operatorId: need('QTEST_CEPH_OPERATOR_ID'),
    quarantinePool: need('QTEST_CEPH_QUARANTINE_POOL'),
    stateDir: need('QTEST_STATE_DIR'),
  };
  const dir = resolve(process.env['QUARANTINE_DEMO_DIR'] ?? join(ROOT, '.demo'));
  mkdirSync(dir, { recursive: true });
  process.chdir(ROOT);
  const dbPath = join(dir, 'ledger.db');
  if (existsSync(dbPath)) throw new StoryFailed(`${shown(dbPath)} exists: scripts/demo.sh starts every run on a fresh directory`);
  const dbUrl = `sqlite:${shown(dbPath)}`;

  // The configuration a site would write.
  const { manifests, secrets } = writeDemoSetup(dir, { amqpUrl: env.amqpUrl, cephConf: env.cephConf, operatorId: env.operatorId, quarantinePool: env.quarantinePool });
  const cephOpts = ['--manifests', shown(manifests), '--secrets', shown(secrets)];
  out.step(`Wrote the operator's configuration to ${shown(manifests)}/`);
  out.detail(`cloud.yaml   Cloud "${CLOUD}": OpenStack, exchanges nova + neutron, Ceph pool vms watched, quarantines in pool ${env.quarantinePool}`);
  out.detail(`policy.yaml  QuarantinePolicy "${POLICY}": capture mode trash, keep ${RETENTION}`);
  out.detail(`hold.yaml    QuarantineHold "${HOLD.namespace}/${HOLD.name}" (case ${HOLD.caseId}): everything of user ${HOLD.user}`);
  out.detail(`the broker's URL is a secret: ${shown(join(secrets, 'rabbit', 'url'))}`);

  // The operator, in this process, exactly as `quarantine run` starts it.
  const logFile = join(dir, 'operator.log');
  const log = operatorLogger(logFile);
  const ac = new AbortController();
  let ready!: () => void;
  const isReady = new Promise<void>((r) => { ready = r; });
  const run = runStandalone({ dbUrl, manifests, secretsDir: secrets, logger: log.logger, signal: ac.signal, onReady: () => ready() });
  run.catch(() => undefined);
  stops.push(async () => {
    ac.abort();
    await run.catch(() => undefined);
    log.close();
  });
  await Promise.race([isReady, run.then(() => { throw new StoryFailed('the operator stopped before it was ready'); })]);
  const ledger: LedgerDb = openLedgerDb(dbUrl);
  stops.push(() => ledger.close());
  const db = ledger.db;
  const operatorRbd = new RbdCli({ cephConf: env.cephConf, id: env.operatorId });
  const armed = await operatorRbd.getPoolConfig('vms', 'rbd_move_to_trash_on_remove');
  out.step('Started the operator standalone');
  out.detail(`ledger ${dbUrl}, log ${shown(logFile)}`);
  out.detail(`consuming exchanges nova and neutron of RabbitMQ vhost ${env.vhost || '(the demo\'s)'} on its own queue quarantine-operator.${CLOUD}`);
  out.detail(`armed the pool vms: rbd_move_to_trash_on_remove = ${armed ?? 'unset'} (a removed disk waits in the trash to be adopted)`);
  checkInterrupted();

  // The cloud: Nova and Neutron publishing on the demo's broker, Nova's disks in the demo's Ceph.
  const bus = await SimBus.connect(env.amqpUrl);
  stops.push(() => bus.close());
  const neutron = await NeutronSim.start({ bus, exchange: 'neutron', floatingPrefix: '188.185.194' });
  stops.push(() => neutron.stop());
  const { rbd, rbdTool } = cloudRbd({ cephConf: env.cephConf, id: env.cloudId });
  const nova = await NovaSim.start({
    bus, exchange: 'nova', format: 'both', rbd, rbdTool, neutron, computeHosts: ['compute-1', 'compute-2'],
    deleteGapMs: 800, destroyRetries: 3, destroyRetryIntervalMs: 500,
  });
  stops.push(() => nova.stop());
  const image = await nova.ensureImage(GLANCE_IMAGE, DISK_BYTES);
  out.step(`Uploaded the Glance image ${GLANCE_IMAGE} (${out.mib(image.sizeBytes)}) to Ceph as ${image.spec.pool}/${image.spec.image}@snap`);
  out.detail(`Nova (exchange nova) and Neutron (exchange neutron) of the simulated cloud publish to the same vhost; Nova uses cephx user client.${env.cloudId}`);
  await pause(400);

  // VMs come up.
  const boot = async (c: Cast): Promise<Vm> => {
    checkInterrupted();
    const server = await nova.boot({ image: GLANCE_IMAGE, name: c.name, user: c.user, project: c.project, host: c.host });
    const address = server.ports[0]?.address ?? '?';
    out.step(`Booted ${c.name} for ${c.user} (project ${c.project}) on ${c.host}`);
    out.detail(`id ${server.uuid}, fixed IP ${address}, root disk ${nova.rootDisk(server.uuid).pool}/${nova.rootDisk(server.uuid).image}`);
    const header = Buffer.from(`${c.name}: root filesystem of ${c.user}'s VM in project ${c.project}\n`);
    const diskSha256 = await nova.writeDisk(nova.rootDisk(server.uuid), Buffer.concat([header, randomBytes(image.sizeBytes - header.length)]));
    out.detail(`${c.user} wrote ${out.mib(image.sizeBytes)} to it: sha256 ${diskSha256}`);
    const rec = await until(`the ledger to record ${c.name}`, async () =>
      db.selectFrom('instances').select(['name', 'user_id', 'host']).where('cloud', '=', CLOUD).where('instance_id', '=', server.uuid).executeTakeFirst());
    const fixed = await until(`the ledger to record ${c.name}'s address`, async () =>
      db.selectFrom('address_intervals').select(['address', 'valid_from']).where('cloud', '=', CLOUD).where('instance_id', '=', server.uuid).where('kind', '=', 'fixed').executeTakeFirst());
    out.event('operator', `recorded ${rec.name ?? c.name} (user ${rec.user_id ?? '?'}, host ${rec.host ?? '?'}) holding ${fixed.address} since ${out.hhmmss(new Date(fixed.valid_from))}`);
    return { ...c, server, address, diskSha256 };
  };
  const alice = await boot(ALICE_VM);
  const bob = await boot(BOB_VM);
  await boot(CAROL_VM);
  await pause(500);

  // A floating IP goes to alice's VM...
  const openInterval = (instanceId: string) => db.selectFrom('address_intervals').select(['valid_from', 'valid_to'])
    .where('cloud', '=', CLOUD).where('address', '=', FLOATING_IP).where('instance_id', '=', instanceId).orderBy('valid_from', 'desc').executeTakeFirst();
  const alicePort = alice.server.ports[0]?.portId ?? '';
  const bobPort = bob.server.ports[0]?.portId ?? '';
  const fip = await neutron.createFloatingIp({ project: 'hep', address: FLOATING_IP, portId: alicePort, actor: { userId: 'alice', projectId: 'hep' } });
  out.step(`Associated the floating IP ${FLOATING_IP} with ${alice.name} (alice)`);
  const aliceHeld = await until('the ledger to record the association', async () => {
    const r = await openInterval(alice.server.uuid);
    return r !== undefined && r.valid_to === null ? r : undefined;
  });
  out.event('operator', `recorded ${FLOATING_IP} -> ${alice.name} (${alice.address}) from ${out.hhmmss(new Date(aliceHeld.valid_from))}`);
  // The time an abuse report will name later: a whole second while alice's VM had the address.
  const reportedAt = new Date(Math.ceil((aliceHeld.valid_from + 1) / 1000) * 1000);
  out.detail(`${alice.name} sends traffic from ${FLOATING_IP} (an external site will report it, at ${out.hhmmss(reportedAt)})`);
  await until('time to pass', async () => (Date.now() > reportedAt.getTime() + 2000 ? true : undefined), 10_000);

  // ...then moves to bob's.
  await neutron.associateFloatingIp(fip.id, bobPort, { actor: { userId: 'bob', projectId: 'hep' } });
  out.step(`Moved ${FLOATING_IP} from ${alice.name} to ${bob.name} (bob, same project)`);
  const bobHeld = await until('the ledger to record the move', async () => {
    const a = await openInterval(alice.server.uuid);
    const b = await openInterval(bob.server.uuid);
    return a?.valid_to !== null && a?.valid_to !== undefined && b !== undefined && b.valid_to === null ? { a, b } : undefined;
  });
  out.event('operator', `closed ${alice.name}'s interval at ${out.hhmmss(new Date(bobHeld.a.valid_to ?? 0))}; ${FLOATING_IP} -> ${bob.name} (${bob.address}) from ${out.hhmmss(new Date(bobHeld.b.valid_from))}`);
  const laterAt = new Date(Math.ceil((bobHeld.b.valid_from + 1) / 1000) * 1000);
  await until('time to pass', async () => (Date.now() > laterAt.getTime() + 1500 ? true : undefined), 10_000);

  // Deletions: what Nova and Neutron do, as they do it, then what the operator made of it.
  const narrate = (vm: Vm) => nova.timeline.on((s: SimStep) => {
    if (s.instance !== vm.server.uuid && !(s.kind === 'fip-silently-disassociated' && s.detail['address'] === FLOATING_IP)) return;
    if (s.kind === 'notification' && s.source === 'nova' && /^instance\.(delete\.(start|end)|shutdown\.start)$/.test(s.eventType ?? '')) out.event('nova', `published ${s.eventType}`);
    else if (s.kind === 'disk-removed') out.event('nova', `removed ${s.image ?? '?'} (the pool's trash option keeps it, out of Nova's sight)`);
    else if (s.kind === 'fip-silently-disassociated') out.event('neutron', `released ${FLOATING_IP} with the port, without a floatingip notification`);
    else if (s.kind === 'port-deleted') out.event('neutron', `deleted port ${String(s.detail['portId'] ?? '?')}`);
  });
  const capture = async (vm: Vm, by: string): Promise<QuarantineRow> => {
    out.step(`Deleting ${vm.name}: ${by} asked Nova to`);
    const off = narrate(vm);
    let removedAt = 0;
    const offRemoved = nova.timeline.on((s) => { if (s.instance === vm.server.uuid && s.kind === 'disk-removed') removedAt = s.t; });
    try {
      const op = await nova.delete(vm.server.uuid, { user: by, project: vm.project });
      await op.done;
    } finally {
      off();
      offRemoved();
    }
    checkInterrupted();
    const q = await until(`a quarantine of ${vm.name}`, async () =>
      db.selectFrom('quarantines').selectAll().where('cloud', '=', CLOUD).where('instance_id', '=', vm.server.uuid)
        .where('state', 'in', ['quarantined', 'failed']).executeTakeFirst());
    if (q.state !== 'quarantined') throw new StoryFailed(`the capture of ${vm.name} failed: ${q.failure ?? '?'}`);
    const after = removedAt > 0 ? ` ${((performance.now() - removedAt) / 1000).toFixed(1)} s after Nova removed it` : '';
    out.event('operator', `adopted the trashed disk: quarantine ${q.id} = ${q.location_pool}/${q.location_image} (${out.mib(q.bytes ?? 0)})${after}`);
    const held = (await holdsCovering(db, [q], new Date())).get(q.id) ?? [];
    out.event('operator', `expires ${q.expires_at === null ? 'never' : new Date(q.expires_at).toISOString()}${held.length > 0 ? `, but held by ${held.join(', ')}` : ''}`);
    return q;
  };
  const aliceQ = await capture(alice, 'alice');
  out.detail(`client.${env.cloudId} (the cloud's cephx user) has no caps on pool ${aliceQ.location_pool}: the cloud cannot delete the evidence`);
  await pause(800);
  const bobQ = await capture(bob, 'bob');
  const bobHolds = (await holdsCovering(db, [bobQ], new Date())).get(bobQ.id) ?? [];
  if (!bobHolds.includes(`${HOLD.namespace}/${HOLD.name}`)) throw new StoryFailed(`${bob.name}'s quarantine ${bobQ.id} is not held by ${HOLD.namespace}/${HOLD.name}`);
  await pause(500);

  // The investigator's questions, through the command line.
  const ask = async (at: Date, expected: Vm, other: Vm, why: string): Promise<void> => {
    out.step(`Asked who had ${FLOATING_IP} at ${out.hhmmss(at)} (${why})`);
    const r = await quarantineCli(['trace', 'ip', FLOATING_IP, '--at', out.isoLocal(at), '--db', dbUrl]);
    out.command(r.cmdline, r.stdout + r.stderr);
    // The default table (CLOUD INSTANCE NAME USER FROM TO): a floating address has floating holders only.
    const rows = parseTable(r.stdout);
    const right = rows.length === 1 && rows[0]?.['INSTANCE'] === expected.server.uuid && rows[0]['USER'] === expected.user && rows[0]['NAME'] === expected.name;
    if (r.code !== 0 || !right || rows.some((row) => row['INSTANCE'] === other.server.uuid)) {
      out.fail(`expected ${expected.name} (${expected.server.uuid}) of ${expected.user}, and only it`);
      throw new StoryFailed(`the trace at ${out.isoLocal(at)} did not name ${expected.name} of ${expected.user}`);
    }
    out.ok(`answer: ${expected.name} (${expected.server.uuid}) of user ${expected.user}, project ${expected.project}, deleted since, disk quarantined`);
  };
  await ask(reportedAt, alice, bob, 'the time of the abuse report');
  await ask(laterAt, bob, alice, 'after the move');

  out.step('Listed the quarantines');
  const ls = await quarantineCli(['images', 'ls', '--db', dbUrl]);
  out.command(ls.cmdline, ls.stdout + ls.stderr);
  const listed = parseTable(ls.stdout);
  const heldRow = listed.find((row) => row['ID'] === bobQ.id);
  if (ls.code !== 0 || !listed.some((row) => row['ID'] === aliceQ.id) || heldRow?.['HELD'] !== `${HOLD.namespace}/${HOLD.name}`) {
    throw new StoryFailed('quarantine images ls does not show both quarantines with the hold on bob\'s');
  }
  out.detail(`${bob.name}'s quarantine stays past ${RETENTION} while the hold stands; ${alice.name}'s expires then`);

  out.step('Listed the legal holds');
  const holds = await quarantineCli(['hold', 'ls', '--db', dbUrl]);
  out.command(holds.cmdline, holds.stdout + holds.stderr);

  // Export the disk of the VM the trace named, and check it is what alice's VM held.
  const file = join(dir, `${alice.name}.raw`);
  out.step(`Exported ${alice.name}'s quarantined disk with its digest`);
  const ex = await quarantineCli(['export', aliceQ.id, '--file', shown(file), '--case', HOLD.caseId, ...cephOpts, '--db', dbUrl]);
  out.command(ex.cmdline, ex.stdout + ex.stderr);
  const reported = /sha256 ([0-9a-f]{64})/.exec(ex.stderr)?.[1];
  if (ex.code !== 0 || reported === undefined) throw new StoryFailed(`quarantine export failed (exit ${ex.code})`);
  const onDisk = await fileSha256(file);
  out.detail(`sha256 of the disk before deletion   ${alice.diskSha256}`);
  out.detail(`sha256 reported by the export        ${reported}`);
  out.detail(`sha256 of ${shown(file).padEnd(26)} ${onDisk}`);
  if (reported !== alice.diskSha256 || onDisk !== alice.diskSha256) {
    out.fail('the exported disk differs from what the VM held');
    throw new StoryFailed('digest mismatch');
  }
  out.ok(`${out.green('MATCH')}: the export is exactly the disk alice's VM had when she deleted it`);

  await stopAll();
  out.step('Stopped the operator and the simulated cloud; the data stays');
  out.detail(`${shown(dir)}/: ledger.db, manifests/, secrets/, operator.log, ${alice.name}.raw`);
  out.detail(`still running for you: Ceph cluster ${env.cephDir || env.cephConf} and RabbitMQ vhost ${env.vhost || '?'}`);

  const q = 'bin/quarantine';
  const dbArg = `--db ${dbUrl}`;
  const cephArgs = cephOpts.join(' ');
  out.heading('Explore further (from the repository root):');
  const lines: Array<[string, string]> = [
    [`${q} images ls ${dbArg}`, 'the quarantines'],
    [`${q} images show ${bobQ.id} ${dbArg}`, 'one with its provenance'],
    [`${q} trace ip ${FLOATING_IP} --at ${out.isoLocal(reportedAt)} ${dbArg}`, 'who had the address then'],
    [`${q} trace instance ${alice.server.uuid} ${dbArg}`, 'a VM\'s life, addresses and notifications'],
    [`${q} verify ${aliceQ.id} ${cephArgs} ${dbArg}`, 're-read and compare the digest'],
    [`${q} hold ls ${dbArg}`, 'the legal holds'],
    [`${q} audit verify ${dbArg}`, 'the hash-chained audit trail'],
    [`${q} run --manifests ${shown(manifests)} --secrets ${shown(secrets)} ${dbArg}`, 'the operator again (Ctrl-C stops it)'],
  ];
  for (const [cmd, what] of lines) {
    out.plain(`  ${out.dim(`# ${what}`)}`);
    out.plain(`  ${cmd}`);
  }
  out.heading('When done, stop the demo\'s Ceph cluster and RabbitMQ vhost:');
  out.plain(`  QTEST_STATE_DIR=${shown(env.stateDir)} bash test/env/down.sh`);
}

try {
  await story();
  process.exit(0);
} catch (err) {
  if (interrupted || err instanceof Interrupted) {
    // onSignal is stopping everything and exits with 130.
    await new Promise(() => undefined);
  }
  out.blank();
  out.step(out.red(`The demo failed: ${err instanceof Error ? err.message : String(err)}`));
  if (!(err instanceof StoryFailed) && err instanceof Error && err.stack !== undefined) out.plain(err.stack);
  await stopAll();
  process.exit(1);
}
