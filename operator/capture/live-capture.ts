// The live capture reconciler: for one instance, acts on its open live
// (delete warning) and soft (soft delete) intents, oldest first. Each intent
// is closed once acted on; a crash before that leaves it open for the next
// relist, and the engine resumes any capture it had started.
import { imagesOfInstance, ownerOfImageName, roleWanted } from '../domain/disks.ts';
import { appendAudit } from '../ledger/audit.ts';
import type { CloudApi } from '../domain/cloud-api.ts';
import { captureDisk, errorText, type CaptureContext } from './disk-capture.ts';
import type { IntentRow } from './intents.ts';
import { parseDecision, type Decision } from './lifecycle.ts';

export interface LiveCaptureDeps {
  api?: CloudApi | undefined;
  /** Runs before a recorded warning is acted on (crash tests kill the process here). */
  beforeWarning?: ((instanceId: string) => Promise<void>) | undefined;
}

export class LiveCapture {
  readonly #ctx: CaptureContext;
  readonly #d: LiveCaptureDeps;

  constructor(ctx: CaptureContext, deps: LiveCaptureDeps = {}) {
    this.#ctx = ctx;
    this.#d = deps;
  }

  /** Reconciles one instance's open live and soft intents. */
  async reconcile(instanceId: string): Promise<void> {
    const { cloud } = this.#ctx.config;
    for (const intent of await this.#ctx.intents.open(cloud, { instanceId, kinds: ['live', 'soft'] })) {
      await this.#d.beforeWarning?.(instanceId);
      const decision = parseDecision(intent.decision);
      const outcome = await this.#act(intent, decision);
      // Undefined: another worker holds a disk's capture; the next relist looks again.
      if (outcome !== undefined) await this.#ctx.intents.close(intent.id, 'done', outcome, this.#ctx.clock.now());
    }
  }

  async #act(intent: IntentRow, decision: Decision): Promise<string | undefined> {
    const { ok, retry, elsewhere } = await this.captureLive(intent, decision);
    if (elsewhere) return undefined;
    // A Ceph error (not a lost race): the intent stays open and the next relist tries again.
    if (retry) throw new Error(`capture of instance ${intent.instance_id} did not complete; the intent stays open`);
    if (intent.kind !== 'soft' || !ok) return ok ? 'captured' : 'not all disks captured';
    if (!decision.releaseResources) return 'captured';
    // The cloud already deleted it (an orphan intent exists): nothing to release.
    const gone = (await this.#ctx.intents.open(this.#ctx.config.cloud, { instanceId: intent.instance_id, kinds: ['orphan'] })).length > 0;
    if (!gone) await this.#forceDelete(intent.instance_id);
    return 'captured; resources released';
  }

  /** Snapshots every wanted disk the instance still has: whether all went well, and whether a disk hit an error worth retrying. */
  async captureLive(intent: IntentRow, decision: Decision): Promise<{ ok: boolean; retry: boolean; elsewhere: boolean }> {
    const { config, engine, blocks, logger } = this.#ctx;
    const { cloud, cloudType, watchedPools } = config;
    const instanceId = intent.instance_id;
    const since = new Date(intent.announced_at);
    // A disk captured already (an earlier run, or another intent) must not count again.
    const captured = new Set((await engine.store.list({ cloud, instanceId }))
      .filter((q) => q.state !== 'failed' && q.state !== 'purged').map((q) => `${q.source_pool}/${q.source_image}`));
    let all = true;
    let retry = false;
    let elsewhere = false;
    let found = 0;
    for (const pool of watchedPools) {
      const names = imagesOfInstance(await blocks.listImages({ pool }), cloudType, instanceId);
      for (const image of names) {
        const owner = ownerOfImageName(image);
        if (owner === undefined || !('instanceId' in owner)) continue;
        found += 1;
        if (captured.has(`${pool}/${image}`)) continue;
        try {
          const result = await captureDisk(this.#ctx, {
            intentId: intent.id, instanceId, disk: owner.disk, role: owner.role, decision, source: { kind: 'live', image: { pool, image } }, messageId: intent.message_id, since,
          });
          if (result === 'elsewhere') {
            elsewhere = true;
            continue;
          }
          const ok = result === 'captured';
          if (decision.racing && roleWanted(owner.role, decision.disks)) this.#race(decision, ok);
          all &&= ok || !roleWanted(owner.role, decision.disks);
        } catch (err) {
          all = false;
          retry = true;
          logger.error({ instance: instanceId, image, err: errorText(err) }, 'live capture failed');
        }
      }
    }
    if (found === 0 && decision.racing && captured.size === 0) {
      this.#race(decision, false);
      logger.warn({ instance: instanceId }, 'no disk left to capture: the cloud deleted them before the snapshot');
    }
    return { ok: all && (found > 0 || captured.size > 0), retry, elsewhere };
  }

  #race(decision: Decision, won: boolean): void {
    if (won) this.#ctx.stats.racesWon += 1;
    else this.#ctx.stats.racesLost += 1;
    this.#ctx.onRace?.(decision.mode, won ? 'won' : 'lost');
  }

  async #forceDelete(instanceId: string): Promise<void> {
    const { config, db, logger } = this.#ctx;
    if (this.#d.api === undefined) {
      logger.warn({ instance: instanceId }, 'releaseResources is set but the Cloud has no api section; the server stays soft-deleted');
      return;
    }
    await this.#d.api.forceDelete(instanceId);
    await appendAudit(db, { actor: 'quarantine-operator', action: 'server.forceDelete', subject: `${config.cloud}/${instanceId}`, details: { reason: 'disks captured; releasing resources' } });
    logger.info({ instance: instanceId }, 'force-deleted the soft-deleted server after capture');
  }
}
