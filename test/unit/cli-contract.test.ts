// The CLI's shared contract, command by command: exit codes (README, "Exit
// codes"), -o table|wide|json|yaml and --no-headers on every read command, a
// trace table that fits 120 columns, shell completion.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { parse as parseYaml } from 'yaml';
import { runCli, DEFAULT_DB_URL } from '../../operator/cli/program.ts';
import { CLI_CAPTURE_STATES } from '../../operator/cli/capture-commands.ts';
import { EXIT, exitCodeOf, NotFoundError, UsageError, VerificationError } from '../../operator/cli/errors.ts';
import { DEFAULT_DB_URL as LEDGER_DEFAULT_DB_URL, LedgerUrlError, openLedgerDb, migrateToLatest } from '../../operator/ledger/db.ts';
import { CAPTURE_STATES } from '../../operator/capture/quarantine-store.ts';
import { CaptureEngine } from '../../operator/capture/engine.ts';
import { ManifestError } from '../../operator/resources/manifest-files.ts';
import { SecretNotFoundError } from '../../operator/secrets.ts';
import { QuarantineUnavailableError, RestoreTargetExistsError } from '../../operator/capture/restore.ts';
import { HoldError } from '../../operator/capture/holds.ts';
import { silentLogger } from '../../operator/log.ts';
import { FakeBlockStore } from '../support/fake-block-store.ts';
import { neutronFloatingIp, neutronPort, novaInstance, type VmSpec } from '../sim/openstack-messages.ts';

async function cli(args: string[]) {
  let out = '';
  let err = '';
  const code = await runCli(args, { out: (s) => { out += s; }, err: (s) => { err += s; }, env: { LOG_LEVEL: 'silent' } });
  return { code, out, err };
}

const t = (iso: string) => new Date(iso);
// Long names on purpose: the default table must still fit 120 columns.
const vm: VmSpec = {
  id: 'a9b0c1d2-0000-4000-8000-00000000000a', name: 'a-very-long-batch-worker-name-for-the-physics-department', project: 'proj-high-energy-physics-analysis',
  user: 'alice-with-a-long-account-name', host: 'compute-node-0042.cluster.example.org', createdAt: t('2026-05-01T15:00:00Z'),
  ports: [{ portId: 'port-aaaa-bbbb-cccc-dddd', address: '10.0.0.5', mac: 'fa:16:3e:00:00:0a', network: 'private-network-of-the-batch-cluster' }],
};

describe('the CLI contract', () => {
  const dir = mkdtempSync(join(tmpdir(), 'qop-contract-'));
  const db = `sqlite:${join(dir, 'ledger.db')}`;
  let quarantineId = '';
  after(() => rmSync(dir, { recursive: true, force: true }));

  before(async () => {
    const msgs = join(dir, 'msgs');
    mkdirSync(msgs);
    const fip = { id: 'fip-1', address: '188.185.194.218', network: 'external-network-of-the-site', project: vm.project };
    const bodies = [
      neutronPort({ ...vm.ports[0]!, project: vm.project, instanceId: vm.id }, 'create.end', t('2026-05-01T15:59:00Z')),
      novaInstance(vm, 'create.end', t('2026-05-01T16:00:00Z')),
      neutronFloatingIp(fip, 'update.end', t('2026-05-01T16:05:00Z'), { portId: vm.ports[0]!.portId, fixedAddress: '10.0.0.5', instanceId: vm.id }),
    ];
    writeFileSync(join(msgs, 'all.jsonl'), bodies.join('\n') + '\n');
    writeFileSync(join(msgs, 'bad.json'), '{"not": "a notification"');
    assert.equal((await cli(['--db', db, 'ingest', '--cloud', 'lab', join(msgs, 'all.jsonl')])).code, EXIT.ok);
    const ledger = openLedgerDb(db);
    await migrateToLatest(ledger);
    const blocks = new FakeBlockStore();
    const engine = new CaptureEngine({ db: ledger.db, blocks, quarantine: { pool: 'quarantine' }, logger: silentLogger });
    const image = { pool: 'vms', image: `${vm.id}_disk` };
    await blocks.importImage({ stream: Readable.from([Buffer.from('disk')]) }, image);
    const row = await engine.capture({
      cloud: 'lab', instanceId: vm.id, disk: 'disk', mode: 'trash', policy: { name: 'default', retentionMs: 86_400_000, flatten: false }, source: { kind: 'live', image },
      provenance: { cloud: 'lab', instance: { id: vm.id, name: vm.name, project: vm.project, user: vm.user, host: vm.host, image: null, flavor: null, createdAt: null }, addresses: [], deletedAt: null, deletedBy: 'alice', messageId: null },
    });
    quarantineId = row.id;
    await ledger.close();
  });

  const at = '2026-05-01T16:10:00Z';

  test('trace ip: the default table fits 120 columns, -o wide has every column, --no-headers drops the header', async () => {
    const table = await cli(['--db', db, 'trace', 'ip', '188.185.194.218', '--at', at]);
    assert.equal(table.code, EXIT.ok, table.err);
    for (const line of table.out.trimEnd().split('\n')) assert.ok(line.length <= 120, `${line.length} columns: ${line}`);
    assert.match(table.out, /^CLOUD\s+INSTANCE\s+NAME\s+USER\s+FROM\s+TO$/m);
    const wide = await cli(['--db', db, 'trace', 'ip', '188.185.194.218', '--at', at, '-o', 'wide']);
    assert.match(wide.out, /^CLOUD\s+KIND\s+INSTANCE\s+NAME\s+PROJECT\s+USER\s+HOST\s+NETWORK\s+PORT\s+FROM\s+TO\s+DELETED\s+SURE$/m);
    assert.match(wide.out, /a-very-long-batch-worker-name-for-the-physics-department/);
    const bare = await cli(['--db', db, 'trace', 'ip', '188.185.194.218', '--at', at, '--no-headers']);
    assert.doesNotMatch(bare.out, /CLOUD/);
    assert.equal(bare.out.trim().split('\n').length, table.out.trim().split('\n').length - 1);
  });

  test('every read command speaks table, wide, json and yaml, and yaml says what json says', async () => {
    const reads: string[][] = [
      ['trace', 'ip', '188.185.194.218', '--at', at],
      ['trace', 'instance', vm.id],
      ['images', 'ls'],
      ['images', 'show', quarantineId],
      ['hold', 'ls', '--all'],
      ['audit', 'ls'],
      ['transfers', 'ls'],
    ];
    for (const args of reads) {
      const json = await cli(['--db', db, ...args, '-o', 'json']);
      const yaml = await cli(['--db', db, ...args, '-o', 'yaml']);
      assert.equal(json.code, EXIT.ok, `${args.join(' ')}: ${json.err}`);
      assert.deepEqual(parseYaml(yaml.out), JSON.parse(json.out), args.join(' '));
      for (const format of ['table', 'wide']) {
        const r = await cli(['--db', db, ...args, '-o', format]);
        assert.equal(r.code, EXIT.ok, `${args.join(' ')} -o ${format}: ${r.err}`);
        const bare = await cli(['--db', db, ...args, '-o', format, '--no-headers']);
        assert.equal(bare.code, EXIT.ok);
        assert.ok(bare.out.length <= r.out.length, `${args.join(' ')} --no-headers`);
      }
      const bad = await cli(['--db', db, ...args, '-o', 'xml']);
      assert.equal(bad.code, EXIT.usage, `${args.join(' ')} -o xml`);
    }
  });

  test('exit codes, command by command', async () => {
    const cases: Array<[string, string[], number]> = [
      ['help', ['--help'], EXIT.ok],
      ['version', ['--version'], EXIT.ok],
      ['unknown command', ['frobnicate'], EXIT.usage],
      ['unknown option', ['images', 'ls', '--colour'], EXIT.usage],
      ['bad --db', ['--db', 'mysql://x', 'images', 'ls'], EXIT.usage],
      ['bad LOG level', ['--log-level', 'loud', 'images', 'ls'], EXIT.usage],
      ['migrate', ['--db', db, 'migrate'], EXIT.ok],
      ['ingest: a rejected body', ['--db', db, 'ingest', join(dir, 'msgs', 'bad.json')], EXIT.partial],
      ['ingest: a missing file (the others are applied)', ['--db', db, 'ingest', join(dir, 'nope.json')], EXIT.partial],
      ['trace ip: found', ['--db', db, 'trace', 'ip', '188.185.194.218', '--at', at], EXIT.ok],
      ['trace ip: nobody', ['--db', db, 'trace', 'ip', '188.185.194.219', '--at', at], EXIT.notFound],
      ['trace ip: not an address', ['--db', db, 'trace', 'ip', 'example.org', '--at', at], EXIT.usage],
      ['trace ip: time without offset', ['--db', db, 'trace', 'ip', '188.185.194.218', '--at', '2026-05-01 16:10'], EXIT.usage],
      ['trace instance: found', ['--db', db, 'trace', 'instance', vm.id], EXIT.ok],
      ['trace instance: unknown', ['--db', db, 'trace', 'instance', 'nope'], EXIT.notFound],
      ['trace instance: unknown, json', ['--db', db, 'trace', 'instance', 'nope', '-o', 'json'], EXIT.notFound],
      ['images ls', ['--db', db, 'images', 'ls'], EXIT.ok],
      ['images ls: unknown cloud', ['--db', db, 'images', 'ls', '--cloud', 'nope'], EXIT.notFound],
      ['images ls: unknown instance', ['--db', db, 'images', 'ls', '--instance', 'nope'], EXIT.notFound],
      ['images ls: bad state', ['--db', db, 'images', 'ls', '--state', 'lost'], EXIT.usage],
      ['images show: found', ['--db', db, 'images', 'show', quarantineId], EXIT.ok],
      ['images show: unknown id', ['--db', db, 'images', 'show', 'qnope'], EXIT.notFound],
      ['export: unknown id', ['--db', db, 'export', 'qnope', '--file', join(dir, 'out.raw')], EXIT.notFound],
      ['export: missing directory', ['--db', db, 'export', quarantineId, '--file', join(dir, 'no', 'such', 'dir', 'out.raw')], EXIT.usage],
      ['export: no manifests', ['--db', db, 'export', quarantineId, '--file', join(dir, 'out.raw')], EXIT.usage],
      ['verify: unknown id', ['--db', db, 'verify', 'qnope'], EXIT.notFound],
      ['restore: unknown id', ['--db', db, 'restore', 'qnope', '--to', 'forensics/x'], EXIT.notFound],
      ['restore: bad target', ['--db', db, 'restore', quarantineId, '--to', 'no pool'], EXIT.usage],
      ['hold add', ['--db', db, 'hold', 'add', 'c1', '--case', 'C-1', '--reason', 'r', '--instance', vm.id], EXIT.ok],
      ['hold add: no selector', ['--db', db, 'hold', 'add', 'c2', '--case', 'C-2', '--reason', 'r'], EXIT.usage],
      ['hold ls', ['--db', db, 'hold', 'ls'], EXIT.ok],
      ['hold rm: would release quarantines, without --yes', ['--db', db, 'hold', 'rm', 'c1'], EXIT.usage],
      ['hold rm', ['--db', db, 'hold', 'rm', 'c1', '--yes'], EXIT.ok],
      ['hold rm: unknown', ['--db', db, 'hold', 'rm', 'c1', '--yes'], EXIT.notFound],
      ['hold rm: name and --case', ['--db', db, 'hold', 'rm', 'c1', '--case', 'C-1'], EXIT.usage],
      ['sweep: no manifests', ['--db', db, 'sweep'], EXIT.usage],
      ['audit verify: intact', ['--db', db, 'audit', 'verify'], EXIT.ok],
      ['audit verify: bad --expect-head', ['--db', db, 'audit', 'verify', '--expect-head', 'x'], EXIT.usage],
      ['completion bash', ['completion', 'bash'], EXIT.ok],
      ['completion: unknown shell', ['completion', 'tcsh'], EXIT.usage],
      ['run: no manifests', ['--db', db, 'run'], EXIT.usage],
    ];
    for (const [what, args, code] of cases) {
      const r = await cli(args);
      assert.equal(r.code, code, `${what}: quarantine ${args.join(' ')}\n${r.err}`);
      // Only a bug (4) shows a stack trace; every other failure is one line.
      if (code !== EXIT.ok && code !== EXIT.partial) assert.doesNotMatch(r.err, /\n\s+at /, `${what}: ${r.err}`);
    }
  });

  test('errors map to exit codes by name, for the errors of every module', () => {
    const expected: Array<[Error, number]> = [
      [new UsageError('x'), EXIT.usage], [new LedgerUrlError('x'), EXIT.usage], [new ManifestError('x'), EXIT.usage],
      [new SecretNotFoundError('x'), EXIT.usage], [new HoldError('x'), EXIT.usage], [new RestoreTargetExistsError('x'), EXIT.usage],
      [new NotFoundError('x'), EXIT.notFound], [new QuarantineUnavailableError('x'), EXIT.notFound],
      [new VerificationError('x'), EXIT.verificationFailed], [new TypeError('x'), EXIT.failure], [new Error('x'), EXIT.failure],
    ];
    for (const [err, code] of expected) assert.equal(exitCodeOf(err), code, err.name);
  });

  test('constants copied to keep start-up light agree with their sources', () => {
    assert.equal(DEFAULT_DB_URL, LEDGER_DEFAULT_DB_URL);
    assert.deepEqual(CLI_CAPTURE_STATES, CAPTURE_STATES);
  });

  test('completion: bash completes commands, subcommands and option values; zsh and fish scripts load', async () => {
    const bash = (await cli(['completion', 'bash'])).out;
    const script = join(dir, 'completion.bash');
    writeFileSync(script, bash);
    const complete = (line: string) => execFileSync('bash', ['-c', `source ${script}; COMP_WORDS=(${line}); COMP_CWORD=$((\${#COMP_WORDS[@]}-1)); _quarantine; echo "\${COMPREPLY[*]}"`], { encoding: 'utf8' }).trim().split(' ');
    assert.ok(complete("quarantine ''").includes('trace'));
    assert.deepEqual(complete('quarantine tr').sort(), ['trace', 'transfers']);
    assert.deepEqual(complete('quarantine trac').sort(), ['trace']);
    assert.ok(['instance', 'ip'].every((c) => complete("quarantine trace ''").includes(c)));
    assert.deepEqual(complete("quarantine --db x.db trace ip 10.0.0.1 -o ''").sort(), ['json', 'table', 'wide', 'yaml']);
    assert.ok(complete('quarantine trace ip --').includes('--no-headers'));
    assert.ok(complete('quarantine images ls --').includes('--state'));
    const zsh = (await cli(['completion', 'zsh'])).out;
    assert.match(zsh, /^#compdef quarantine\n/);
    const fish = (await cli(['completion', 'fish'])).out;
    assert.match(fish, /complete -c quarantine -n '__fish_seen_subcommand_from trace; and not __fish_seen_subcommand_from ip [^']*' -a ip/);
    assert.match(fish, /-l output -xa 'table wide json yaml'/);
  });
});
