import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import {
  RbdBusyError,
  RbdCommandError,
  RbdError,
  RbdExistsError,
  RbdHasSnapshotsError,
  RbdInvalidArgumentError,
  RbdNotFoundError,
  RbdPermissionDeniedError,
  describeCommand,
  errorClassForExit,
  errorFromErrno,
  RbdTimeoutError,
  errorFromExit,
  redactArgv,
  summarizeStderr,
} from '../../operator/ceph/errors.ts';
import {
  RbdOutputError,
  parseBareValue,
  parseCtimeUtc,
  parseDiskUsage,
  parseImageInfo,
  parseMetaList,
  parseNameList,
  parseNamespaceList,
  parseSnapshotList,
  parseTrashList,
} from '../../operator/ceph/rbd-json.ts';

// Captured from `rbd` 16.2.15 (Pacific) against the test cluster, with TZ=UTC.
const fixture = (name: string): string => readFileSync(new URL(`fixtures/rbd/${name}`, import.meta.url), 'utf8');

describe('exit code → error class', () => {
  const table: [number, string, Function][] = [
    [2, 'rbd: error opening image x: (2) No such file or directory', RbdNotFoundError],
    [1, 'rbd: delete error: (1) Operation not permitted', RbdPermissionDeniedError],
    [13, 'rbd: (13) Permission denied', RbdPermissionDeniedError],
    [16, 'rbd: error: image still has watchers', RbdBusyError],
    [39, 'rbd: image has snapshots', RbdHasSnapshotsError],
    [17, 'rbd: create error: (17) File exists', RbdExistsError],
    [22, 'rbd: flatten error: (22) Invalid argument', RbdInvalidArgumentError],
    [1, "rbd: unrecognised option '--bogus'", RbdInvalidArgumentError],
    [1, 'rbd: too many arguments', RbdInvalidArgumentError],
    [5, 'rbd: (5) Input/output error', RbdCommandError],
    [110, 'rbd: (110) Connection timed out', RbdCommandError],
    [255, '', RbdCommandError],
  ];
  for (const [code, stderr, expected] of table) {
    it(`${code} ${JSON.stringify(stderr)} → ${expected.name}`, () => {
      assert.equal(errorClassForExit(code, stderr), expected);
      const error = errorFromExit({ command: ['rbd', 'info', 'vms/x'], exitCode: code, stderr });
      assert.ok(error instanceof expected);
      assert.ok(error instanceof RbdError);
      assert.equal(error.name, expected.name);
      assert.equal(error.exitCode, code);
      assert.equal(error.stderr, stderr);
      assert.deepEqual(error.command, ['rbd', 'info', 'vms/x']);
    });
  }
});

describe('-errno of a librbd call → the same class as that errno as rbd exit code', () => {
  it('every errno from 1 to 255 (rbd exits with the errno of its failed librbd call)', () => {
    for (let errno = 1; errno < 256; errno++) {
      const error = errorFromErrno('rbd_snap_create', 'vms/x@s', errno);
      assert.equal(error.constructor, errorClassForExit(errno, ''), `errno ${errno}`);
      assert.equal(error.exitCode, errno);
      assert.deepEqual(error.command, ['librbd', 'rbd_snap_create', 'vms/x@s']);
    }
  });

  it('says what failed and why, in one line', () => {
    const error = errorFromErrno('rbd_open', 'vms/x', 2);
    assert.equal(error.message, 'rbd_open vms/x failed (errno 2 ENOENT): no such file or directory');
  });

  it('ETIMEDOUT under an op timeout is a timeout', () => {
    const error = errorFromErrno('rbd_snap_create', 'vms/x@s', 110, 30_000);
    assert.ok(error instanceof RbdTimeoutError);
    assert.equal(error.timeoutMs, 30_000);
  });
});

describe('captured rbd failures', () => {
  const cases = JSON.parse(fixture('errors.json')) as { case: string; argv: string[]; exitCode: number; stderr: string }[];
  const expected: Record<string, Function> = {
    'not-found': RbdNotFoundError,
    'permission-denied': RbdPermissionDeniedError,
    'permission-denied-snap-rm': RbdPermissionDeniedError,
    'has-snapshots': RbdHasSnapshotsError,
    busy: RbdBusyError,
    exists: RbdExistsError,
    'invalid-argument': RbdInvalidArgumentError,
    'pool-config-unset': RbdNotFoundError,
    'pool-missing': RbdNotFoundError,
    'usage-error': RbdInvalidArgumentError,
    'meta-missing': RbdNotFoundError,
    'trash-not-expired': RbdPermissionDeniedError,
  };
  const summaries: Record<string, RegExp> = {
    'not-found': /^rbd: error opening image missing-image: \(2\) No such file or directory$/,
    'has-snapshots': /^rbd: image has snapshots with linked clones/,
    busy: /^rbd: error: image still has watchers$/,
    'permission-denied-snap-rm': /^rbd: error opening image q1: \(1\) Operation not permitted$/,
    'trash-not-expired': /^Deferment time has not expired/,
    'pool-config-unset': /^rbd: rbd_move_to_trash_on_remove is not set$/,
  };
  it('covers every captured case', () => {
    assert.deepEqual(cases.map((c) => c.case).sort(), Object.keys(expected).sort());
  });
  for (const c of cases) {
    it(`${c.case} (exit ${c.exitCode}) → ${expected[c.case]?.name}`, () => {
      const error = errorFromExit({ command: ['rbd', ...c.argv], exitCode: c.exitCode, stderr: c.stderr });
      assert.equal(error.constructor, expected[c.case]);
      const summary = summarizeStderr(c.stderr);
      assert.ok(!/^\d{4}-\d\d-\d\dT/.test(summary), `log prefix left in ${summary}`);
      const pattern = summaries[c.case];
      if (pattern !== undefined) assert.match(summary, pattern);
      assert.ok(error.message.endsWith(summary), error.message);
      assert.ok(error.message.includes(`(exit ${c.exitCode} `), error.message);
    });
  }
});

describe('messages and argv', () => {
  it('leaves connection options out of the message', () => {
    assert.equal(
      describeCommand(['rbd', '--conf=/etc/ceph/c.conf', '--id=nova', 'rm', '--no-progress', '--', 'vms/x']),
      'rbd rm --no-progress vms/x',
    );
    assert.equal(describeCommand(['rbd', '--id', 'nova', '-m', '10.0.0.1', 'ls']), 'rbd ls');
  });

  it('redacts secrets should an argv ever carry one', () => {
    assert.deepEqual(redactArgv(['rbd', '--key', 'AQBsecret==', 'ls']), ['rbd', '--key', '<redacted>', 'ls']);
    assert.deepEqual(redactArgv(['rbd', '--key=AQBsecret==', 'ls']), ['rbd', '--key=<redacted>', 'ls']);
    const error = errorFromExit({ command: ['rbd', '--key=AQBsecret==', 'ls'], exitCode: 1, stderr: '' });
    assert.ok(!error.command.join(' ').includes('AQBsecret'));
  });

  it('summarizes an empty stderr without failing', () => {
    assert.equal(summarizeStderr(''), '(no output on stderr)');
    assert.equal(summarizeStderr('Removing image: 0% complete...failed.\n'), '(no output on stderr)');
  });
});

describe('JSON output of rbd 16.2', () => {
  it('info of a plain image', () => {
    const info = parseImageInfo(fixture('info-image.json'));
    assert.equal(info.name, 'fromstdin');
    assert.equal(info.id, '10bd207d9ff6');
    assert.equal(info.sizeBytes, 5242880);
    assert.equal(info.objectSizeBytes, 4194304);
    assert.equal(info.format, 2);
    assert.equal(info.snapshotCount, 2);
    assert.ok(info.features.includes('layering'));
    assert.deepEqual(info.opFeatures, ['clone-parent']);
    assert.equal(info.parent, undefined);
    assert.equal(info.createdAt?.toISOString(), '2026-11-23T08:44:56.000Z');
  });

  it('info of a v2 clone in a namespace names its parent', () => {
    const info = parseImageInfo(fixture('info-clone.json'));
    assert.deepEqual(info.opFeatures, ['clone-child']);
    assert.deepEqual(info.parent, {
      pool: 'vms',
      namespace: undefined,
      image: 'fromstdin',
      imageId: '10bd207d9ff6',
      snapshot: 'base',
      inTrash: false,
      overlapBytes: 5242880,
    });
  });

  it('info of a clone whose parent snapshot was removed shows the trash snapshot uuid', () => {
    const info = parseImageInfo(fixture('info-clone-trashed-snap.json'));
    assert.match(info.parent?.snapshot ?? '', /^[0-9a-f-]{36}$/);
  });

  it('info of a snapshot spec parses ("protected" is a string there)', () => {
    assert.equal(parseImageInfo(fixture('info-snapshot.json')).name, 'fromstdin');
  });

  it('snap ls, with the "protected" strings as booleans', () => {
    const snaps = parseSnapshotList(fixture('snap-ls.json'));
    assert.deepEqual(
      snaps.map((s) => [s.id, s.name, s.protected, s.namespace]),
      [
        [8, 's', false, 'user'],
        [9, 'base', false, 'user'],
      ],
    );
    assert.equal(snaps[0]?.createdAt.toISOString(), '2026-11-23T08:44:57.000Z');
  });

  it('snap ls --all shows trash snapshots with their original name', () => {
    const [trashed, user] = parseSnapshotList(fixture('snap-ls-all.json'));
    assert.equal(trashed?.namespace, 'trash');
    assert.equal(trashed?.originalName, 's');
    assert.equal(trashed?.name, '4b9c494c-bf42-4503-94ce-9705f8b409f6');
    assert.equal(user?.namespace, 'user');
    assert.equal(user?.originalName, undefined);
  });

  it('trash ls --long: deferment end and state from the status string', () => {
    const [entry] = parseTrashList(fixture('trash-ls-long.json'), { pool: 'quarantine', namespace: 'cases' });
    assert.equal(entry?.id, '10eb239b244');
    assert.equal(entry?.name, 'fx-clone2');
    assert.equal(entry?.pool, 'quarantine');
    assert.equal(entry?.namespace, 'cases');
    assert.equal(entry?.source, 'USER');
    assert.equal(entry?.deletedAt.toISOString(), '2026-11-23T08:45:04.000Z');
    // asked for @1938081600 (12:00:00); rbd stored one second less
    assert.equal(entry?.expiresAt.toISOString(), '2031-06-01T11:59:59.000Z');
    assert.equal(entry?.expired, false);
    assert.deepEqual(entry?.parent, {
      pool: 'vms',
      namespace: undefined,
      image: 'fromstdin',
      imageId: undefined,
      snapshot: '4b9c494c-bf42-4503-94ce-9705f8b409f6',
      inTrash: undefined,
      overlapBytes: undefined,
    });
  });

  it('trash ls --long: an entry moved without expiry is expired at once', () => {
    const entries = parseTrashList(fixture('trash-ls-long-mixed.json'), { pool: 'quarantine', namespace: 'cases' });
    assert.deepEqual(
      entries.map((e) => [e.name, e.expired, e.expiresAt.toISOString()]),
      [
        ['fx-clone', true, '2026-11-23T08:45:10.000Z'],
        ['fx-clone2', false, '2031-06-01T11:59:59.000Z'],
      ],
    );
  });

  it('du of one image: rows per snapshot and head, totals computed', () => {
    const du = parseDiskUsage(fixture('du-image.json'));
    assert.deepEqual(
      du.rows.map((r) => [r.snapshot, r.provisionedBytes, r.usedBytes]),
      [
        ['base', 5242880, 5242880],
        [undefined, 5242880, 0],
      ],
    );
    assert.equal(du.totalProvisionedBytes, 5242880);
    assert.equal(du.totalUsedBytes, 5242880);
  });

  it('du of a namespace: totals as printed', () => {
    const du = parseDiskUsage(fixture('du-namespace.json'));
    assert.equal(du.rows.length, 2);
    assert.equal(du.totalProvisionedBytes, 10485760);
    assert.equal(du.totalUsedBytes, 0);
  });

  it('ls, namespace ls, image-meta list (empty output for no metadata)', () => {
    assert.deepEqual(parseNameList(fixture('ls.json')), ['fromstdin', 'sized', 'sized2']);
    assert.deepEqual(parseNamespaceList(fixture('namespace-ls.json')), ['cases']);
    assert.deepEqual(parseMetaList(fixture('image-meta-list.json')), { note: 'a "quoted" value', 'quarantine.case': 'CASE-42' });
    assert.equal(fixture('image-meta-list-empty.json'), '');
    assert.deepEqual(parseMetaList(fixture('image-meta-list-empty.json')), {});
  });

  it('bare values lose exactly one trailing newline', () => {
    assert.equal(parseBareValue('v a l\n'), 'v a l');
    assert.equal(parseBareValue('x\n\n'), 'x\n');
    assert.equal(parseBareValue('true'), 'true');
  });

  it('reads ctime strings as UTC, including space-padded days', () => {
    assert.equal(parseCtimeUtc('Sun Jun  1 12:00:00 2031').toISOString(), '2031-06-01T12:00:00.000Z');
    assert.equal(parseCtimeUtc('Mon Nov 23 08:44:46 2026').toISOString(), '2026-11-23T08:44:46.000Z');
    for (const text of ['', '2026-11-23T08:44:46Z', 'Mon Foo 23 08:44:46 2026', 'Mon Nov 23 08:44 2026']) {
      assert.throws(() => parseCtimeUtc(text), RbdOutputError, text);
    }
  });

  it('rejects output that is not JSON or not the expected shape', () => {
    assert.throws(() => parseImageInfo('rbd image x:\n\tsize 1 MiB'), /output is not JSON/);
    assert.throws(() => parseImageInfo('{"name":"x"}'), RbdOutputError);
    assert.throws(() => parseSnapshotList('[{"id":1,"name":"s","size":1,"protected":"maybe","timestamp":"x"}]'), RbdOutputError);
    assert.throws(
      () => parseTrashList('[{"id":"1","name":"x","source":"USER","deleted_at":"Mon Nov 23 08:44:46 2026","status":"gone"}]', { pool: 'vms' }),
      /unexpected trash status/,
    );
  });

  it('ignores fields it does not know', () => {
    const info = JSON.parse(fixture('info-image.json')) as Record<string, unknown>;
    info['some_future_field'] = { nested: true };
    assert.equal(parseImageInfo(JSON.stringify(info)).id, '10bd207d9ff6');
  });
});
