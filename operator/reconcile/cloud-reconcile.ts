// One cloud's reconciliation with its API while this replica leads: every
// interval a pass lists what the API shows (Nova servers, Neutron ports,
// floating IPs and routers; OpenNebula's VM pool), page by page, and records
// what the ledger lacked or still held open as observed facts with honest
// bounds (ledger/observe.ts). Level-triggered: a pass compares the listing
// with the ledger as it is, whatever happened before; a failed listing closes
// nothing and the next pass comes round anyway. Leadership starts and stops it.
import type { Kysely } from 'kysely';
import type { LedgerSchema } from '../ledger/schema.ts';
import type { Clock } from '../kube/runtime/clock.ts';
import { WorkQueue } from '../kube/runtime/queue.ts';
import type { Logger } from '../log.ts';
import {
  DRIFT_KINDS, driftTotal, emptyDrift, type CloudInventory, type Drift, type Listing, type ListedOneVm, type ListedServer,
} from '../domain/inventory.ts';
import {
  Seen, closeUnlisted, closeUnseen, floatingIpObservations, lastPassStart, observeInstances, observePage, observePorts, observeRouters,
  oneVmObservations, portObservations, recordPass, routerObservations, serverPairs, type Observation, type Pass,
} from '../ledger/observe.ts';

export interface ListingReport {
  listing: Listing;
  startedAt: Date;
  finishedAt: Date;
  outcome: 'ok' | 'failed';
  error?: string;
  drift: Drift;
}

export interface PassReport {
  cloud: string;
  startedAt: Date;
  finishedAt: Date;
  listings: ListingReport[];
  /** Summed over the listings. */
  drift: Drift;
}

export interface CloudReconcileDeps {
  cloud: string;
  inventory: CloudInventory;
  db: Kysely<LedgerSchema>;
  clock: Clock;
  logger: Logger;
  /** Between the end of a pass and the next (the Cloud's spec.reconcile.intervalSeconds). */
  intervalMs: number;
  onPass?: ((report: PassReport) => void) | undefined;
}

const PASS = 'pass';

export class CloudReconcile {
  readonly #d: CloudReconcileDeps;
  #queue: WorkQueue | undefined;
  #last: PassReport | undefined;

  constructor(deps: CloudReconcileDeps) {
    this.#d = deps;
  }

  get lastPass(): PassReport | undefined {
    return this.#last;
  }

  get running(): boolean {
    return this.#queue !== undefined;
  }

  /** Starts on becoming leader: a first pass at once, then one every interval. */
  start(): void {
    if (this.#queue !== undefined) return;
    this.#queue = new WorkQueue({ clock: this.#d.clock, concurrency: 1, process: (key) => this.#process(key) });
    this.#queue.start();
    this.#queue.add(PASS);
  }

  async stop(): Promise<void> {
    const q = this.#queue;
    this.#queue = undefined;
    await q?.stop();
  }

  /** Waits until no pass is queued or running. */
  async idle(): Promise<void> {
    await this.#queue?.idle();
  }

  async #process(key: string): Promise<void> {
    const q = this.#queue;
    try {
      if (key === PASS) await this.pass();
    } catch (err) {
      this.#d.logger.error({ err: err instanceof Error ? err.message : String(err) }, 'reconciliation pass failed; retried at the next interval');
    } finally {
      if (key === PASS) q?.addAfter(PASS, this.#d.intervalMs);
    }
  }

  /** One pass over every listing of the cloud. */
  async pass(): Promise<PassReport> {
    const { inventory } = this.#d;
    const startedAt = this.#d.clock.now();
    const listings: ListingReport[] = [];
    if (inventory.type === 'openstack') {
      // Ports first: floating IPs take their instance from the port's holder.
      listings.push(await this.#listing('ports', inventory.ports(), { observe: portObservations, before: (page) => observePorts(this.#d.db, this.#d.cloud, page) }));
      listings.push(await this.#listing('floatingips', inventory.floatingIps(), { observe: floatingIpObservations }));
      listings.push(await this.#listing('routers', inventory.routers(), { observe: routerObservations, before: (page) => observeRouters(this.#d.db, this.#d.cloud, page) }));
      listings.push(await this.#listing('servers', inventory.servers(), { pairs: serverPairs, instances: serverInstance }));
    } else {
      listings.push(await this.#listing('vms', inventory.vms(), { observe: oneVmObservations, instances: vmInstance }));
    }
    const drift = emptyDrift();
    for (const l of listings) for (const k of DRIFT_KINDS) { drift[k].added += l.drift[k].added; drift[k].closed += l.drift[k].closed; }
    const report: PassReport = { cloud: this.#d.cloud, startedAt, finishedAt: this.#d.clock.now(), listings, drift };
    this.#last = report;
    this.#log(report);
    this.#d.onPass?.(report);
    return report;
  }

  async #listing<T>(listing: Listing, pages: AsyncIterable<T[]>, how: {
    observe?: (item: T) => Observation[];
    pairs?: (item: T) => string[];
    instances?: (item: T) => InstanceRow | undefined;
    before?: (page: T[]) => Promise<void>;
  }): Promise<ListingReport> {
    const { db, cloud, clock } = this.#d;
    const startedAt = clock.now();
    const drift = emptyDrift();
    const pass: Pass = { cloud, listing, startedAt: startedAt.getTime(), since: await lastPassStart(db, cloud, listing), id: String(startedAt.getTime()) };
    const seen = new Seen();
    const listed = new Set<string>();
    try {
      for await (const page of pages) {
        const at = clock.now().getTime();
        await how.before?.(page);
        if (how.instances !== undefined) {
          const rows = page.map(how.instances).filter((r): r is InstanceRow => r !== undefined);
          for (const r of rows) listed.add(r.id);
          await observeInstances(db, cloud, at, rows, drift);
        }
        if (how.pairs !== undefined) for (const item of page) for (const p of how.pairs(item)) seen.addPair(p);
        if (how.observe !== undefined) await observePage(db, pass, at, page.flatMap(how.observe), seen, drift);
      }
      // Only a complete listing says what is gone.
      const end = clock.now();
      await closeUnseen(db, pass, end.getTime(), seen, drift);
      if (how.instances !== undefined) await closeUnlisted(db, pass, end.getTime(), listed, drift);
      await recordPass(db, { cloud, listing, startedAt: pass.startedAt, finishedAt: end.getTime(), outcome: 'ok', drift });
      return { listing, startedAt, finishedAt: end, outcome: 'ok', drift };
    } catch (err) {
      const error = err instanceof Error ? err.message : String(err);
      const end = clock.now();
      await recordPass(db, { cloud, listing, startedAt: pass.startedAt, finishedAt: end.getTime(), outcome: 'failed', error, drift }).catch(() => undefined);
      return { listing, startedAt, finishedAt: end, outcome: 'failed', error, drift };
    }
  }

  #log(r: PassReport): void {
    const failed = r.listings.filter((l) => l.outcome === 'failed');
    const total = driftTotal(r.drift);
    const counts = Object.fromEntries(DRIFT_KINDS.filter((k) => r.drift[k].added + r.drift[k].closed > 0).map((k) => [k, r.drift[k]]));
    for (const f of failed) this.#d.logger.warn({ listing: f.listing, err: f.error }, 'reconciliation: listing failed; nothing it would have closed is closed');
    if (total > 0) this.#d.logger.warn({ drift: counts }, `reconciliation: the ledger lacked or still held ${total} fact(s) the API contradicts: notifications from this cloud are being lost`);
    else if (failed.length === 0) this.#d.logger.info('reconciliation: the ledger agrees with the API');
  }
}

type InstanceRow = Parameters<typeof observeInstances>[3][number];

function serverInstance(s: ListedServer): InstanceRow {
  return { id: s.id, name: s.name, project: s.project, user: s.user, host: s.host, state: s.state, createdAt: s.createdAt };
}

function vmInstance(vm: ListedOneVm): InstanceRow | undefined {
  if (vm.done) return undefined;
  return { id: String(vm.id), name: vm.name, project: vm.group, user: vm.user, userName: vm.user, projectName: vm.group, namesFrom: 'opennebula', host: vm.host, state: vm.state, createdAt: vm.createdAt };
}
