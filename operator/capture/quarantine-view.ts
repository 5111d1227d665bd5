// A quarantine as investigators read it, one shape for the CLI (`images ls|show
// -o json|yaml`) and the HTTP API: camelCase, ISO times, locations as
// pool/[namespace/]image, its isolation, the holds covering it, the provenance parsed.
import type { QuarantineRow } from './quarantine-store.ts';
import { isolationLabel } from './isolation-label.ts';

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

export function quarantineView(q: QuarantineRow, holds: readonly string[] | undefined) {
  return {
    id: q.id, cloud: q.cloud, instance: q.instance_id, disk: q.disk, mode: q.mode, policy: q.policy, state: q.state, failure: q.failure,
    source: `${q.source_pool}/${q.source_namespace === null ? '' : `${q.source_namespace}/`}${q.source_image}`, sourceImageId: q.source_image_id,
    location: `${q.location_pool}/${q.location_namespace === null ? '' : `${q.location_namespace}/`}${q.location_image}`,
    bytes: q.bytes, flattened: q.flattened === 1, capturedAt: iso(q.captured_at), expiresAt: iso(q.expires_at), purgedAt: iso(q.purged_at),
    isolation: isolationLabel(q), isolatedAt: iso(q.isolated_at),
    sha256: q.digest, digestAt: iso(q.digest_at), heldBy: [...(holds ?? [])], provenance: JSON.parse(q.provenance) as unknown,
  };
}

export type QuarantineView = ReturnType<typeof quarantineView>;
