// The trash adoption reconciler. A scan lists the watched pools' trash and
// records an intent for each new entry a trash-mode policy selects (with the
// policy's decision); each intent is then adopted on its own key.
import type { TrashEntry } from '../domain/block-store.ts';
import { ownerOfImageName, roleWanted } from '../domain/disks.ts';
import { policyFor } from '../domain/policy.ts';
import { captureDisk, type CaptureContext } from './disk-capture.ts';
import { admissionOf, putIntent } from './intents.ts';
import { parseDecision, planForTrashEntry } from './lifecycle.ts';
import { instanceFacts } from './provenance.ts';

const subjectOf = (e: TrashEntry): string => `${e.pool}/${e.namespace === undefined ? '' : `${e.namespace}/`}${e.id}`;

export class TrashAdoption {
  readonly #ctx: CaptureContext;
  /** Entries no policy wants, per run: looked at again after a leadership change. */
  readonly #skipped = new Set<string>();

  constructor(ctx: CaptureContext) {
    this.#ctx = ctx;
  }

  /**
   * Whether a trash-mode policy selects the instance now: its deletion puts
   * disks in the trash that a scan should find at once.
   */
  async wants(instanceId: string): Promise<boolean> {
    const { config, db, policies, clock } = this.#ctx;
    if (!policies().some((p) => p.capture.mode === 'trash')) return false;
    return policyFor(policies(), await instanceFacts(db, config.cloud, instanceId), clock.now())?.capture.mode === 'trash';
  }

  /** Records intents for new trash entries; returns their ids, each also given to `onIntent` as soon as it is recorded. */
  async scan(onIntent: (id: string) => void = () => undefined): Promise<string[]> {
    const { config, blocks, intents, engine, db, policies, clock } = this.#ctx;
    // Only a trash-mode policy adopts entries (planForTrashEntry): without
    // one a listing can record nothing, and each would cost a call per pool
    // every scan interval. The periodic scan lists again once a policy wants it.
    if (!policies().some((p) => p.capture.mode === 'trash')) return [];
    const known = await intents.subjects(config.cloud, 'trash');
    const out: string[] = [];
    for (const pool of config.watchedPools) {
      for (const entry of await blocks.listTrash({ pool })) {
        const subject = subjectOf(entry);
        if (known.has(subject) || this.#skipped.has(subject)) continue;
        // Adopted before intents existed, or our own anchor put back in the trash.
        if ((await engine.store.bySource(config.cloud, entry.id)) !== undefined) continue;
        const owner = ownerOfImageName(entry.name);
        if (owner === undefined || owner.cloudType !== config.cloudType) {
          this.#skipped.add(subject);
          continue;
        }
        const instanceId = 'instanceId' in owner ? owner.instanceId : `volume:${owner.volumeId}`;
        const now = clock.now();
        const p = policyFor(policies(), await instanceFacts(db, config.cloud, instanceId), now);
        const decision = planForTrashEntry(p, (disks) => roleWanted(owner.role, disks), p === undefined ? 'admitted' : await admissionOf(db, p));
        if (decision === undefined) {
          // Left to its deferment: the cloud's own purge removes it in time.
          this.#skipped.add(subject);
          continue;
        }
        decision.entry = {
          pool: entry.pool, ...(entry.namespace === undefined ? {} : { namespace: entry.namespace }), id: entry.id, name: entry.name, source: entry.source,
          deletedAt: entry.deletedAt.toISOString(), expiresAt: entry.expiresAt.toISOString(), expired: entry.expired,
        };
        const id = await putIntent(db, { cloud: config.cloud, kind: 'trash', subject, instanceId, messageId: null, announcedAt: entry.deletedAt, decision }, now);
        out.push(id);
        onIntent(id);
      }
    }
    return out;
  }

  /** Adopts the entry of one open trash intent and closes it. */
  async reconcile(id: string): Promise<void> {
    const intent = await this.#ctx.intents.get(id);
    if (intent === undefined || intent.state !== 'open') return;
    const decision = parseDecision(intent.decision);
    const e = decision.entry;
    const owner = e === undefined ? undefined : ownerOfImageName(e.name);
    if (e === undefined || owner === undefined) {
      await this.#ctx.intents.close(id, 'done', 'no trash entry recorded', this.#ctx.clock.now());
      return;
    }
    const entry: TrashEntry = { ...e, deletedAt: new Date(e.deletedAt), expiresAt: new Date(e.expiresAt) };
    const result = await captureDisk(this.#ctx, {
      intentId: id, instanceId: intent.instance_id, disk: owner.disk, role: owner.role, decision, source: { kind: 'trash', entry }, messageId: null, since: entry.deletedAt,
    });
    // Another worker holds the capture: the intent stays open until the next relist finds it finished.
    if (result === 'elsewhere') return;
    await this.#ctx.intents.close(id, 'done', result === 'captured' ? 'captured' : 'not captured', this.#ctx.clock.now());
  }
}

