// The investigator's routes of the query API, in the CLI's JSON shapes:
// bulk attribution of posted log lines, holders over a window, cases and
// their reports, holds, restores and exports, and the audit trail page by page.
import type { IncomingMessage } from 'node:http';
import type { Kysely } from 'kysely';
import type { LedgerSchema } from '../ledger/schema.ts';
import { attribute, holdersDuring } from '../ledger/attribute.ts';
import { readLog, isLogFormat } from '../logs/read.ts';
import { validZone } from '../logs/time.ts';
import { summarizeOwners } from '../logs/owners.ts';
import { holdsCovering, listHolds } from '../capture/holds.ts';
import { CAPTURE_STATES, QuarantineStore, type CaptureState } from '../capture/quarantine-store.ts';
import { quarantineView } from '../capture/quarantine-view.ts';

export interface RouteAnswer {
  status: number;
  body: unknown;
}

const OFFSET_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/;
/** Posted logs larger than this are refused: attribute them in parts. */
export const MAX_BODY_BYTES = 32 << 20;

/**
 * Nor more lines than this a request. The answer is built in the operator's
 * own memory: 100,000 lines at a busy site hold 1.75 million holders (some
 * 1.2 GB of heap, and more JSON than one string can hold), where the operator
 * runs in a few hundred MB; `trace log` on a workstation takes any number.
 */
export const MAX_POSTED_LINES = 10_000;

class BodyTooLarge extends Error {}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    const b = Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk));
    size += b.length;
    if (size > MAX_BODY_BYTES) throw new BodyTooLarge();
    chunks.push(b);
  }
  return Buffer.concat(chunks).toString('utf8');
}

const bad = (error: string): RouteAnswer => ({ status: 400, body: { error } });

async function attributePosted(db: Kysely<LedgerSchema>, req: IncomingMessage, url: URL): Promise<RouteAnswer> {
  const q = url.searchParams;
  const format = q.get('format') ?? undefined;
  if (format !== undefined && !isLogFormat(format)) return bad(`format ${format} is not known`);
  const date = q.get('date') ?? undefined;
  if (date !== undefined && !/^\d{4}-\d{2}-\d{2}$/.test(date)) return bad('date must be YYYY-MM-DD');
  const tz = q.get('tz') ?? undefined;
  if (tz !== undefined && !validZone(tz)) return bad(`tz ${tz} is not a zone`);
  const columnText = q.get('column');
  const column = columnText === null ? undefined : Number(columnText);
  if (column !== undefined && (!Number.isInteger(column) || column < 1)) return bad('column must be 1, 2, …');
  let text: string;
  try {
    text = await readBody(req);
  } catch (err) {
    if (err instanceof BodyTooLarge) return { status: 413, body: { error: `more than ${MAX_BODY_BYTES} bytes of log lines: post them in parts` } };
    throw err;
  }
  const read = readLog(text, q.get('source') ?? 'request', { date, tz, field: q.get('field') ?? undefined, column }, format !== undefined && isLogFormat(format) ? format : undefined);
  if (read.lines.length + read.unread.length > MAX_POSTED_LINES) {
    return { status: 413, body: { error: `${read.lines.length + read.unread.length} log lines, more than ${MAX_POSTED_LINES} a request: post them in parts` } };
  }
  const holders = await attribute(db, read.lines, q.get('cloud') ?? undefined);
  const lines = read.lines.map((line, i) => ({ line, holders: holders[i] ?? [] }));
  return {
    status: 200,
    body: {
      format: read.format,
      counts: { lines: read.lines.length + read.unread.length, attributed: lines.filter((l) => l.holders.length > 0).length, unattributed: lines.filter((l) => l.holders.length === 0).length, unreadable: read.unread.length },
      owners: summarizeOwners(lines),
      lines: lines.map((l) => ({ source: l.line.source, line: l.line.lineNo, address: l.line.address, at: l.line.at.toISOString(), text: l.line.text, holders: l.holders })),
      unreadable: read.unread,
    },
  };
}

// What `images ls` shows without --all: quarantines that still are, or are becoming, evidence.
const LIVE_STATES: readonly CaptureState[] = ['planned', 'snapshotting', 'cloning', 'quarantined', 'flattening', 'expired'];
const isCaptureState = (s: string): s is CaptureState => (CAPTURE_STATES as readonly string[]).includes(s);

async function quarantinePage(db: Kysely<LedgerSchema>, q: URLSearchParams): Promise<RouteAnswer> {
  const state = q.get('state');
  if (state !== null && !isCaptureState(state)) return bad(`state must be one of ${CAPTURE_STATES.join(', ')}`);
  const limit = Number(q.get('limit') ?? '100');
  if (!Number.isInteger(limit) || limit < 1 || limit > 1000) return bad('limit must be 1..1000');
  const instance = q.get('instance');
  const cloud = q.get('cloud');
  const states = state !== null ? [state] : q.get('all') === 'true' ? undefined : LIVE_STATES;
  const rows = await new QuarantineStore(db).list({ ...(states === undefined ? {} : { states }), ...(instance === null ? {} : { instanceId: instance }), ...(cloud === null ? {} : { cloud }) });
  const after = q.get('after');
  const start = after === null ? 0 : rows.findIndex((r) => r.id === after) + 1;
  if (after !== null && start === 0) return bad(`after: no quarantine ${after} in this listing`);
  const page = rows.slice(start, start + limit);
  const held = await holdsCovering(db, page, new Date());
  return { status: 200, body: { entries: page.map((r) => quarantineView(r, held.get(r.id))), next: start + limit < rows.length ? page[page.length - 1]?.id ?? null : null } };
}

/** Answers the routes it knows; null for any other path. */
export async function investigationRoute(db: Kysely<LedgerSchema>, req: IncomingMessage, parts: readonly string[], url: URL): Promise<RouteAnswer | null> {
  const method = req.method ?? 'GET';
  const route = parts.slice(2).join('/');
  if (route === 'attribution') {
    if (method !== 'POST') return { status: 405, body: { error: 'POST the log lines' } };
    return attributePosted(db, req, url);
  }
  if (method !== 'GET') return null;
  // /api/v1/trace/window?address=&from=&to=: every holder during the window.
  if (route === 'trace/window') {
    const address = url.searchParams.get('address') ?? '';
    const from = url.searchParams.get('from') ?? '';
    const to = url.searchParams.get('to') ?? '';
    if (!/^[0-9a-fA-F:.]+$/.test(address)) return bad('address must be an IP address');
    if (!OFFSET_TIME.test(from) || !OFFSET_TIME.test(to)) return bad('from and to must be ISO 8601 times with an offset');
    if (Date.parse(to) <= Date.parse(from)) return bad('to must be later than from');
    const holders = await holdersDuring(db, address, new Date(from), new Date(to), url.searchParams.get('cloud') ?? undefined);
    return { status: holders.length === 0 ? 404 : 200, body: { address, from: new Date(from).toISOString(), to: new Date(to).toISOString(), holders } };
  }
  // /api/v1/quarantines[?state=&instance=&cloud=&all=true&after=ID&limit=N]: as `images ls -o json`, in pages.
  if (route === 'quarantines') return quarantinePage(db, url.searchParams);
  if (parts[2] === 'quarantines' && parts.length === 4) {
    const q = await new QuarantineStore(db).get(decodeURIComponent(parts[3] ?? ''));
    if (q === undefined) return { status: 404, body: { error: 'no such quarantine' } };
    return { status: 200, body: quarantineView(q, (await holdsCovering(db, [q], new Date())).get(q.id)) };
  }
  if (route === 'holds') {
    const holds = await listHolds(db, { includeReleased: url.searchParams.get('all') === 'true' });
    return { status: 200, body: holds.map((h) => ({ name: h.name, caseId: h.caseId ?? null, reason: h.reason, selector: h.selector, until: h.until?.toISOString() ?? null, createdAt: h.createdAt.toISOString(), createdBy: h.createdBy, releasedAt: h.releasedAt?.toISOString() ?? null })) };
  }
  // /api/v1/audit?after=SEQ&limit=N[&subject=]: a page, and where the next one starts.
  if (route === 'audit') {
    const after = Number(url.searchParams.get('after') ?? '0');
    const limit = Number(url.searchParams.get('limit') ?? '100');
    if (!Number.isInteger(after) || after < 0 || !Number.isInteger(limit) || limit < 1 || limit > 1000) return bad('after must be a sequence number and limit 1..1000');
    let q = db.selectFrom('audit').selectAll().where('seq', '>', after);
    const subject = url.searchParams.get('subject');
    if (subject !== null) q = q.where('subject', '=', subject);
    const rows = await q.orderBy('seq').limit(limit + 1).execute();
    const page = rows.slice(0, limit).map((a) => ({ seq: Number(a.seq), at: new Date(Number(a.at)).toISOString(), actor: a.actor, action: a.action, subject: a.subject, details: JSON.parse(a.details) as unknown, hash: a.hash }));
    return { status: 200, body: { entries: page, next: rows.length > limit ? page[page.length - 1]?.seq ?? null : null } };
  }
  // /api/v1/transfers[?quarantine=&state=], /api/v1/transfers/ID: restores and exports, newest first.
  if (route === 'transfers') {
    const { TransferStore, transferView, TRANSFER_STATES } = await import('../capture/transfers.ts');
    const asked = url.searchParams.get('state');
    const state = TRANSFER_STATES.find((s) => s === asked);
    if (asked !== null && state === undefined) return bad(`state must be one of ${TRANSFER_STATES.join(', ')}`);
    const quarantine = url.searchParams.get('quarantine');
    const rows = await new TransferStore(db).list({ ...(quarantine === null ? {} : { quarantineId: quarantine }), ...(state === undefined ? {} : { states: [state] }) });
    return { status: 200, body: rows.map(transferView) };
  }
  if (parts[2] === 'transfers' && parts.length === 4) {
    const { TransferStore, transferView } = await import('../capture/transfers.ts');
    const t = await new TransferStore(db).get(decodeURIComponent(parts[3] ?? ''));
    return t === undefined ? { status: 404, body: { error: `no transfer ${parts[3] ?? ''}` } } : { status: 200, body: transferView(t) };
  }
  if (route === 'cases') {
    const { listCases } = await import('../capture/cases.ts');
    return { status: 200, body: (await listCases(db)).map((c) => ({ ...c, createdAt: c.createdAt.toISOString() })) };
  }
  // /api/v1/cases/NAME/report, and /misp: the same report as a MISP event.
  if (parts[2] === 'cases' && parts.length === 5 && (parts[4] === 'report' || parts[4] === 'misp')) {
    const { caseReport } = await import('../capture/case-report.ts');
    const { CaseError } = await import('../capture/cases.ts');
    try {
      const report = await caseReport(db, decodeURIComponent(parts[3] ?? ''), new Date());
      if (parts[4] === 'report') return { status: 200, body: report };
      const { caseMisp } = await import('../report/misp.ts');
      return { status: 200, body: caseMisp(report) };
    } catch (err) {
      if (err instanceof CaseError) return { status: 404, body: { error: err.message } };
      throw err;
    }
  }
  return null;
}
