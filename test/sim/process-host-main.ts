// The process host's own side (see process-host.ts): runs each program it is
// sent with execFileRun and sends the result back; ends when its parent
// disconnects, once the programs it runs have finished.
import { execFileRun } from '../../operator/ceph/process.ts';
import type { HostReply, HostRequest } from './process-host.ts';

let running = 0;
let disconnected = false;

function maybeExit(): void {
  if (disconnected && running === 0) process.exit(0);
}

process.on('message', (message) => {
  const request = message as HostRequest;
  running++;
  void execFileRun(request.file, request.args, { timeoutMs: request.timeoutMs, env: request.env }).then((result) => {
    running--;
    const { spawnError, ...rest } = result;
    const code = (spawnError as NodeJS.ErrnoException | undefined)?.code;
    const reply: HostReply = { id: request.id, result: spawnError === undefined ? rest : { ...rest, spawnError: { message: spawnError.message, code } } };
    if (process.connected) process.send?.(reply);
    maybeExit();
  });
});

process.once('disconnect', () => {
  disconnected = true;
  maybeExit();
});
