// The port to a cloud's own API, in the operator's words: whether a server is
// still there, and forcing the delete of one whose disks are captured; and
// the names of the users and projects the notifications name by id. The
// OpenStack client (clouds/openstack.ts) implements both; capture uses only
// CloudApi.

/** A server as the cloud reports it; undefined from `showServer` when it is gone. */
export interface CloudServer {
  id: string;
  status: string;
}

export interface CloudApi {
  showServer(id: string): Promise<CloudServer | undefined>;
  forceDelete(id: string): Promise<void>;
}

export type IdentityKind = 'user' | 'project';

/** Names for the ids notifications carry (Keystone's users and projects). */
export interface IdentityDirectory {
  /** The current name, null when the cloud does not know the id; throws when the cloud cannot be asked. */
  identityName(kind: IdentityKind, id: string): Promise<string | null>;
}
