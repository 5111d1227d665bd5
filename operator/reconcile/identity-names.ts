// Users' and projects' names from a cloud's identity API (Keystone), for the
// ids its notifications carry without names (Nova names the owner only when
// the owner made the request; Neutron never). Leader only, in the background
// on the injected clock, apart from ingest: a pass reads at most `perPass`
// ids, `concurrency` at a time, caches each answer with the time it was read
// (ledger/identity-names.ts) and puts the names on the instances. A read that
// fails is retried at a later pass; the ledger keeps the last good name.
import type { Kysely } from 'kysely';
import type { LedgerSchema } from '../ledger/schema.ts';
import type { Clock, Timer } from '../kube/runtime/clock.ts';
import { every } from '../kube/runtime/clock.ts';
import type { Logger } from '../log.ts';
import type { IdentityDirectory } from '../domain/cloud-api.ts';
import { applyNames, namesToRead, recordNames, type IdentityName } from '../ledger/identity-names.ts';

export interface IdentityNamesOptions {
  cloud: string;
  directory: IdentityDirectory;
  db: Kysely<LedgerSchema>;
  clock: Clock;
  logger: Logger;
  /** Between passes (default 5 minutes). */
  intervalMs?: number;
  /** A cached name older than this is read again (default one day). */
  ttlMs?: number;
  /** Ids read per pass (default 200). */
  perPass?: number;
  /** Reads in flight at once (default 4). */
  concurrency?: number;
}

export interface IdentityNamesPass {
  read: number;
  unknown: number;
  failed: number;
  instancesNamed: number;
}

export class IdentityNames {
  readonly #o: IdentityNamesOptions;
  #timer: Timer | undefined;
  #running: Promise<unknown> = Promise.resolve();

  constructor(o: IdentityNamesOptions) {
    this.#o = o;
  }

  get running(): boolean {
    return this.#timer !== undefined;
  }

  /** On becoming leader: a pass at once, then one an interval after each ends. */
  start(): void {
    if (this.#timer !== undefined) return;
    this.#timer = every(this.#o.clock, this.#o.intervalMs ?? 300_000, () => {
      const p = this.pass().then(() => undefined, (err: unknown) => {
        this.#o.logger.warn({ err: err instanceof Error ? err.message : String(err) }, 'identity names: pass failed; retried at the next interval');
      });
      this.#running = p;
      return p;
    });
  }

  /** Stops the schedule and waits for a pass in flight. */
  async stop(): Promise<void> {
    this.#timer?.cancel();
    this.#timer = undefined;
    await this.#running;
  }

  async pass(): Promise<IdentityNamesPass> {
    const { db, cloud, clock, directory } = this.#o;
    const now = clock.now().getTime();
    const wanted = await namesToRead(db, cloud, now, this.#o.ttlMs ?? 86_400_000, this.#o.perPass ?? 200);
    const got: IdentityName[] = [];
    let failed = 0;
    let firstError: string | undefined;
    let next = 0;
    const worker = async () => {
      while (next < wanted.length) {
        const w = wanted[next++] as (typeof wanted)[number];
        try {
          got.push({ ...w, name: await directory.identityName(w.kind, w.id) });
        } catch (err) {
          failed += 1;
          firstError ??= err instanceof Error ? err.message : String(err);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, Math.min(this.#o.concurrency ?? 4, wanted.length)) }, worker));
    if (got.length > 0) await recordNames(db, cloud, got, clock.now().getTime());
    const instancesNamed = await applyNames(db, cloud);
    const pass = { read: got.length, unknown: got.filter((g) => g.name === null).length, failed, instancesNamed };
    if (failed > 0) this.#o.logger.warn({ ...pass, err: firstError }, 'identity names: some reads failed; the ledger keeps the names it had');
    else if (got.length > 0) this.#o.logger.info(pass, 'identity names read');
    return pass;
  }
}
