// Elastic Common Schema exports: address intervals (`export-intervals -o ecs`)
// and attributed log lines (`trace log -o ecs`), each document checked against
// the ECS field definitions of the fields used.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { cli } from '../support/cli-ledger.ts';
import { EXIT } from '../../operator/cli/errors.ts';
import { ecsProblems } from '../support/ecs.ts';
import { FIP1, vmA, ingestedAbuseReport } from '../support/abuse-report.ts';

const docs = (out: string) => out.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);

describe('ECS exports', () => {
  const report = ingestedAbuseReport('qop-ecs-');
  const { db } = report;

  test('export-intervals -o ecs: every interval of the window, each a valid ECS document', async () => {
    const r = await cli(['--db', db, 'export-intervals', '--from', '2026-05-01T15:00:00Z', '--to', '2026-05-01T17:00:00Z', '-o', 'ecs']);
    assert.equal(r.code, EXIT.ok, r.err);
    const all = docs(r.out);
    // Three fixed addresses and three floating intervals (one floating IP moved once).
    assert.equal(all.length, 6);
    for (const d of all) assert.deepEqual(ecsProblems(d), [], JSON.stringify(d));
    const held = all.find((d) => JSON.stringify(d).includes(`"related":{"ip":["${FIP1}"]`) && (d['event'] as { end?: string }).end !== undefined);
    assert.deepEqual(held, {
      '@timestamp': '2026-05-01T16:05:00.000Z',
      ecs: { version: '8.12.0' },
      event: { kind: 'event', category: ['network'], type: ['info'], action: 'address-held', dataset: 'quarantine.address_interval', module: 'quarantine', start: '2026-05-01T16:05:00.000Z', end: '2026-05-01T16:20:00.000Z' },
      message: `${FIP1} held by batch-17 (proj-hep/alice) from 2026-05-01T16:05:00.000Z to 2026-05-01T16:20:00.000Z`,
      cloud: { instance: { id: vmA.id, name: 'batch-17' }, project: { id: 'proj-hep' } },
      user: { id: 'alice' },
      network: { name: 'ext-net' },
      labels: { cloud: 'cern', address_kind: 'floating', port: 'port-aaaa', hypervisor: 'cmp-04' },
      related: { ip: [FIP1], user: ['alice'] },
    });
    const none = await cli(['--db', db, 'export-intervals', '--from', '2026-04-01T00:00:00Z', '--to', '2026-04-02T00:00:00Z', '-o', 'ecs']);
    assert.equal(none.out, '');
  });

  test('trace log -o ecs: a document per line and holder, valid ECS, the original line kept', async () => {
    const r = await cli(['--db', db, 'trace', 'log', '--date', '2026-05-01', '-o', 'ecs', ...report.files]);
    assert.equal(r.code, EXIT.partial);
    const all = docs(r.out);
    assert.equal(all.length, 7);
    for (const d of all) assert.deepEqual(ecsProblems(d), [], JSON.stringify(d));
    const nobody = all.filter((d) => (d['event'] as { action: string }).action === 'unattributed');
    assert.equal(nobody.length, 1);
    assert.equal((all[0]?.['event'] as { original: string }).original.startsWith('18:13:16.877067+02:00'), true);
  });

  test('the check itself rejects what ECS does not define', () => {
    assert.deepEqual(ecsProblems({ '@timestamp': 'yesterday', event: { kind: 'happening', category: ['network'], type: ['moved'] }, vm: { id: 'x' }, source: { ip: 'not-an-ip' }, labels: { nested: { a: 1 } } }), [
      '@timestamp: "yesterday" is not an ISO 8601 date',
      'event.kind happening is not allowed',
      'event.type moved is not allowed with category network',
      'vm.id is not an ECS field',
      'source.ip: "not-an-ip" is not an IP',
      'labels.nested must be a flat string',
    ].sort((a, b) => order(a) - order(b)));
  });
});

// ecsProblems reports field problems in document order, then the categorization checks.
function order(p: string): number {
  return ['@timestamp', 'vm.id', 'source.ip', 'labels', 'event.kind', 'event.type'].findIndex((k) => p.startsWith(k));
}
