// The simulated cloud's process host: programs run in a process of its own
// and their results come back with execFileRun's contract.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { processHost, startProcessHost, type HostChannel, type HostReply, type HostRequest } from '../sim/process-host.ts';

function fakeChannel(): HostChannel & { sent: HostRequest[]; holds: boolean[]; reply(r: HostReply): void; drop(reason: string): void; closed: boolean } {
  let onReply: (r: HostReply) => void = () => undefined;
  let onClose: (reason: string) => void = () => undefined;
  const channel = {
    sent: [] as HostRequest[],
    holds: [] as boolean[],
    closed: false,
    hold: (held: boolean) => {
      channel.holds.push(held);
    },
    send: (r: HostRequest) => {
      channel.sent.push(r);
    },
    onReply: (l: (r: HostReply) => void) => {
      onReply = l;
    },
    onClose: (l: (reason: string) => void) => {
      onClose = l;
    },
    close: async () => {
      channel.closed = true;
      onClose('closed');
    },
    reply: (r: HostReply) => onReply(r),
    drop: (reason: string) => onClose(reason),
  };
  return channel;
}

test('each run is one request; replies resolve their own run, in whatever order they come', async () => {
  const channel = fakeChannel();
  const host = processHost(channel);
  const a = host.run('rbd', ['ls', 'vms'], { timeoutMs: 1000, env: { A: '1', GONE: undefined } });
  const b = host.run('rbd', ['rm', 'vms/x'], { timeoutMs: 2000, env: {} });
  assert.equal(host.pending, 2);
  const [ra, rb] = channel.sent;
  assert.deepEqual({ ...ra, id: 0 }, { id: 0, file: 'rbd', args: ['ls', 'vms'], timeoutMs: 1000, env: { A: '1' } });
  assert.ok(ra !== undefined && rb !== undefined && ra.id !== rb.id);
  channel.reply({ id: rb.id, result: { exitCode: 16, signal: null, stdout: '', stderr: 'busy', timedOut: false } });
  channel.reply({ id: ra.id, result: { exitCode: 0, signal: null, stdout: 'x\n', stderr: '', timedOut: false } });
  channel.reply({ id: 999, result: { exitCode: 0, signal: null, stdout: 'nobody asked', stderr: '', timedOut: false } });
  assert.deepEqual(await a, { exitCode: 0, signal: null, stdout: 'x\n', stderr: '', timedOut: false });
  assert.deepEqual(await b, { exitCode: 16, signal: null, stdout: '', stderr: 'busy', timedOut: false });
  assert.equal(host.pending, 0);
  // The channel keeps the process alive from the first program to the last answer, not longer.
  assert.deepEqual(channel.holds, [true, false]);
});

test('a start failure comes back as an Error with its code', async () => {
  const channel = fakeChannel();
  const host = processHost(channel);
  const run = host.run('nope', [], { timeoutMs: 1000, env: {} });
  channel.reply({ id: channel.sent[0]?.id ?? 0, result: { exitCode: null, signal: null, stdout: '', stderr: '', timedOut: false, spawnError: { message: 'spawn nope ENOENT', code: 'ENOENT' } } });
  const result = await run;
  assert.ok(result.spawnError instanceof Error);
  assert.equal(result.spawnError.message, 'spawn nope ENOENT');
  assert.equal((result.spawnError as NodeJS.ErrnoException).code, 'ENOENT');
});

test('when the host goes away, runs in flight and later runs fail to start instead of hanging', async () => {
  const channel = fakeChannel();
  const host = processHost(channel);
  const inFlight = host.run('rbd', ['ls'], { timeoutMs: 1000, env: {} });
  channel.drop('exited (SIGKILL)');
  const r = await inFlight;
  assert.equal(r.exitCode, null);
  assert.match(String(r.spawnError?.message), /process host is gone: exited \(SIGKILL\)/);
  const later = await host.run('rbd', ['ls'], { timeoutMs: 1000, env: {} });
  assert.match(String(later.spawnError?.message), /exited \(SIGKILL\)/);
  assert.equal(channel.sent.length, 1);
});

test('a real host runs programs in another process and ends when closed', async () => {
  const host = startProcessHost();
  try {
    const [pid, fail, missing] = await Promise.all([
      host.run('sh', ['-c', 'echo $$; echo err >&2'], { timeoutMs: 10_000, env: { PATH: process.env['PATH'] ?? '' } }),
      host.run('sh', ['-c', 'exit 3'], { timeoutMs: 10_000, env: { PATH: process.env['PATH'] ?? '' } }),
      host.run('/nonexistent/program', [], { timeoutMs: 10_000, env: {} }),
    ]);
    assert.equal(pid.exitCode, 0);
    assert.notEqual(Number(pid.stdout.trim()), process.pid);
    assert.equal(pid.stderr, 'err\n');
    assert.equal(fail.exitCode, 3);
    assert.equal(missing.exitCode, null);
    assert.ok(missing.spawnError instanceof Error);
  } finally {
    await host.close();
  }
  const after = await host.run('sh', ['-c', 'true'], { timeoutMs: 10_000, env: {} });
  assert.ok(after.spawnError instanceof Error);
});
