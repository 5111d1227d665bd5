// What every BlockStore adapter on a real cluster is given to reach it, and the
// limits they share, so that the CLI and librbd adapters cannot drift apart.

export interface CephConnectionOptions {
  /** ceph.conf to read; without it $CEPH_CONF, then /etc/ceph/ceph.conf. */
  readonly cephConf?: string | undefined;
  /** cephx user without the `client.` prefix, e.g. `quarantine-operator`. */
  readonly id?: string | undefined;
  /** Keyring file; by default the conf's `keyring` setting. */
  readonly keyring?: string | undefined;
  /** Monitor addresses, when there is no ceph.conf that names them. */
  readonly monHost?: string | undefined;
  /** Limit for ordinary calls. Default 30 s. */
  readonly timeoutMs?: number | undefined;
  /** Limit for export, import and flatten, which move whole images. Default 6 h. */
  readonly transferTimeoutMs?: number | undefined;
}

export const DEFAULT_TIMEOUT_MS = 30_000;
export const DEFAULT_TRANSFER_TIMEOUT_MS = 6 * 3600_000;
/**
 * How far in the future a trash expiry must lie. rbd reads `--expires-at`
 * after it has started, and a moment already past does not fail: it wraps to
 * the year 2106.
 */
export const MIN_TRASH_EXPIRY_LEAD_MS = 5_000;
