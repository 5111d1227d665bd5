// An OpenNebula stand-in (KVM hosts, Ceph image and system datastores) that
// acts on the real Ceph cluster and reports VM state changes the way a
// production front-end set up by hooks/opennebula does: each transition that
// one of hooks/opennebula/templates/*.hook selects runs the project's real
// publisher (`sh quarantine-publish`, ARGUMENTS_STDIN = YES: "<base64 of the
// VM document> <hook name>" on stdin), asynchronously to the state machine,
// as the HEM does. What it models, from notifications.md §7:
// - disks: `<pool>/one-<img>-<vm>-<disk>` cloned from `one-<img>@snap`
//   (created and protected on first use), volatile `one-sys-<vm>-<disk>`,
//   persistent images used in place;
// - terminate: ACTIVE/SHUTDOWN → ACTIVE/EPILOG (the TM `delete` of every
//   non-persistent disk, command by command as tm_mad/ceph/delete and
//   ceph_utils.sh `rbd_rm_r` run them, with their real outcome on Ceph) →
//   DONE; straight to EPILOG from POWEROFF; recover --delete through
//   CLEANUP_DELETE with DONE at once and the removal behind it;
// - CEPH_TRASH: the top image moved to the trash, snapshots untouched;
// - NIC hotplug (HOTPLUG_NIC / HOTPLUG_NIC_POWEROFF with ATTACH = YES; the
//   current history record closed with the action and the next one opened, as
//   close_cp_history does), disk snapshots (protected `<disk>@<id>`, the same
//   history step), power off/resume.
import { spawn } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as amqp from 'amqplib';
import type { BlockStore, ImageSpec, SnapshotSpec } from '../../operator/domain/block-store.ts';
import { ensureExchange } from '../../operator/intake/amqp.ts';
import { vmLcmStateCode, vmLcmStateName, vmStateCode, vmStateName } from '../../operator/domain/opennebula-states.ts';
import { exportSha256, importContent, imageExists, randomContent, sha256, specText } from './disks.ts';
import type { RbdTool } from './rbd-tool.ts';
import { SimTimeline, systemClock, type SimClock, type SimStep } from './timeline.ts';

const REPO = fileURLToPath(new URL('../../', import.meta.url));

export interface OneSimOptions {
  /** The broker the hook publisher sends to (QUARANTINE_AMQP_URL). */
  amqpUrl: string;
  exchange?: string;
  routingKey?: string;
  /** Create the durable topic exchange if missing, standing in for the operator (default true). */
  declareExchange?: boolean;
  /** The cloud's view of Ceph. */
  rbd: BlockStore;
  rbdTool: RbdTool;
  /** POOL_NAME of the image and system datastores. Default 'vms'. */
  pool?: string;
  /** The datastores' CEPH_TRASH (copied into each DISK; a VM request may override it). */
  cephTrash?: boolean;
  /** Default: the repository's hooks/opennebula/quarantine-publish. */
  publisherPath?: string;
  /** Default: the repository's hooks/opennebula/templates. */
  templatesDir?: string;
  /** Only these hook names (from the templates' ARGUMENTS); default every template. */
  hooks?: string[];
  /** The publisher's spool; default a fresh temporary directory removed by stop(). */
  spoolDir?: string;
  /** Extra environment for the publisher (e.g. QUARANTINE_PUBLISH_TIMEOUT). */
  hookEnv?: Record<string, string>;
  /**
   * Wait for each hook run before the VM moves on (deterministic order for
   * tests); default false, as the HEM runs hooks asynchronously to oned.
   */
  waitForHooks?: boolean;
  /** Time the guest takes in ACTIVE/SHUTDOWN (ACPI) before EPILOG. Default 300; terminate --hard: 0. */
  shutdownMs?: number;
  /** Time in ACTIVE/EPILOG before the TM starts deleting. Default 0. */
  epilogDelayMs?: number;
  hostName?: string;
  hostId?: number;
  /** Shown in the DISK attributes (the datastore's Ceph settings). */
  cephUser?: string;
  cephHost?: string;
  clock?: SimClock;
  timeline?: SimTimeline;
  /** First VM id handed out. Default 100. */
  firstVmId?: number;
}

export type OneDiskRequest =
  | { imageId: number; persistent?: boolean; cephTrash?: boolean }
  | { volatile: true; sizeBytes: number; type?: 'fs' | 'swap'; cephTrash?: boolean };

export interface OneNicRequest {
  ip: string;
  mac?: string;
  network?: string;
  networkId?: number;
  ip6?: string;
}

export interface OneVmRequest {
  id?: number;
  name?: string;
  uid?: number;
  uname?: string;
  gid?: number;
  gname?: string;
  disks: OneDiskRequest[];
  nics?: OneNicRequest[];
  /** Per-VM CEPH_TRASH (the datastore setting otherwise). */
  cephTrash?: boolean;
}

/** Who asks (`HISTORY/UID`, `GID`, `REQUEST_ID`). */
export interface OneRequester {
  uid?: number;
  gid?: number;
  requestId?: number;
}

export interface OneImage {
  id: number;
  name: string;
  spec: ImageSpec;
  sizeBytes: number;
  sha256: string;
}

interface DiskRecord {
  diskId: number;
  imageId?: number;
  persistent: boolean;
  volatile: boolean;
  sizeBytes: number;
  type: string;
  cephTrash: boolean;
  target: string;
  snapshots: Array<{ id: number; name: string; date: number }>;
}

interface NicRecord {
  nicId: number;
  ip: string;
  ip6?: string | undefined;
  mac: string;
  network: string;
  networkId: number;
  attach: boolean;
}

interface HistoryRecord {
  seq: number;
  hostname: string;
  hid: number;
  stime: number;
  etime: number;
  pstime: number;
  petime: number;
  rstime: number;
  retime: number;
  estime: number;
  eetime: number;
  action: number;
  uid: number;
  gid: number;
  requestId: number;
}

interface VmRecord {
  id: number;
  name: string;
  uid: number;
  uname: string;
  gid: number;
  gname: string;
  state: number;
  lcmState: number;
  prevState: number;
  prevLcmState: number;
  stime: number;
  etime: number;
  deployId: string;
  disks: DiskRecord[];
  nics: NicRecord[];
  history: HistoryRecord[];
  nextNicId: number;
  nextSnapshotId: Map<number, number>;
}

export interface OneVmView {
  id: number;
  name: string;
  state: number;
  lcmState: number;
  stateName: string;
  lcmStateName: string;
  /** The RBD image of each disk (persistent disks: the image itself). */
  disks: Array<{ diskId: number; image: ImageSpec; persistent: boolean; volatile: boolean; cephTrash: boolean }>;
  nics: Array<{ nicId: number; ip: string; mac: string; network: string }>;
}

interface HookTemplate {
  hook: string;
  on: string;
  state?: string;
  lcmState?: string;
}

export interface HookRun {
  hook: string;
  vmId: number;
  state: string;
  lcmState: string;
  exitCode: number | null;
  stdout: string;
  stderr: string;
  /** The id the publisher gives the message: one-<vm>-<hook>-<sha256 of the body>. */
  messageId: string;
  /** The VM document sent. */
  xml: string;
}

const ACTION = { none: 0, delete: 13, resume: 11, poweroff: 19, poweroffHard: 20, nicAttach: 23, nicDetach: 24, diskSnapshotCreate: 25, terminate: 27, terminateHard: 28, deploy: 30 } as const;

function esc(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function el(name: string, value: string | number | undefined | null): string {
  return value === undefined || value === null || value === '' ? `<${name}/>` : `<${name}>${esc(String(value))}</${name}>`;
}

/** OpenNebula's default MAC for an IPv4 lease: 02:00 then the address's octets. */
function macFor(ip: string): string {
  const octets = ip.split('.').map((o) => Number(o).toString(16).padStart(2, '0'));
  return octets.length === 4 ? `02:00:${octets.join(':')}` : `02:00:${randomUUID().slice(0, 8).match(/../g)?.join(':') ?? '00:00:00:00'}`;
}

/** Parses the KEY = "value" lines of a hook template. */
function parseTemplate(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^\s*([A-Z_]+)\s*=\s*"(.*)"\s*$/.exec(line);
    if (m !== null && m[1] !== undefined) out[m[1]] = m[2] ?? '';
  }
  return out;
}

/** Which (STATE, LCM_STATE) an `ON` value selects (HookStateVM shortcuts). */
function matches(t: HookTemplate, state: string, lcm: string): boolean {
  switch (t.on) {
    case 'CUSTOM':
      return t.state === state && (t.lcmState === undefined || t.lcmState === lcm);
    case 'DONE':
      return state === 'DONE';
    case 'RUNNING':
      return state === 'ACTIVE' && lcm === 'RUNNING';
    case 'PROLOG':
      return state === 'ACTIVE' && lcm === 'PROLOG';
    case 'SHUTDOWN':
      return state === 'ACTIVE' && lcm === 'EPILOG';
    case 'STOP':
      return state === 'STOPPED';
    case 'UNKNOWN':
      return state === 'ACTIVE' && lcm === 'UNKNOWN';
    default:
      return false;
  }
}

class Aborted extends Error {}

export class OneSim {
  readonly timeline: SimTimeline;
  readonly pool: string;
  readonly exchange: string;
  readonly routingKey: string;
  readonly #o: OneSimOptions;
  readonly #rbd: BlockStore;
  readonly #tool: RbdTool;
  readonly #clock: SimClock;
  readonly #vms = new Map<number, VmRecord>();
  readonly #images = new Map<number, OneImage>();
  readonly #hooks: HookTemplate[];
  readonly #spool: string;
  readonly #config: string;
  readonly #hookRuns = new Set<Promise<void>>();
  readonly #work = new Set<Promise<void>>();
  readonly #abort = new AbortController();
  readonly runs: HookRun[] = [];
  #nextVmId: number;

  readonly #workDir: string;

  private constructor(o: OneSimOptions, hooks: HookTemplate[], work: string, spool: string, config: string) {
    this.#o = o;
    this.#rbd = o.rbd;
    this.#tool = o.rbdTool;
    this.#clock = o.clock ?? systemClock;
    this.timeline = o.timeline ?? new SimTimeline(this.#clock);
    this.pool = o.pool ?? 'vms';
    this.exchange = o.exchange ?? 'opennebula';
    this.routingKey = o.routingKey ?? 'notifications.info';
    this.#hooks = hooks;
    this.#workDir = work;
    this.#spool = spool;
    this.#config = config;
    this.#nextVmId = o.firstVmId ?? 100;
  }

  static async start(options: OneSimOptions): Promise<OneSim> {
    const dir = options.templatesDir ?? join(REPO, 'hooks/opennebula/templates');
    const hooks: HookTemplate[] = [];
    for (const file of (await readdir(dir)).filter((f) => f.endsWith('.hook')).sort()) {
      const t = parseTemplate(await readFile(join(dir, file), 'utf8'));
      const hook = (t['ARGUMENTS'] ?? '').split(/\s+/)[1];
      if (t['TYPE'] !== 'state' || t['RESOURCE'] !== 'VM' || hook === undefined || t['ON'] === undefined) continue;
      if (options.hooks !== undefined && !options.hooks.includes(hook)) continue;
      hooks.push({ hook, on: t['ON'], ...(t['STATE'] === undefined ? {} : { state: t['STATE'] }), ...(t['LCM_STATE'] === undefined ? {} : { lcmState: t['LCM_STATE'] }) });
    }
    const work = await mkdtemp(join(tmpdir(), 'qop-onesim-'));
    const spool = options.spoolDir ?? join(work, 'spool');
    // An empty settings file, so that a /etc/one/quarantine-publish.conf on the machine cannot interfere.
    const config = join(work, 'quarantine-publish.conf');
    await writeFile(config, '# settings come from the environment\n', { mode: 0o600 });
    if (options.declareExchange ?? true) {
      const model = await amqp.connect(options.amqpUrl);
      try {
        await ensureExchange(model, { name: options.exchange ?? 'opennebula', type: 'topic', durable: true, autoDelete: false });
      } finally {
        await model.close().catch(() => undefined);
      }
    }
    return new OneSim(options, hooks, work, spool, config);
  }

  /** The hook names in effect and the transitions they fire on. */
  get hookTemplates(): ReadonlyArray<Readonly<HookTemplate>> {
    return this.#hooks;
  }

  /** Waits for every started hook run and background TM delete, then removes the temporary files (and the spool unless given). */
  async stop(): Promise<void> {
    this.#abort.abort();
    await this.settled();
    await rm(this.#workDir, { recursive: true, force: true });
  }

  /** Resolves when no hook run and no background TM work is left. */
  async settled(): Promise<void> {
    while (this.#hookRuns.size + this.#work.size > 0) await Promise.allSettled([...this.#hookRuns, ...this.#work]);
  }

  /** Resolves when every hook started so far has finished. */
  async hooksSettled(): Promise<void> {
    while (this.#hookRuns.size > 0) await Promise.allSettled([...this.#hookRuns]);
  }

  // --- images -----------------------------------------------------------------------------

  /**
   * An image in the Ceph image datastore: `<pool>/one-<id>` with the content
   * (or that many random bytes). The `@snap` clones start from is made by the
   * first clone, as the TM does.
   */
  async ensureImage(imageId: number, content: Buffer | number, name?: string): Promise<OneImage> {
    const known = this.#images.get(imageId);
    if (known !== undefined) return known;
    const data = typeof content === 'number' ? randomContent(content) : content;
    const spec: ImageSpec = { pool: this.pool, image: `one-${imageId}` };
    let image: OneImage = { id: imageId, name: name ?? `image-${imageId}`, spec, sizeBytes: data.length, sha256: sha256(data) };
    if (await imageExists(this.#rbd, spec)) {
      image = { ...image, sizeBytes: (await this.#rbd.info(spec)).sizeBytes, sha256: await exportSha256(this.#rbd, spec) };
    } else {
      await importContent(this.#rbd, spec, data);
      this.timeline.record({ source: 'opennebula', kind: 'disk-created', image: specText(spec), detail: { imageId, sizeBytes: data.length } });
    }
    this.#images.set(imageId, image);
    return image;
  }

  /** `oneimage delete`: the base snapshot (if unused) and the image. */
  async deleteImage(imageId: number): Promise<void> {
    const spec: ImageSpec = { pool: this.pool, image: `one-${imageId}` };
    const snap: SnapshotSpec = { ...spec, snapshot: 'snap' };
    if ((await this.#rbd.listSnapshots(spec)).some((s) => s.name === 'snap')) {
      await this.#tool.unprotectSnapshot(snap).catch(() => undefined);
      await this.#rbd.removeSnapshot(snap);
    }
    await this.#rbd.removeImage(spec);
    this.#images.delete(imageId);
  }

  // --- reading ----------------------------------------------------------------------------------

  vm(id: number): OneVmView | undefined {
    const r = this.#vms.get(id);
    if (r === undefined) return undefined;
    return {
      id: r.id, name: r.name, state: r.state, lcmState: r.lcmState,
      stateName: vmStateName(r.state) ?? String(r.state), lcmStateName: vmLcmStateName(r.lcmState) ?? String(r.lcmState),
      disks: r.disks.map((d) => ({ diskId: d.diskId, image: this.diskImage(r.id, d.diskId), persistent: d.persistent, volatile: d.volatile, cephTrash: d.cephTrash })),
      nics: r.nics.map((n) => ({ nicId: n.nicId, ip: n.ip, mac: n.mac, network: n.network })),
    };
  }

  /** Ids of every VM oned knows, DONE ones included, ascending. */
  vmIds(): number[] {
    return [...this.#vms.keys()].sort((a, b) => a - b);
  }

  /** The VM document (`onevm show -x`), as a hook's $TEMPLATE would carry it now. */
  vmXml(id: number): string {
    return this.#xml(this.#vm(id));
  }

  /** The RBD image behind a disk. */
  diskImage(vmId: number, diskId: number): ImageSpec {
    const r = this.#vm(vmId);
    const d = r.disks.find((x) => x.diskId === diskId);
    if (d === undefined) throw new Error(`VM ${vmId} has no disk ${diskId}`);
    if (d.volatile) return { pool: this.pool, image: `one-sys-${vmId}-${diskId}` };
    if (d.persistent) return { pool: this.pool, image: `one-${d.imageId}` };
    return { pool: this.pool, image: `one-${d.imageId}-${vmId}-${diskId}` };
  }

  async writeDisk(disk: ImageSpec, content: Buffer): Promise<string> {
    await this.#tool.write(disk, content);
    const digest = await exportSha256(this.#rbd, disk);
    this.timeline.record({ source: 'opennebula', kind: 'disk-written', image: specText(disk), detail: { bytes: content.length, sha256: digest } });
    return digest;
  }

  diskSha256(disk: ImageSpec | SnapshotSpec): Promise<string> {
    return exportSha256(this.#rbd, disk);
  }

  // --- life cycle ---------------------------------------------------------------------------------

  /** `onevm create` run to RUNNING: PENDING → PROLOG (disks made) → BOOT → RUNNING. */
  async create(req: OneVmRequest): Promise<OneVmView> {
    const id = req.id ?? this.#nextVmId++;
    if (this.#vms.has(id)) throw new Error(`VM ${id} exists`);
    const trash = req.cephTrash ?? this.#o.cephTrash ?? false;
    const disks: DiskRecord[] = req.disks.map((d, i) => {
      const target = `vd${'abcdefghij'[i] ?? 'z'}`;
      if ('volatile' in d) {
        return { diskId: i, persistent: false, volatile: true, sizeBytes: d.sizeBytes, type: d.type ?? 'fs', cephTrash: d.cephTrash ?? trash, target, snapshots: [] };
      }
      const image = this.#images.get(d.imageId);
      if (image === undefined) throw new Error(`image ${d.imageId} unknown: call ensureImage first`);
      return { diskId: i, imageId: d.imageId, persistent: d.persistent ?? false, volatile: false, sizeBytes: image.sizeBytes, type: 'RBD', cephTrash: d.cephTrash ?? trash, target, snapshots: [] };
    });
    const nics: NicRecord[] = (req.nics ?? []).map((n, i) => ({
      nicId: i, ip: n.ip, ip6: n.ip6, mac: n.mac ?? macFor(n.ip), network: n.network ?? 'public', networkId: n.networkId ?? 0, attach: false,
    }));
    const now = this.#now();
    const r: VmRecord = {
      id, name: req.name ?? `vm-${id}`, uid: req.uid ?? 0, uname: req.uname ?? 'oneadmin', gid: req.gid ?? 0, gname: req.gname ?? 'oneadmin',
      state: 1, lcmState: 0, prevState: 1, prevLcmState: 0, stime: now, etime: 0, deployId: '',
      disks, nics, history: [], nextNicId: nics.length, nextSnapshotId: new Map(),
    };
    this.#vms.set(id, r);
    await this.#transition(r, 'PENDING', 'LCM_INIT');
    r.history.push({
      seq: 0, hostname: this.#o.hostName ?? 'kvm-1', hid: this.#o.hostId ?? 0, stime: now, etime: 0, pstime: now, petime: 0,
      rstime: 0, retime: 0, estime: 0, eetime: 0, action: ACTION.none, uid: -1, gid: -1, requestId: -1,
    });
    await this.#transition(r, 'ACTIVE', 'PROLOG');
    for (const d of r.disks) await this.#tmCreate(r, d);
    this.#lastHistory(r).petime = this.#now();
    await this.#transition(r, 'ACTIVE', 'BOOT');
    r.deployId = randomUUID();
    this.#lastHistory(r).rstime = this.#now();
    await this.#transition(r, 'ACTIVE', 'RUNNING');
    return this.vm(id) as OneVmView;
  }

  /**
   * `onevm terminate [--hard]`. From RUNNING: SHUTDOWN, then EPILOG (disks
   * deleted), then DONE; from POWEROFF straight to EPILOG. A TM failure leaves
   * the VM in EPILOG_FAILURE. Resolves when the VM is DONE (or failed).
   */
  async terminate(id: number, options: { hard?: boolean; by?: OneRequester } = {}): Promise<void> {
    const r = this.#vm(id);
    this.#setAction(r, options.hard === true ? ACTION.terminateHard : ACTION.terminate, options.by);
    if (r.state === 3 && r.lcmState === 3) {
      await this.#transition(r, 'ACTIVE', 'SHUTDOWN');
      await this.#sleep(options.hard === true ? 0 : this.#o.shutdownMs ?? 300);
    } else if (r.state !== 8 && r.state !== 5) {
      throw new Error(`VM ${id} cannot be terminated from ${vmStateName(r.state)}/${vmLcmStateName(r.lcmState)} here`);
    }
    const h = this.#lastHistory(r);
    h.retime = this.#now();
    h.estime = this.#now();
    await this.#transition(r, 'ACTIVE', 'EPILOG');
    await this.#sleep(this.#o.epilogDelayMs ?? 0);
    const ok = await this.#tmEpilog(r);
    h.eetime = this.#now();
    if (!ok) {
      await this.#transition(r, 'ACTIVE', 'EPILOG_FAILURE');
      return;
    }
    h.etime = this.#now();
    r.etime = this.#now();
    await this.#transition(r, 'DONE', 'LCM_INIT');
  }

  /**
   * `onevm recover --delete`: ACTIVE/CLEANUP_DELETE, DONE at once, the TM
   * delete still running behind it. Resolves at DONE; `settled()` waits for
   * the removal.
   */
  async recoverDelete(id: number, options: { by?: OneRequester } = {}): Promise<void> {
    const r = this.#vm(id);
    this.#setAction(r, ACTION.delete, options.by);
    await this.#transition(r, 'ACTIVE', 'CLEANUP_DELETE');
    const removal = this.#tmEpilog(r).then(() => undefined, () => undefined);
    const held = removal.finally(() => this.#work.delete(held));
    this.#work.add(held);
    const h = this.#lastHistory(r);
    h.etime = this.#now();
    r.etime = this.#now();
    await this.#transition(r, 'DONE', 'LCM_INIT');
  }

  /** `onevm poweroff [--hard]`: SHUTDOWN_POWEROFF → POWEROFF. */
  async poweroff(id: number, options: { hard?: boolean; by?: OneRequester } = {}): Promise<void> {
    const r = this.#vm(id);
    this.#setAction(r, options.hard === true ? ACTION.poweroffHard : ACTION.poweroff, options.by);
    await this.#transition(r, 'ACTIVE', 'SHUTDOWN_POWEROFF');
    await this.#sleep(options.hard === true ? 0 : this.#o.shutdownMs ?? 300);
    await this.#transition(r, 'POWEROFF', 'LCM_INIT');
  }

  /** `onevm resume` of a powered-off VM: BOOT_POWEROFF → RUNNING. */
  async resume(id: number, options: { by?: OneRequester } = {}): Promise<void> {
    const r = this.#vm(id);
    this.#setAction(r, ACTION.resume, options.by);
    await this.#transition(r, 'ACTIVE', 'BOOT_POWEROFF');
    await this.#transition(r, 'ACTIVE', 'RUNNING');
  }

  /**
   * `onevm nic-attach`. Running: HOTPLUG_NIC (the new NIC with ATTACH = YES)
   * then RUNNING. Powered off: no state change with KVM (`coldAttachState`
   * false, the default); with a driver that needs it, HOTPLUG_NIC_POWEROFF.
   */
  async attachNic(id: number, nic: OneNicRequest, options: { by?: OneRequester; coldAttachState?: boolean } = {}): Promise<number> {
    const r = this.#vm(id);
    const rec: NicRecord = { nicId: r.nextNicId++, ip: nic.ip, ip6: nic.ip6, mac: nic.mac ?? macFor(nic.ip), network: nic.network ?? 'public', networkId: nic.networkId ?? 0, attach: true };
    this.#closeCpHistory(r, ACTION.nicAttach, options.by);
    r.nics.push(rec);
    await this.#hotplug(r, options.coldAttachState === true);
    return rec.nicId;
  }

  /** `onevm nic-detach`: like attach, the NIC still listed with ATTACH = YES during the hotplug. */
  async detachNic(id: number, nicId: number, options: { by?: OneRequester; coldAttachState?: boolean } = {}): Promise<void> {
    const r = this.#vm(id);
    const nic = r.nics.find((n) => n.nicId === nicId);
    if (nic === undefined) throw new Error(`VM ${id} has no NIC ${nicId}`);
    this.#closeCpHistory(r, ACTION.nicDetach, options.by);
    nic.attach = true;
    await this.#hotplug(r, options.coldAttachState === true, () => {
      r.nics = r.nics.filter((n) => n !== nic);
    });
  }

  async #hotplug(r: VmRecord, coldAttachState: boolean, beforeReturn?: () => void): Promise<void> {
    if (r.state === 3 && r.lcmState === 3) {
      await this.#transition(r, 'ACTIVE', 'HOTPLUG_NIC');
      beforeReturn?.();
      for (const n of r.nics) n.attach = false;
      await this.#transition(r, 'ACTIVE', 'RUNNING');
    } else if (r.state === 8) {
      if (coldAttachState) {
        await this.#transition(r, 'ACTIVE', 'HOTPLUG_NIC_POWEROFF');
        beforeReturn?.();
        for (const n of r.nics) n.attach = false;
        await this.#transition(r, 'POWEROFF', 'LCM_INIT');
      } else {
        beforeReturn?.();
        for (const n of r.nics) n.attach = false;
      }
    } else {
      throw new Error(`VM ${r.id}: NIC hotplug not possible in ${vmStateName(r.state)}/${vmLcmStateName(r.lcmState)}`);
    }
  }

  /**
   * `onevm disk-snapshot-create`: DISK_SNAPSHOT, a protected RBD snapshot
   * `<disk image>@<id>`, back to RUNNING. Returns the snapshot id.
   */
  async snapshotDisk(id: number, diskId: number, name?: string, options: { by?: OneRequester } = {}): Promise<number> {
    const r = this.#vm(id);
    const d = r.disks.find((x) => x.diskId === diskId);
    if (d === undefined) throw new Error(`VM ${id} has no disk ${diskId}`);
    const snapId = r.nextSnapshotId.get(diskId) ?? 0;
    r.nextSnapshotId.set(diskId, snapId + 1);
    this.#closeCpHistory(r, ACTION.diskSnapshotCreate, options.by);
    await this.#transition(r, 'ACTIVE', 'DISK_SNAPSHOT');
    const spec: SnapshotSpec = { ...this.diskImage(id, diskId), snapshot: String(snapId) };
    await this.#rbd.createSnapshot(spec);
    await this.#tool.protectSnapshot(spec);
    d.snapshots.push({ id: snapId, name: name ?? `snapshot-${snapId}`, date: this.#now() });
    this.timeline.record({ source: 'opennebula', kind: 'snapshot-created', instance: String(id), image: specText(spec), detail: { protected: true } });
    await this.#transition(r, 'ACTIVE', 'RUNNING');
    return snapId;
  }

  // --- transfer manager ------------------------------------------------------------------------------

  /** tm/ceph clone (rbd_make_snap, then a clone of `@snap`) or mkimage for a volatile disk. */
  async #tmCreate(r: VmRecord, d: DiskRecord): Promise<void> {
    const target = this.diskImage(r.id, d.diskId);
    if (d.volatile) {
      await this.#rbd.createImage(target, d.sizeBytes);
      this.timeline.record({ source: 'opennebula', kind: 'disk-created', instance: String(r.id), image: specText(target), detail: { volatile: true } });
      return;
    }
    if (d.persistent) return;
    const base: ImageSpec = { pool: this.pool, image: `one-${d.imageId}` };
    const snap: SnapshotSpec = { ...base, snapshot: 'snap' };
    if (!(await this.#rbd.listSnapshots(base)).some((s) => s.name === 'snap')) {
      await this.#rbd.createSnapshot(snap);
      await this.#tool.protectSnapshot(snap);
    }
    await this.#rbd.clone(snap, target);
    this.timeline.record({ source: 'opennebula', kind: 'disk-created', instance: String(r.id), image: specText(target), detail: { parent: specText(snap) } });
  }

  /** EPILOG's transfers: DELETE per disk, then the system datastore directory (checkpoint image). */
  async #tmEpilog(r: VmRecord): Promise<boolean> {
    let ok = true;
    for (const d of r.disks) {
      if (!(await this.#tmDelete(r, d))) ok = false;
    }
    const checkpoint: ImageSpec = { pool: this.pool, image: `one-sys-${r.id}-checkpoint` };
    const trash = r.disks.some((d) => d.cephTrash);
    // `... 2>/dev/null || exit 0`: a missing checkpoint is the normal case.
    await this.#cmd(r, trash ? 'trash move' : 'rm', specText(checkpoint), async () => {
      if (trash) await this.#rbd.moveToTrash(checkpoint);
      else await this.#rbd.removeImage(checkpoint);
    });
    return ok;
  }

  /**
   * tm/ceph delete for one disk. Its exit status is that of the last command
   * of the script: for a format-2 disk the trailing `rbd_rm_snap ... ||:` or
   * the empty `if`, i.e. success even when `rbd rm` failed (the disk then
   * stays behind, orphaned, and the VM still reaches DONE).
   */
  async #tmDelete(r: VmRecord, d: DiskRecord): Promise<boolean> {
    if (d.persistent) return true;
    const src = this.diskImage(r.id, d.diskId);
    const info = await this.#cmd(r, 'info', specText(src), () => this.#rbd.info(src));
    if (info.ok && info.value.format === 2) {
      const top = await this.#topParent(r, src);
      await this.#rmR(r, top, d.cephTrash);
      if (!d.volatile) await this.#rmBaseSnap(r, { pool: this.pool, image: `one-${d.imageId}` });
      return true;
    }
    const res = await this.#cmd(r, d.cephTrash ? 'trash move' : 'rm', specText(src), async () => {
      if (d.cephTrash) await this.#rbd.moveToTrash(src);
      else await this.#rbd.removeImage(src);
    });
    return res.ok;
  }

  /** rbd_top_parent: up the parent chain while the parent is in the disk's own naming family. */
  async #topParent(r: VmRecord, src: ImageSpec): Promise<ImageSpec> {
    const family = specText(src).replace(/([^-]*-[0-9]*-[0-9]*-[0-9]*).*/, '$1');
    let volume = src;
    for (let hops = 0; hops < 32; hops++) {
      const info = await this.#cmd(r, 'info', specText(volume), () => this.#rbd.info(volume));
      const parent = info.ok ? info.value.parent : undefined;
      if (parent === undefined) return volume;
      const parentSpec: ImageSpec = parent.namespace === undefined || parent.namespace === '' ? { pool: parent.pool, image: parent.image } : { pool: parent.pool, namespace: parent.namespace, image: parent.image };
      if (!specText(parentSpec).includes(family)) return volume;
      volume = parentSpec;
    }
    return volume;
  }

  /** rbd_rm_r: no command's failure stops it. */
  async #rmR(r: VmRecord, target: ImageSpec | SnapshotSpec, trash: boolean): Promise<void> {
    if ('snapshot' in target && typeof target.snapshot === 'string') {
      const snap = target as SnapshotSpec;
      const children = await this.#cmd(r, 'children', specText(snap), () => this.#tool.children(snap));
      for (const child of children.ok ? children.value : []) await this.#rmR(r, child, false);
      await this.#cmd(r, 'snap unprotect', specText(snap), () => this.#tool.unprotectSnapshot(snap));
      const removed = await this.#cmd(r, 'snap rm', specText(snap), () => this.#rbd.removeSnapshot(snap));
      if (removed.ok) this.timeline.record({ source: 'opennebula', kind: 'snapshot-removed', instance: String(r.id), image: specText(snap), detail: {} });
      return;
    }
    const image = target as ImageSpec;
    if (trash) {
      const moved = await this.#cmd(r, 'trash move', specText(image), () => this.#rbd.moveToTrash(image));
      if (moved.ok) this.timeline.record({ source: 'opennebula', kind: 'disk-trashed', instance: String(r.id), image: specText(image), detail: { imageId: moved.value } });
      return;
    }
    const snaps = await this.#cmd(r, 'snap ls', specText(image), () => this.#rbd.listSnapshots(image));
    for (const s of snaps.ok ? snaps.value : []) await this.#rmR(r, { ...image, snapshot: s.name }, false);
    const removed = await this.#cmd(r, 'rm', specText(image), () => this.#rbd.removeImage(image));
    if (removed.ok) this.timeline.record({ source: 'opennebula', kind: 'disk-removed', instance: String(r.id), image: specText(image), detail: {} });
    else this.timeline.record({ source: 'opennebula', kind: 'disk-remove-failed', instance: String(r.id), image: specText(image), detail: { error: removed.error } });
  }

  /** rbd_rm_snap on the source image: drop `@snap` when no other clone holds it (unprotect fails otherwise). */
  async #rmBaseSnap(r: VmRecord, base: ImageSpec): Promise<void> {
    const snap: SnapshotSpec = { ...base, snapshot: 'snap' };
    const info = await this.#cmd(r, 'info', specText(snap), () => this.#rbd.listSnapshots(base).then((l) => {
      if (!l.some((s) => s.name === 'snap')) throw new Error('no snap');
    }));
    if (!info.ok) return;
    await this.#cmd(r, 'snap unprotect', specText(snap), () => this.#tool.unprotectSnapshot(snap));
    const removed = await this.#cmd(r, 'snap rm', specText(snap), () => this.#rbd.removeSnapshot(snap));
    if (removed.ok) this.timeline.record({ source: 'opennebula', kind: 'snapshot-removed', instance: String(r.id), image: specText(snap), detail: { base: true } });
  }

  async #cmd<T>(r: VmRecord, command: string, target: string, fn: () => Promise<T>): Promise<{ ok: true; value: T } | { ok: false; error: string }> {
    try {
      const value = await fn();
      this.timeline.record({ source: 'opennebula', kind: 'tm-command', instance: String(r.id), image: target, detail: { command: `rbd ${command}`, ok: true } });
      return { ok: true, value };
    } catch (err) {
      const error = err instanceof Error ? err.message : String(err);
      this.timeline.record({ source: 'opennebula', kind: 'tm-command', instance: String(r.id), image: target, detail: { command: `rbd ${command}`, ok: false, error } });
      return { ok: false, error };
    }
  }

  // --- states and hooks ---------------------------------------------------------------------------

  async #transition(r: VmRecord, state: string, lcm: string): Promise<void> {
    const s = vmStateCode(state);
    const l = vmLcmStateCode(lcm);
    if (s === undefined || l === undefined) throw new Error(`unknown state ${state}/${lcm}`);
    r.prevState = r.state;
    r.prevLcmState = r.lcmState;
    r.state = s;
    r.lcmState = l;
    this.timeline.record({ source: 'opennebula', kind: 'state', instance: String(r.id), detail: { state, lcmState: lcm, stateCode: s, lcmStateCode: l } });
    const xml = this.#xml(r);
    for (const t of this.#hooks) {
      if (!matches(t, state, lcm)) continue;
      const run = this.#runHook(t.hook, r.id, state, lcm, xml);
      const held = run.finally(() => this.#hookRuns.delete(held));
      this.#hookRuns.add(held);
      if (this.#o.waitForHooks === true) await held;
    }
  }

  /** What the HEM does for a state hook with ARGUMENTS_STDIN = YES. */
  async #runHook(hook: string, vmId: number, state: string, lcm: string, xml: string): Promise<void> {
    const publisher = this.#o.publisherPath ?? join(REPO, 'hooks/opennebula/quarantine-publish');
    const b64 = Buffer.from(xml, 'utf8').toString('base64');
    const messageId = `one-${vmId}-${hook}-${createHash('sha256').update(xml, 'utf8').digest('hex')}`;
    const env: Record<string, string> = {
      PATH: process.env['PATH'] ?? '/usr/bin:/bin',
      QUARANTINE_CONFIG: this.#config,
      QUARANTINE_AMQP_URL: this.#o.amqpUrl,
      QUARANTINE_EXCHANGE: this.exchange,
      QUARANTINE_ROUTING_KEY: this.routingKey,
      QUARANTINE_SPOOL_DIR: this.#spool,
      ...this.#o.hookEnv,
    };
    const result = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = spawn('sh', [publisher], { env, stdio: ['pipe', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
      child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
      // The hook templates' TIMEOUT.
      const timer = setTimeout(() => child.kill('SIGTERM'), 60_000);
      child.on('error', (err) => {
        clearTimeout(timer);
        resolve({ code: null, stdout, stderr: `${stderr}${err.message}` });
      });
      child.on('close', (code) => {
        clearTimeout(timer);
        resolve({ code, stdout, stderr });
      });
      child.stdin.on('error', () => undefined);
      child.stdin.end(`${b64} ${hook}`);
    });
    const run: HookRun = { hook, vmId, state, lcmState: lcm, exitCode: result.code, stdout: result.stdout, stderr: result.stderr, messageId, xml };
    this.runs.push(run);
    this.timeline.record({ source: 'opennebula', kind: 'hook', instance: String(vmId), detail: { hook, state, lcmState: lcm, exitCode: result.code, stderr: result.stderr.slice(0, 2000), messageId } });
    if (result.code === 0) {
      this.timeline.record({
        source: 'opennebula', kind: 'notification', instance: String(vmId), eventType: 'opennebula.vm.state',
        detail: { hook, state, lcmState: lcm, messageId, exchange: this.exchange, routingKey: this.routingKey },
      });
    }
  }

  #setAction(r: VmRecord, action: number, by: OneRequester | undefined): void {
    const h = r.history.at(-1);
    if (h === undefined) return;
    h.action = action;
    h.uid = by?.uid ?? r.uid;
    h.gid = by?.gid ?? r.gid;
    h.requestId = by?.requestId ?? Math.floor(Math.random() * 9000) + 1000;
  }

  /**
   * oned's DispatchManager::close_cp_history, run by NIC attach/detach/update
   * and disk snapshots: the current record gets the action and its end, and a
   * new one (SEQ + 1, same host) starts now with the previous internal action.
   */
  #closeCpHistory(r: VmRecord, action: number, by: OneRequester | undefined): void {
    const h = r.history.at(-1);
    if (h === undefined) return;
    const now = this.#now();
    const notRunning = h.retime !== 0;
    if (!notRunning) h.retime = now;
    h.etime = now;
    const previous = h.action;
    this.#setAction(r, action, by);
    r.history.push({
      ...h, seq: h.seq + 1, stime: now, etime: 0, pstime: 0, petime: 0, rstime: now, retime: notRunning ? now : 0, estime: 0, eetime: 0,
      action: previous, uid: -1, gid: -1, requestId: -1,
    });
  }

  #lastHistory(r: VmRecord): HistoryRecord {
    const h = r.history.at(-1);
    if (h === undefined) throw new Error(`VM ${r.id} has no history`);
    return h;
  }

  #vm(id: number): VmRecord {
    const r = this.#vms.get(id);
    if (r === undefined) throw new Error(`no VM ${id}`);
    return r;
  }

  #now(): number {
    return Math.floor(this.#clock.now().getTime() / 1000);
  }

  #sleep(ms: number): Promise<void> {
    if (this.#abort.signal.aborted) return Promise.reject(new Aborted('stopped'));
    return ms <= 0 ? Promise.resolve() : new Promise((resolve) => setTimeout(resolve, ms));
  }

  // --- the VM document ---------------------------------------------------------------------------------

  #xml(r: VmRecord): string {
    const cephUser = this.#o.cephUser ?? 'oneadmin';
    const cephHost = this.#o.cephHost ?? 'ceph-mon-1';
    const secret = '7ebb2445-e96e-44c6-b7c7-07dc7a50f311';
    const perms = ['OWNER_U', 'OWNER_M', 'OWNER_A', 'GROUP_U', 'GROUP_M', 'GROUP_A', 'OTHER_U', 'OTHER_M', 'OTHER_A']
      .map((k, i) => el(k, i < 2 ? 1 : 0)).join('');
    const context = [
      el('DISK_ID', r.disks.length),
      ...r.nics.flatMap((n, i) => [el(`ETH${i}_IP`, n.ip), el(`ETH${i}_MAC`, n.mac)]),
      el('NETWORK', 'YES'), el('TARGET', 'hda'),
    ].join('');
    const disks = r.disks.map((d) => {
      const common = [
        el('CEPH_HOST', cephHost), el('CEPH_SECRET', secret), el('CEPH_USER', cephUser),
        ...(d.cephTrash ? [el('CEPH_TRASH', 'YES')] : []),
        el('CLUSTER_ID', 0), el('DEV_PREFIX', 'vd'), el('DISK_ID', d.diskId), el('DISK_TYPE', 'RBD'), el('DRIVER', 'raw'), el('FORMAT', 'raw'),
        el('POOL_NAME', this.pool), el('SIZE', Math.ceil(d.sizeBytes / 1048576)), el('TARGET', d.target), el('TM_MAD_SYSTEM', 'ceph'),
      ];
      if (d.volatile) return `<DISK>${[...common, el('DATASTORE_ID', 0), el('TYPE', d.type)].join('')}</DISK>`;
      const image = this.#images.get(d.imageId ?? -1);
      return `<DISK>${[
        el('ALLOW_ORPHANS', 'mixed'), ...common, el('CLONE', d.persistent ? 'NO' : 'YES'), el('CLONE_TARGET', d.persistent ? 'NONE' : 'SELF'),
        el('DATASTORE', 'default'), el('DATASTORE_ID', 1), el('DISK_SNAPSHOT_TOTAL_SIZE', 0), el('IMAGE', image?.name ?? ''), el('IMAGE_ID', d.imageId),
        el('IMAGE_STATE', 2), el('LN_TARGET', 'NONE'), el('ORIGINAL_SIZE', Math.ceil(d.sizeBytes / 1048576)),
        ...(d.persistent ? [el('PERSISTENT', 'YES')] : []), el('READONLY', 'NO'), el('SAVE', d.persistent ? 'YES' : 'NO'),
        el('SOURCE', `${this.pool}/one-${d.imageId}`), el('TM_MAD', 'ceph'), el('TYPE', 'RBD'),
      ].join('')}</DISK>`;
    }).join('');
    const nics = r.nics.map((n) => `<NIC>${[
      el('AR_ID', 0), ...(n.attach ? [el('ATTACH', 'YES')] : []), el('BRIDGE', `br${n.networkId}`), el('BRIDGE_TYPE', 'linux'), el('CLUSTER_ID', 0),
      el('IP', n.ip), ...(n.ip6 === undefined ? [] : [el('IP6', n.ip6)]), el('MAC', n.mac), el('MODEL', 'virtio'), el('NAME', `NIC${n.nicId}`),
      el('NETWORK', n.network), el('NETWORK_ID', n.networkId), el('NIC_ID', n.nicId), el('SECURITY_GROUPS', 0),
      el('TARGET', `one-${r.id}-${n.nicId}`), el('VN_MAD', 'bridge'),
    ].join('')}</NIC>`).join('');
    const history = r.history.map((h) => `<HISTORY>${[
      el('OID', r.id), el('SEQ', h.seq), el('HOSTNAME', h.hostname), el('HID', h.hid), el('CID', 0), el('STIME', h.stime), el('ETIME', h.etime),
      el('VM_MAD', 'kvm'), el('TM_MAD', 'ceph'), el('DS_ID', 0), el('PSTIME', h.pstime), el('PETIME', h.petime), el('RSTIME', h.rstime),
      el('RETIME', h.retime), el('ESTIME', h.estime), el('EETIME', h.eetime), el('ACTION', h.action), el('UID', h.uid), el('GID', h.gid),
      el('REQUEST_ID', h.requestId),
    ].join('')}</HISTORY>`).join('');
    const snapshots = r.disks.filter((d) => d.snapshots.length > 0).map((d) => `<SNAPSHOTS>${[
      el('ALLOW_ORPHANS', 'MIXED'), el('CURRENT_BASE', -1), el('DISK_ID', d.diskId), el('NEXT_SNAPSHOT', (r.nextSnapshotId.get(d.diskId) ?? 0)),
      ...d.snapshots.map((s) => `<SNAPSHOT>${[el('CHILDREN', ''), el('DATE', s.date), el('ID', s.id), el('NAME', s.name), el('PARENT', -1), el('SIZE', Math.ceil(d.sizeBytes / 1048576))].join('')}</SNAPSHOT>`),
    ].join('')}</SNAPSHOTS>`).join('');
    return [
      '<VM>', el('ID', r.id), el('UID', r.uid), el('GID', r.gid), el('UNAME', r.uname), el('GNAME', r.gname), el('NAME', r.name),
      `<PERMISSIONS>${perms}</PERMISSIONS>`, el('LAST_POLL', 0), el('STATE', r.state), el('LCM_STATE', r.lcmState),
      el('PREV_STATE', r.prevState), el('PREV_LCM_STATE', r.prevLcmState), el('RESCHED', 0), el('STIME', r.stime), el('ETIME', r.etime),
      el('DEPLOY_ID', r.deployId), '<MONITORING/><SCHED_ACTIONS/>',
      '<TEMPLATE>', el('AUTOMATIC_DS_REQUIREMENTS', '("CLUSTERS/ID" @> 0)'), el('AUTOMATIC_NIC_REQUIREMENTS', '("CLUSTERS/ID" @> 0)'),
      el('AUTOMATIC_REQUIREMENTS', '(CLUSTER_ID = 0)'), `<CONTEXT>${context}</CONTEXT>`, el('CPU', '0.1'), disks,
      `<GRAPHICS>${el('LISTEN', '0.0.0.0')}${el('PORT', 5900 + r.id)}${el('TYPE', 'vnc')}</GRAPHICS>`, el('MEMORY', 128), nics,
      `<NIC_DEFAULT>${el('MODEL', 'virtio')}</NIC_DEFAULT>`, `<OS>${el('UUID', r.deployId)}</OS>`, el('TEMPLATE_ID', 0),
      el('TM_MAD_SYSTEM', 'ceph'), el('VMID', r.id), '</TEMPLATE>',
      `<USER_TEMPLATE>${el('ARCH', 'x86_64')}</USER_TEMPLATE>`,
      `<HISTORY_RECORDS>${history}</HISTORY_RECORDS>`, snapshots,
      `<BACKUPS><BACKUP_CONFIG>${el('LAST_DATASTORE_ID', 100)}</BACKUP_CONFIG><BACKUP_IDS/></BACKUPS>`,
      '</VM>',
    ].join('');
  }
}

/** The hook runs (successful publishes) recorded for a VM, in order. */
export function hookSteps(timeline: SimTimeline, vmId: number): SimStep[] {
  return timeline.filter((s) => s.kind === 'hook' && s.instance === String(vmId));
}
