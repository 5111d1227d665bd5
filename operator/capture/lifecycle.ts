// Deciding, apart from doing: which cloud events owe a capture, and what the
// matching policy decided at that moment. Pure functions over decoded events,
// policies and counts; the reconcilers (live-capture, trash-adoption,
// orphan-adoption) do what a recorded decision says.
//
// A capture intent is  open → done | cancelled. A quarantine it creates runs
//   planned → snapshotting → cloning → quarantined
// and, once quarantined, its isolation (isolation.ts) runs
//   digesting → isolating → isolated   (or digesting → not-isolated)
// each step claimed by one worker.
import { z } from 'zod';
import type { DecodedNotification } from '../domain/events.ts';
import type { Policy } from '../domain/policy.ts';

/** What an event means for the capture side. */
export type Signal =
  /** A deletion is coming (or under way): race it with a snapshot. */
  | { kind: 'warning'; instanceId: string }
  /** Soft-deleted: the disks stay until the cloud reclaims them. */
  | { kind: 'soft'; instanceId: string }
  /** The cloud says the instance is gone: what it failed to delete is adopted after a grace. */
  | { kind: 'gone'; instanceId: string }
  /** Restored after a soft delete: the capture owed no longer is. */
  | { kind: 'undone'; instanceId: string };

const ONE_SHUTDOWN = 12;
const ONE_EPILOG = 11;
const ONE_CLEANUP_DELETE = 23;
const ONE_DONE = 6;

export function signalsOf(n: DecodedNotification): Signal[] {
  const out: Signal[] = [];
  for (const e of n.events) {
    if (e.type === 'instance') {
      if (e.notScheduled) continue;
      const instanceId = e.instance.id;
      if (e.action === 'delete.start' || e.action === 'force_delete.start') out.push({ kind: 'warning', instanceId });
      else if (e.action === 'soft_delete.end') out.push({ kind: 'soft', instanceId });
      else if (e.action === 'delete.end' || e.action === 'force_delete.end') out.push({ kind: 'gone', instanceId });
      else if (e.action === 'restore.end') out.push({ kind: 'undone', instanceId });
    } else if (e.type === 'one_vm') {
      const instanceId = String(e.vm.id);
      const lcm = e.vm.lcmState.code;
      // SHUTDOWN is the warning; EPILOG is already the deletion, still worth a try.
      if (lcm === ONE_SHUTDOWN || lcm === ONE_EPILOG || lcm === ONE_CLEANUP_DELETE) out.push({ kind: 'warning', instanceId });
      else if (e.vm.state.code === ONE_DONE) out.push({ kind: 'gone', instanceId });
    }
  }
  return out;
}

/**
 * Instances whose disks a trash-armed pool may hold now: Nova removes them
 * between shutdown.start and shutdown.end of a delete (so delete.start comes
 * before, shutdown.end and delete.end after), OpenNebula's TM during EPILOG,
 * before DONE. A scan at each finds them without waiting for the next one.
 */
export function trashHintsOf(n: DecodedNotification): string[] {
  const out = new Set<string>();
  for (const s of signalsOf(n)) if (s.kind === 'warning' || s.kind === 'gone') out.add(s.instanceId);
  for (const e of n.events) if (e.type === 'instance' && !e.notScheduled && e.action === 'shutdown.end') out.add(e.instance.id);
  return [...out];
}

export const INTENT_KINDS = ['live', 'soft', 'trash', 'orphan'] as const;
export type IntentKind = (typeof INTENT_KINDS)[number];

/** What a policy decided for one intent, frozen when the intent is recorded. */
export const decisionSchema = z.object({
  policy: z.string(),
  mode: z.enum(['trash', 'softDelete', 'onDelete']),
  retentionMs: z.number().int().positive(),
  flatten: z.boolean(),
  /** Isolate once captured (absent in intents recorded before isolation existed: yes). */
  isolate: z.boolean().default(true),
  disks: z.object({ root: z.boolean(), ephemeral: z.boolean(), volumes: z.boolean() }),
  releaseResources: z.boolean(),
  /** Capacity when the intent was recorded; admission is checked again per disk against `limits`. */
  capacity: z.enum(['admitted', 'full']),
  /** Present when the policy refuses captures beyond these. */
  limits: z.object({ maxBytes: z.number().optional(), maxCount: z.number().optional() }).optional(),
  /** A live capture races the cloud's delete (its outcome is counted as won or lost). */
  racing: z.boolean(),
  /** For a trash intent: the entry as listed. */
  entry: z.object({
    pool: z.string(), namespace: z.string().optional(), id: z.string(), name: z.string(), source: z.string(),
    deletedAt: z.string(), expiresAt: z.string(), expired: z.boolean(),
  }).optional(),
});
export type Decision = z.infer<typeof decisionSchema>;

export function parseDecision(json: string): Decision {
  return decisionSchema.parse(JSON.parse(json));
}

export interface Holding {
  count: number;
  bytes: number;
}

export type Limits = NonNullable<Decision['limits']>;

/** Whether there is room for one more capture under these limits. */
export function admits(limits: Limits | undefined, holding: Holding): boolean {
  if (limits === undefined) return true;
  if (limits.maxCount !== undefined && holding.count >= limits.maxCount) return false;
  if (limits.maxBytes !== undefined && holding.bytes >= limits.maxBytes) return false;
  return true;
}

function limitsOf(p: Policy): Limits | undefined {
  if (!capacityLimited(p)) return undefined;
  return {
    ...(p.capacity.maxBytes === undefined ? {} : { maxBytes: p.capacity.maxBytes }),
    ...(p.capacity.maxCount === undefined ? {} : { maxCount: p.capacity.maxCount }),
  };
}

/** Whether a policy has room for one more capture (only `onFull: refuse` ever says no). */
export function admission(p: Policy, holding: Holding): 'admitted' | 'full' {
  return admits(limitsOf(p), holding) ? 'admitted' : 'full';
}

/** Whether admission needs the policy's current holdings at all. */
export function capacityLimited(p: Policy): boolean {
  return p.capacity.onFull === 'refuse' && (p.capacity.maxBytes !== undefined || p.capacity.maxCount !== undefined);
}

function decisionOf(p: Policy, capacity: 'admitted' | 'full', racing: boolean): Decision {
  return {
    policy: p.name, mode: p.capture.mode, retentionMs: p.retentionMs, flatten: p.capture.flatten, isolate: p.capture.isolate ?? true, disks: { ...p.capture.disks },
    releaseResources: p.capture.releaseResources, capacity, racing,
    ...(limitsOf(p) === undefined ? {} : { limits: limitsOf(p) }),
  };
}

export type Plan =
  | { do: 'intent'; kind: IntentKind; decision: Decision | undefined }
  /** Trash-mode policy: the disk is adopted from the trash, so look there soon. */
  | { do: 'scanTrash' }
  | { do: 'cancel'; kinds: IntentKind[] }
  | { do: 'nothing'; why: string };

/** What one signal owes, given the policy selecting the instance now (if any). */
export function planFor(signal: Signal, p: Policy | undefined, capacity: 'admitted' | 'full'): Plan {
  switch (signal.kind) {
    case 'gone':
      // Whatever was captured before may have an orphan to adopt; no policy needed for that.
      return { do: 'intent', kind: 'orphan', decision: undefined };
    case 'undone':
      return { do: 'cancel', kinds: ['soft'] };
    case 'warning':
      if (p === undefined) return { do: 'nothing', why: 'no policy selects the instance' };
      if (p.capture.mode === 'trash') return { do: 'scanTrash' };
      // softDelete falls back to a best-effort live capture when the cloud hard-deletes anyway.
      return { do: 'intent', kind: 'live', decision: decisionOf(p, capacity, true) };
    case 'soft':
      if (p?.capture.mode !== 'softDelete') return { do: 'nothing', why: 'no softDelete policy selects the instance' };
      return { do: 'intent', kind: 'soft', decision: decisionOf(p, capacity, false) };
  }
}

/** A trash entry's plan: adopted only under a trash-mode policy that wants that disk's role. */
export function planForTrashEntry(p: Policy | undefined, roleIsWanted: (disks: Decision['disks']) => boolean, capacity: 'admitted' | 'full'): Decision | undefined {
  if (p === undefined || p.capture.mode !== 'trash' || !roleIsWanted(p.capture.disks)) return undefined;
  return decisionOf(p, capacity, false);
}

/** An intent's key: unique per (cloud, kind, subject), so a second warning for one deletion adds nothing. */
export function intentId(cloud: string, kind: IntentKind, subject: string): string {
  return `${cloud}/${kind}/${subject}`;
}

/** What a captured quarantine owes next on its way to isolation. */
export type IsolationWork =
  /** SHA-256 of the capture snapshot, before anything is copied. */
  | { do: 'digest'; then: 'isolating' | 'not-isolated' }
  /** Copy the bytes into the quarantine pool, then release the anchor in the cloud's pool. */
  | { do: 'isolate' }
  | { do: 'nothing' };

export function isolationWork(row: { state: string; isolation: string | null; isolate: number }): IsolationWork {
  if (row.state !== 'quarantined') return { do: 'nothing' };
  if (row.isolation === 'digesting') return { do: 'digest', then: row.isolate === 1 ? 'isolating' : 'not-isolated' };
  if (row.isolation === 'isolating') return { do: 'isolate' };
  return { do: 'nothing' };
}
