// The owner's names beside the ids on an instance, each with where it came
// from and when it was read, as every trace answer shows them.

/** Where a name came from: the identity API (Keystone), a request context in a notification, or OpenNebula's VM document or pool listing. */
export const NAME_SOURCES = ['keystone', 'notification', 'opennebula'] as const;
export type NameSource = (typeof NAME_SOURCES)[number];

/** The JSON fields, present only where the cloud gave a name (and, for each name, its source and read time where recorded). */
export interface OwnerNames {
  userName?: string;
  /** Where userName came from. */
  userNameSource?: NameSource;
  /** When userName was read: the Keystone read, or the event time of the notification or listing that gave it. */
  userNameReadAt?: string;
  projectName?: string;
  projectNameSource?: NameSource;
  projectNameReadAt?: string;
}

/** Table cell: the id, with the name, its source and read time beside it, e.g. `u-1 (alice, keystone 2026-05-01T10:00:00Z)`. */
export function namedCell(id: string | null, name: string | undefined, source: NameSource | undefined, readAt: string | undefined): string | null {
  if (name === undefined) return id;
  const from = [source, readAt?.replace(/\.000Z$/, 'Z')].filter((x) => x !== undefined).join(' ');
  const beside = [name === id ? undefined : name, from === '' ? undefined : from].filter((x) => x !== undefined).join(', ');
  if (beside === '') return id;
  return id === null ? `${name}${from === '' ? '' : ` (${from})`}` : `${id} (${beside})`;
}
