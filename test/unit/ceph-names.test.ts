import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import {
  InvalidNameError,
  formatImageSpec,
  formatPoolSpec,
  formatSnapshotSpec,
  formatTrashSpec,
  parseImageSpec,
  validateConfigKey,
  validateConfigValue,
  validateImageId,
  validateImageName,
  validateMetaValue,
  validateNamespaceName,
  validatePoolName,
  validateSnapshotName,
} from '../../operator/ceph/names.ts';
import { RbdCli } from '../../operator/ceph/rbd-cli.ts';
import type { RunFn, SpawnFn } from '../../operator/ceph/process.ts';
import type { ImageSpec } from '../../operator/domain/block-store.ts';

const bad: { name: string; value: string; reason: RegExp }[] = [
  { name: 'semicolon', value: 'disk;rm', reason: /contains ';'/ },
  { name: 'dot-dot', value: 'a..b', reason: /contains '\.\.'/ },
  { name: 'bare dot-dot', value: '..', reason: /contains '\.\.'/ },
  { name: 'single dot', value: '.', reason: /dots only/ },
  { name: 'space', value: 'my disk', reason: /whitespace/ },
  { name: 'tab', value: 'a\tb', reason: /control character/ },
  { name: 'newline', value: 'a\nb', reason: /control character/ },
  { name: 'NUL', value: 'a\u0000b', reason: /control character/ },
  { name: 'leading dash', value: '-rf', reason: /starts with '-'/ },
  { name: 'option lookalike', value: '--pool=other', reason: /starts with '-'/ },
  { name: 'slash', value: 'vms/other', reason: /contains '\/'/ },
  { name: 'at sign', value: 'img@snap', reason: /contains '@'/ },
  { name: 'empty', value: '', reason: /is empty/ },
  { name: 'overlong', value: 'x'.repeat(256), reason: /256 characters long \(at most 255\)/ },
  { name: 'shell substitution', value: '$(id)', reason: /contains "\$"/ },
  { name: 'backtick', value: 'a`b', reason: /contains "`"/ },
  { name: 'quote', value: "a'b", reason: /contains "'"/ },
  { name: 'pipe', value: 'a|b', reason: /contains "\|"/ },
  { name: 'non-ASCII', value: 'disquë', reason: /contains "ë"/ },
  { name: 'unicode space', value: 'a\u00a0b', reason: /whitespace|control/ },
];

const good = [
  'vms',
  'quarantine',
  'quarantine-operator',
  '0f5a6a6c-8d58-4b2e-9d6c-2f0a3c1e9b7d_disk',
  '0f5a6a6c-8d58-4b2e-9d6c-2f0a3c1e9b7d_disk.local',
  '0f5a6a6c-8d58-4b2e-9d6c-2f0a3c1e9b7d_disk.config',
  'volume-0f5a6a6c-8d58-4b2e-9d6c-2f0a3c1e9b7d',
  'volume-0f5a6a6c-8d58-4b2e-9d6c-2f0a3c1e9b7d.deleted',
  'one-12-34-0',
  'one-sys-34-1',
  'snap',
  'q.2026-11-23T08:44:46Z',
  'a+b',
  'x'.repeat(255),
];

const validators = [
  { kind: 'pool', fn: validatePoolName },
  { kind: 'namespace', fn: validateNamespaceName },
  { kind: 'image', fn: validateImageName },
  { kind: 'snapshot', fn: validateSnapshotName },
];

describe('name validation', () => {
  for (const { kind, fn } of validators) {
    for (const { name, value, reason } of bad) {
      it(`rejects a ${kind} name with ${name}, naming the value and the reason`, () => {
        assert.throws(
          () => fn(value),
          (error: unknown) => {
            assert.ok(error instanceof InvalidNameError);
            assert.equal(error.kind, kind);
            assert.equal(error.value, value);
            assert.match(error.reason, reason);
            assert.ok(error.message.startsWith(`invalid ${kind} `), error.message);
            assert.ok(error.message.includes(JSON.stringify(value.slice(0, 80)).slice(0, -1)), error.message);
            return true;
          },
        );
      });
    }
    it(`accepts the ${kind} names clouds produce`, () => {
      for (const value of good) assert.equal(fn(value), value);
    });
  }

  it('shortens an overlong value in the message but keeps it whole on the error', () => {
    const value = 'y'.repeat(1000);
    const error = (() => {
      try {
        validateImageName(value);
      } catch (e) {
        return e as InvalidNameError;
      }
      throw new Error('not rejected');
    })();
    assert.equal(error.value, value);
    assert.ok(error.message.length < 200, error.message);
  });

  it('accepts lower-case hex image ids and rejects anything else', () => {
    assert.equal(validateImageId('10bd207d9ff6'), '10bd207d9ff6');
    for (const value of ['', 'ABCDEF', '10bd 207d', '../10bd', '-1', '10bd;rm', 'g1', 'a'.repeat(65)]) {
      assert.throws(() => validateImageId(value), InvalidNameError, value);
    }
  });

  it('accepts rbd option names as config keys, and simple values', () => {
    assert.equal(validateConfigKey('rbd_move_to_trash_on_remove'), 'rbd_move_to_trash_on_remove');
    for (const key of ['osd_pool_default_size', 'rbd_x;y', 'RBD_X', '-rbd_x', 'rbd x']) {
      assert.throws(() => validateConfigKey(key), InvalidNameError, key);
    }
    assert.equal(validateConfigValue('86400'), '86400');
    for (const value of ['', 'true; rm', 'a b', '$(id)']) assert.throws(() => validateConfigValue(value), InvalidNameError, value);
  });

  it('lets metadata values carry free text but not control characters', () => {
    assert.equal(validateMetaValue('{"case":"CASE-42","by":"a b"}'), '{"case":"CASE-42","by":"a b"}');
    assert.equal(validateMetaValue('-leading dash is passed after --'), '-leading dash is passed after --');
    assert.throws(() => validateMetaValue('a\nb'), InvalidNameError);
    assert.throws(() => validateMetaValue('x'.repeat(65537)), InvalidNameError);
  });
});

describe('spec formatting', () => {
  it('formats pool/image and pool/namespace/image', () => {
    assert.equal(formatImageSpec({ pool: 'vms', image: 'abc_disk' }), 'vms/abc_disk');
    assert.equal(formatImageSpec({ pool: 'quarantine', namespace: 'cases', image: 'q1' }), 'quarantine/cases/q1');
    assert.equal(formatSnapshotSpec({ pool: 'vms', image: 'abc_disk', snapshot: 's1' }), 'vms/abc_disk@s1');
    assert.equal(formatTrashSpec({ pool: 'vms', namespace: 'ns', imageId: '10bd207d9ff6' }), 'vms/ns/10bd207d9ff6');
    assert.equal(formatPoolSpec({ pool: 'vms' }), 'vms');
  });

  it('validates every component while formatting', () => {
    assert.throws(() => formatImageSpec({ pool: 'vms', namespace: '..', image: 'x' }), /invalid namespace/);
    assert.throws(() => formatImageSpec({ pool: 'v ms', image: 'x' }), /invalid pool/);
    assert.throws(() => formatSnapshotSpec({ pool: 'vms', image: 'x', snapshot: '-s' }), /invalid snapshot/);
  });

  it('parses specs with and without a namespace, and nothing else', () => {
    assert.deepEqual(parseImageSpec('vms/abc_disk'), { pool: 'vms', image: 'abc_disk' });
    assert.deepEqual(parseImageSpec('quarantine/cases/q1'), { pool: 'quarantine', namespace: 'cases', image: 'q1' });
    for (const text of ['vms', 'a/b/c/d', 'vms/', '/x', 'vms//x', 'vms/x@s']) assert.throws(() => parseImageSpec(text), InvalidNameError, text);
  });
});

describe('RbdCli refuses bad names before starting any process', () => {
  let started = 0;
  const run: RunFn = async () => {
    started++;
    throw new Error('a process was started');
  };
  const spawn: SpawnFn = () => {
    started++;
    throw new Error('a process was started');
  };
  // Were anything to get through, this path would fail loudly as well.
  const rbd = new RbdCli({ rbdPath: '/nonexistent/rbd-must-not-run', run, spawn });
  const evil: ImageSpec = { pool: 'vms', image: 'x;rm -rf /' };
  const snap = { ...evil, snapshot: 's' };
  const calls: [string, () => unknown][] = [
    ['listImages', () => rbd.listImages({ pool: 'vms', namespace: '../other' })],
    ['info', () => rbd.info(evil)],
    ['info by id', () => rbd.info({ pool: 'vms', imageId: '../1234' })],
    ['createImage', () => rbd.createImage({ pool: '-p', image: 'x' }, 1024)],
    ['removeImage', () => rbd.removeImage({ pool: 'vms', image: '--all' })],
    ['createSnapshot', () => rbd.createSnapshot({ pool: 'vms', image: 'x', snapshot: 'a b' })],
    ['listSnapshots', () => rbd.listSnapshots(evil)],
    ['removeSnapshot', () => rbd.removeSnapshot({ pool: 'vms', image: 'x', snapshot: 'a@b' })],
    ['removeSnapshot by id', () => rbd.removeSnapshot({ pool: 'vms', imageId: 'abc', snapshot: '-x' })],
    ['purgeSnapshots', () => rbd.purgeSnapshots({ pool: 'vms', imageId: 'ABC' })],
    ['clone', () => rbd.clone({ pool: 'vms', image: 'x', snapshot: 's' }, { pool: 'quarantine', image: 'a/b' })],
    ['flatten', () => rbd.flatten({ pool: 'vms', image: '' })],
    ['moveToTrash', () => rbd.moveToTrash(evil)],
    ['listTrash', () => rbd.listTrash({ pool: 'vms;' })],
    ['restoreFromTrash', () => rbd.restoreFromTrash({ pool: 'vms', imageId: 'abc' }, { name: '../x' })],
    ['removeFromTrash', () => rbd.removeFromTrash({ pool: 'vms', imageId: 'abc def' })],
    ['getMeta', () => rbd.getMeta({ pool: 'vms', image: 'x' }, '-k')],
    ['setMeta', () => rbd.setMeta({ pool: 'vms', image: 'x' }, 'k', 'line\nbreak')],
    ['removeMeta', () => rbd.removeMeta(evil, 'k')],
    ['listMeta', () => rbd.listMeta(evil)],
    ['diskUsage', () => rbd.diskUsage({ pool: 'vms', namespace: '' })],
    ['getPoolConfig', () => rbd.getPoolConfig('vms', 'rbd_x; rm')],
    ['setPoolConfig', () => rbd.setPoolConfig('vms', 'rbd_move_to_trash_on_remove', 'true --force')],
    ['removePoolConfig', () => rbd.removePoolConfig('..', 'rbd_move_to_trash_on_remove')],
    ['createNamespace', () => rbd.createNamespace({ pool: 'vms', namespace: 'a/b' })],
    ['listNamespaces', () => rbd.listNamespaces('@vms')],
    ['removeNamespace', () => rbd.removeNamespace({ pool: 'vms', namespace: '-x' })],
    ['exportImage', () => rbd.exportImage(snap)],
    ['importImage', () => rbd.importImage({ stream: Readable.from([]) }, evil)],
  ];
  for (const [name, call] of calls) {
    it(name, async () => {
      await assert.rejects(async () => call(), InvalidNameError);
      assert.equal(started, 0);
    });
  }

  it('refuses a bad cephx user at construction', () => {
    assert.throws(() => new RbdCli({ id: 'nova --conf=/tmp/x' }), InvalidNameError);
    assert.throws(() => new RbdCli({ id: '-nova' }), InvalidNameError);
  });

  it('has not started anything in the whole table', () => {
    assert.equal(started, 0);
  });
});
