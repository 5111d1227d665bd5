// OpenNebula documents as the project's hook publisher forwards them: a
// HOOK_MESSAGE (what oned's hook manager publishes for every state change) or
// the bare `<VM>` a state hook receives as `$TEMPLATE`.
import type { OneHookInfo, OneVmEvent, WireFormat } from '../../domain/events.ts';
import { vmLcmStateCode, vmStateCode } from '../../domain/opennebula-states.ts';
import { DecodeError } from './errors.ts';
import { decodeVm } from './opennebula-vm.ts';
import { compact, nonEmpty } from './values.ts';
import { firstChild, leafValues, parseXml, XmlSyntaxError, type XmlElement } from './xml.ts';

export interface OpenNebulaDecoded {
  wire: Extract<WireFormat, 'opennebula-hook-message' | 'opennebula-vm'>;
  eventType: string;
  events: OneVmEvent[];
  ignored: boolean;
  /** History time matching the reported state, if oned recorded one. */
  stateSince?: Date;
}

export const VM_STATE_EVENT = 'opennebula.vm.state';

function parseDocument(text: string): XmlElement {
  try {
    return parseXml(text);
  } catch (err) {
    if (err instanceof XmlSyntaxError) throw new DecodeError('bad-xml', `OpenNebula XML: ${err.message}`, { cause: err });
    throw err;
  }
}

function optionalInt(value: string | undefined, field: string): number | undefined {
  if (value === undefined || value === '') return undefined;
  if (!/^-?\d+$/.test(value)) throw new DecodeError('bad-payload', `OpenNebula hook message: ${field}: expected an integer`);
  return Number(value);
}

function vmEvent(
  vmElement: XmlElement,
  wire: OpenNebulaDecoded['wire'],
  hook: OneHookInfo | undefined,
  warnings: string[],
): OpenNebulaDecoded {
  const { vm, stateSince } = decodeVm(vmElement, hook?.remoteHost, warnings);
  if (hook?.state !== undefined && vmStateCode(hook.state) !== vm.state.code) {
    warnings.push(`HOOK_MESSAGE.STATE ${hook.state} disagrees with VM.STATE ${vm.state.code}`);
  }
  if (hook?.lcmState !== undefined && vmLcmStateCode(hook.lcmState) !== vm.lcmState.code) {
    warnings.push(`HOOK_MESSAGE.LCM_STATE ${hook.lcmState} disagrees with VM.LCM_STATE ${vm.lcmState.code}`);
  }
  if (hook?.resourceId !== undefined && hook.resourceId !== vm.id) {
    warnings.push(`HOOK_MESSAGE.RESOURCE_ID ${hook.resourceId} disagrees with VM.ID ${vm.id}`);
  }
  const event: OneVmEvent = compact({ type: 'one_vm' as const, vm, hook });
  return compact({ wire, eventType: VM_STATE_EVENT, events: [event], ignored: false, stateSince });
}

function hookMessage(root: XmlElement, warnings: string[]): OpenNebulaDecoded {
  const values = leafValues(root);
  const wire = 'opennebula-hook-message';
  const hookType = nonEmpty(values['HOOK_TYPE']);
  if (hookType === undefined) throw new DecodeError('bad-payload', 'OpenNebula hook message: HOOK_MESSAGE.HOOK_TYPE: Required');
  if (hookType !== 'STATE') {
    return { wire, eventType: `opennebula.${hookType.toLowerCase()}`, events: [], ignored: true };
  }
  const object = nonEmpty(values['HOOK_OBJECT']);
  if (object === undefined) throw new DecodeError('bad-payload', 'OpenNebula hook message: HOOK_MESSAGE.HOOK_OBJECT: Required');
  if (object !== 'VM') {
    return { wire, eventType: `opennebula.${object.toLowerCase()}.state`, events: [], ignored: true };
  }
  const vmElement = firstChild(root, 'VM');
  if (vmElement === undefined) throw new DecodeError('bad-payload', 'OpenNebula hook message: HOOK_MESSAGE.VM: Required');
  const hook: OneHookInfo = compact({
    type: 'STATE' as const,
    state: nonEmpty(values['STATE']),
    lcmState: nonEmpty(values['LCM_STATE']),
    resourceId: optionalInt(values['RESOURCE_ID'], 'HOOK_MESSAGE.RESOURCE_ID'),
    remoteHost: nonEmpty(values['REMOTE_HOST']),
    serviceId: optionalInt(values['SERVICE_ID'], 'HOOK_MESSAGE.SERVICE_ID'),
  });
  return vmEvent(vmElement, wire, hook, warnings);
}

/** Decodes an OpenNebula XML document (already base64-decoded). Throws DecodeError. */
export function decodeOpenNebula(xml: string, warnings: string[]): OpenNebulaDecoded {
  const root = parseDocument(xml);
  if (root.name === 'HOOK_MESSAGE') return hookMessage(root, warnings);
  if (root.name === 'VM') return vmEvent(root, 'opennebula-vm', undefined, warnings);
  throw new DecodeError('unknown-shape', `OpenNebula XML root is <${root.name}>, expected <HOOK_MESSAGE> or <VM>`);
}
