// From custom resources (or the same YAML in standalone mode) to the domain's
// own types, which the capture engine and the sweep use.
import type { Policy } from '../domain/policy.ts';
import type { Hold } from '../domain/holds.ts';
import { parseDuration, type QuarantinePolicy } from './policy.ts';
import type { QuarantineHold } from './hold.ts';

export function policyFromResource(p: QuarantinePolicy): Policy {
  const s = p.spec;
  return {
    name: p.metadata.name,
    selector: {
      clouds: s.selector.clouds, projectsIn: s.selector.projects?.in, projectsNotIn: s.selector.projects?.notIn,
      users: s.selector.users, flavors: s.selector.flavors,
      minInstanceAgeMs: s.selector.minInstanceAgeSeconds === undefined ? undefined : s.selector.minInstanceAgeSeconds * 1000,
    },
    capture: { mode: s.capture.mode, disks: s.capture.disks, flatten: s.capture.flatten, releaseResources: s.capture.releaseResources, isolate: s.capture.isolate },
    retentionMs: parseDuration(s.retention.duration),
    capacity: { maxBytes: s.capacity?.maxBytes, maxCount: s.capacity?.maxCount, onFull: s.capacity?.onFull ?? 'refuse' },
    sweep: { schedule: s.sweep.schedule, timeZone: s.sweep.timeZone, dryRun: s.sweep.dryRun },
  };
}

/** A hold's ledger name: namespaced resources keep their namespace so two teams' holds never collide. */
export function holdName(h: QuarantineHold): string {
  return `${h.metadata.namespace ?? 'default'}/${h.metadata.name}`;
}

export function holdFromResource(h: QuarantineHold): Hold & { reason: string } {
  const sel = h.spec.selector;
  return {
    name: holdName(h), caseId: h.spec.caseId, reason: h.spec.reason,
    selector: { clouds: sel.clouds, instances: sel.instances, projects: sel.projects, users: sel.users, addresses: sel.addresses },
    until: h.spec.until === undefined ? undefined : new Date(h.spec.until),
  };
}
