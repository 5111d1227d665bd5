// Nova facts that hold for both payload formats: which event types we decode,
// when an address list is the full current set, and what a delete's
// publisher and host say about the disks.
import { INSTANCE_ACTIONS, type InstanceAction } from '../../domain/events.ts';

export function isInstanceAction(value: string): value is InstanceAction {
  return (INSTANCE_ACTIONS as readonly string[]).includes(value);
}

// Lists emptied or not yet filled by the action itself (see notifications.md
// §0.8 and §2.3): reading [] there as "released now" would end intervals at
// the wrong time or for instances that never had an address.
const LIST_NOT_CURRENT: ReadonlySet<InstanceAction> = new Set<InstanceAction>([
  'create.start',
  'create.error',
  'shutdown.end',
  'delete.end',
  'force_delete.start',
  'force_delete.end',
]);

export function addressesAreCurrent(action: InstanceAction, state: string | undefined): boolean {
  return !LIST_NOT_CURRENT.has(action) && state !== 'deleted';
}

const DELETES: ReadonlySet<InstanceAction> = new Set<InstanceAction>([
  'delete.start',
  'delete.end',
  'force_delete.start',
  'force_delete.end',
]);

export interface DeleteFacts {
  action: InstanceAction;
  host: string | undefined;
  launched: boolean;
  /** The API, not the compute service, announced the delete. */
  announcedByApi: boolean;
}

export function deleteHints(facts: DeleteFacts): { localDelete: boolean; notScheduled: boolean } {
  const isDelete = DELETES.has(facts.action);
  const neverPlaced = facts.host === undefined && !facts.launched;
  return {
    localDelete: isDelete && facts.announcedByApi && facts.host !== undefined,
    notScheduled: (isDelete || facts.action === 'create.error') && neverPlaced,
  };
}

export function ipVersion(address: string, given: number | null | undefined): 4 | 6 {
  if (given === 4 || given === 6) return given;
  return address.includes(':') ? 6 : 4;
}
