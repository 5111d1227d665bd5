export type * from './block-store.ts';
export { isImageIdRef, isSnapshotSpec } from './block-store.ts';
export * from './errors.ts';
export * from './names.ts';
export { RbdCli, DEFAULT_TIMEOUT_MS, DEFAULT_TRANSFER_TIMEOUT_MS, MIN_TRASH_EXPIRY_LEAD_MS } from './rbd-cli.ts';
export type { RbdCliOptions } from './rbd-cli.ts';
export type { RunFn, RunOptions, RunResult, SpawnFn, SpawnOptions } from './process.ts';
