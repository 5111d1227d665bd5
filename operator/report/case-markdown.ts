// report.md: the case for a ticket or an e-mail, tables only.
import type { CaseReport } from '../capture/case-report.ts';
import { namedCell } from '../domain/owner-names.ts';

const cell = (v: string | number | null | undefined): string => (v === null || v === undefined || v === '' ? '-' : String(v).replace(/\|/g, '\\|').replace(/\n/g, ' '));
function table(head: string[], rows: Array<Array<string | number | null | undefined>>): string {
  if (rows.length === 0) return '_none_\n';
  return [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.map(cell).join(' | ')} |`)].join('\n') + '\n';
}

export function caseMarkdown(r: CaseReport): string {
  const c = r.counts;
  return [
    `# Case ${r.case.name}`,
    '',
    `Opened ${r.case.createdAt} by ${r.case.createdBy}${r.case.reason === null ? '' : ` — ${r.case.reason}`}. Report made ${r.generatedAt}.`,
    '',
    `${c.lines} log lines: ${c.attributed} attributed, ${c.unattributed} held by nobody, ${c.unreadable} unreadable. ` +
      `${c.instances} instances, ${c.quarantines} quarantined disks. Legal hold: ${r.case.hold ?? 'none (no instance matched)'}.`,
    '',
    '## Owners',
    '',
    table(['Cloud', 'Project', 'User', 'Lines', 'First line', 'Last line', 'Instances', 'Hosts'],
      r.owners.map((o) => [o.cloud, o.project, o.user, o.lines, o.firstLine, o.lastLine, o.instances.map((i) => i.name ?? i.id).join(', '), o.hosts.join(', ')])),
    '## Instances',
    '',
    table(['Cloud', 'Instance', 'Name', 'Project', 'User', 'Host', 'Created', 'Deleted', 'Deleted by', 'Addresses'],
      r.instances.map((i) => [i.cloud, i.id, i.name, namedCell(i.project, i.projectName, i.projectNameSource, i.projectNameReadAt), namedCell(i.user, i.userName, i.userNameSource, i.userNameReadAt), i.host, i.createdAt, i.deletedAt, i.deletedBy,
        i.addresses.map((a) => `${a.address} (${a.kind}) ${a.from} – ${a.to ?? 'now'}`).join('; ')])),
    '## Quarantined disks',
    '',
    table(['Quarantine', 'Instance', 'Disk', 'State', 'Isolation', 'SHA-256', 'Location', 'Captured', 'Expires', 'Held by'],
      r.quarantines.map((q) => [q.id, q.instance, q.disk, q.state, q.isolation, q.sha256, q.location, q.capturedAt, q.expiresAt, q.heldBy.join(', ')])),
    '## Holds',
    '',
    table(['Hold', 'Reason', 'Created', 'By', 'Released'], r.holds.map((h) => [h.name, h.reason, h.createdAt, h.createdBy, h.releasedAt])),
    '## Log lines',
    '',
    table(['Source', 'Line', 'Time (UTC)', 'Address', 'Cloud', 'Instance', 'Name', 'Project', 'User'],
      r.lines.flatMap((l) => (l.holders.length === 0 ? [[l.source, l.line, l.at, l.address, 'nobody', null, null, null, null]]
        : l.holders.map((h) => [l.source, l.line, l.at, l.address, h.cloud, h.instance?.id, h.instance?.name, h.instance?.project ?? h.project, h.instance?.user])))),
    '## Unreadable lines',
    '',
    table(['Source', 'Line', 'Reason', 'Text'], r.unreadable.map((u) => [u.source, u.lineNo, u.reason, u.text])),
    '## Audit trail',
    '',
    table(['Seq', 'At', 'Actor', 'Action', 'Subject'], r.audit.map((a) => [a.seq, a.at, a.actor, a.action, a.subject])),
  ].join('\n');
}
