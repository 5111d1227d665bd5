// Someone who can write the ledger's database, but holds neither the audit
// key nor the anchor file, tampers with the evidence: every way is caught by
// `quarantine audit verify`, which exits 5. On SQLite and on PostgreSQL.
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'kysely';
import { Migrator } from 'kysely/migration';
import { openLedgerDb, migrateToLatest, type LedgerDb } from '../../operator/ledger/db.ts';
import { migrationProvider } from '../../operator/ledger/migrations.ts';
import { auditKeyRing, canonical, GENESIS, useAuditKeys, verifyAudit } from '../../operator/ledger/audit.ts';
import { AuditAnchorer, fileAnchorSink } from '../../operator/ledger/audit-anchor.ts';
import { QuarantineStore } from '../../operator/capture/quarantine-store.ts';
import { releaseHolds, upsertHold } from '../../operator/capture/holds.ts';
import { runCli } from '../../operator/cli/program.ts';
import { EXIT } from '../../operator/cli/errors.ts';
import { silentLogger } from '../../operator/log.ts';
import { createTestDatabase } from '../support/pg.ts';
import { openLedger } from '../support/ledger-engines.ts';

const KEY = 'k'.repeat(16) + 'audit-key-for-the-tamper-tests-0001';
const DAY = 86_400_000;
const T0 = Date.parse('2026-05-01T12:00:00Z');

interface Target {
  name: string;
  open(): Promise<{ url: string; cleanup(): Promise<void> }>;
}

const dir = mkdtempSync(join(tmpdir(), 'qop-tamper-'));
let n = 0;
const targets: Target[] = [
  { name: 'sqlite', async open() { n += 1; return { url: `sqlite:${join(dir, `ledger-${n}.db`)}`, cleanup: async () => undefined }; } },
  { name: 'postgres', async open() { const t = await createTestDatabase(); return { url: t.url, cleanup: () => t.drop() }; } },
];

async function verifyCli(url: string, anchors: string, key = KEY) {
  let out = '';
  let err = '';
  const code = await runCli(['--db', url, 'audit', 'verify', '--anchors', anchors], { out: (s) => { out += s; }, err: (s) => { err += s; }, env: { LOG_LEVEL: 'silent', QUARANTINE_AUDIT_KEY: key } });
  return { code, out, err };
}

/** A ledger with captures, an expiry, a hold and its narrowing, anchored twice along the way. */
async function evidence(target: Target) {
  const { ledger, url, close } = await openLedger(target);
  const keys = auditKeyRing([KEY]);
  useAuditKeys(ledger.db, keys);
  const anchors = join(dir, `anchors-${target.name}-${++n}.jsonl`);
  const anchorer = new AuditAnchorer({ db: ledger.db, keys, logger: silentLogger, sinks: [fileAnchorSink(anchors)] });
  const store = new QuarantineStore(ledger.db);
  const ids: string[] = [];
  for (const i of [1, 2, 3]) {
    const now = new Date(T0 + i * 1000);
    const { row } = await store.plan({
      id: `q${i}`, cloud: 'cern', instance_id: `vm-${i}`, disk: 'disk', mode: 'snapshot', policy: 'default', source_pool: 'vms', source_namespace: null,
      source_image: `vm-${i}_disk`, source_image_id: `img${i}`, anchor_image: null, snapshot: 'qsnap', location_pool: 'quarantine', location_namespace: null,
      location_image: `q${i}`, planned_at: now.getTime(), provenance: '{}',
    }, now);
    await store.transition(row.id, ['planned'], 'quarantined', now, { captured_at: now.getTime(), expires_at: now.getTime() + 30 * DAY });
    ids.push(row.id);
  }
  await upsertHold(ledger.db, { name: 'case-42', caseId: 'CERT-42', reason: 'flood', selector: { instances: ['vm-1'] }, actor: 'sec' }, new Date(T0 + 5000));
  await anchorer.anchorNow();
  await upsertHold(ledger.db, { name: 'case-43', caseId: 'CERT-43', reason: 'scan', selector: { projects: ['hep'] }, actor: 'sec' }, new Date(T0 + 6000));
  await store.update('q2', new Date(T0 + 7000), { digest: 'a'.repeat(64), digest_at: T0 + 7000 });
  await anchorer.anchorNow();
  return { ledger, url, anchors, ids, cleanup: close };
}

for (const target of targets) {
  describe(`audit tampering on ${target.name}`, () => {
    test('an untouched ledger verifies: keyed chain, anchors, tables', async () => {
      const e = await evidence(target);
      try {
        const r = await verifyCli(e.url, e.anchors);
        assert.equal(r.code, EXIT.ok, r.out);
        assert.match(r.out, /audit trail intact: \d+ rows, head \d+:[0-9a-f]{64}, keyed from row 1; 2 anchor\(s\), 3 quarantine\(s\) and 2 hold\(s\) checked/);
        const unkeyed = await verifyCli(e.url, e.anchors, 'x'.repeat(40));
        assert.equal(unkeyed.code, EXIT.evidence, 'a different key is no key at all');
        assert.match(unkeyed.out, /unknown-key/);
      } finally {
        await e.cleanup();
      }
    });

    const cases: Array<{ name: string; tamper: (e: Awaited<ReturnType<typeof evidence>>) => Promise<void>; expect: RegExp }> = [
      {
        name: 'a row updated in place',
        tamper: async (e) => { await e.ledger.db.updateTable('audit').set({ actor: 'nobody' }).where('seq', '=', 3).execute(); },
        expect: /row 3: modified: content does not match its keyed hash/,
      },
      {
        name: 'a row deleted from the middle',
        tamper: async (e) => { await e.ledger.db.deleteFrom('audit').where('seq', '=', 4).execute(); },
        expect: /row 5: missing-before: rows 4\.\.4 are missing[\s\S]*row 5: broken-link/,
      },
      {
        name: 'the tail truncated',
        tamper: async (e) => {
          const last = await e.ledger.db.selectFrom('audit').select('seq').orderBy('seq', 'desc').limit(1).executeTakeFirstOrThrow();
          await e.ledger.db.deleteFrom('audit').where('seq', '>', last.seq - 2).execute();
        },
        expect: /truncated: row \d+ was anchored at .* but the trail ends at row \d+ \(its tail was truncated\)/,
      },
      {
        name: 'the whole trail rewritten and re-hashed without the key',
        tamper: async (e) => {
          // The forger drops the keys and re-chains every row with plain SHA-256, hiding hold case-43.
          const rows = await e.ledger.db.selectFrom('audit').selectAll().orderBy('seq').execute();
          await e.ledger.db.deleteFrom('audit').execute();
          let prev = GENESIS;
          let seq = 0;
          for (const r of rows) {
            if (r.subject === 'case-43' || r.action === 'audit.keyed') continue;
            seq += 1;
            const row = { ...r, seq, prev_hash: prev, key_id: null };
            const hash = createHash('sha256').update(canonical([row.seq, row.at, row.actor, row.action, row.subject, row.details, row.prev_hash])).digest('hex');
            await e.ledger.db.insertInto('audit').values({ ...row, hash }).execute();
            prev = hash;
          }
          await e.ledger.db.deleteFrom('holds').where('name', '=', 'case-43').execute();
        },
        expect: /anchor: row \d+ no longer has the hash anchored at .* \(the trail was rewritten\)/,
      },
      {
        name: 'the whole trail re-hashed with a guessed key',
        tamper: async (e) => {
          await e.ledger.db.updateTable('audit').set({ details: '{}' }).where('action', '=', 'hold.add').where('subject', '=', 'case-43').execute();
          const rows = await e.ledger.db.selectFrom('audit').selectAll().orderBy('seq').execute();
          let prev = GENESIS;
          for (const r of rows) {
            const hash = createHash('sha256').update(`guess${canonical([r.seq, r.details, prev])}`).digest('hex');
            await e.ledger.db.updateTable('audit').set({ prev_hash: prev, hash }).where('seq', '=', r.seq).execute();
            prev = hash;
          }
        },
        expect: /row 1: modified: content does not match its keyed hash/,
      },
      {
        name: 'a quarantine\'s expiry changed in its table',
        tamper: async (e) => { await e.ledger.db.updateTable('quarantines').set({ expires_at: T0 + DAY }).where('id', '=', 'q3').execute(); },
        expect: /quarantine q3: expiresAt is 2026-05-02T12:00:00\.000Z in the table but 2026-05-31T12:00:03\.000Z in the audit trail/,
      },
      {
        name: 'a quarantine\'s digest changed in its table',
        tamper: async (e) => { await e.ledger.db.updateTable('quarantines').set({ digest: 'b'.repeat(64) }).where('id', '=', 'q2').execute(); },
        expect: /quarantine q2: digest is "b{64}" in the table but "a{64}" in the audit trail/,
      },
      {
        name: 'a hold deleted',
        tamper: async (e) => { await e.ledger.db.deleteFrom('holds').where('name', '=', 'case-42').execute(); },
        expect: /hold case-42 is in the audit trail \(row \d+\) but its row is gone \(deleted\)/,
      },
      {
        name: 'a hold released behind the trail\'s back',
        tamper: async (e) => { await e.ledger.db.updateTable('holds').set({ released_at: T0 }).where('name', '=', 'case-42').execute(); },
        expect: /hold case-42: releasedAt is 2026-05-01T12:00:00\.000Z in the table but null in the audit trail/,
      },
    ];
    for (const c of cases) {
      test(`${c.name} is detected, exit 5`, async () => {
        const e = await evidence(target);
        try {
          await c.tamper(e);
          const r = await verifyCli(e.url, e.anchors);
          assert.equal(r.code, EXIT.evidence, r.out);
          assert.match(r.out, /audit trail BROKEN/);
          assert.match(r.out, c.expect);
        } finally {
          await e.cleanup();
        }
      });
    }

    test('a trail from before migration 0007 still verifies, gets a baseline, and the keyed era starts with an entry naming the old head', async () => {
      const t = await target.open();
      const ledger: LedgerDb = openLedgerDb(t.url);
      try {
        const migrator = new Migrator({ db: ledger.db, provider: migrationProvider(ledger.engine) });
        const { error } = await migrator.migrateTo('0004_trace_index_pg');
        assert.equal(error, undefined);
        // Rows as the old code wrote them: plain SHA-256, no key column, no table entries.
        let prev = GENESIS;
        for (const seq of [1, 2]) {
          const row = { seq, at: T0 + seq, actor: 'old', action: 'capture', subject: `q${seq}`, details: '{}', prev_hash: prev };
          const hash = createHash('sha256').update(canonical([row.seq, row.at, row.actor, row.action, row.subject, row.details, row.prev_hash])).digest('hex');
          await sql`INSERT INTO audit (seq, at, actor, action, subject, details, prev_hash, hash) VALUES (${row.seq}, ${row.at}, ${row.actor}, ${row.action}, ${row.subject}, ${row.details}, ${row.prev_hash}, ${hash})`.execute(ledger.db);
          prev = hash;
        }
        await ledger.db.insertInto('holds').values({ id: 'h1', name: 'old-hold', case_id: 'C-1', reason: null, selector: '{"projects":["hep"]}', created_at: T0, until: null, released_at: null, created_by: 'sec' }).execute();
        assert.ok((await migrateToLatest(ledger)).includes('0007_audit_keyed'));
        const legacy = await verifyAudit(ledger.db);
        assert.deepEqual([legacy.ok, legacy.rows, legacy.keyedFrom, legacy.holdsChecked], [true, 3, null, 1]);
        const head = legacy.head;
        const keys = auditKeyRing([KEY]);
        useAuditKeys(ledger.db, keys);
        await releaseHolds(ledger.db, { name: 'old-hold' }, 'sec', new Date(T0 + DAY));
        const keyed = await verifyAudit(ledger.db);
        assert.deepEqual([keyed.ok, keyed.rows, keyed.keyedFrom], [true, 5, 4]);
        const marker = await ledger.db.selectFrom('audit').selectAll().where('seq', '=', 4).executeTakeFirstOrThrow();
        assert.equal(marker.action, 'audit.keyed');
        assert.equal(JSON.parse(marker.details).previousHead, head);
        // Without the key, nothing more can be appended, and the trail cannot be checked.
        useAuditKeys(ledger.db, undefined);
        await assert.rejects(upsertHold(ledger.db, { name: 'x', selector: { projects: ['p'] }, actor: 'a' }, new Date()), /the audit trail is keyed/);
        assert.equal((await ledger.db.selectFrom('holds').select('name').where('name', '=', 'x').execute()).length, 0, 'refused, nothing written');
        await assert.rejects(verifyAudit(ledger.db), /verifying it needs the key/);
      } finally {
        await ledger.close();
        await t.cleanup();
      }
    });
  });
}

after(() => rmSync(dir, { recursive: true, force: true }));
