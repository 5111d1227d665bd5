import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { createHash } from 'node:crypto';
import { RbdCli } from '../../operator/ceph/rbd-cli.ts';
import type { RunFn, RunResult } from '../../operator/ceph/process.ts';
import {
  InvalidRequestError,
  RbdAbortedError,
  RbdCommandError,
  RbdHasSnapshotsError,
  RbdInvalidArgumentError,
  RbdNotFoundError,
  RbdTimeoutError,
  RbdUnexpectedOutputError,
} from '../../operator/ceph/errors.ts';

const fixture = (name: string): string => readFileSync(new URL(`fixtures/rbd/${name}`, import.meta.url), 'utf8');

interface Recorded {
  readonly argv: string[];
  readonly env: NodeJS.ProcessEnv;
  readonly timeoutMs: number;
}

/** A run function that records argv and answers from a script of results. */
function recorder(answers: Partial<RunResult>[] = []): { calls: Recorded[]; run: RunFn } {
  const calls: Recorded[] = [];
  const run: RunFn = async (file, args, options) => {
    calls.push({ argv: [file, ...args], env: options.env, timeoutMs: options.timeoutMs });
    const answer = answers[calls.length - 1] ?? {};
    return { exitCode: 0, signal: null, stdout: '', stderr: '', timedOut: false, ...answer };
  };
  return { calls, run };
}

const NOW = new Date('2026-11-23T12:00:00.000Z');

describe('RbdCli command lines', () => {
  it('puts connection options first and positionals after --', async () => {
    const { calls, run } = recorder();
    const rbd = new RbdCli({ cephConf: '/etc/ceph/test.conf', id: 'quarantine-operator', run });
    await rbd.removeImage({ pool: 'vms', image: 'abc_disk' });
    assert.deepEqual(calls[0]?.argv, ['rbd', '--conf=/etc/ceph/test.conf', '--id=quarantine-operator', 'rm', '--no-progress', '--', 'vms/abc_disk']);
  });

  it('runs rbd with TZ=UTC and the default 30 s limit', async () => {
    const { calls, run } = recorder([{ stdout: '[]' }]);
    await new RbdCli({ run, env: { PATH: '/usr/bin', TZ: 'America/New_York' } }).listImages({ pool: 'vms' });
    assert.equal(calls[0]?.env['TZ'], 'UTC');
    assert.equal(calls[0]?.env['PATH'], '/usr/bin');
    assert.equal(calls[0]?.timeoutMs, 30_000);
    assert.deepEqual(calls[0]?.argv, ['rbd', 'ls', '--format', 'json', '--pool', 'vms']);
  });

  it('gives flatten the long transfer limit', async () => {
    const { calls, run } = recorder();
    await new RbdCli({ run, timeoutMs: 1000, transferTimeoutMs: 99_000 }).flatten({ pool: 'quarantine', namespace: 'c', image: 'q' });
    assert.equal(calls[0]?.timeoutMs, 99_000);
    assert.deepEqual(calls[0]?.argv, ['rbd', 'flatten', '--no-progress', '--', 'quarantine/c/q']);
  });

  it('renews an object map by dropping it, enabling it again and rebuilding it (a rebuild alone keeps stale claims)', async () => {
    const { calls, run } = recorder([{ stdout: fixture('info-clone.json') }]);
    await new RbdCli({ run, timeoutMs: 1000, transferTimeoutMs: 99_000 }).renewObjectMap({ pool: 'quarantine', image: 'q' });
    assert.deepEqual(calls.slice(1).map((c) => c.argv), [
      ['rbd', 'feature', 'disable', '--', 'quarantine/q', 'fast-diff', 'object-map'],
      ['rbd', 'feature', 'enable', '--', 'quarantine/q', 'object-map', 'fast-diff'],
      ['rbd', 'object-map', 'rebuild', '--no-progress', '--', 'quarantine/q'],
    ]);
    assert.equal(calls[3]?.timeoutMs, 99_000);
  });

  it('asks for v2 clones explicitly', async () => {
    const { calls, run } = recorder();
    await new RbdCli({ run }).clone({ pool: 'vms', image: 'a_disk', snapshot: 'q1' }, { pool: 'quarantine', namespace: 'cases', image: 'a.q1' });
    assert.deepEqual(calls[0]?.argv, ['rbd', 'clone', '--rbd-default-clone-format=2', '--', 'vms/a_disk@q1', 'quarantine/cases/a.q1']);
  });

  it('addresses trashed images by id with options', async () => {
    const { calls, run } = recorder([{ stdout: '[]' }]);
    const rbd = new RbdCli({ run });
    await rbd.listSnapshots({ pool: 'vms', namespace: 'ns', imageId: '10bd207d9ff6' }, { includeTrash: true });
    await rbd.removeSnapshot({ pool: 'vms', imageId: '10bd207d9ff6', snapshot: 's1' });
    await rbd.purgeSnapshots({ pool: 'vms', imageId: '10bd207d9ff6' });
    await rbd.restoreFromTrash({ pool: 'vms', imageId: '10bd207d9ff6' }, { name: 'restored' });
    await rbd.removeFromTrash({ pool: 'vms', namespace: 'ns', imageId: '10bd207d9ff6' }, { force: true });
    assert.deepEqual(
      calls.map((c) => c.argv.slice(1)),
      [
        ['snap', 'ls', '--format', 'json', '--all', '--pool', 'vms', '--namespace', 'ns', '--image-id', '10bd207d9ff6'],
        ['snap', 'rm', '--no-progress', '--pool', 'vms', '--image-id', '10bd207d9ff6', '--snap', 's1'],
        ['snap', 'purge', '--no-progress', '--pool', 'vms', '--image-id', '10bd207d9ff6'],
        ['trash', 'restore', '--image', 'restored', '--', 'vms/10bd207d9ff6'],
        ['trash', 'rm', '--no-progress', '--force', '--', 'vms/ns/10bd207d9ff6'],
      ],
    );
  });

  it('passes a metadata value that starts with - after --', async () => {
    const { calls, run } = recorder();
    await new RbdCli({ run }).setMeta({ pool: 'vms', image: 'x' }, 'note', '-v');
    assert.deepEqual(calls[0]?.argv.slice(1), ['image-meta', 'set', '--', 'vms/x', 'note', '-v']);
  });

  it('creates images with an exact byte size and refuses impossible ones', async () => {
    const { calls, run } = recorder();
    const rbd = new RbdCli({ run });
    await rbd.createImage({ pool: 'vms', image: 'x' }, 1048576);
    assert.deepEqual(calls[0]?.argv.slice(1), ['create', '--size', '1048576B', '--', 'vms/x']);
    for (const size of [0, -1, 1.5, Number.NaN, 2 ** 60]) {
      await assert.rejects(rbd.createImage({ pool: 'vms', image: 'x' }, size), InvalidRequestError);
    }
    assert.equal(calls.length, 1);
  });
});

describe('RbdCli trash expiry', () => {
  it('passes @epoch, one second late, after looking up the id', async () => {
    const { calls, run } = recorder([{ stdout: fixture('info-image.json') }]);
    const rbd = new RbdCli({ run, now: () => NOW });
    const id = await rbd.moveToTrash({ pool: 'vms', image: 'fromstdin' }, { expiresAt: new Date(NOW.getTime() + 3600_000) });
    assert.equal(id, '10bd207d9ff6');
    const epoch = NOW.getTime() / 1000 + 3600;
    assert.deepEqual(calls[1]?.argv.slice(1), ['trash', 'mv', '--expires-at', `@${epoch + 1}`, '--', 'vms/fromstdin']);
  });

  it('rounds a fractional second up', async () => {
    const { calls, run } = recorder([{ stdout: fixture('info-image.json') }]);
    await new RbdCli({ run, now: () => NOW }).moveToTrash({ pool: 'vms', image: 'x' }, { expiresAt: new Date(NOW.getTime() + 60_250) });
    assert.equal(calls[1]?.argv[4], `@${NOW.getTime() / 1000 + 61 + 1}`);
  });

  it('leaves the option out for "expire now"', async () => {
    const { calls, run } = recorder([{ stdout: fixture('info-image.json') }]);
    await new RbdCli({ run }).moveToTrash({ pool: 'vms', image: 'x' });
    assert.deepEqual(calls[1]?.argv.slice(1), ['trash', 'mv', '--', 'vms/x']);
  });

  for (const [what, offsetMs] of [
    ['in the past', -1000],
    ['now', 0],
    ['too close to now', 4999],
  ] as const) {
    it(`refuses an expiry ${what} without running rbd (it would become 2106)`, async () => {
      const { calls, run } = recorder();
      const rbd = new RbdCli({ run, now: () => NOW });
      await assert.rejects(rbd.moveToTrash({ pool: 'vms', image: 'x' }, { expiresAt: new Date(NOW.getTime() + offsetMs) }), /2106/);
      assert.equal(calls.length, 0);
    });
  }

  it('refuses an invalid date', async () => {
    const { calls, run } = recorder();
    await assert.rejects(new RbdCli({ run }).moveToTrash({ pool: 'vms', image: 'x' }, { expiresAt: new Date('nope') }), InvalidRequestError);
    assert.equal(calls.length, 0);
  });
});

describe('RbdCli results', () => {
  it('maps an unset pool config key to undefined, a missing pool to NotFound', async () => {
    const unset = recorder([{ exitCode: 2, stderr: 'rbd: rbd_move_to_trash_on_remove is not set\n' }]);
    assert.equal(await new RbdCli({ run: unset.run }).getPoolConfig('vms', 'rbd_move_to_trash_on_remove'), undefined);
    assert.deepEqual(unset.calls[0]?.argv.slice(1), ['config', 'pool', 'get', '--', 'vms', 'rbd_move_to_trash_on_remove']);

    const set = recorder([{ stdout: 'true\n' }]);
    assert.equal(await new RbdCli({ run: set.run }).getPoolConfig('vms', 'rbd_move_to_trash_on_remove'), 'true');

    const missing = recorder([{ exitCode: 2, stderr: "rbd: error opening pool 'nosuch': (2) No such file or directory\n" }]);
    await assert.rejects(new RbdCli({ run: missing.run }).getPoolConfig('nosuch', 'rbd_move_to_trash_on_remove'), RbdNotFoundError);
  });

  it('returns image-meta values without the trailing newline', async () => {
    const { run } = recorder([{ stdout: 'v a l\n' }]);
    assert.equal(await new RbdCli({ run }).getMeta({ pool: 'vms', image: 'x' }, 'k'), 'v a l');
  });

  it('maps a missing metadata key to NotFound', async () => {
    const { run } = recorder([{ exitCode: 2, stderr: 'rbd: getting metadata failed: (2) No such file or directory\n' }]);
    await assert.rejects(new RbdCli({ run }).getMeta({ pool: 'vms', image: 'x' }, 'nope'), RbdNotFoundError);
  });

  it('turns unreadable output into RbdUnexpectedOutputError with the command', async () => {
    const { run } = recorder([{ stdout: 'rbd image x:\n' }]);
    await assert.rejects(new RbdCli({ run }).info({ pool: 'vms', image: 'x' }), (error: unknown) => {
      assert.ok(error instanceof RbdUnexpectedOutputError);
      assert.deepEqual(error.command.slice(-2), ['--', 'vms/x']);
      return true;
    });
  });

  it('reports a timeout as RbdTimeoutError', async () => {
    const { run } = recorder([{ exitCode: null, signal: 'SIGTERM', timedOut: true }]);
    await assert.rejects(new RbdCli({ run, timeoutMs: 1234 }).listImages({ pool: 'vms' }), (error: unknown) => {
      assert.ok(error instanceof RbdTimeoutError);
      assert.equal(error.timeoutMs, 1234);
      assert.match(error.message, /timed out after 1234 ms/);
      return true;
    });
  });
});

// Real processes, with a stand-in for rbd: the plumbing (time limits, kills,
// streams, exit codes) is what is under test here, not Ceph.
describe('RbdCli process plumbing', () => {
  let dir = '';
  let fakeRbd = '';
  const env = (mode: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv => ({ ...process.env, FAKE_RBD_MODE: mode, ...extra });

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'qop-fake-rbd-'));
    fakeRbd = join(dir, 'rbd');
    writeFileSync(
      fakeRbd,
      [
        '#!/bin/sh',
        'case "$FAKE_RBD_MODE" in',
        '  sleep) exec sleep 30 ;;',
        '  tz) echo "$TZ" ;;',
        `  snapshots) echo "rbd: image has snapshots - these must be deleted with 'rbd snap purge' before the image can be removed." >&2; exit 39 ;;`,
        '  export) head -c 3000000 /dev/zero | tr "\\000" "a" ;;',
        '  export-fail) head -c 100000 /dev/zero; echo "rbd: export error: (5) Input/output error" >&2; exit 5 ;;',
        '  endless) exec yes ;;',
        '  import) cat > "$FAKE_RBD_OUT" ;;',
        '  *) echo "unknown mode" >&2; exit 99 ;;',
        'esac',
        '',
      ].join('\n'),
    );
    chmodSync(fakeRbd, 0o755);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('kills a call that runs past its limit', async () => {
    const started = Date.now();
    const rbd = new RbdCli({ rbdPath: fakeRbd, env: env('sleep'), timeoutMs: 200 });
    await assert.rejects(rbd.listImages({ pool: 'vms' }), RbdTimeoutError);
    assert.ok(Date.now() - started < 5000);
  });

  it('maps the exit code of a real process', async () => {
    const rbd = new RbdCli({ rbdPath: fakeRbd, env: env('snapshots') });
    await assert.rejects(rbd.removeImage({ pool: 'vms', image: 'x' }), (error: unknown) => {
      assert.ok(error instanceof RbdHasSnapshotsError);
      assert.equal(error.exitCode, 39);
      assert.match(error.message, /image has snapshots/);
      return true;
    });
  });

  it('sets TZ=UTC for the process', async () => {
    const rbd = new RbdCli({ rbdPath: fakeRbd, env: env('tz', { TZ: 'Asia/Tokyo' }) });
    await assert.rejects(rbd.listImages({ pool: 'vms' }), /output is not JSON: "UTC\\n"/);
  });

  it('reports a missing rbd binary as RbdCommandError', async () => {
    const rbd = new RbdCli({ rbdPath: join(dir, 'no-such-rbd') });
    await assert.rejects(rbd.listImages({ pool: 'vms' }), (error: unknown) => {
      assert.ok(error instanceof RbdCommandError);
      assert.match(error.message, /could not start/);
      return true;
    });
    const handle = rbd.exportImage({ pool: 'vms', image: 'x' });
    await assert.rejects(handle.done, RbdCommandError);
  });

  it('streams an export and settles done after the last byte', async () => {
    const rbd = new RbdCli({ rbdPath: fakeRbd, env: env('export') });
    const { stream, done } = rbd.exportImage({ pool: 'vms', image: 'x', snapshot: 's' });
    const hash = createHash('sha256');
    let bytes = 0;
    for await (const chunk of stream) {
      hash.update(chunk as Buffer);
      bytes += (chunk as Buffer).length;
    }
    await done;
    assert.equal(bytes, 3_000_000);
    assert.equal(hash.digest('hex'), createHash('sha256').update(Buffer.alloc(3_000_000, 'a')).digest('hex'));
  });

  it('fails the export stream itself when rbd fails, so a partial digest cannot pass', async () => {
    const rbd = new RbdCli({ rbdPath: fakeRbd, env: env('export-fail') });
    const { stream, done } = rbd.exportImage({ pool: 'vms', image: 'x' });
    let bytes = 0;
    await assert.rejects(
      (async () => {
        for await (const chunk of stream) bytes += (chunk as Buffer).length;
      })(),
      /Input\/output error/,
    );
    await assert.rejects(done, (error: unknown) => error instanceof RbdCommandError && error.exitCode === 5);
    assert.equal(bytes, 100_000);
  });

  it('aborts an export on signal and kills rbd', async () => {
    const controller = new AbortController();
    const rbd = new RbdCli({ rbdPath: fakeRbd, env: env('endless') });
    const { stream, done } = rbd.exportImage({ pool: 'vms', image: 'x' }, { signal: controller.signal });
    stream.once('data', () => controller.abort());
    stream.resume();
    await assert.rejects(done, RbdAbortedError);
  });

  it('kills rbd when the consumer stops reading', async () => {
    const rbd = new RbdCli({ rbdPath: fakeRbd, env: env('endless') });
    const { stream, done } = rbd.exportImage({ pool: 'vms', image: 'x' });
    for await (const chunk of stream) {
      void chunk;
      break;
    }
    await assert.rejects(done, RbdAbortedError);
  });

  it('times out an export', async () => {
    const rbd = new RbdCli({ rbdPath: fakeRbd, env: env('endless') });
    const { stream, done } = rbd.exportImage({ pool: 'vms', image: 'x' }, { timeoutMs: 150 });
    stream.resume();
    await assert.rejects(done, RbdTimeoutError);
  });

  it('does not start an export whose signal is already aborted', async () => {
    const rbd = new RbdCli({ rbdPath: join(dir, 'no-such-rbd') });
    const { done } = rbd.exportImage({ pool: 'vms', image: 'x' }, { signal: AbortSignal.abort() });
    await assert.rejects(done, RbdAbortedError);
  });

  it('imports from a stream through stdin', async () => {
    const out = join(dir, 'imported');
    const rbd = new RbdCli({ rbdPath: fakeRbd, env: env('import', { FAKE_RBD_OUT: out }) });
    const content = Buffer.alloc(2_500_000, 'z');
    await rbd.importImage({ stream: Readable.from([content.subarray(0, 1000), content.subarray(1000)]) }, { pool: 'vms', image: 'x' });
    assert.ok(readFileSync(out).equals(content));
  });

  it('kills the import when the source fails instead of importing a truncated image', async () => {
    const out = join(dir, 'truncated');
    const rbd = new RbdCli({ rbdPath: fakeRbd, env: env('import', { FAKE_RBD_OUT: out }) });
    async function* failing(): AsyncGenerator<Buffer> {
      yield Buffer.alloc(1000, 'z');
      throw new Error('source broke');
    }
    await assert.rejects(rbd.importImage({ stream: Readable.from(failing()) }, { pool: 'vms', image: 'x' }), (error: unknown) => {
      assert.ok(error instanceof RbdAbortedError);
      assert.match(error.message, /source failed \(source broke\)/);
      return true;
    });
  });

  it('imports from a path, passed as an absolute path', async () => {
    const { calls, run } = recorder();
    let spawned: string[] = [];
    const rbd = new RbdCli({
      run,
      spawn: (file, args) => {
        spawned = [file, ...args];
        throw new RbdInvalidArgumentError('stop here', { command: [file], exitCode: null, stderr: '' });
      },
    });
    await assert.rejects(rbd.importImage({ path: 'relative/disk.raw' }, { pool: 'vms', image: 'x' }), /stop here/);
    assert.equal(spawned[0], 'rbd');
    assert.equal(spawned.at(-2), join(process.cwd(), 'relative/disk.raw'));
    assert.equal(spawned.at(-1), 'vms/x');
    assert.equal(calls.length, 0);
  });
});
