// OpenNebula's numeric VM codes and their names, as oned spells them
// (include/VirtualMachine.h, include/VMActions.h). The VM XML carries numbers;
// hook messages, hook templates and ZeroMQ keys carry names, so both
// directions are needed. Pure data; imports nothing.

/** VM `STATE` codes. 7 (FAILED) is retired but kept so that old records still read. */
export const VM_STATES = {
  0: 'INIT',
  1: 'PENDING',
  2: 'HOLD',
  3: 'ACTIVE',
  4: 'STOPPED',
  5: 'SUSPENDED',
  6: 'DONE',
  7: 'FAILED',
  8: 'POWEROFF',
  9: 'UNDEPLOYED',
  10: 'CLONING',
  11: 'CLONING_FAILURE',
} as const satisfies Record<number, string>;

/**
 * VM `LCM_STATE` codes, meaningful while STATE is ACTIVE (3). Codes 13 (CANCEL),
 * 14 (FAILURE), 55 (DISK_SNAPSHOT_REVERT_SUSPENDED) and 58 (DISK_SNAPSHOT_REVERT)
 * are retired; they stay in the table so that archived documents still decode.
 */
export const VM_LCM_STATES = {
  0: 'LCM_INIT',
  1: 'PROLOG',
  2: 'BOOT',
  3: 'RUNNING',
  4: 'MIGRATE',
  5: 'SAVE_STOP',
  6: 'SAVE_SUSPEND',
  7: 'SAVE_MIGRATE',
  8: 'PROLOG_MIGRATE',
  9: 'PROLOG_RESUME',
  10: 'EPILOG_STOP',
  11: 'EPILOG',
  12: 'SHUTDOWN',
  13: 'CANCEL',
  14: 'FAILURE',
  15: 'CLEANUP_RESUBMIT',
  16: 'UNKNOWN',
  17: 'HOTPLUG',
  18: 'SHUTDOWN_POWEROFF',
  19: 'BOOT_UNKNOWN',
  20: 'BOOT_POWEROFF',
  21: 'BOOT_SUSPENDED',
  22: 'BOOT_STOPPED',
  23: 'CLEANUP_DELETE',
  24: 'HOTPLUG_SNAPSHOT',
  25: 'HOTPLUG_NIC',
  26: 'HOTPLUG_SAVEAS',
  27: 'HOTPLUG_SAVEAS_POWEROFF',
  28: 'HOTPLUG_SAVEAS_SUSPENDED',
  29: 'SHUTDOWN_UNDEPLOY',
  30: 'EPILOG_UNDEPLOY',
  31: 'PROLOG_UNDEPLOY',
  32: 'BOOT_UNDEPLOY',
  33: 'HOTPLUG_PROLOG_POWEROFF',
  34: 'HOTPLUG_EPILOG_POWEROFF',
  35: 'BOOT_MIGRATE',
  36: 'BOOT_FAILURE',
  37: 'BOOT_MIGRATE_FAILURE',
  38: 'PROLOG_MIGRATE_FAILURE',
  39: 'PROLOG_FAILURE',
  40: 'EPILOG_FAILURE',
  41: 'EPILOG_STOP_FAILURE',
  42: 'EPILOG_UNDEPLOY_FAILURE',
  43: 'PROLOG_MIGRATE_POWEROFF',
  44: 'PROLOG_MIGRATE_POWEROFF_FAILURE',
  45: 'PROLOG_MIGRATE_SUSPEND',
  46: 'PROLOG_MIGRATE_SUSPEND_FAILURE',
  47: 'BOOT_UNDEPLOY_FAILURE',
  48: 'BOOT_STOPPED_FAILURE',
  49: 'PROLOG_RESUME_FAILURE',
  50: 'PROLOG_UNDEPLOY_FAILURE',
  51: 'DISK_SNAPSHOT_POWEROFF',
  52: 'DISK_SNAPSHOT_REVERT_POWEROFF',
  53: 'DISK_SNAPSHOT_DELETE_POWEROFF',
  54: 'DISK_SNAPSHOT_SUSPENDED',
  55: 'DISK_SNAPSHOT_REVERT_SUSPENDED',
  56: 'DISK_SNAPSHOT_DELETE_SUSPENDED',
  57: 'DISK_SNAPSHOT',
  58: 'DISK_SNAPSHOT_REVERT',
  59: 'DISK_SNAPSHOT_DELETE',
  60: 'PROLOG_MIGRATE_UNKNOWN',
  61: 'PROLOG_MIGRATE_UNKNOWN_FAILURE',
  62: 'DISK_RESIZE',
  63: 'DISK_RESIZE_POWEROFF',
  64: 'DISK_RESIZE_UNDEPLOYED',
  65: 'HOTPLUG_NIC_POWEROFF',
  66: 'HOTPLUG_RESIZE',
  67: 'HOTPLUG_SAVEAS_UNDEPLOYED',
  68: 'HOTPLUG_SAVEAS_STOPPED',
  69: 'BACKUP',
  70: 'BACKUP_POWEROFF',
  71: 'RESTORE',
} as const satisfies Record<number, string>;

/**
 * History record `ACTION` codes: the action that closed (or is closing) a
 * history interval, with the `UID`/`GID`/`REQUEST_ID` of whoever asked for it.
 * Gaps (3, 4, 12) are actions oned no longer has.
 */
export const VM_HISTORY_ACTIONS = {
  0: 'none',
  1: 'migrate',
  2: 'live-migrate',
  5: 'undeploy',
  6: 'undeploy-hard',
  7: 'hold',
  8: 'release',
  9: 'stop',
  10: 'suspend',
  11: 'resume',
  13: 'delete',
  14: 'delete-recreate',
  15: 'reboot',
  16: 'reboot-hard',
  17: 'resched',
  18: 'unresched',
  19: 'poweroff',
  20: 'poweroff-hard',
  21: 'disk-attach',
  22: 'disk-detach',
  23: 'nic-attach',
  24: 'nic-detach',
  25: 'disk-snapshot-create',
  26: 'disk-snapshot-delete',
  27: 'terminate',
  28: 'terminate-hard',
  29: 'disk-resize',
  30: 'deploy',
  31: 'chown',
  32: 'chmod',
  33: 'updateconf',
  34: 'rename',
  35: 'resize',
  36: 'update',
  37: 'snapshot-create',
  38: 'snapshot-delete',
  39: 'snapshot-revert',
  40: 'disk-saveas',
  41: 'disk-snapshot-revert',
  42: 'recover',
  43: 'retry',
  44: 'monitor',
  45: 'disk-snapshot-rename',
  46: 'alias-attach',
  47: 'alias-detach',
  48: 'poweroff-migrate',
  49: 'poweroff-hard-migrate',
  50: 'backup',
  51: 'nic-update',
  52: 'backup-cancel',
  53: 'sched-add',
  54: 'sched-update',
  55: 'sched-delete',
  56: 'sg-attach',
  57: 'sg-detach',
} as const satisfies Record<number, string>;

export type VmStateName = (typeof VM_STATES)[keyof typeof VM_STATES];
export type VmLcmStateName = (typeof VM_LCM_STATES)[keyof typeof VM_LCM_STATES];
export type VmHistoryActionName = (typeof VM_HISTORY_ACTIONS)[keyof typeof VM_HISTORY_ACTIONS];

function nameOf<N extends string>(table: Readonly<Record<number, N>>, code: number): N | undefined {
  // Own-property check: a plain object lookup would also find inherited keys.
  return Object.hasOwn(table, code) ? table[code] : undefined;
}

function inverse<N extends string>(table: Readonly<Record<number, N>>): ReadonlyMap<string, number> {
  return new Map(Object.entries(table).map(([code, name]) => [name, Number(code)]));
}

const STATE_CODES = inverse(VM_STATES);
const LCM_STATE_CODES = inverse(VM_LCM_STATES);
const HISTORY_ACTION_CODES = inverse(VM_HISTORY_ACTIONS);

/** Name of a `STATE` code; undefined for a code this table does not know (a newer oned). */
export function vmStateName(code: number): VmStateName | undefined {
  return nameOf(VM_STATES, code);
}

/** Code of a `STATE` name as found in hook messages (exact, upper case). */
export function vmStateCode(name: string): number | undefined {
  return STATE_CODES.get(name);
}

export function vmLcmStateName(code: number): VmLcmStateName | undefined {
  return nameOf(VM_LCM_STATES, code);
}

export function vmLcmStateCode(name: string): number | undefined {
  return LCM_STATE_CODES.get(name);
}

export function vmHistoryActionName(code: number): VmHistoryActionName | undefined {
  return nameOf(VM_HISTORY_ACTIONS, code);
}

export function vmHistoryActionCode(name: string): number | undefined {
  return HISTORY_ACTION_CODES.get(name);
}

/** LCM states of a NIC hotplug: the document still lists a NIC being detached; the state that follows (RUNNING, POWEROFF) lists the result. */
const NIC_HOTPLUG_LCM = new Set([25, 65]);

/**
 * Where a VM document stands in the VM's own sequence, for ordering documents
 * whose event times are equal (oned and the hook publisher give whole
 * seconds): the last history record's SEQ first (a hot NIC attach, detach or
 * update starts a new record), then, within one record, a NIC hotplug state
 * before the state that ends it. Higher is later; a document without history
 * comes first.
 */
export function vmDocumentOrder(vm: { historySeq?: number | undefined; state: { code: number }; lcmState: { code: number } }): number {
  const hotplug = vm.state.code === 3 && NIC_HOTPLUG_LCM.has(vm.lcmState.code);
  return ((vm.historySeq ?? -1) + 1) * 2 + (hotplug ? 0 : 1);
}
