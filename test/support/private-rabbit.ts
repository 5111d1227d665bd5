// A RabbitMQ node of the test's own (own node name, ports and data directory;
// management off), for fault tests that restart the broker. The machine's
// shared broker is never touched. As root, rabbitmq-server drops to the
// `rabbitmq` user, so the directory is handed to it.
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chownSync, mkdtempSync, rmSync, writeFileSync, readdirSync, statSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import * as amqp from 'amqplib';
import { freePort } from './private-pg.ts';
import { uniqueSuffix } from './env.ts';

export interface PrivateRabbit {
  url: string;
  node: string;
  start(): Promise<void>;
  stop(): void;
  ctl(args: string[]): string;
  destroy(): void;
}

function chownTree(path: string, uid: number, gid: number): void {
  chownSync(path, uid, gid);
  if (statSync(path).isDirectory()) for (const e of readdirSync(path)) chownTree(join(path, e), uid, gid);
}

export async function privateRabbit(): Promise<PrivateRabbit> {
  const dir = mkdtempSync(join(tmpdir(), 'qop-private-rabbit-'));
  const port = await freePort();
  let dist = await freePort();
  while (dist === port) dist = await freePort();
  const node = `qtest-${uniqueSuffix()}@localhost`;
  writeFileSync(join(dir, 'enabled_plugins'), '[].\n');
  writeFileSync(join(dir, 'rabbitmq.conf'), 'loopback_users = none\n');
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    RABBITMQ_NODENAME: node,
    RABBITMQ_NODE_IP_ADDRESS: '127.0.0.1',
    RABBITMQ_NODE_PORT: String(port),
    RABBITMQ_DIST_PORT: String(dist),
    RABBITMQ_MNESIA_BASE: join(dir, 'mnesia'),
    RABBITMQ_LOG_BASE: join(dir, 'log'),
    RABBITMQ_ENABLED_PLUGINS_FILE: join(dir, 'enabled_plugins'),
    RABBITMQ_CONFIG_FILE: join(dir, 'rabbitmq'),
    RABBITMQ_PID_FILE: join(dir, 'pid'),
    RABBITMQ_PLUGINS_EXPAND_DIR: join(dir, 'plugins-expand'),
  };
  if (userInfo().uid === 0) {
    const uid = Number(execFileSync('id', ['-u', 'rabbitmq'], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', 'rabbitmq'], { encoding: 'utf8' }).trim());
    chownTree(dir, uid, gid);
  }
  let server: ChildProcess | undefined;
  const url = `amqp://guest:guest@127.0.0.1:${port}/`;
  const r: PrivateRabbit = {
    url,
    node,
    async start() {
      server = spawn('rabbitmq-server', [], { env, stdio: 'ignore', detached: false });
      const end = Date.now() + 90_000;
      for (;;) {
        try {
          const c = await amqp.connect(url);
          await c.close();
          return;
        } catch {
          if (Date.now() > end) throw new Error(`private RabbitMQ node ${node} did not start; see ${join(dir, 'log')}`);
          await new Promise((res) => setTimeout(res, 250));
        }
      }
    },
    stop() {
      r.ctl(['stop']);
      server = undefined;
    },
    ctl(args: string[]): string {
      const out = spawnSync('rabbitmqctl', ['-n', node, ...args], { env, encoding: 'utf8', timeout: 60_000 });
      if (out.status !== 0) throw new Error(`rabbitmqctl ${args.join(' ')}: ${out.stderr || out.stdout}`);
      return out.stdout;
    },
    destroy() {
      if (server !== undefined) {
        try {
          r.stop();
        } catch {
          server.kill('SIGKILL');
        }
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return r;
}
