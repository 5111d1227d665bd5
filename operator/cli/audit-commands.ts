// `quarantine audit`: reading and checking the audit trail. A trail that does
// not verify exits 5 (evidence verification failed), never 4. The ledger's
// audit modules load inside the actions (see program.ts).
import { createWriteStream, existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { once } from 'node:events';
import { Option, type Command } from 'commander';
import type { LedgerDb } from '../ledger/db.ts';
import type { AuditAnchor } from '../ledger/audit.ts';
import { parseInstant } from './time-arg.ts';
import { renderTable } from './table.ts';
import { EXIT, UsageError } from './errors.ts';
import { emitList, withOutput, type Column, type OutputOptions } from './output.ts';
import type { Io, Status } from './program.ts';
import { os } from './os-user.ts';

type WithLedger = <T>(fn: (l: LedgerDb) => Promise<T>) => Promise<T>;

const rowView = (r: { seq: number; at: number; actor: string; action: string; subject: string | null; details: string; prev_hash: string; hash: string; key_id: string | null }) => ({
  seq: r.seq, at: new Date(r.at).toISOString(), actor: r.actor, action: r.action, subject: r.subject,
  details: JSON.parse(r.details) as unknown, prevHash: r.prev_hash, hash: r.hash, keyId: r.key_id,
});

type RowView = ReturnType<typeof rowView>;

const rowColumns: Array<Column<RowView>> = [
  { header: 'SEQ', value: (r) => r.seq },
  { header: 'AT', value: (r) => r.at },
  { header: 'ACTOR', value: (r) => r.actor },
  { header: 'ACTION', value: (r) => r.action },
  { header: 'SUBJECT', value: (r) => r.subject },
  { header: 'KEY', value: (r) => r.keyId, wide: true },
  { header: 'HASH', value: (r) => r.hash, wide: true },
];

export function addAuditCommands(program: Command, io: Io, status: Status, withLedger: WithLedger): void {
  const output = () => new Option('-o, --output <format>', 'output format').choices(['table', 'json']).default('table');
  const audit = program.command('audit').description('the tamper-evident audit trail');

  audit.command('verify')
    .description('check the chain, its keys, the anchored heads, and the quarantine and hold tables against it; exits 5 when anything does not check out')
    .option('--anchors <file...>', 'anchor files or saved operator logs holding audit heads (default: QUARANTINE_AUDIT_ANCHOR_FILE, or the file beside an SQLite ledger)')
    .option('--anchor <seq:hash...>', 'a head noted elsewhere, e.g. from an AuditHead Event')
    .option('--expect-head <seq:hash>', 'same as --anchor (kept for scripts)')
    .addOption(output())
    .action(async (o: { anchors?: string[]; anchor?: string[]; expectHead?: string; output: string }) => {
      const db = program.opts<{ db: string }>().db;
      const { parseAnchorArg, readAnchorFile } = await import('../ledger/audit-anchor.ts');
      const { anchorFileFor } = await import('../ledger/audit-keys.ts');
      const { verifyAudit } = await import('../ledger/audit.ts');
      const anchors: AuditAnchor[] = [];
      const files = o.anchors ?? [anchorFileFor(db, io.env)].filter((f): f is string => f !== undefined && existsSync(f));
      for (const f of files) {
        try {
          anchors.push(...readAnchorFile(f));
        } catch (err) {
          throw new UsageError(`cannot read anchors from ${f}: ${err instanceof Error ? err.message : String(err)}`);
        }
      }
      for (const text of [...(o.anchor ?? []), ...(o.expectHead === undefined ? [] : [o.expectHead])]) {
        const a = parseAnchorArg(text);
        if (a === undefined) throw new UsageError(`"${text}" is not SEQ:HASH as printed by audit verify`);
        anchors.push(a);
      }
      await withLedger(async (l) => {
        const v = await verifyAudit(l.db, { anchors });
        if (o.output === 'json') io.out(`${JSON.stringify(v, null, 2)}\n`);
        else {
          io.out(v.ok
            ? `audit trail intact: ${v.rows} rows, head ${v.head ?? '(empty)'}, ${v.keyedFrom === null ? 'unkeyed' : `keyed from row ${v.keyedFrom}`}; ${v.anchorsChecked} anchor(s), ${v.quarantinesChecked} quarantine(s) and ${v.holdsChecked} hold(s) checked\n`
            : `audit trail BROKEN: ${v.problems.length} problem(s)\n`);
          for (const p of v.problems) io.out(`  ${p.seq === 0 ? 'table' : `row ${p.seq}`}: ${p.problem}: ${p.detail}\n`);
          if (v.ok && anchors.length === 0) io.err('note: no anchored head was checked, so a truncated tail would go unnoticed (see --anchors)\n');
        }
        if (!v.ok) status.code = EXIT.evidence;
      });
    });

  withOutput(audit.command('ls')
    .description('list audit entries, newest last')
    .option('--subject <id>', 'only entries about this quarantine, hold or instance')
    .option('--action <name>', 'only this action (e.g. export, hold.release, sweep.delete)')
    .option('--since <time>').option('--until <time>')
    .option('--limit <n>', 'at most this many (the newest)', '100'))
    .action(async (o: OutputOptions & { subject?: string; action?: string; since?: string; until?: string; limit: string }) => {
      const limit = Number(o.limit);
      if (!Number.isInteger(limit) || limit <= 0) throw new UsageError(`--limit "${o.limit}" is not a positive integer`);
      const since = o.since === undefined ? undefined : parseInstant(o.since, '--since');
      const until = o.until === undefined ? undefined : parseInstant(o.until, '--until');
      await withLedger(async (l) => {
        let q = l.db.selectFrom('audit').selectAll();
        if (o.subject !== undefined) q = q.where('subject', '=', o.subject);
        if (o.action !== undefined) q = q.where('action', '=', o.action);
        if (since !== undefined) q = q.where('at', '>=', since.getTime());
        if (until !== undefined) q = q.where('at', '<', until.getTime());
        const rows = (await q.orderBy('seq', 'desc').limit(limit).execute()).reverse().map(rowView);
        await emitList(io, o, rowColumns, rows);
        if (rows.length === 0) status.code = EXIT.notFound;
      });
    });

  audit.command('show')
    .description('one audit entry with its details and hashes')
    .argument('<seq>')
    .addOption(output())
    .action(async (seqText: string, o: { output: string }) => {
      const seq = Number(seqText);
      if (!Number.isInteger(seq) || seq <= 0) throw new UsageError(`"${seqText}" is not an audit row number`);
      await withLedger(async (l) => {
        const r = await l.db.selectFrom('audit').selectAll().where('seq', '=', seq).executeTakeFirst();
        if (r === undefined) {
          io.err(`quarantine: no audit row ${seq}\n`);
          status.code = EXIT.notFound;
          return;
        }
        const v = rowView(r);
        if (o.output === 'json') io.out(`${JSON.stringify(v, null, 2)}\n`);
        else {
          const { details, ...flat } = v;
          io.out(renderTable(['FIELD', 'VALUE'], Object.entries(flat).map(([k, val]) => [k, val === null ? null : String(val)])));
          io.out(`\ndetails:\n${JSON.stringify(details, null, 2)}\n`);
        }
      });
    });

  audit.command('export')
    .description('write the whole trail as JSON lines (one row each, with its hashes) for archiving or an outside verifier; the export is audited')
    .requiredOption('--file <path>', 'destination file (never overwritten), or - for standard output')
    .option('--case <id>').option('--reason <text>')
    .addOption(new Option('--actor <name>', 'who is doing this, for the audit trail').default(os.user()))
    .action(async (o: { file: string; case?: string; reason?: string; actor: string }) => {
      const destination = o.file === '-' ? 'stdout' : resolve(o.file);
      const extra = { ...(o.case === undefined ? {} : { caseId: o.case }), ...(o.reason === undefined ? {} : { reason: o.reason }) };
      const { appendAudit } = await import('../ledger/audit.ts');
      await withLedger(async (l) => {
        let rows = 0;
        let head: string | null = null;
        try {
          if (o.file !== '-' && existsSync(o.file)) throw new UsageError(`${o.file} exists already; export never overwrites`);
          const file = o.file === '-' ? undefined : createWriteStream(o.file, { flags: 'wx', mode: 0o640 });
          if (file !== undefined) await once(file, 'open');
          const write = async (line: string) => {
            if (file === undefined) io.out(line);
            else if (!file.write(line)) await once(file, 'drain');
          };
          const page = 5000;
          for (let after = 0; ;) {
            const batch = await l.db.selectFrom('audit').selectAll().where('seq', '>', after).orderBy('seq').limit(page).execute();
            for (const r of batch) {
              await write(`${JSON.stringify(rowView(r))}\n`);
              rows += 1;
              head = `${r.seq}:${r.hash}`;
            }
            if (batch.length < page) break;
            after = batch[batch.length - 1]?.seq ?? after;
          }
          if (file !== undefined) {
            file.end();
            await once(file, 'finish');
          }
        } catch (err) {
          await appendAudit(l.db, { actor: o.actor, action: 'audit.export.failed', details: { destination, error: err instanceof Error ? err.message : String(err), rows, ...extra } });
          throw err instanceof UsageError ? err : new UsageError(`cannot export the audit trail to ${destination}: ${err instanceof Error ? err.message : String(err)}`);
        }
        await appendAudit(l.db, { actor: o.actor, action: 'audit.export', details: { destination, rows, head, ...extra } });
        io.err(`exported ${rows} audit rows to ${destination}, head ${head ?? '(empty)'}\n`);
      });
    });
}
