// Where a quarantine's isolation stands, in the words `images ls/show`, the
// HTTP API and the case report use (no imports: the CLI loads it at startup).

export type IsolationLabel = 'pending' | 'digesting' | 'isolating' | 'isolated' | 'not isolated' | 'copy differs' | 'flattened';

export function isolationLabel(q: { state: string; isolation: string | null; flattened: number }): IsolationLabel {
  switch (q.isolation) {
    case 'digesting':
    case 'isolating':
    case 'isolated':
      return q.isolation;
    case 'not-isolated':
      return 'not isolated';
    case 'copy-differs':
      return 'copy differs';
    default:
      if (q.state === 'planned' || q.state === 'snapshotting' || q.state === 'cloning') return 'pending';
      // Captured before isolation existed: a flattened one no longer reads from the cloud's pool, but its anchor was not necessarily released.
      return q.flattened === 1 ? 'flattened' : 'not isolated';
  }
}
