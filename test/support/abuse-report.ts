// An abuse report over a small cloud: three instances, two floating IPs (one
// moves between instances), as the simulator's notification builders write
// them, and the lines an external site would send back in several log formats,
// with who each line must be attributed to.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before } from 'node:test';
import { EXIT } from '../../operator/cli/errors.ts';
import { cli } from './cli-ledger.ts';
import { neutronFloatingIp, neutronPort, novaInstance, type VmSpec } from '../sim/openstack-messages.ts';

const t = (iso: string) => new Date(iso);
export const vmA: VmSpec = { id: 'a9b0c1d2-0000-4000-8000-00000000000a', name: 'batch-17', project: 'proj-hep', user: 'alice', host: 'cmp-04', createdAt: t('2026-05-01T15:00:00Z'), ports: [{ portId: 'port-aaaa', address: '10.0.0.5', mac: 'fa:16:3e:00:00:0a', network: 'private' }] };
export const vmB: VmSpec = { id: 'b9b0c1d2-0000-4000-8000-00000000000b', name: 'web-2', project: 'proj-astro', user: 'bob', host: 'cmp-07', createdAt: t('2026-05-01T15:30:00Z'), ports: [{ portId: 'port-bbbb', address: '10.0.0.9', mac: 'fa:16:3e:00:00:0b', network: 'private' }] };
export const vmC: VmSpec = { id: 'c9b0c1d2-0000-4000-8000-00000000000c', name: 'batch-18', project: 'proj-hep', user: 'alice', host: 'cmp-05', createdAt: t('2026-05-01T15:40:00Z'), ports: [{ portId: 'port-cccc', address: '10.0.0.6', mac: 'fa:16:3e:00:00:0c', network: 'private' }] };
export const FIP1 = '188.185.194.218';
export const FIP2 = '188.185.194.219';
const fip1 = { id: 'fip-1', address: FIP1, network: 'ext-net', project: 'proj-hep' };
const fip2 = { id: 'fip-2', address: FIP2, network: 'ext-net', project: 'proj-hep' };

/** The notifications, one body per line (the `ingest` .jsonl form). */
export function cloudNotifications(): string[] {
  return [
    neutronPort({ ...vmA.ports[0]!, project: vmA.project, instanceId: vmA.id }, 'create.end', t('2026-05-01T15:59:00Z')),
    novaInstance(vmA, 'create.end', t('2026-05-01T16:00:00Z')),
    neutronFloatingIp(fip1, 'update.end', t('2026-05-01T16:05:00Z'), { portId: 'port-aaaa', fixedAddress: '10.0.0.5', instanceId: vmA.id }),
    novaInstance(vmB, 'create.end', t('2026-05-01T16:06:00Z')),
    novaInstance(vmC, 'create.end', t('2026-05-01T16:07:00Z')),
    neutronFloatingIp(fip2, 'update.end', t('2026-05-01T16:10:00Z'), { portId: 'port-cccc', fixedAddress: '10.0.0.6', instanceId: vmC.id }),
    // The floating IP moves to B in one update; A is then deleted.
    neutronFloatingIp(fip1, 'update.end', t('2026-05-01T16:20:00Z'), { portId: 'port-bbbb', fixedAddress: '10.0.0.9', instanceId: vmB.id }),
    novaInstance(vmA, 'delete.start', t('2026-05-01T16:30:00Z'), { taskState: 'deleting', initiator: 'alice' }),
    novaInstance(vmA, 'delete.end', t('2026-05-01T16:30:09Z'), { state: 'deleted', withIps: false, deletedAt: t('2026-05-01T16:30:09Z') }),
  ];
}

export const REPORT_FILES = {
  'batch.log': [
    '18:13:16.877067+02:00 b635182c75 p:14022 s:7081 pp:13944 u:51234 g:1399 eu:51234 eg:1399 t:NULL /cvmfs/sft.cern.ch/lcg/python2.7 TCP 188.185.194.218:60045 -> 192.0.2.80:80',
    '18:12:00.000001+02:00 b635182c75 p:14022 s:7081 pp:13944 u:51234 g:1399 eu:51234 eg:1399 t:NULL /usr/bin/curl TCP 188.185.194.219:41000 -> 192.0.2.80:80',
    '18:25:00.5+02:00 c0ffee0001 p:14100 s:7081 pp:13944 u:51234 g:1399 eu:51234 eg:1399 t:NULL /usr/bin/curl TCP 188.185.194.218:51000 -> 192.0.2.80:443',
  ],
  'conn.log': [
    '#separator \\x09',
    '#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto',
    '#types\ttime\tstring\taddr\tport\taddr\tport\tenum',
    `${Date.parse('2026-05-01T16:15:00Z') / 1000}.250000\tCa1\t188.185.194.219\t41001\t192.0.2.80\t80\ttcp`,
    `${Date.parse('2026-05-01T16:02:00Z') / 1000}.000000\tCa2\t188.185.194.218\t41002\t192.0.2.80\t80\ttcp`,
  ],
  'access.log': ['188.185.194.218 - - [01/May/2026:18:21:00 +0200] "GET /wp-login.php HTTP/1.1" 404 153 "-" "python-requests/2.31"'],
  'report.csv': ['address,time', '188.185.194.218,2026-05-01T16:10:00Z', 'this line is garbage', '10.0.0.5,not-a-time'],
} as const;

/** file:line → instance id (null: nobody held the address then). */
export const EXPECTED: Record<string, string | null> = {
  'batch.log:1': vmA.id, 'batch.log:2': vmC.id, 'batch.log:3': vmB.id,
  'conn.log:4': vmC.id, 'conn.log:5': null,
  'access.log:1': vmB.id,
  'report.csv:2': vmA.id,
};
export const UNREADABLE = ['report.csv:3', 'report.csv:4'];

/** Writes the notifications and the report files into dir; returns their paths. */
export function writeAbuseReport(dir: string): { notifications: string; files: string[] } {
  mkdirSync(dir, { recursive: true });
  const notifications = join(dir, 'cloud.jsonl');
  writeFileSync(notifications, cloudNotifications().join('\n') + '\n');
  const files = Object.entries(REPORT_FILES).map(([name, lines]) => {
    const p = join(dir, name);
    writeFileSync(p, lines.join('\n') + '\n');
    return p;
  });
  return { notifications, files };
}

/**
 * For the describe it is called in: a ledger in a directory of its own into
 * which `before` writes the report and ingests its notifications as cloud cern
 * (`quarantine ingest`), removed by `after`. `files` is set once `before` ran.
 */
export function ingestedAbuseReport(prefix: string): { dir: string; db: string; files: string[] } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const report = { dir, db: `sqlite:${join(dir, 'ledger.db')}`, files: [] as string[] };
  after(() => rmSync(dir, { recursive: true, force: true }));
  before(async () => {
    const w = writeAbuseReport(join(dir, 'report'));
    report.files = w.files;
    const r = await cli(['--db', report.db, 'ingest', '--cloud', 'cern', w.notifications]);
    assert.equal(r.code, EXIT.ok, r.err);
  });
  return report;
}
