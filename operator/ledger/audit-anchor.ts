// The audit trail's head, written at an interval to places the ledger's
// database cannot reach: the operator's log, a Kubernetes Event, an
// append-only file. Whoever truncates the trail or rewrites it wholesale
// cannot take back what was anchored, and `audit verify` reads the anchors
// back (audit.ts) so that no one has to keep the head by hand.
import { appendFileSync, readFileSync } from 'node:fs';
import { z } from 'zod';
import type { Kysely } from 'kysely';
import type { LedgerSchema } from './schema.ts';
import { anchorMac, type AuditAnchor, type AuditKeyRing } from './audit.ts';
import type { Logger } from '../log.ts';

export type AnchorSink = (a: AuditAnchor) => Promise<void> | void;

export interface AnchorerOptions {
  db: Kysely<LedgerSchema>;
  keys: AuditKeyRing | undefined;
  sinks: readonly AnchorSink[];
  logger: Logger;
  clock?: () => Date;
  intervalMs?: number;
}

export const DEFAULT_ANCHOR_INTERVAL_MS = 60_000;

/** Reads the head and hands it to every sink when it moved since the last anchor. */
export class AuditAnchorer {
  readonly #o: AnchorerOptions;
  #last: string | undefined;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> = Promise.resolve();

  constructor(o: AnchorerOptions) {
    this.#o = o;
  }

  async anchorNow(): Promise<AuditAnchor | undefined> {
    const head = await this.#o.db.selectFrom('audit').select(['seq', 'hash', 'key_id']).orderBy('seq', 'desc').limit(1).executeTakeFirst();
    if (head === undefined || this.#last === `${head.seq}:${head.hash}`) return undefined;
    const at = (this.#o.clock ?? (() => new Date()))().toISOString();
    const key = head.key_id === null ? undefined : this.#o.keys?.byId.get(head.key_id);
    const anchor: AuditAnchor = { seq: head.seq, hash: head.hash, at, keyId: key?.id ?? null, mac: key === undefined ? null : anchorMac({ seq: head.seq, hash: head.hash, at }, key) };
    for (const sink of this.#o.sinks) {
      try {
        await sink(anchor);
      } catch (err) {
        this.#o.logger.error({ err: err instanceof Error ? err.message : String(err) }, 'could not anchor the audit head; retried at the next interval');
        return undefined;
      }
    }
    this.#last = `${head.seq}:${head.hash}`;
    return anchor;
  }

  start(): void {
    if (this.#timer !== undefined) return;
    const tick = () => {
      this.#running = this.#running.then(() => this.anchorNow()).then(() => undefined, (err: unknown) => {
        this.#o.logger.error({ err: err instanceof Error ? err.message : String(err) }, 'could not read the audit head to anchor it');
      });
    };
    tick();
    this.#timer = setInterval(tick, this.#o.intervalMs ?? DEFAULT_ANCHOR_INTERVAL_MS);
    this.#timer.unref();
  }

  /** Stops the timer after anchoring the head one last time. */
  async stop(): Promise<void> {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#running;
    await this.anchorNow().catch(() => undefined);
  }
}

/** A line in the operator's log; `audit verify --anchors` reads saved logs as well as anchor files. */
export function logAnchorSink(logger: Logger): AnchorSink {
  return (a) => logger.info({ auditAnchor: a }, `audit head ${a.seq}:${a.hash}`);
}

/** One JSON line per anchor, appended (never rewritten): keep the file where the database's writers cannot, or `chattr +a` it. */
export function fileAnchorSink(path: string): AnchorSink {
  return (a) => appendFileSync(path, `${JSON.stringify({ auditAnchor: a })}\n`, { flag: 'a', mode: 0o640 });
}

const Anchor = z.object({
  seq: z.number().int().positive(),
  hash: z.string().regex(/^[0-9a-f]{64}$/),
  at: z.string(),
  keyId: z.string().nullable().default(null),
  mac: z.string().nullable().default(null),
});
const AnchorLine = z.object({ auditAnchor: Anchor });

/** Anchors from an anchor file or a saved operator log (JSON lines); other lines are skipped. */
export function parseAnchors(text: string, source: string): AuditAnchor[] {
  const out: AuditAnchor[] = [];
  for (const line of text.split('\n')) {
    if (!line.includes('"auditAnchor"')) continue;
    let json: unknown;
    try {
      json = JSON.parse(line);
    } catch {
      continue;
    }
    const r = AnchorLine.safeParse(json);
    if (r.success) out.push({ ...r.data.auditAnchor, source });
  }
  return out;
}

export function readAnchorFile(path: string): AuditAnchor[] {
  return parseAnchors(readFileSync(path, 'utf8'), path);
}

/** `SEQ:HASH`, as printed by `audit verify` or carried by an AuditHead Event. */
export function parseAnchorArg(text: string): AuditAnchor | undefined {
  const m = /^(\d+):([0-9a-f]{64})$/.exec(text.trim());
  if (m === null) return undefined;
  return { seq: Number(m[1]), hash: m[2] ?? '', at: 'given on the command line', keyId: null, mac: null, source: 'command line' };
}
