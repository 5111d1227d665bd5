// The orphan adoption reconciler: once the cloud says an instance is gone and
// its retries are over (the grace), a captured disk it failed to delete (our
// clone pins it) is moved out of the cloud's listings and kept as the anchor.
import { HOLDING } from './quarantine-store.ts';
import type { CaptureContext } from './disk-capture.ts';

export interface OrphanAdoptionDeps {
  /** How long after the instance is gone the cloud may still be retrying its delete (Nova: 12 × 5 s). */
  graceMs: number;
}

export type OrphanResult = { done: true; adopted: number } | { done: false; dueInMs: number };

export class OrphanAdoption {
  readonly #ctx: CaptureContext;
  readonly #graceMs: number;

  constructor(ctx: CaptureContext, deps: OrphanAdoptionDeps) {
    this.#ctx = ctx;
    this.#graceMs = deps.graceMs;
  }

  /** Reconciles one instance's open orphan intent: not yet due, or adopted and closed. */
  async reconcile(instanceId: string): Promise<OrphanResult> {
    const { cloud } = this.#ctx.config;
    const [intent] = await this.#ctx.intents.open(cloud, { instanceId, kinds: ['orphan'] });
    if (intent === undefined) return { done: true, adopted: 0 };
    const dueInMs = intent.announced_at + this.#graceMs - this.#ctx.clock.now().getTime();
    if (dueInMs > 0) return { done: false, dueInMs };
    // A live capture still open for this instance goes first: its disk is what would be adopted.
    if ((await this.#ctx.intents.open(cloud, { instanceId, kinds: ['live', 'soft'] })).length > 0) return { done: false, dueInMs: 1_000 };
    let adopted = 0;
    for (const q of await this.#ctx.engine.store.list({ cloud, instanceId, states: HOLDING })) {
      // An isolated quarantine pins nothing: a disk the cloud left behind is the cloud's own leftover.
      if (q.isolation === 'isolated') continue;
      if (await this.#ctx.engine.adoptOrphan(q.id)) adopted += 1;
    }
    this.#ctx.stats.adoptedOrphans += adopted;
    await this.#ctx.intents.close(intent.id, 'done', adopted === 0 ? 'nothing to adopt' : `adopted ${adopted}`, this.#ctx.clock.now());
    return { done: true, adopted };
  }
}
