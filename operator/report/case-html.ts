// report.html: one file that opens in any browser without a network — inline
// CSS, an inline SVG timeline (a row per address, a bar per holder coloured by
// instance, the log lines as marks on it), then the report's tables.
import type { CaseReport } from '../capture/case-report.ts';
import { namedCell } from '../domain/owner-names.ts';

/** Instance colours, in the order the instances are listed; red is kept for lines nobody held. */
export const PALETTE = ['#1f77b4', '#ff7f0e', '#2ca02c', '#9467bd', '#8c564b', '#e377c2', '#17becf', '#bcbd22'];
export const NOBODY = '#d62728';

const esc = (v: unknown): string => (v === null || v === undefined || v === '' ? '-' : String(v))
  .replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

function table(head: string[], rows: unknown[][]): string {
  if (rows.length === 0) return '<p class="none">none</p>';
  return `<table><thead><tr>${head.map((h) => `<th>${esc(h)}</th>`).join('')}</tr></thead><tbody>${rows.map((r) => `<tr>${r.map((c) => `<td>${esc(c)}</td>`).join('')}</tr>`).join('')}</tbody></table>`;
}

export function timelineSvg(r: CaseReport): string {
  const from = Date.parse(r.timeline.from);
  const to = Date.parse(r.timeline.to);
  const left = 150;
  const width = 1100;
  const rowH = 34;
  const top = 30;
  const rows = r.timeline.addresses;
  const height = top + rows.length * rowH + 40;
  const x = (t: number) => left + ((Math.min(Math.max(t, from), to) - from) / (to - from)) * (width - left - 90);
  const colourOf = new Map<string, string>();
  r.instances.forEach((i, n) => colourOf.set(`${i.cloud}/${i.id}`, PALETTE[n % PALETTE.length] ?? '#777777'));
  const parts: string[] = [];
  // Axis: five ticks with their UTC time.
  for (let k = 0; k <= 4; k++) {
    const t = from + ((to - from) * k) / 4;
    parts.push(`<line x1="${x(t)}" y1="${top - 8}" x2="${x(t)}" y2="${height - 30}" stroke="#dddddd"/>`);
    parts.push(`<text x="${x(t)}" y="${height - 12}" text-anchor="${k === 4 ? 'end' : k === 0 ? 'start' : 'middle'}" class="tick">${esc(new Date(t).toISOString().replace('T', ' ').slice(0, 19))}Z</text>`);
  }
  rows.forEach((row, n) => {
    const y = top + n * rowH;
    parts.push(`<text x="${left - 8}" y="${y + 20}" text-anchor="end" class="addr">${esc(row.address)}</text>`);
    for (const h of row.holders) {
      const x0 = x(Date.parse(h.from));
      const x1 = x(h.to === null ? to : Date.parse(h.to));
      const colour = h.instance === null ? '#aaaaaa' : colourOf.get(`${h.cloud}/${h.instance.id}`) ?? '#aaaaaa';
      const label = h.instance === null ? `${h.kind} (no instance)` : h.instance.name ?? h.instance.id;
      parts.push(`<rect x="${x0}" y="${y + 6}" width="${Math.max(x1 - x0, 2)}" height="${rowH - 12}" rx="3" fill="${colour}"><title>${esc(`${label}: ${h.from} – ${h.to ?? 'now'}`)}</title></rect>`);
      if (x1 - x0 > 60) parts.push(`<text x="${x0 + 6}" y="${y + 21}" class="bar">${esc(label)}</text>`);
    }
    for (const l of r.lines.filter((x) => x.address === row.address)) {
      const held = l.holders.length > 0;
      parts.push(`<circle cx="${x(Date.parse(l.at))}" cy="${y + rowH / 2}" r="5" fill="${held ? '#111111' : NOBODY}" stroke="#ffffff" stroke-width="1.5"><title>${esc(`${l.source}:${l.line} ${l.at}`)}</title></circle>`);
    }
  });
  return `<svg xmlns="http://www.w3.org/2000/svg" id="timeline" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img" aria-label="Which instance held which address when, with the log lines">${parts.join('')}</svg>`;
}

export function caseHtml(r: CaseReport): string {
  const legend = r.instances.map((i, n) => `<span class="key"><span class="swatch" style="background:${PALETTE[n % PALETTE.length] ?? '#777777'}"></span>${esc(i.name ?? i.id)} <small>${esc(i.project)}/${esc(i.user)} on ${esc(i.host)}</small></span>`).join('');
  const c = r.counts;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Case ${esc(r.case.name)}</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;background:#fff}
h1{margin:0 0 4px}h2{margin:28px 0 8px;font-size:18px}
table{border-collapse:collapse;margin:4px 0;font-size:12px}th,td{border:1px solid #ccc;padding:3px 6px;text-align:left;vertical-align:top}th{background:#f2f2f2}
.tick{font-size:11px;fill:#555}.addr{font:12px monospace;fill:#222}.bar{font-size:11px;fill:#fff}
.key{margin-right:16px;white-space:nowrap}.swatch{display:inline-block;width:12px;height:12px;margin-right:4px;vertical-align:middle}
.none{color:#777;font-style:italic}
</style></head><body>
<h1>Case ${esc(r.case.name)}</h1>
<p>Opened ${esc(r.case.createdAt)} by ${esc(r.case.createdBy)}${r.case.reason === null ? '' : ` — ${esc(r.case.reason)}`}. Report made ${esc(r.generatedAt)}.
${c.lines} log lines: ${c.attributed} attributed, ${c.unattributed} held by nobody, ${c.unreadable} unreadable. Legal hold: ${esc(r.case.hold ?? 'none')}.</p>
<h2>Timeline</h2>
${timelineSvg(r)}
<p>${legend}<span class="key"><span class="swatch" style="background:#111111"></span>log line</span><span class="key"><span class="swatch" style="background:${NOBODY}"></span>log line, nobody held the address</span></p>
<h2>Owners</h2>
${table(['Cloud', 'Project', 'User', 'Lines', 'First line', 'Last line', 'Instances', 'Hosts'], r.owners.map((o) => [o.cloud, o.project, o.user, o.lines, o.firstLine, o.lastLine, o.instances.map((i) => i.name ?? i.id).join(', '), o.hosts.join(', ')]))}
<h2>Instances</h2>
${table(['Cloud', 'Instance', 'Name', 'Project', 'User', 'Host', 'Created', 'Deleted', 'Deleted by', 'Addresses'], r.instances.map((i) => [i.cloud, i.id, i.name, namedCell(i.project, i.projectName, i.projectNameSource, i.projectNameReadAt), namedCell(i.user, i.userName, i.userNameSource, i.userNameReadAt), i.host, i.createdAt, i.deletedAt, i.deletedBy, i.addresses.map((a) => `${a.address} (${a.kind}) ${a.from} – ${a.to ?? 'now'}`).join('; ')]))}
<h2>Quarantined disks</h2>
${table(['Quarantine', 'Instance', 'Disk', 'State', 'Isolation', 'SHA-256', 'Location', 'Captured', 'Expires', 'Held by'], r.quarantines.map((q) => [q.id, q.instance, q.disk, q.state, q.isolation, q.sha256, q.location, q.capturedAt, q.expiresAt, q.heldBy.join(', ')]))}
<h2>Holds</h2>
${table(['Hold', 'Reason', 'Created', 'By', 'Released'], r.holds.map((h) => [h.name, h.reason, h.createdAt, h.createdBy, h.releasedAt]))}
<h2>Log lines</h2>
${table(['Source', 'Line', 'Time (UTC)', 'Address', 'Cloud', 'Instance', 'Name', 'Project', 'User'], r.lines.flatMap((l) => (l.holders.length === 0 ? [[l.source, l.line, l.at, l.address, 'nobody', null, null, null, null]] : l.holders.map((h) => [l.source, l.line, l.at, l.address, h.cloud, h.instance?.id, h.instance?.name, h.instance?.project ?? h.project, h.instance?.user]))))}
<h2>Unreadable lines</h2>
${table(['Source', 'Line', 'Reason', 'Text'], r.unreadable.map((u) => [u.source, u.lineNo, u.reason, u.text]))}
<h2>Audit trail</h2>
${table(['Seq', 'At', 'Actor', 'Action', 'Subject'], r.audit.map((a) => [a.seq, a.at, a.actor, a.action, a.subject]))}
</body></html>
`;
}
