// Which VMs are captured, how, and for how long: pure decisions over facts
// the ledger already holds.

export type CaptureMode = 'trash' | 'softDelete' | 'onDelete';

export interface Policy {
  name: string;
  selector: {
    clouds?: string[] | undefined;
    projectsIn?: string[] | undefined;
    projectsNotIn?: string[] | undefined;
    users?: string[] | undefined;
    flavors?: string[] | undefined;
    minInstanceAgeMs?: number | undefined;
  };
  capture: {
    mode: CaptureMode;
    disks: { root: boolean; ephemeral: boolean; volumes: boolean };
    flatten: boolean;
    releaseResources: boolean;
    /** Copy each quarantine out of the cloud's pool once captured and release its anchor there; absent = yes. */
    isolate?: boolean | undefined;
  };
  retentionMs: number;
  capacity: { maxBytes?: number | undefined; maxCount?: number | undefined; onFull: 'evictOldest' | 'refuse' };
  sweep: { schedule: string; timeZone: string; dryRun: boolean };
}

export interface InstanceFacts {
  cloud: string;
  id: string;
  project?: string | null | undefined;
  user?: string | null | undefined;
  flavor?: string | null | undefined;
  createdAt?: Date | null | undefined;
}

const listed = (list: string[] | undefined, value: string | null | undefined): boolean =>
  list === undefined || list.length === 0 || (value !== null && value !== undefined && list.includes(value));

export function selects(p: Policy, i: InstanceFacts, now: Date): boolean {
  const s = p.selector;
  if (!listed(s.clouds, i.cloud)) return false;
  if (!listed(s.projectsIn, i.project)) return false;
  if (s.projectsNotIn !== undefined && i.project !== null && i.project !== undefined && s.projectsNotIn.includes(i.project)) return false;
  if (!listed(s.users, i.user)) return false;
  if (!listed(s.flavors, i.flavor)) return false;
  // Short-lived VMs (CI runners) can be left out; an instance of unknown age is kept in.
  if (s.minInstanceAgeMs !== undefined && i.createdAt !== null && i.createdAt !== undefined && now.getTime() - i.createdAt.getTime() < s.minInstanceAgeMs) return false;
  return true;
}

/** The first policy by name that selects the instance: deterministic when several overlap. */
export function policyFor(policies: readonly Policy[], i: InstanceFacts, now: Date): Policy | undefined {
  return [...policies].sort((a, b) => a.name.localeCompare(b.name)).find((p) => selects(p, i, now));
}

/** expiresAt = capturedAt + retention, exactly. */
export function expiryOf(capturedAt: Date, retentionMs: number): Date {
  return new Date(capturedAt.getTime() + retentionMs);
}
