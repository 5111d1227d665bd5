// `trace instance`: an instance's life as the ledger knows it.
import type { Kysely } from 'kysely';
import type { LedgerSchema } from './schema.ts';
import { boundsOf, goneBetween } from './trace.ts';
import { ownerNames } from './owner-names.ts';
import type { OwnerNames } from '../domain/owner-names.ts';

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

/** Names beside the ids, present only where the cloud gave them, each with its source and read time (OwnerNames). */
export interface InstanceHistory extends OwnerNames {
  cloud: string;
  id: string;
  name: string | null;
  project: string | null;
  user: string | null;
  host: string | null;
  image: string | null;
  flavor: string | null;
  state: string | null;
  createdAt: string | null;
  deletedAt: string | null;
  deletedBy: string | null;
  firstSeenAt: string;
  /** The API stopped listing it, with no notification of when: gone somewhere in this window. */
  goneBetween?: [string, string];
  /** `from`/`to` are certain; `fromUncertainSince`/`toUncertainUntil` widen them where a bound came from a listing of the API. */
  addresses: Array<{ address: string; kind: string; network: string | null; port: string | null; mac: string | null; from: string; to: string | null; fromUncertainSince?: string | null; toUncertainUntil?: string }>;
  events: Array<{ at: string; eventType: string; action: string; publisher: string | null; messageId: string }>;
}

export async function instanceHistory(db: Kysely<LedgerSchema>, id: string, cloud?: string): Promise<InstanceHistory[]> {
  let q = db.selectFrom('instances').selectAll().where('instance_id', '=', id);
  if (cloud !== undefined) q = q.where('cloud', '=', cloud);
  const rows = await q.orderBy('cloud').execute();
  const out: InstanceHistory[] = [];
  for (const r of rows) {
    const addresses = await db.selectFrom('address_intervals').selectAll().where('cloud', '=', r.cloud).where('instance_id', '=', id).orderBy('valid_from').orderBy('address').execute();
    const events = await db.selectFrom('instance_events as e')
      .leftJoin('notifications as n', (j) => j.onRef('n.cloud', '=', 'e.cloud').onRef('n.message_id', '=', 'e.message_id'))
      .select(['e.at', 'e.event_type', 'e.action', 'e.message_id', 'n.publisher'])
      .where('e.cloud', '=', r.cloud).where('e.instance_id', '=', id).orderBy('e.at').execute();
    out.push({
      cloud: r.cloud, id: r.instance_id, name: r.name, project: r.project, user: r.user_id, ...ownerNames(r), host: r.host, image: r.image, flavor: r.flavor,
      state: r.state, createdAt: iso(r.created_at), deletedAt: iso(r.deleted_at), deletedBy: r.deleted_by, firstSeenAt: new Date(r.first_seen_at).toISOString(),
      ...goneBetween(r.gone_after, r.gone_by),
      addresses: addresses.map((a) => ({ address: a.address, kind: a.kind, network: a.network, port: a.port, mac: a.mac, ...boundsOf(a) })),
      events: events.map((e) => ({ at: new Date(e.at).toISOString(), eventType: e.event_type, action: e.action, publisher: e.publisher ?? null, messageId: e.message_id })),
    });
  }
  return out;
}
