// Legal holds: which quarantines a hold covers. Pure; the ledger supplies the facts.

export interface HoldSelector {
  clouds?: string[] | undefined;
  quarantines?: string[] | undefined;
  instances?: string[] | undefined;
  projects?: string[] | undefined;
  users?: string[] | undefined;
  /** An address and a time window: every instance that held the address during it. */
  addresses?: Array<{ address: string; from?: string | undefined; to?: string | undefined }> | undefined;
}

export interface Hold {
  name: string;
  caseId?: string | undefined;
  selector: HoldSelector;
  until?: Date | undefined;
}

export interface QuarantineFacts {
  id: string;
  cloud: string;
  instanceId: string;
  project: string | null;
  user: string | null;
}

export function holdActive(h: Hold, now: Date): boolean {
  return h.until === undefined || h.until.getTime() > now.getTime();
}

const given = (l: readonly unknown[] | undefined): boolean => l !== undefined && l.length > 0;

export function selectorIsEmpty(s: HoldSelector): boolean {
  return ![s.clouds, s.quarantines, s.instances, s.projects, s.users, s.addresses].some(given);
}

/**
 * Whether a hold covers a quarantine, given the instances that held the
 * hold's addresses in their windows (`addressHolders`, looked up by the
 * caller in the address intervals). Fields combine with OR: a hold names what
 * it protects, and naming more protects more.
 */
export function holdCovers(h: Hold, q: QuarantineFacts, addressHolders: ReadonlySet<string>): boolean {
  const s = h.selector;
  if (given(s.clouds) && !s.clouds?.includes(q.cloud)) return false;
  // Clouds alone hold everything from those clouds; with other fields they only narrow.
  if (given(s.clouds) && ![s.quarantines, s.instances, s.projects, s.users, s.addresses].some(given)) return true;
  if (s.quarantines?.includes(q.id)) return true;
  if (s.instances?.includes(q.instanceId)) return true;
  if (q.project !== null && s.projects?.includes(q.project)) return true;
  if (q.user !== null && s.users?.includes(q.user)) return true;
  return addressHolders.has(`${q.cloud}/${q.instanceId}`);
}
