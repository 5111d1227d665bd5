// Bulk attribution on the embedded SQLite ledger and on PostgreSQL: the abuse
// report's lines attributed in one query, the same answers as one traceAddress
// per line, and the query answered from the trace index on both engines.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { randomInt } from 'node:crypto';
import { sql, type Insertable, type RawBuilder } from 'kysely';
import type { AddressIntervalsTable } from '../../operator/ledger/schema.ts';
import type { LedgerDb } from '../../operator/ledger/db.ts';
import { attribute, attributeQuery, holdersDuring } from '../../operator/ledger/attribute.ts';
import { traceAddress } from '../../operator/ledger/trace.ts';
import { traceDirect } from '../../operator/ledger/trace-direct.ts';
import { SPAN_BOUNDS } from '../../operator/ledger/trace-index.ts';
import { ingestFiles } from '../../operator/cli/ingest.ts';
import { attributeReading, readLogFiles } from '../../operator/cli/trace-log.ts';
import { ledgerEngines as engines, openLedger } from '../support/ledger-engines.ts';
import { EXPECTED, FIP1, FIP2, UNREADABLE, vmA, vmB, vmC, writeAbuseReport } from '../support/abuse-report.ts';


const dir = mkdtempSync(join(tmpdir(), 'qop-attr-'));
const report = writeAbuseReport(dir);
after(() => rmSync(dir, { recursive: true, force: true }));

for (const engine of engines) {
  describe(`bulk attribution on ${engine.name}`, () => {
    let ledger: LedgerDb;
    let close = async () => {};
    let url = '';
    before(async () => {
      ({ ledger, url, close } = await openLedger(engine));
      const { counts } = await ingestFiles(ledger.db, 'cern', [report.notifications]);
      assert.equal(counts.rejected, 0);
    });
    after(() => close());

    test('the abuse report: every line to its instance, owners summarised', async () => {
      const a = await attributeReading(ledger, await readLogFiles(report.files, { date: '2026-05-01' }));
      assert.deepEqual(Object.fromEntries(a.lines.map((l) => [`${basename(l.line.source)}:${l.line.lineNo}`, l.holders[0]?.instance?.id ?? null])), EXPECTED);
      assert.deepEqual(a.unread.map((u) => `${basename(u.source)}:${u.lineNo}`), UNREADABLE);
      assert.deepEqual(a.owners.map((o) => [o.project, o.user, o.lines, o.instances.map((i) => i.id), o.hosts]), [
        ['proj-hep', 'alice', 4, [vmA.id, vmC.id], ['cmp-04', 'cmp-05']],
        ['proj-astro', 'bob', 2, [vmB.id], ['cmp-07']],
      ]);
    });

    test('trace ip without the query builder answers as traceAddress (an in-memory SQLite ledger takes the full path)', async () => {
      const start = Date.parse('2026-05-01T15:50:00Z');
      for (const address of [FIP1, FIP2, '10.0.0.5', '10.0.0.9', '192.0.2.1']) {
        for (let m = 0; m < 70; m += 7) {
          const at = new Date(start + m * 60_000);
          const direct = await traceDirect(url, address, at);
          if (engine.name === 'sqlite') assert.equal(direct, undefined);
          else assert.deepEqual(direct, await traceAddress(ledger.db, address, at), `${address} at ${at.toISOString()}`);
        }
      }
    });

    test('generated probes: the same holders as one traceAddress per probe', async () => {
      const start = Date.parse('2026-05-01T15:50:00Z');
      const addresses = [FIP1, FIP2, '10.0.0.5', '10.0.0.6', '10.0.0.9', '192.0.2.1'];
      const probes = Array.from({ length: 400 }, () => ({ address: addresses[randomInt(addresses.length)] ?? FIP1, at: new Date(start + randomInt(60 * 60_000)) }));
      probes.push(...probes.slice(0, 20)); // repeated lines are asked once and answered for each
      const bulk = await attribute(ledger.db, probes);
      for (const [i, p] of probes.entries()) {
        assert.deepEqual(bulk[i], (await traceAddress(ledger.db, p.address, p.at)).holders, `${p.address} at ${p.at.toISOString()}`);
      }
      assert.deepEqual(await attribute(ledger.db, []), []);
      assert.deepEqual((await attribute(ledger.db, probes.slice(0, 5), 'no-such-cloud')).flat(), []);
    });

    test('an IPv6 address written another way in a log line finds its holder', async () => {
      const from = Date.parse('2026-05-01T10:00:00Z');
      await ledger.db.insertInto('address_intervals').values({
        cloud: 'cern', slot: 'test:v6', address: '2001:db8::5', kind: 'fixed', network: null, port: null, mac: null,
        instance_id: vmA.id, project: 'proj-hep', valid_from: from, valid_to: from + 3_600_000, opened_by: null, closed_by: null,
      }).execute();
      const at = new Date(from + 60_000);
      const [held] = await attribute(ledger.db, [{ address: '2001:DB8:0:0::5', at }]);
      assert.deepEqual(held?.map((h) => h.instance?.id), [vmA.id]);
      const during = await holdersDuring(ledger.db, '2001:0db8::0:5', new Date(from), new Date(from + 1000));
      assert.deepEqual(during.map((h) => h.instance?.id), [vmA.id]);
    });

    test('a window: every holder overlapping it, none that ended at its start', async () => {
      const h = await holdersDuring(ledger.db, FIP1, new Date('2026-05-01T16:19:00Z'), new Date('2026-05-01T16:21:00Z'));
      assert.deepEqual(h.map((x) => x.instance?.id), [vmA.id, vmB.id]);
      const after = await holdersDuring(ledger.db, FIP1, new Date('2026-05-01T16:20:00Z'), new Date('2026-05-01T16:21:00Z'));
      assert.deepEqual(after.map((x) => x.instance?.id), [vmB.id]);
    });

    /** The engine's plan for a query, as text; on PostgreSQL the plan for a big ledger (a handful of rows would be read sequentially). */
    const planOf = (q: RawBuilder<unknown>) => ledger.db.connection().execute(async (c) => {
      if (ledger.engine === 'postgres') {
        await sql`SET enable_seqscan = off`.execute(c);
        const text = (await sql<{ 'QUERY PLAN': string }>`EXPLAIN ${q}`.execute(c)).rows.map((r) => r['QUERY PLAN']).join('\n');
        await sql`RESET enable_seqscan`.execute(c);
        return text;
      }
      return (await sql<{ detail: string }>`EXPLAIN QUERY PLAN ${q}`.execute(c)).rows.map((r) => r.detail).join('\n');
    });

    test('the query looks each probe up in the trace index', async () => {
      const probes = [{ address: FIP1, at: new Date('2026-05-01T16:13:00Z') }, { address: FIP2, at: new Date('2026-05-01T16:13:00Z') }];
      const q = attributeQuery(ledger.db, probes);
      const plan = await planOf(q);
      assert.match(plan, /address_intervals_trace/, plan);
      if (ledger.engine === 'sqlite') assert.doesNotMatch(plan, /SCAN a\b/, plan);
    });

    test('the holders\' instances are their interval\'s copies, read from the trace index: no instances read', async () => {
      const at = new Date('2026-05-01T16:13:00Z');
      const q = attributeQuery(ledger.db, [{ address: FIP1, at }]);
      const plan = await planOf(q);
      assert.doesNotMatch(plan, /\binstances/, plan);
      if (ledger.engine === 'sqlite') assert.match(plan, /USING COVERING INDEX address_intervals_trace/, plan);
      else assert.match(plan, /Index Only Scan using address_intervals_trace/, plan);
      const [held] = await attribute(ledger.db, [{ address: FIP1, at }]);
      assert.deepEqual(held, (await traceAddress(ledger.db, FIP1, at)).holders);
      assert.ok(held?.some((h) => h.instance?.name !== null && h.instance?.name !== undefined), JSON.stringify(held));
    });

    test('owner names, their sources and times, and a gone window: the same as the instances table holds', async () => {
      const at = new Date('2026-05-01T16:13:00Z');
      const before = await ledger.db.selectFrom('instances').selectAll().where('instance_id', '=', vmA.id).executeTakeFirstOrThrow();
      await ledger.db.updateTable('instances').set({
        user_name: 'Alice Example', user_name_source: 'keystone', user_name_at: at.getTime() - 1000,
        project_name: 'HEP', project_name_source: 'notification', project_name_at: at.getTime() - 2000,
        gone_after: at.getTime() + 5000, gone_by: at.getTime() + 9000,
      }).where('instance_id', '=', vmA.id).execute();
      try {
        const [held] = await attribute(ledger.db, [{ address: FIP1, at }]);
        const mine = held?.find((h) => h.instance?.id === vmA.id)?.instance;
        assert.equal(mine?.userName, 'Alice Example', JSON.stringify(held));
        assert.equal(mine?.projectNameSource, 'notification', JSON.stringify(held));
        // holdersDuring reads the instances table itself.
        const during = await holdersDuring(ledger.db, FIP1, at, new Date(at.getTime() + 1));
        assert.deepEqual(held?.map((h) => h.instance), during.map((h) => h.instance));
        assert.deepEqual(held, (await traceAddress(ledger.db, FIP1, at)).holders);
      } finally {
        await ledger.db.updateTable('instances').set({
          user_name: before.user_name, user_name_source: before.user_name_source, user_name_at: before.user_name_at,
          project_name: before.project_name, project_name_source: before.project_name_source, project_name_at: before.project_name_at,
          gone_after: before.gone_after, gone_by: before.gone_by,
        }).where('instance_id', '=', vmA.id).execute();
      }
    });

    test('values a packed row cannot carry (the separator, an empty text), uncertain bounds, an instance without a row: the same as traceAddress', async () => {
      // traceAddress reads PostgreSQL's rows packed (trace-packed.ts) and these plain; attribution reads candidates as arrays of values on SQLite.
      const base = Date.parse('2021-03-01T00:00:00Z');
      const rows: Array<Insertable<AddressIntervalsTable>> = [
        { network: 'net\x1fodd', valid_from: base, valid_to: base + 60_000 },
        { network: '', valid_from: base + 1_000, valid_to: null },
        { network: 'plain', valid_from: base + 2_000, valid_to: base + 30_000, from_certain: base + 2_500, to_certain: base + 20_000 },
        { network: 'other', valid_from: base - 5_000, valid_to: base + 10_000, instance_id: 'no-such-instance' },
      ].map((r, n) => ({
        cloud: 'cern', slot: `odd:${n}`, address: '10.89.0.1', kind: 'fixed', port: null, mac: null, instance_id: null, project: 'proj-odd',
        opened_by: null, closed_by: null, ...r,
      }));
      await ledger.db.insertInto('address_intervals').values(rows).execute();
      const probes = [-1, 0, 500, 1_500, 2_200, 2_600, 9_999, 10_000, 25_000, 59_999, 60_000, 90_000].map((d) => ({ address: '10.89.0.1', at: new Date(base + d) }));
      const bulk = await attribute(ledger.db, probes);
      for (const [i, p] of probes.entries()) assert.deepEqual(bulk[i], (await traceAddress(ledger.db, p.address, p.at)).holders, p.at.toISOString());
      assert.deepEqual(bulk[3]?.map((h) => h.network).sort(), ['', 'net\x1fodd', 'other']);
      assert.ok(bulk[5]?.some((h) => h.network === 'plain'), JSON.stringify(bulk[5]));
    });

    test('every length class of the trace index: intervals a millisecond either side of each bound, open ones, very long ones', async () => {
      // The index reads each class only from T - bound on (trace-index.ts): a holder of any length must still be found.
      const base = Date.parse('2020-01-01T00:00:00Z');
      const lengths = [1, 2, ...SPAN_BOUNDS.flatMap((b) => [b - 1, b, b + 1]), 40 * 365 * 86_400_000, null];
      const rows: Array<Insertable<AddressIntervalsTable>> = lengths.map((len, n) => ({
        cloud: 'cern', slot: `len:${n}`, address: '10.88.0.1', kind: 'fixed', network: `net-${n}`, port: null, mac: null, instance_id: null,
        project: 'proj-len', valid_from: base + n, valid_to: len === null ? null : base + n + len, opened_by: null, closed_by: null,
      }));
      await ledger.db.insertInto('address_intervals').values(rows).execute();
      const times = new Set<number>([base - 1]);
      for (const r of rows) {
        const from = Number(r.valid_from);
        times.add(from).add(from - 1).add(from + 1);
        if (r.valid_to !== null && r.valid_to !== undefined) times.add(Number(r.valid_to)).add(Number(r.valid_to) - 1);
      }
      const probes = [...times].map((t) => ({ address: '10.88.0.1', at: new Date(t) }));
      const bulk = await attribute(ledger.db, probes);
      for (const [i, p] of probes.entries()) {
        const t = p.at.getTime();
        const truth = rows.filter((r) => Number(r.valid_from) <= t && (r.valid_to === null || Number(r.valid_to) > t)).map((r) => r.network);
        const one = (await traceAddress(ledger.db, p.address, p.at)).holders;
        assert.deepEqual(one.map((h) => h.network).sort(), [...truth].sort(), `traceAddress at ${t - base}`);
        assert.deepEqual(bulk[i], one, `attribute at ${t - base}`);
        if (ledger.engine === 'postgres') assert.deepEqual(await traceDirect(url, p.address, p.at), { address: p.address, at: p.at.toISOString(), holders: one });
      }
      await ledger.db.deleteFrom('address_intervals').where('slot', 'like', 'len:%').execute();
    });

    // Last: its rows change the table's statistics, and so the small ledger's plan above.
    test('generated histories: busy addresses, overlapping holders of other kinds and networks, lines on every edge', async () => {
      // Apart from the report's addresses: many quiet addresses and three busy ones.
      const base = Date.parse('2025-01-01T00:00:00Z');
      const busy = ['10.77.0.1', '10.77.0.2', '2001:db8:77::1'];
      const quiet = Array.from({ length: 73 }, (_, n) => `198.51.100.${n}`);
      const instances = [vmA.id, vmB.id, vmC.id, null];
      const rows: Array<Insertable<AddressIntervalsTable>> = [];
      const edges = new Map<string, number[]>();
      let n = 0;
      const history = (address: string, count: number) => {
        const seen: number[] = [];
        // One holder after another of kind fixed, on two networks (private addresses repeat across
        // tenants), each starting at another millisecond so the holders of an instant have one order.
        for (const [net, kind, cloud] of [['net-a', 'fixed', 'cern'], ['net-b', 'fixed', 'cern'], ['ext', 'floating', 'cern'], ['net-a', 'fixed', 'other']] as const) {
          let t = base + randomInt(3_600_000) * 2 + (net === 'net-b' ? 1 : 0);
          for (let i = 0; i < (kind === 'fixed' && cloud === 'cern' ? count : Math.ceil(count / 5)); i++) {
            const last = i === count - 1 || randomInt(count) === 0;
            const to = last ? null : t + 2 * (1 + randomInt(7_200_000));
            rows.push({
              cloud, slot: `gen:${n++}`, address, kind, network: net, port: null, mac: null,
              instance_id: instances[randomInt(instances.length)] ?? null, project: 'proj-gen', valid_from: t, valid_to: to, opened_by: null, closed_by: null,
            });
            seen.push(t, ...(to === null ? [] : [to]));
            if (to === null) break;
            // Back to back, or after a gap.
            t = to + (randomInt(3) === 0 ? 2 * randomInt(600_000) : 0);
          }
        }
        edges.set(address, seen);
      };
      for (const a of busy) history(a, 400);
      for (const a of quiet) history(a, 3);
      for (let i = 0; i < rows.length; i += 200) await ledger.db.insertInto('address_intervals').values(rows.slice(i, i + 200)).execute();

      const probes: Array<{ address: string; at: Date }> = [];
      for (const [address, seen] of edges) {
        const lo = Math.min(...seen);
        const hi = Math.max(...seen);
        const times = [lo - 1, hi + 3_600_000, ...Array.from({ length: address.startsWith('198.') ? 4 : 200 }, () => lo + randomInt(hi - lo + 1))];
        // Lines on an interval's first instant, on its end (the next holder's, not its own), one before.
        for (const e of seen) if (randomInt(address.startsWith('198.') ? 1 : 3) === 0) times.push(e, e - 1);
        probes.push(...times.map((t) => ({ address, at: new Date(t) })));
      }
      probes.sort(() => randomInt(3) - 1);
      for (const cloud of [undefined, 'other']) {
        const bulk = await attribute(ledger.db, probes, cloud);
        let held = 0;
        for (const [i, p] of probes.entries()) {
          const one = (await traceAddress(ledger.db, p.address, p.at, cloud)).holders;
          assert.deepEqual(bulk[i], one, `${p.address} at ${p.at.toISOString()} on ${cloud ?? 'every cloud'}`);
          if (one.length > 1) held++;
        }
        // The comparison met instants with several holders at once.
        if (cloud === undefined) assert.ok(held > 100, `${held} lines with several holders`);
      }
      // A line alone in its window: the window is one instant.
      const open = rows.find((r) => r.valid_to === null && r.cloud === 'cern');
      assert.ok(open !== undefined);
      const at = new Date(Number(open.valid_from));
      assert.deepEqual(await attribute(ledger.db, [{ address: open.address, at }]), [(await traceAddress(ledger.db, open.address, at)).holders]);
      await ledger.db.deleteFrom('address_intervals').where('slot', 'like', 'gen:%').execute();
    });
  });
}
