// The controller runtime without client-node; the client-node adapters
// (./kube.ts) and the leader-elected ControllerManager (./manager.ts) are
// imported directly, only where a cluster is used.
export { type Clock, type Timer, FakeClock, settle, sleep, systemClock } from './clock.ts';
export { PermanentError, TemporaryError, httpStatus } from './errors.ts';
export type { CoreEvent, EventSink, Lease, LeaseRecord, LeaseStore, ObjectClient, ObjectRef } from './api.ts';
export { type ChangeKind, Informer, type InformerOptions, type KubeObject, type ListResult, type ListerWatcher, type WatchHandle, keyOf, refOfKey } from './informer.ts';
export { WorkQueue, type WorkQueueOptions } from './queue.ts';
export {
  type ConditionUpdate,
  type StatusUpdate,
  addFinalizer,
  findCondition,
  hasFinalizer,
  isDeleting,
  mergeConditions,
  patchStatus,
  removeFinalizer,
  statusPatch,
} from './status.ts';
export { EventRecorder, type EventRecorderOptions, type EventType } from './events.ts';
export { LeaderElector, type LeaderElectorOptions } from './leader.ts';
export {
  type Controller,
  ControllerRunner,
  type ControllerRuntimeOptions,
  RECONCILED,
  type ReconcileContext,
  type ReconcileResult,
  resourceForKind,
} from './controller.ts';
