// A Nova (libvirt driver, images_type = rbd) stand-in that acts on the real
// Ceph cluster as the cloud's cephx user and publishes what Nova publishes,
// in the order and with the gaps Nova has. What it models, from
// notifications.md §0, §2.3, §3 and §4:
// - boot: the root disk `vms/<uuid>_disk` is a v2 clone of Glance's
//   protected `images/<image>@snap`; `_disk.local`, `_disk.swap` and
//   `_disk.config` are images of their own; boot-from-volume puts the root
//   disk in `volumes/volume-<id>` (Cinder's clone of the Glance snapshot).
// - delete: delete.start → (gap) → shutdown.start → every image in the vms
//   pool whose name starts with the UUID is removed, one after the other,
//   each retried `destroyRetries` times on "has snapshots" or "busy" and then
//   left alone with a log line only → ports deleted (Nova's) or unbound (the
//   user's) → shutdown.end (no IPs) → delete_on_termination volumes deleted
//   through Cinder (moved to the trash when they have snapshots) →
//   delete.end (state deleted, no IPs).
// - soft delete (reclaim_instance_interval), restore, force delete, the
//   periodic reclaim with a user-less context.
// - a delete while the compute service is down: announced by nova-api at
//   once, disks left in place until the service returns and reaps them
//   without a notification.
import { randomUUID } from 'node:crypto';
import type { BlockStore, ImageSpec, SnapshotSpec } from '../../operator/domain/block-store.ts';
import { RbdBusyError, RbdHasSnapshotsError, RbdNotFoundError } from '../../operator/ceph/errors.ts';
import { SimBus } from './bus.ts';
import { exportSha256, importContent, imageExists, randomContent, sha256, specText } from './disks.ts';
import type { NeutronSim } from './neutron.ts';
import {
  novaLegacyMessage,
  novaVersionedMessage,
  type NovaActor,
  type NovaAddress,
  type NovaBlockDevice,
  type NovaFlavor,
  type NovaInstanceView,
  type NovaStateUpdate,
} from './openstack-messages.ts';
import type { RbdTool } from './rbd-tool.ts';
import { SimTimeline, systemClock, type SimClock, type SimStep } from './timeline.ts';

export type NovaFormat = 'versioned' | 'legacy' | 'both';

export interface NovaPools {
  /** `[libvirt] images_rbd_pool`. */
  vms: string;
  /** Glance's pool. */
  images: string;
  /** Cinder's `rbd_pool`. */
  volumes: string;
}

export interface NovaSimOptions {
  /** Either a broker URL (own connection) or a bus shared with other simulators. */
  amqpUrl?: string;
  bus?: SimBus;
  /** Nova's control_exchange. */
  exchange?: string;
  /** `[notifications] notification_format`. Required: Nova's own default (legacy only) is rarely what a test means. */
  format: NovaFormat;
  /** Routing key `<topic>.info`. */
  versionedTopic?: string;
  legacyTopic?: string;
  /** Declare oslo's default queues (named like the routing keys) as the real notifier does. */
  defaultQueues?: boolean;
  /** The cloud's view of Ceph (cephx user `nova`). */
  rbd: BlockStore;
  /** Needed to protect Glance's `snap` and for `writeDisk`. */
  rbdTool?: RbdTool;
  pools?: Partial<NovaPools>;
  /** Between instance.delete.start and instance.shutdown.start (the disk removal follows at once). Default 1000. */
  deleteGapMs?: number;
  /** Between instance.shutdown.start and the first removal (libvirt domain destroy). Default 0. */
  destroyDelayMs?: number;
  /** `[libvirt] rbd_destroy_volume_retries`. Default 12. */
  destroyRetries?: number;
  /** `[libvirt] rbd_destroy_volume_retry_interval`. Default 5000. */
  destroyRetryIntervalMs?: number;
  /** `[DEFAULT] reclaim_instance_interval`; set (> 0) turns DELETE into a soft delete. */
  reclaimInstanceIntervalMs?: number;
  /** Spacing of the `_reclaim_queued_deletes` periodic task. Default 1000 (Nova: 60 s). */
  reclaimPollMs?: number;
  /** Cinder's `rados_connection_retries` / `rados_connection_interval` when a volume is busy or has snapshots. */
  cinderRetries?: number;
  cinderRetryIntervalMs?: number;
  /** `[DEFAULT] running_deleted_instance_action`: what a returning compute service does with disks of instances deleted meanwhile. */
  runningDeletedInstanceAction?: 'reap' | 'shutdown' | 'log';
  /** `[notifications] notify_on_state_change`; unset (Nova's default) sends no instance.update. */
  notifyOnStateChange?: 'vm_state' | 'vm_and_task_state';
  /** `[notifications] bdms_in_notifications`. */
  bdmsInNotifications?: boolean;
  /** Compute hosts; a boot without `host` goes to the first. Default ['compute-1']. */
  computeHosts?: string[];
  /** The node running nova-api (publisher of local deletes). Default 'controller-1'. */
  apiHost?: string;
  /** Ports come from this Neutron (with its notifications); without it Nova allocates quiet addresses itself. */
  neutron?: NeutronSim;
  clock?: SimClock;
  timeline?: SimTimeline;
  glanceUrl?: string;
}

export interface NovaBootRequest {
  id?: string;
  name?: string;
  project?: string;
  user?: string;
  host?: string;
  /** Glance image id (see ensureImage); also the source of a boot volume. */
  image: string;
  flavor?: Partial<NovaFlavor>;
  /** `_disk.local`, blank. */
  ephemeralSizeBytes?: number;
  /** `_disk.swap`, blank. */
  swapSizeBytes?: number;
  /** `_disk.config` (Nova imports the config drive into RBD). */
  configDrive?: boolean;
  /** Root disk on a Cinder volume cloned from the image instead of `_disk`. */
  bootVolume?: { id?: string; deleteOnTermination?: boolean };
  /** Further blank volumes attached at boot. */
  volumes?: Array<{ id?: string; sizeBytes: number; deleteOnTermination?: boolean }>;
  /** Networks for ports Nova creates (deleted with the instance). Default ['private']. */
  networks?: string[];
  /** Ports the user made ahead in Neutron, bound at boot and only unbound at delete. Needs `neutron`. */
  ports?: string[];
  keyName?: string | null;
  metadata?: Record<string, string>;
  tags?: string[];
}

export interface NovaVolume {
  id: string;
  image: ImageSpec;
  bootIndex: number | null;
  deleteOnTermination: boolean;
  deviceName: string;
}

export interface NovaPort extends NovaAddress {
  createdByNova: boolean;
}

/** A server as the simulator holds it (a copy: later changes do not show). */
export interface NovaServer extends NovaInstanceView {
  ports: NovaPort[];
  /** Images Nova made in the vms pool for it (`<uuid>_disk`, `_disk.local`, ...). */
  disks: ImageSpec[];
  volumes: NovaVolume[];
  /** Hard-deleted in Nova's database: the API answers 404. */
  deleted: boolean;
  /** Deleted by the API while its compute service was down: disks still there. */
  localDeleted: boolean;
}

export interface GlanceImage {
  id: string;
  spec: ImageSpec;
  sizeBytes: number;
  sha256: string;
}

export interface Requester {
  user: string | null;
  project: string | null;
  requestId?: string | null;
}

export interface NovaOperation {
  /** What the API did with the request. */
  kind: 'delete' | 'soft-delete' | 'local-delete' | 'force-delete' | 'restore';
  /** Settles when the whole sequence has run (delete.end published). */
  done: Promise<void>;
}

interface ServerRecord {
  view: NovaInstanceView;
  ports: NovaPort[];
  disks: ImageSpec[];
  volumes: NovaVolume[];
  deleted: boolean;
  localDeleted: boolean;
  /** A delete sequence is running (a second one is refused, like Nova's task_state check). */
  deleting: boolean;
}

const DEFAULT_FLAVOR: NovaFlavor = { flavorid: '1', name: 'm1.tiny', rootGb: 1, ephemeralGb: 0, swap: 0, vcpus: 1, memoryMb: 512 };
const CONFIG_DRIVE_BYTES = 1024 * 1024;

class Aborted extends Error {}

export class NovaSim {
  readonly timeline: SimTimeline;
  readonly exchange: string;
  readonly pools: NovaPools;
  readonly format: NovaFormat;
  readonly versionedRoutingKey: string;
  readonly legacyRoutingKey: string;
  readonly apiHost: string;
  readonly computeHosts: readonly string[];
  readonly #o: NovaSimOptions;
  readonly #bus: SimBus;
  readonly #ownBus: boolean;
  readonly #rbd: BlockStore;
  readonly #clock: SimClock;
  readonly #servers = new Map<string, ServerRecord>();
  readonly #images = new Map<string, GlanceImage>();
  readonly #down = new Set<string>();
  readonly #inflight = new Set<Promise<void>>();
  readonly #abort = new AbortController();
  #reclaimTimer: NodeJS.Timeout | undefined;
  #instanceCounter = 0;

  private constructor(bus: SimBus, ownBus: boolean, o: NovaSimOptions) {
    this.#o = o;
    this.#bus = bus;
    this.#ownBus = ownBus;
    this.#rbd = o.rbd;
    this.#clock = o.clock ?? systemClock;
    this.timeline = o.timeline ?? o.neutron?.timeline ?? new SimTimeline(this.#clock);
    this.exchange = o.exchange ?? 'nova';
    this.format = o.format;
    this.pools = { vms: o.pools?.vms ?? 'vms', images: o.pools?.images ?? 'images', volumes: o.pools?.volumes ?? 'volumes' };
    this.versionedRoutingKey = `${o.versionedTopic ?? 'versioned_notifications'}.info`;
    this.legacyRoutingKey = `${o.legacyTopic ?? 'notifications'}.info`;
    this.apiHost = o.apiHost ?? 'controller-1';
    this.computeHosts = o.computeHosts ?? ['compute-1'];
  }

  static async start(options: NovaSimOptions): Promise<NovaSim> {
    let bus = options.bus;
    const own = bus === undefined;
    if (bus === undefined) {
      if (options.amqpUrl === undefined) throw new Error('NovaSim needs amqpUrl or bus');
      bus = await SimBus.connect(options.amqpUrl);
    }
    const sim = new NovaSim(bus, own, options);
    await bus.exchange(sim.exchange);
    if (options.defaultQueues === true) {
      if (sim.format !== 'legacy') await bus.defaultQueue(sim.exchange, sim.versionedRoutingKey);
      if (sim.format !== 'versioned') await bus.defaultQueue(sim.exchange, sim.legacyRoutingKey);
    }
    const interval = options.reclaimInstanceIntervalMs ?? 0;
    if (interval > 0) {
      sim.#reclaimTimer = setInterval(() => sim.#reclaimQueuedDeletes(), options.reclaimPollMs ?? 1000);
      sim.#reclaimTimer.unref();
    }
    return sim;
  }

  /** Stops the periodic task, cuts every running sequence short (at its next wait) and closes the bus if it is ours. */
  async stop(): Promise<void> {
    if (this.#reclaimTimer !== undefined) clearInterval(this.#reclaimTimer);
    this.#abort.abort();
    await this.settled();
    if (this.#ownBus) await this.#bus.close();
  }

  /** Resolves once no sequence (boot, delete, reclaim, reap) is running. */
  async settled(): Promise<void> {
    while (this.#inflight.size > 0) await Promise.allSettled([...this.#inflight]);
  }

  // --- Glance -------------------------------------------------------------------------

  /**
   * Stores a base image the way Glance's RBD store does: `images/<id>` with
   * the content, then snapshot `snap`, protected. `content` may be a size
   * (random bytes). Idempotent for an id already stored.
   */
  async ensureImage(id: string, content: Buffer | number): Promise<GlanceImage> {
    const known = this.#images.get(id);
    if (known !== undefined) return known;
    const data = typeof content === 'number' ? randomContent(content) : content;
    const spec: ImageSpec = { pool: this.pools.images, image: id };
    let image: GlanceImage = { id, spec, sizeBytes: data.length, sha256: sha256(data) };
    if (await imageExists(this.#rbd, spec)) {
      // Stored already (by another simulator on the same cluster): its content is what clones will read.
      image = { id, spec, sizeBytes: (await this.#rbd.info(spec)).sizeBytes, sha256: await exportSha256(this.#rbd, spec) };
    } else {
      await importContent(this.#rbd, spec, data);
      await this.#rbd.createSnapshot({ ...spec, snapshot: 'snap' });
      await this.#o.rbdTool?.protectSnapshot({ ...spec, snapshot: 'snap' });
      this.timeline.record({ source: 'glance', kind: 'disk-created', image: specText(spec), detail: { sizeBytes: data.length } });
    }
    this.#images.set(id, image);
    return image;
  }

  /** Glance image delete: unprotect and remove `snap`, remove the image. Fails while clones use it. */
  async deleteImage(id: string): Promise<void> {
    const spec: ImageSpec = { pool: this.pools.images, image: id };
    const snap: SnapshotSpec = { ...spec, snapshot: 'snap' };
    await this.#o.rbdTool?.unprotectSnapshot(snap).catch((err: unknown) => {
      if (!(err instanceof RbdNotFoundError) && !/already unprotected/.test(String((err as { stderr?: string }).stderr))) throw err;
    });
    await this.#rbd.removeSnapshot(snap).catch((err: unknown) => {
      if (!(err instanceof RbdNotFoundError)) throw err;
    });
    await this.#rbd.removeImage(spec);
    this.#images.delete(id);
  }

  // --- servers: reading ------------------------------------------------------------------

  server(id: string): NovaServer | undefined {
    const r = this.#servers.get(id);
    return r === undefined ? undefined : this.#snapshot(r);
  }

  servers(): NovaServer[] {
    return [...this.#servers.values()].map((r) => this.#snapshot(r));
  }

  #snapshot(r: ServerRecord): NovaServer {
    return {
      ...r.view,
      flavor: { ...r.view.flavor },
      addresses: r.view.addresses.map((a) => ({ ...a })),
      blockDevices: r.view.blockDevices.map((b) => ({ ...b })),
      metadata: { ...r.view.metadata },
      tags: [...r.view.tags],
      ports: r.ports.map((p) => ({ ...p })),
      disks: r.disks.map((d) => ({ ...d })),
      volumes: r.volumes.map((v) => ({ ...v, image: { ...v.image } })),
      deleted: r.deleted,
      localDeleted: r.localDeleted,
    };
  }

  /** The root disk: `vms/<uuid>_disk`, or the boot volume's image. */
  rootDisk(id: string): ImageSpec {
    const r = this.#record(id);
    const boot = r.volumes.find((v) => v.bootIndex === 0);
    return boot !== undefined ? { ...boot.image } : { pool: this.pools.vms, image: `${id}_disk` };
  }

  /** Writes known bytes into a disk (from offset 0), keeping it a clone. Needs `rbdTool`. */
  async writeDisk(disk: ImageSpec, content: Buffer): Promise<string> {
    if (this.#o.rbdTool === undefined) throw new Error('writeDisk needs rbdTool');
    await this.#o.rbdTool.write(disk, content);
    const digest = await exportSha256(this.#rbd, disk);
    this.timeline.record({ source: 'nova', kind: 'disk-written', image: specText(disk), detail: { bytes: content.length, sha256: digest } });
    return digest;
  }

  /** SHA-256 of the whole image as exported. */
  diskSha256(disk: ImageSpec | SnapshotSpec): Promise<string> {
    return exportSha256(this.#rbd, disk);
  }

  // --- compute service availability --------------------------------------------------------

  /** The compute service on `host` stops reporting: deletes become local deletes in the API. */
  computeDown(host: string): void {
    this.#down.add(host);
    this.timeline.record({ source: 'nova', kind: 'log', detail: { level: 'info', message: `nova-compute on ${host} is down` } });
  }

  isComputeUp(host: string): boolean {
    return !this.#down.has(host);
  }

  /**
   * The compute service returns and its `_cleanup_running_deleted_instances`
   * runs at once: with action `reap` it destroys the domains of instances
   * deleted meanwhile, disks included, without any notification (and with
   * the same give-up-on-snapshots retries). Resolves when that is done.
   */
  async computeComesBack(host: string): Promise<void> {
    this.#down.delete(host);
    const action = this.#o.runningDeletedInstanceAction ?? 'reap';
    this.timeline.record({ source: 'nova', kind: 'log', detail: { level: 'info', message: `nova-compute on ${host} is up; running_deleted_instance_action=${action}` } });
    const work = (async () => {
      for (const r of this.#servers.values()) {
        if (!r.localDeleted || r.view.host !== host) continue;
        if (action === 'reap') {
          await this.#destroyDisks(r);
          r.localDeleted = false;
        } else {
          for (const disk of r.disks) {
            this.timeline.record({ source: 'nova', kind: 'disk-kept', instance: r.view.uuid, image: specText(disk), detail: { action } });
          }
        }
      }
    })();
    await this.#track(work);
  }

  // --- boot --------------------------------------------------------------------------------

  /** POST /servers, run to ACTIVE: create.start → ports → disks → create.end. */
  async boot(req: NovaBootRequest): Promise<NovaServer> {
    const image = this.#images.get(req.image);
    if (image === undefined) throw new Error(`image ${req.image} unknown: call ensureImage first`);
    const host = req.host ?? this.computeHosts[0] ?? 'compute-1';
    if (!this.computeHosts.includes(host)) throw new Error(`unknown compute host ${host}`);
    if (!this.isComputeUp(host)) throw new Error(`compute host ${host} is down: no valid host`);
    const id = req.id ?? randomUUID();
    if (this.#servers.has(id)) throw new Error(`server ${id} exists`);
    const project = req.project ?? 'project-a';
    const user = req.user ?? 'user-a';
    const now = this.#clock.now();
    this.#instanceCounter += 1;
    const r: ServerRecord = {
      view: {
        uuid: id, displayName: req.name ?? `vm-${id.slice(0, 8)}`, project, user, host, node: host,
        imageUuid: req.bootVolume === undefined ? image.id : '',
        flavor: { ...DEFAULT_FLAVOR, ...(req.ephemeralSizeBytes === undefined ? {} : { ephemeralGb: 1 }), ...(req.swapSizeBytes === undefined ? {} : { swap: Math.ceil(req.swapSizeBytes / 1048576) }), ...req.flavor },
        state: 'building', taskState: 'scheduling', powerState: 'pending',
        createdAt: now, launchedAt: null, updatedAt: null, terminatedAt: null, deletedAt: null,
        addresses: [], blockDevices: [], availabilityZone: 'nova', keyName: req.keyName ?? null, metadata: { ...req.metadata },
        reservationId: `r-${randomUUID().slice(0, 8)}`, instanceName: `instance-${this.#instanceCounter.toString(16).padStart(8, '0')}`,
        tags: [...(req.tags ?? [])],
      },
      ports: [], disks: [], volumes: [], deleted: false, localDeleted: false, deleting: false,
    };
    this.#servers.set(id, r);
    const actor = this.#requester(r, undefined);
    const work = (async () => {
      await this.#setState(r, { taskState: null }, 'compute', actor);
      await this.#emit(r, 'create.start', { from: 'compute', actor, kind: 'create' });
      await this.#setState(r, { taskState: 'networking' }, 'compute', actor);
      await this.#allocateNetwork(r, req);
      await this.#setState(r, { taskState: 'block_device_mapping' }, 'compute', actor);
      await this.#createVolumes(r, req, image);
      await this.#setState(r, { taskState: 'spawning' }, 'compute', actor);
      await this.#createDisks(r, req, image);
      r.view.launchedAt = this.#clock.now();
      await this.#setState(r, { state: 'active', taskState: null, powerState: 'running' }, 'compute', actor);
      await this.#emit(r, 'create.end', { from: 'compute', actor, kind: 'create', legacyFixedIps: true });
    })();
    await this.#track(work);
    return this.#snapshot(r);
  }

  async #allocateNetwork(r: ServerRecord, req: NovaBootRequest): Promise<void> {
    const neutron = this.#o.neutron;
    const id = r.view.uuid;
    for (const portId of req.ports ?? []) {
      if (neutron === undefined) throw new Error('pre-created ports need a NeutronSim');
      const p = await neutron.bindPort(portId, id, r.view.host);
      const address = p.fixedIps[0]?.address ?? '';
      r.ports.push({ portId, address, mac: p.mac, network: neutron.networkLabel(p.networkId) ?? p.networkId, createdByNova: false });
    }
    for (const network of req.networks ?? (req.ports === undefined ? ['private'] : [])) {
      if (neutron !== undefined) {
        const p = await neutron.createPort({ project: r.view.project, network, deviceId: id, deviceOwner: 'compute:nova', host: r.view.host, actor: neutron.novaServiceActor });
        r.ports.push({ portId: p.id, address: p.fixedIps[0]?.address ?? '', mac: p.mac, network, createdByNova: true });
      } else {
        const n = r.ports.length + 1;
        const octet = (this.#servers.size % 250) + 2;
        r.ports.push({ portId: randomUUID(), address: `10.${n}.0.${octet}`, mac: `fa:16:3e:00:${n.toString(16).padStart(2, '0')}:${octet.toString(16).padStart(2, '0')}`, network, createdByNova: true });
      }
    }
    r.view.addresses = r.ports.map(({ portId, address, mac, network }) => ({ portId, address, mac, network }));
  }

  async #createVolumes(r: ServerRecord, req: NovaBootRequest, image: GlanceImage): Promise<void> {
    const devices = 'bcdefghijklmnop';
    if (req.bootVolume !== undefined) {
      const volId = req.bootVolume.id ?? randomUUID();
      const spec: ImageSpec = { pool: this.pools.volumes, image: `volume-${volId}` };
      await this.#rbd.clone({ ...image.spec, snapshot: 'snap' }, spec);
      this.timeline.record({ source: 'cinder', kind: 'disk-created', instance: r.view.uuid, image: specText(spec), detail: { volumeId: volId, parent: `${specText(image.spec)}@snap` } });
      r.volumes.push({ id: volId, image: spec, bootIndex: 0, deleteOnTermination: req.bootVolume.deleteOnTermination ?? true, deviceName: '/dev/vda' });
    }
    for (const [i, v] of (req.volumes ?? []).entries()) {
      const volId = v.id ?? randomUUID();
      const spec: ImageSpec = { pool: this.pools.volumes, image: `volume-${volId}` };
      await this.#rbd.createImage(spec, v.sizeBytes);
      this.timeline.record({ source: 'cinder', kind: 'disk-created', instance: r.view.uuid, image: specText(spec), detail: { volumeId: volId } });
      r.volumes.push({ id: volId, image: spec, bootIndex: null, deleteOnTermination: v.deleteOnTermination ?? false, deviceName: `/dev/vd${devices[i] ?? 'z'}` });
    }
    r.view.blockDevices = r.volumes.map((v): NovaBlockDevice => ({ volumeId: v.id, bootIndex: v.bootIndex, deleteOnTermination: v.deleteOnTermination, deviceName: v.deviceName }));
  }

  async #createDisks(r: ServerRecord, req: NovaBootRequest, image: GlanceImage): Promise<void> {
    const id = r.view.uuid;
    const vms = this.pools.vms;
    const made = async (spec: ImageSpec, detail: Record<string, unknown>) => {
      r.disks.push(spec);
      this.timeline.record({ source: 'nova', kind: 'disk-created', instance: id, image: specText(spec), detail });
    };
    if (req.bootVolume === undefined) {
      const root: ImageSpec = { pool: vms, image: `${id}_disk` };
      await this.#rbd.clone({ ...image.spec, snapshot: 'snap' }, root);
      await made(root, { parent: `${specText(image.spec)}@snap` });
    }
    if (req.ephemeralSizeBytes !== undefined) {
      const spec: ImageSpec = { pool: vms, image: `${id}_disk.local` };
      await this.#rbd.createImage(spec, req.ephemeralSizeBytes);
      await made(spec, { sizeBytes: req.ephemeralSizeBytes });
    }
    if (req.swapSizeBytes !== undefined) {
      const spec: ImageSpec = { pool: vms, image: `${id}_disk.swap` };
      await this.#rbd.createImage(spec, req.swapSizeBytes);
      await made(spec, { sizeBytes: req.swapSizeBytes });
    }
    if (req.configDrive === true) {
      const spec: ImageSpec = { pool: vms, image: `${id}_disk.config` };
      await importContent(this.#rbd, spec, randomContent(CONFIG_DRIVE_BYTES));
      await made(spec, { sizeBytes: CONFIG_DRIVE_BYTES });
    }
  }

  // --- API actions -------------------------------------------------------------------------

  /**
   * DELETE /servers/{id}. Resolves once the API has accepted it (the
   * sequence then runs on; `done` settles at its end):
   * - compute down: local delete (nova-api announces start and end at once; disks stay);
   * - reclaim_instance_interval set and the server active: soft delete;
   * - otherwise the normal delete.
   */
  async delete(id: string, by?: Requester): Promise<NovaOperation> {
    const r = this.#live(id);
    if (r.deleting) throw new Error(`server ${id} is being deleted already`);
    const actor = this.#requester(r, by);
    const host = r.view.host;
    if (host !== null && !this.isComputeUp(host)) {
      r.deleting = true;
      await this.#setState(r, { taskState: 'deleting' }, 'api-save', actor);
      return { kind: 'local-delete', done: this.#track(this.#localDelete(r, actor, 'delete')) };
    }
    if ((this.#o.reclaimInstanceIntervalMs ?? 0) > 0 && r.view.state === 'active') {
      // The API records the time of the soft delete; the compute manager does the rest.
      r.view.deletedAt = this.#clock.now();
      await this.#setState(r, { taskState: 'soft-deleting' }, 'api-save', actor);
      return { kind: 'soft-delete', done: this.#track(this.#softDelete(r, actor)) };
    }
    r.deleting = true;
    await this.#setState(r, { taskState: 'deleting' }, 'api-save', actor);
    return { kind: 'delete', done: this.#track(this.#hardDelete(r, actor)) };
  }

  /**
   * POST /servers/{id}/action {"forceDelete": null}: allowed in any state,
   * typically on a soft-deleted server. Compute up: the normal delete
   * sequence; compute down: a local delete announced only by the legacy
   * compute.instance.force_delete.start/end.
   */
  async forceDelete(id: string, by?: Requester): Promise<NovaOperation> {
    const r = this.#live(id);
    if (r.deleting) throw new Error(`server ${id} is being deleted already`);
    const actor = this.#requester(r, by);
    const host = r.view.host;
    if (host !== null && !this.isComputeUp(host)) {
      r.deleting = true;
      await this.#setState(r, { taskState: 'deleting' }, 'api-save', actor);
      return { kind: 'local-delete', done: this.#track(this.#localDelete(r, actor, 'force_delete')) };
    }
    r.deleting = true;
    await this.#setState(r, { taskState: 'deleting' }, 'api-save', actor);
    return { kind: 'force-delete', done: this.#track(this.#hardDelete(r, actor)) };
  }

  /** POST /servers/{id}/action {"restore": null}: only from soft-delete. */
  async restore(id: string, by?: Requester): Promise<NovaOperation> {
    const r = this.#live(id);
    if (r.view.state !== 'soft-delete' || r.deleting) throw new ConflictError(`Cannot 'restore' instance ${id} while it is in vm_state ${r.view.state}`);
    const actor = this.#requester(r, by);
    await this.#setState(r, { taskState: 'restoring' }, 'api-save', actor);
    r.view.deletedAt = null;
    const work = (async () => {
      await this.#emit(r, 'restore.start', { from: 'compute', actor });
      await this.#setState(r, { state: 'active', taskState: null, powerState: 'running' }, 'compute', actor);
      await this.#emit(r, 'restore.end', { from: 'compute', actor });
    })();
    return { kind: 'restore', done: this.#track(work) };
  }

  // --- sequences -------------------------------------------------------------------------------

  async #softDelete(r: ServerRecord, actor: NovaActor): Promise<void> {
    await this.#emit(r, 'soft_delete.start', { from: 'compute', actor });
    // The libvirt driver has no soft_delete: the manager powers the domain off.
    await this.#setState(r, { state: 'soft-delete', taskState: null, powerState: 'shutdown' }, 'compute', actor);
    await this.#emit(r, 'soft_delete.end', { from: 'compute', actor });
  }

  /** `_delete_instance` on the compute node. */
  async #hardDelete(r: ServerRecord, actor: NovaActor): Promise<void> {
    r.deleting = true;
    await this.#emit(r, 'delete.start', { from: 'compute', actor });
    await this.#sleep(this.#o.deleteGapMs ?? 1000);
    await this.#emit(r, 'shutdown.start', { from: 'compute', actor });
    await this.#sleep(this.#o.destroyDelayMs ?? 0);
    r.view.powerState = 'shutdown';
    await this.#destroyDisks(r);
    await this.#deallocateNetwork(r);
    await this.#emit(r, 'shutdown.end', { from: 'compute', actor, ips: false });
    await this.#deleteVolumes(r);
    r.view.terminatedAt = this.#clock.now();
    await this.#setState(r, { state: 'deleted', taskState: null, powerState: 'pending' }, 'compute', actor);
    r.view.deletedAt = this.#clock.now();
    r.deleted = true;
    await this.#emit(r, 'delete.end', { from: 'compute', actor, ips: false });
    r.deleting = false;
  }

  /**
   * `_local_delete` in the API: no hypervisor, so the disks stay; ports and
   * delete_on_termination volumes are cleaned up; the instance row goes.
   */
  async #localDelete(r: ServerRecord, actor: NovaActor, deleteType: 'delete' | 'force_delete'): Promise<void> {
    r.deleting = true;
    const versioned = deleteType === 'delete';
    await this.#emit(r, `${deleteType}.start`, { from: 'api', actor, versioned });
    await this.#deallocateNetwork(r);
    await this.#deleteVolumes(r);
    r.view.terminatedAt = this.#clock.now();
    r.view.deletedAt = this.#clock.now();
    r.view.state = 'deleted';
    r.view.taskState = null;
    r.view.powerState = 'pending';
    r.deleted = true;
    r.localDeleted = true;
    this.timeline.record({ source: 'nova', kind: 'state', instance: r.view.uuid, detail: { state: 'deleted', taskState: null, local: true } });
    await this.#emit(r, `${deleteType}.end`, { from: 'api', actor, ips: false, versioned });
    r.deleting = false;
  }

  /** `_reclaim_queued_deletes`: hard-deletes soft-deleted servers older than the interval, as the service itself. */
  #reclaimQueuedDeletes(): void {
    const interval = this.#o.reclaimInstanceIntervalMs ?? 0;
    const now = this.#clock.now().getTime();
    for (const r of this.#servers.values()) {
      if (r.deleted || r.deleting || r.view.state !== 'soft-delete' || r.view.deletedAt === null) continue;
      if (r.view.deletedAt.getTime() + interval > now) continue;
      if (r.view.host !== null && !this.isComputeUp(r.view.host)) continue;
      r.deleting = true;
      const actor: NovaActor = { user: null, project: null, requestId: null };
      this.timeline.record({ source: 'nova', kind: 'log', instance: r.view.uuid, detail: { level: 'info', message: 'Reclaiming deleted instance' } });
      void this.#track((async () => {
        await this.#setState(r, { taskState: 'deleting' }, 'compute', actor);
        await this.#hardDelete(r, actor);
      })()).catch(() => undefined);
    }
  }

  /** `_cleanup_rbd`: every image of the pool whose name starts with the UUID, one by one. */
  async #destroyDisks(r: ServerRecord): Promise<void> {
    const uuid = r.view.uuid;
    const names = (await this.#rbd.listImages({ pool: this.pools.vms })).filter((n) => n.startsWith(uuid));
    for (const name of names) await this.#destroyVolume(r, { pool: this.pools.vms, image: name });
  }

  /** rbd_utils `_destroy_volume`: fixed-interval retries on ImageHasSnapshots/ImageBusy, then silence. */
  async #destroyVolume(r: ServerRecord, spec: ImageSpec): Promise<void> {
    const retries = this.#o.destroyRetries ?? 12;
    const interval = this.#o.destroyRetryIntervalMs ?? 5000;
    const uuid = r.view.uuid;
    const image = specText(spec);
    for (let attempt = 1; attempt <= retries; attempt++) {
      try {
        await this.#rbd.removeImage(spec);
        this.timeline.record({ source: 'nova', kind: 'disk-removed', instance: uuid, image, detail: { attempt } });
        return;
      } catch (err) {
        if (err instanceof RbdNotFoundError) {
          this.timeline.record({ source: 'nova', kind: 'disk-missing', instance: uuid, image, detail: { attempt } });
          return;
        }
        if (err instanceof RbdHasSnapshotsError) {
          // Only Nova's own resize snapshot is Nova's to remove.
          await this.#rbd.removeSnapshot({ ...spec, snapshot: 'nova-resize' }).catch(() => undefined);
          this.timeline.record({ source: 'nova', kind: 'disk-remove-failed', instance: uuid, image, detail: { attempt, reason: 'has-snapshots' } });
        } else if (err instanceof RbdBusyError) {
          this.timeline.record({ source: 'nova', kind: 'disk-remove-failed', instance: uuid, image, detail: { attempt, reason: 'busy' } });
          this.timeline.record({ source: 'nova', kind: 'log', instance: uuid, image, detail: { level: 'warning', message: `rbd remove ${spec.image} in pool ${spec.pool} failed` } });
        } else {
          // Anything else would end the delete in Nova with an error; the image stays either way.
          this.timeline.record({ source: 'nova', kind: 'disk-remove-failed', instance: uuid, image, detail: { attempt, reason: 'error', error: String(err) } });
          this.timeline.record({ source: 'nova', kind: 'disk-gave-up', instance: uuid, image, detail: { attempts: attempt, reason: 'error' } });
          return;
        }
      }
      if (attempt < retries) await this.#sleep(interval);
    }
    this.timeline.record({ source: 'nova', kind: 'log', instance: uuid, image, detail: { level: 'warning', message: `Destroy of ${image} gave up after ${retries} attempts` } });
    this.timeline.record({ source: 'nova', kind: 'disk-gave-up', instance: uuid, image, detail: { attempts: retries } });
  }

  /** `deallocate_for_instance`: ports Nova made are deleted, the user's are unbound. */
  async #deallocateNetwork(r: ServerRecord): Promise<void> {
    const neutron = this.#o.neutron;
    if (neutron !== undefined) {
      for (const p of r.ports) {
        if (p.createdByNova) await neutron.deletePort(p.portId, neutron.novaServiceActor);
        else await neutron.unbindPort(p.portId, neutron.novaServiceActor);
      }
    }
    r.view.addresses = [];
  }

  /** `_cleanup_volumes` with Cinder's RBD delete behind it; failures are only logged, as in Nova. */
  async #deleteVolumes(r: ServerRecord): Promise<void> {
    for (const v of r.volumes) {
      if (!v.deleteOnTermination) continue;
      await this.#cinderDelete(r, v);
    }
  }

  async #cinderDelete(r: ServerRecord, v: NovaVolume): Promise<void> {
    const retries = this.#o.cinderRetries ?? 3;
    const interval = this.#o.cinderRetryIntervalMs ?? 5000;
    const image = specText(v.image);
    const uuid = r.view.uuid;
    let last: unknown;
    for (let attempt = 1; attempt <= retries; attempt++) {
      try {
        await this.#rbd.removeImage(v.image);
        this.timeline.record({ source: 'cinder', kind: 'disk-removed', instance: uuid, image, detail: { attempt, volumeId: v.id } });
        return;
      } catch (err) {
        if (err instanceof RbdNotFoundError) {
          this.timeline.record({ source: 'cinder', kind: 'disk-missing', instance: uuid, image, detail: { attempt, volumeId: v.id } });
          return;
        }
        last = err;
        const reason = err instanceof RbdHasSnapshotsError ? 'has-snapshots' : err instanceof RbdBusyError ? 'busy' : 'error';
        this.timeline.record({ source: 'cinder', kind: 'disk-remove-failed', instance: uuid, image, detail: { attempt, reason, volumeId: v.id } });
        if (reason === 'error') break;
      }
      if (attempt < retries) await this.#sleep(interval);
    }
    if (last instanceof RbdHasSnapshotsError) {
      // Snapshots Cinder did not make: the driver moves the volume to the trash (no deferment by default).
      try {
        const imageId = await this.#rbd.moveToTrash(v.image);
        this.timeline.record({ source: 'cinder', kind: 'disk-trashed', instance: uuid, image, detail: { volumeId: v.id, imageId } });
        return;
      } catch (err) {
        last = err;
      }
    }
    this.timeline.record({ source: 'cinder', kind: 'log', instance: uuid, image, detail: { level: 'error', message: `delete of volume ${v.id} failed: ${String(last)}` } });
    this.timeline.record({ source: 'cinder', kind: 'disk-gave-up', instance: uuid, image, detail: { volumeId: v.id } });
  }

  // --- notifications ----------------------------------------------------------------------------

  /**
   * vm_state/task_state/power_state change saved to the database, with the
   * instance.update Nova sends for it when notify_on_state_change asks.
   * `api-save` is a save in the API process (publisher host = the API node).
   */
  async #setState(r: ServerRecord, change: { state?: string; taskState?: string | null; powerState?: string }, from: 'compute' | 'api-save', actor: NovaActor): Promise<void> {
    const v = r.view;
    const update: NovaStateUpdate = {
      oldState: v.state, state: change.state ?? v.state,
      oldTaskState: v.taskState, newTaskState: change.taskState === undefined ? v.taskState : change.taskState,
    };
    if (change.state !== undefined) v.state = change.state;
    if (change.taskState !== undefined) v.taskState = change.taskState;
    if (change.powerState !== undefined) v.powerState = change.powerState;
    v.updatedAt = this.#clock.now();
    this.timeline.record({ source: 'nova', kind: 'state', instance: v.uuid, detail: { state: v.state, taskState: v.taskState, powerState: v.powerState } });
    const mode = this.#o.notifyOnStateChange;
    const vmChanged = update.oldState !== update.state;
    const taskChanged = update.oldTaskState !== update.newTaskState;
    if (mode === undefined || !(vmChanged || (mode === 'vm_and_task_state' && taskChanged))) return;
    await this.#emit(r, 'update', { from, actor, kind: 'update', stateUpdate: update });
  }

  async #emit(r: ServerRecord, action: string, o: {
    from: 'compute' | 'api' | 'api-save';
    actor: NovaActor;
    ips?: boolean;
    kind?: 'action' | 'create' | 'update';
    stateUpdate?: NovaStateUpdate;
    legacyFixedIps?: boolean;
    /** false: legacy only (force_delete in a local delete has no versioned event). */
    versioned?: boolean;
  }): Promise<void> {
    const view: NovaInstanceView = { ...r.view, addresses: o.ips === false ? [] : r.view.addresses };
    const computeHost = r.view.host ?? this.apiHost;
    const emitter = o.from === 'compute' ? computeHost : this.apiHost;
    const sends: Array<{ format: 'legacy' | 'versioned'; eventType: string; routingKey: string; publisher: string; body: (at: Date, id: string) => string }> = [];
    // Nova sends the legacy notification first, then the versioned one.
    if (this.format !== 'versioned') {
      const publisher = `compute.${emitter}`;
      sends.push({
        format: 'legacy', eventType: `compute.instance.${action}`, routingKey: this.legacyRoutingKey, publisher,
        body: (at, messageId) => novaLegacyMessage(view, `compute.instance.${action}`, at, {
          publisher, actor: o.actor, withFixedIps: o.legacyFixedIps === true, messageId,
          ...(o.stateUpdate === undefined ? {} : { stateUpdate: o.stateUpdate }), ...(this.#o.glanceUrl === undefined ? {} : { glanceUrl: this.#o.glanceUrl }),
        }),
      });
    }
    if (this.format !== 'legacy' && o.versioned !== false) {
      const publisher = o.from === 'api' ? `nova-api:${emitter}` : `nova-compute:${emitter}`;
      sends.push({
        format: 'versioned', eventType: `instance.${action}`, routingKey: this.versionedRoutingKey, publisher,
        body: (at, messageId) => novaVersionedMessage(view, `instance.${action}`, at, {
          publisher, actor: o.actor, kind: o.kind ?? 'action', messageId, bdmsInNotifications: this.#o.bdmsInNotifications === true,
          ...(o.stateUpdate === undefined ? {} : { stateUpdate: o.stateUpdate }),
        }),
      });
    }
    for (const s of sends) {
      const at = this.#clock.now();
      const messageId = randomUUID();
      await this.#bus.publish(this.exchange, s.routingKey, s.body(at, messageId));
      this.timeline.record({
        source: 'nova', kind: 'notification', instance: r.view.uuid, eventType: s.eventType, at,
        detail: { format: s.format, exchange: this.exchange, routingKey: s.routingKey, publisher: s.publisher, messageId },
      });
    }
  }

  // --- plumbing ----------------------------------------------------------------------------------

  #record(id: string): ServerRecord {
    const r = this.#servers.get(id);
    if (r === undefined) throw new NotFoundError(`Instance ${id} could not be found.`);
    return r;
  }

  #live(id: string): ServerRecord {
    const r = this.#record(id);
    if (r.deleted) throw new NotFoundError(`Instance ${id} could not be found.`);
    return r;
  }

  #requester(r: ServerRecord, by: Requester | undefined): NovaActor {
    return {
      user: by === undefined ? r.view.user : by.user,
      project: by === undefined ? r.view.project : by.project,
      requestId: by?.requestId === undefined ? `req-${randomUUID()}` : by.requestId,
    };
  }

  #sleep(ms: number): Promise<void> {
    if (this.#abort.signal.aborted) return Promise.reject(new Aborted('stopped'));
    if (ms <= 0) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        clearTimeout(timer);
        reject(new Aborted('stopped'));
      };
      const timer = setTimeout(() => {
        this.#abort.signal.removeEventListener('abort', onAbort);
        resolve();
      }, ms);
      this.#abort.signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  /**
   * Keeps a sequence in `settled()` until it ends. The returned promise
   * rejects like the sequence (except when cut short by stop()); it is
   * handled here too, so a caller that never awaits it causes no
   * unhandled rejection.
   */
  #track(work: Promise<void>): Promise<void> {
    const p = work.catch((err: unknown) => {
      if (err instanceof Aborted) return;
      this.timeline.record({ source: 'nova', kind: 'log', detail: { level: 'error', message: String(err) } });
      throw err;
    });
    const held = p.catch(() => undefined).finally(() => this.#inflight.delete(held));
    this.#inflight.add(held);
    return p;
  }
}

export class NotFoundError extends Error {
  override name = 'NotFoundError';
}

export class ConflictError extends Error {
  override name = 'ConflictError';
}

/** The first notification step of `eventType` for the instance, waiting for it if needed. */
export function waitForNotification(timeline: SimTimeline, instance: string, eventType: string, options: { timeoutMs?: number; after?: number } = {}): Promise<SimStep> {
  return timeline.waitFor((s) => s.kind === 'notification' && s.instance === instance && s.eventType === eventType, { ...options, what: `${eventType} of ${instance}` });
}
