// One OpenNebula `<VM>` element (the extended form oned puts in hook
// messages) to a OneVm: identity, owner, states, NICs, disks, current host
// and the last history action.
import { z } from 'zod';
import type { OneCodeName, OneDisk, OneHistoryAction, OneNic, OneVm } from '../../domain/events.ts';
import { vmHistoryActionName, vmLcmStateName, vmStateName } from '../../domain/opennebula-states.ts';
import { parseWith } from './validate.ts';
import { compact, nonEmpty } from './values.ts';
import { childrenNamed, firstChild, leafValues, type XmlElement } from './xml.ts';

// Empty elements (`<DEPLOY_ID/>`) mean "not set", exactly like absent ones.
const blankIsAbsent = (value: unknown) => (value === '' ? undefined : value);
const int = z.string().regex(/^-?\d+$/, 'expected an integer').transform(Number);
const optionalInt = z.preprocess(blankIsAbsent, int.optional());
const optionalText = z.preprocess(blankIsAbsent, z.string().optional());
const epochSeconds = z.string().regex(/^\d{1,12}$/, 'expected epoch seconds').transform(Number);
const optionalEpoch = z.preprocess(blankIsAbsent, epochSeconds.optional());
const yesNo = z.preprocess(
  blankIsAbsent,
  z
    .string()
    .regex(/^(yes|no)$/i, 'expected YES or NO')
    .transform((value) => value.toUpperCase() === 'YES')
    .optional(),
);

const VmValues = z.object({
  ID: int,
  NAME: z.string(),
  UID: int,
  UNAME: z.string().min(1),
  GID: int,
  GNAME: z.string().min(1),
  STATE: int,
  LCM_STATE: int,
  PREV_STATE: optionalInt,
  PREV_LCM_STATE: optionalInt,
  STIME: epochSeconds,
  ETIME: optionalEpoch,
  DEPLOY_ID: optionalText,
});

const NicValues = z.object({
  NIC_ID: int,
  IP: optionalText,
  IP6: optionalText,
  IP6_GLOBAL: optionalText,
  IP6_ULA: optionalText,
  MAC: optionalText,
  NETWORK: optionalText,
  NETWORK_ID: optionalInt,
  TARGET: optionalText,
  PARENT_ID: optionalInt,
});

const DiskValues = z.object({
  DISK_ID: int,
  IMAGE_ID: optionalInt,
  IMAGE: optionalText,
  SOURCE: optionalText,
  POOL_NAME: optionalText,
  CLONE: yesNo,
  PERSISTENT: yesNo,
  SAVE: yesNo,
  TM_MAD: optionalText,
  DATASTORE_ID: optionalInt,
  CEPH_TRASH: yesNo,
  SIZE: optionalInt,
  TYPE: optionalText,
});

const HistoryValues = z.object({
  SEQ: optionalInt,
  HOSTNAME: optionalText,
  ACTION: optionalInt,
  UID: optionalInt,
  GID: optionalInt,
  REQUEST_ID: optionalInt,
  STIME: optionalEpoch,
  ETIME: optionalEpoch,
  PSTIME: optionalEpoch,
  RSTIME: optionalEpoch,
  ESTIME: optionalEpoch,
});

type History = z.output<typeof HistoryValues>;

function codeName(code: number, lookup: (code: number) => string | undefined, field: string, warnings: string[]): OneCodeName {
  const name = lookup(code);
  if (name === undefined) warnings.push(`${field}: unknown code ${code}`);
  return compact({ code, name });
}

function nic(element: XmlElement, path: string, alias: boolean): OneNic {
  const v = parseWith(NicValues, leafValues(element), 'bad-payload', path, 'OpenNebula VM');
  return compact({
    nicId: v.NIC_ID,
    ip: v.IP,
    ip6: v.IP6,
    ip6Global: v.IP6_GLOBAL,
    ip6Ula: v.IP6_ULA,
    mac: v.MAC,
    network: v.NETWORK,
    networkId: v.NETWORK_ID,
    target: v.TARGET,
    alias,
    parentNicId: alias ? v.PARENT_ID : undefined,
  });
}

function disk(element: XmlElement, path: string): OneDisk {
  const v = parseWith(DiskValues, leafValues(element), 'bad-payload', path, 'OpenNebula VM');
  return compact({
    diskId: v.DISK_ID,
    imageId: v.IMAGE_ID,
    image: v.IMAGE,
    source: v.SOURCE,
    poolName: v.POOL_NAME,
    clone: v.CLONE,
    persistent: v.PERSISTENT ?? v.SAVE,
    tmMad: v.TM_MAD,
    datastoreId: v.DATASTORE_ID,
    cephTrash: v.CEPH_TRASH,
    size: v.SIZE,
    type: v.TYPE,
  });
}

function lastHistory(vm: XmlElement): History | undefined {
  const records = childrenNamed(firstChild(vm, 'HISTORY_RECORDS') ?? vm, 'HISTORY');
  let last: History | undefined;
  records.forEach((record, index) => {
    const h = parseWith(HistoryValues, leafValues(record), 'bad-payload', `VM.HISTORY_RECORDS.HISTORY[${index}]`, 'OpenNebula VM');
    // Highest SEQ is the current interval; document order breaks ties and covers a missing SEQ.
    if (last === undefined || (h.SEQ ?? -1) >= (last.SEQ ?? -1)) last = h;
  });
  return last;
}

function historyAction(h: History | undefined): OneHistoryAction | undefined {
  if (h?.ACTION === undefined) return undefined;
  const actor = (id: number | undefined) => (id === undefined || id < 0 ? undefined : id);
  return compact({
    code: h.ACTION,
    name: vmHistoryActionName(h.ACTION),
    uid: actor(h.UID),
    gid: actor(h.GID),
    requestId: actor(h.REQUEST_ID),
  });
}

const seconds = (value: number | undefined) => (value === undefined || value === 0 ? undefined : new Date(value * 1000));

/**
 * The history time that marks the start of the reported state, when oned has
 * recorded one (0 = not yet). A lower bound for when the transition happened.
 */
function stateTime(vm: OneVm, vmEtime: number | undefined, h: History | undefined): Date | undefined {
  const state = vm.state.name;
  const lcm = vm.lcmState.name ?? '';
  if (state === 'DONE') return seconds(vmEtime) ?? seconds(h?.ETIME);
  if (state === 'PENDING' && h === undefined) return vm.stime;
  if (state !== 'ACTIVE' || lcm.endsWith('_FAILURE')) return undefined;
  if (lcm.startsWith('PROLOG')) return seconds(h?.PSTIME);
  if (lcm.startsWith('BOOT') || lcm === 'RUNNING') return seconds(h?.RSTIME);
  if (lcm.startsWith('EPILOG')) return seconds(h?.ESTIME);
  return undefined;
}

export interface DecodedVm {
  vm: OneVm;
  /** See stateTime. */
  stateSince?: Date;
}

/** `remoteHost` is the hook message's REMOTE_HOST, used when the VM has no history yet. */
export function decodeVm(element: XmlElement, remoteHost: string | undefined, warnings: string[]): DecodedVm {
  const v = parseWith(VmValues, leafValues(element), 'bad-payload', 'VM', 'OpenNebula VM');
  const template = firstChild(element, 'TEMPLATE');
  const nics = template
    ? [
        ...childrenNamed(template, 'NIC').map((e, i) => nic(e, `VM.TEMPLATE.NIC[${i}]`, false)),
        ...childrenNamed(template, 'NIC_ALIAS').map((e, i) => nic(e, `VM.TEMPLATE.NIC_ALIAS[${i}]`, true)),
      ]
    : [];
  const disks = template ? childrenNamed(template, 'DISK').map((e, i) => disk(e, `VM.TEMPLATE.DISK[${i}]`)) : [];
  const history = lastHistory(element);

  const vm: OneVm = compact({
    id: v.ID,
    name: v.NAME,
    uid: v.UID,
    uname: v.UNAME,
    gid: v.GID,
    gname: v.GNAME,
    state: codeName(v.STATE, vmStateName, 'VM.STATE', warnings),
    lcmState: codeName(v.LCM_STATE, vmLcmStateName, 'VM.LCM_STATE', warnings),
    prevState: v.PREV_STATE === undefined ? undefined : codeName(v.PREV_STATE, vmStateName, 'VM.PREV_STATE', warnings),
    prevLcmState:
      v.PREV_LCM_STATE === undefined ? undefined : codeName(v.PREV_LCM_STATE, vmLcmStateName, 'VM.PREV_LCM_STATE', warnings),
    stime: new Date(v.STIME * 1000),
    etime: seconds(v.ETIME),
    deployId: v.DEPLOY_ID,
    host: history?.HOSTNAME ?? nonEmpty(remoteHost),
    nics,
    disks,
    historyAction: historyAction(history),
    historySeq: history?.SEQ,
  });
  return compact({ vm, stateSince: stateTime(vm, v.ETIME, history) });
}
