// A simulated OpenStack cloud for end-to-end tests on the test environment's
// broker and Ceph: Neutron and Nova publishing on exchanges of their own,
// Nova's disks made in the cloud's pool by the cloud's cephx user, and a
// Glance image to boot from. close() leaves the broker and the shared cluster
// as they were: every disk the Novas made is purged, the image and the
// exchanges removed, whatever state the test left them in. The cloud's `rbd`
// processes start from a process host of their own, as a real cloud starts
// them on its own hosts: forked from the test's process, which runs the
// operator, each start would hold the operator's event loop.
import { SimBus } from '../sim/bus.ts';
import { NeutronSim } from '../sim/neutron.ts';
import { NovaSim, type NovaSimOptions } from '../sim/nova.ts';
import { cloudRbd } from '../sim/rbd-tool.ts';
import { purgeImage } from '../sim/disks.ts';
import type { RbdCli } from '../../operator/ceph/rbd-cli.ts';
import { uniqueSuffix } from './env.ts';
import { startProcessHost } from '../sim/process-host.ts';

/** Where the simulated cloud lives: the broker, and Ceph as the cloud's and the operator's cephx users. */
export interface SimOpenStackEnv {
  amqpUrl: string;
  cephConf: string;
  cloudId: string;
  operatorId: string;
}

export interface SimOpenStack {
  readonly bus: SimBus;
  readonly neutron: NeutronSim;
  /** Nova's and Neutron's exchanges, in that order: what the operator's Cloud consumes. */
  readonly exchanges: [nova: string, neutron: string];
  /** The Glance image every Nova here boots from. */
  readonly imageId: string;
  /** Ceph as the cloud's own cephx user: what Nova removes disks with, and what the cloud can see of its pool. */
  readonly rbd: RbdCli;
  /**
   * A Nova on the cloud's exchange with this cloud's Neutron, its image ensured. The defaults give a
   * delete.start 300 ms before the disk's removal, retried 3 times 100 ms apart.
   */
  nova(options?: Partial<NovaSimOptions>): Promise<NovaSim>;
  /** Stops every Nova started here and Neutron, and removes the disks, the image and the exchanges. */
  close(): Promise<void>;
}

const MiB = 1024 * 1024;

export async function startSimOpenStack(env: SimOpenStackEnv, o: { imageBytes?: number } = {}): Promise<SimOpenStack> {
  const s = uniqueSuffix();
  const exchanges: [string, string] = [`nova-${s}`, `neutron-${s}`];
  const imageId = `img-${s}`;
  const host = startProcessHost();
  const { rbd, rbdTool } = cloudRbd({ cephConf: env.cephConf, id: env.cloudId, run: host.run });
  const bus = await SimBus.connect(env.amqpUrl);
  const neutron = await NeutronSim.start({ bus, exchange: exchanges[1] });
  const novas: NovaSim[] = [];
  return {
    bus, neutron, exchanges, imageId, rbd,
    async nova(options = {}) {
      const n = await NovaSim.start({ bus, exchange: exchanges[0], format: 'both', rbd, rbdTool, neutron, deleteGapMs: 300, destroyRetries: 3, destroyRetryIntervalMs: 100, ...options });
      novas.push(n);
      // Not checked here: an image that could not be stored fails the first boot from it, with the reason.
      await n.ensureImage(imageId, o.imageBytes ?? 4 * MiB).catch(() => undefined);
      return n;
    },
    async close() {
      // The operator's user: a captured disk may be pinned by snapshots the cloud's user cannot remove.
      const admin = cloudRbd({ cephConf: env.cephConf, id: env.operatorId });
      for (const n of novas) {
        await n.stop();
        for (const server of n.servers()) for (const d of server.disks) await purgeImage(admin.rbd, d);
      }
      await novas[0]?.deleteImage(imageId).catch(() => undefined);
      await neutron.stop();
      await bus.deleteExchanges(exchanges);
      await bus.close();
      await host.close();
    },
  };
}
