// The port to a cloud's own API, in the operator's words: whether a server is
// still there, and forcing the delete of one whose disks are captured. The
// OpenStack client (clouds/openstack.ts) implements it; capture uses only this.

/** A server as the cloud reports it; undefined from `showServer` when it is gone. */
export interface CloudServer {
  id: string;
  status: string;
}

export interface CloudApi {
  showServer(id: string): Promise<CloudServer | undefined>;
  forceDelete(id: string): Promise<void>;
}
