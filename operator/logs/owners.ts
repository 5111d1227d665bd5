// The investigator's one screen: log lines grouped by who owned the source
// address at the time — project and user, their instances and hosts, the first
// and last line, and how many lines.
import type { LogLine } from './read.ts';

/** What the summary needs of a holder (the ledger's Holder has these fields). */
export interface OwnerFacts {
  cloud: string;
  project: string | null;
  instance: { id: string; name: string | null; project: string | null; user: string | null; host: string | null } | null;
}

export interface Attributed<H extends OwnerFacts = OwnerFacts> {
  line: LogLine;
  holders: H[];
}

export interface OwnerSummary {
  cloud: string;
  project: string | null;
  user: string | null;
  instances: Array<{ id: string; name: string | null }>;
  hosts: string[];
  addresses: string[];
  firstLine: string;
  lastLine: string;
  lines: number;
}

export function summarizeOwners(attributed: readonly Attributed[]): OwnerSummary[] {
  const byOwner = new Map<string, { s: OwnerSummary; instances: Map<string, string | null>; hosts: Set<string>; addresses: Set<string>; first: number; last: number }>();
  for (const { line, holders } of attributed) {
    // A line counts once per owner even if the owner held the address twice over (fixed and floating).
    const seen = new Set<string>();
    for (const h of holders) {
      const project = h.instance?.project ?? h.project;
      const user = h.instance?.user ?? null;
      const key = JSON.stringify([h.cloud, project, user]);
      let o = byOwner.get(key);
      if (o === undefined) {
        o = { s: { cloud: h.cloud, project, user, instances: [], hosts: [], addresses: [], firstLine: '', lastLine: '', lines: 0 }, instances: new Map(), hosts: new Set(), addresses: new Set(), first: Infinity, last: -Infinity };
        byOwner.set(key, o);
      }
      if (h.instance !== null) o.instances.set(h.instance.id, h.instance.name ?? o.instances.get(h.instance.id) ?? null);
      if (h.instance?.host != null) o.hosts.add(h.instance.host);
      o.addresses.add(line.address);
      if (seen.has(key)) continue;
      seen.add(key);
      o.s.lines += 1;
      o.first = Math.min(o.first, line.at.getTime());
      o.last = Math.max(o.last, line.at.getTime());
    }
  }
  return [...byOwner.values()]
    .map((o) => ({
      ...o.s,
      instances: [...o.instances].map(([id, name]) => ({ id, name })).sort((a, b) => a.id.localeCompare(b.id)),
      hosts: [...o.hosts].sort(),
      addresses: [...o.addresses].sort(),
      firstLine: new Date(o.first).toISOString(),
      lastLine: new Date(o.last).toISOString(),
    }))
    .sort((a, b) => b.lines - a.lines || a.cloud.localeCompare(b.cloud) || (a.project ?? '').localeCompare(b.project ?? '') || (a.user ?? '').localeCompare(b.user ?? ''));
}
