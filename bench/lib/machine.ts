// What the numbers were measured on: without the machine and the versions a
// throughput figure cannot be compared with anything.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { DatabaseSync } from 'node:sqlite';
import { promisify } from 'node:util';
import * as amqp from 'amqplib';
import pg from 'pg';
import { pgAdminUrl } from './services.ts';

const run = promisify(execFile);

export interface Machine {
  cpu: string;
  cores: number;
  ramGiB: number;
  node: string;
  rabbitmq: string;
  postgresql: string;
  sqlite: string;
  kernel: string;
}

function cpuModel(): string {
  try {
    const line = readFileSync('/proc/cpuinfo', 'utf8').split('\n').find((l) => l.startsWith('model name'));
    if (line !== undefined) return line.split(':').slice(1).join(':').trim();
  } catch {
    // Not Linux: fall through to what Node reports.
  }
  return cpus()[0]?.model ?? 'unknown';
}

async function rabbitVersion(): Promise<string> {
  const url = process.env['BENCH_AMQP_URL'];
  if (url === undefined || url === '') {
    try {
      const { stdout } = await run('rabbitmqctl', ['-q', 'version'], { timeout: 30_000 });
      return stdout.trim();
    } catch {
      return 'unknown';
    }
  }
  try {
    const conn = await amqp.connect(url);
    const props = (conn.connection as unknown as { serverProperties?: Record<string, unknown> }).serverProperties ?? {};
    await conn.close();
    return typeof props['version'] === 'string' ? props['version'] : 'unknown';
  } catch {
    return 'unknown';
  }
}

async function postgresVersion(): Promise<string> {
  let client: pg.Client | undefined;
  try {
    client = new pg.Client({ connectionString: await pgAdminUrl() });
    await client.connect();
    const r = await client.query<{ server_version: string }>('SHOW server_version');
    return r.rows[0]?.server_version ?? 'unknown';
  } catch {
    return 'unknown';
  } finally {
    await client?.end().catch(() => undefined);
  }
}

function sqliteVersion(): string {
  const db = new DatabaseSync(':memory:');
  try {
    const row = db.prepare('SELECT sqlite_version() AS v').get() as { v: string } | undefined;
    return row?.v ?? 'unknown';
  } finally {
    db.close();
  }
}

function kernel(): string {
  try {
    return readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim();
  } catch {
    return process.platform;
  }
}

export async function describeMachine(): Promise<Machine> {
  const [rabbitmq, postgresql] = await Promise.all([rabbitVersion(), postgresVersion()]);
  return {
    cpu: cpuModel(),
    cores: cpus().length,
    ramGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    rabbitmq,
    postgresql,
    sqlite: sqliteVersion(),
    kernel: kernel(),
  };
}

/** 1-minute load average, rounded: on a 2-core machine a concurrent test run shows here. */
export function load(): number {
  return Math.round((loadavg()[0] ?? 0) * 100) / 100;
}
