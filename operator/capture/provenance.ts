// What the ledger knows about an instance at the moment its disk is captured:
// owner, host, every address it held, and who deleted it when.
import type { Kysely } from 'kysely';
import type { LedgerSchema } from '../ledger/schema.ts';
import { deriveAll } from '../ledger/derive-pending.ts';
import type { InstanceFacts } from '../domain/policy.ts';
import type { CaptureRequest } from './engine.ts';

const iso = (ms: number | null | undefined): string | null => (ms === null || ms === undefined ? null : new Date(ms).toISOString());

export async function instanceFacts(db: Kysely<LedgerSchema>, cloud: string, instanceId: string): Promise<InstanceFacts & { known: boolean }> {
  const r = await db.selectFrom('instances').selectAll().where('cloud', '=', cloud).where('instance_id', '=', instanceId).executeTakeFirst();
  if (r === undefined) return { cloud, id: instanceId, known: false };
  return { cloud, id: instanceId, project: r.project, user: r.user_id, flavor: r.flavor, createdAt: r.created_at === null ? null : new Date(r.created_at), known: true };
}

export async function provenanceOf(db: Kysely<LedgerSchema>, cloud: string, instanceId: string, messageId: string | null): Promise<CaptureRequest['provenance']> {
  // The addresses as of every notification applied so far, the deletion's included (derive-pending.ts).
  await deriveAll(db, { cloud });
  const r = await db.selectFrom('instances').selectAll().where('cloud', '=', cloud).where('instance_id', '=', instanceId).executeTakeFirst();
  const addresses = await db.selectFrom('address_intervals').selectAll().where('cloud', '=', cloud).where('instance_id', '=', instanceId).orderBy('valid_from').execute();
  return {
    cloud,
    instance: {
      id: instanceId, name: r?.name ?? null, project: r?.project ?? null, user: r?.user_id ?? null, host: r?.host ?? null,
      image: r?.image ?? null, flavor: r?.flavor ?? null, createdAt: iso(r?.created_at),
    },
    addresses: addresses.map((a) => ({ address: a.address, kind: a.kind, network: a.network, port: a.port, from: new Date(a.valid_from).toISOString(), to: iso(a.valid_to) })),
    deletedAt: iso(r?.deleted_at), deletedBy: r?.deleted_by ?? null, messageId,
  };
}
