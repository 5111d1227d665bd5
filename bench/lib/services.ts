// The real services a benchmark talks to. By default the harness makes its own
// RabbitMQ vhost (rabbitmqctl on this machine) and PostgreSQL database (with a
// role allowed to CREATE DATABASE) and removes both at the end, so a run never
// touches another run's queues or tables. BENCH_AMQP_URL points at an existing
// (dedicated) vhost instead, used as it is and never removed;
// BENCH_PG_ADMIN_URL names another server and role with CREATEDB. With the
// defaults, services that do not answer are started and the role made
// (test/env/services.sh, as the tests do), so a fresh machine runs the
// benchmarks without running the tests first.
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import pg from 'pg';
import type { Services } from '../scenario.ts';

const run = promisify(execFile);

const DEFAULT_AMQP_BASE = 'amqp://guest:guest@127.0.0.1:5672';
const DEFAULT_PG_ADMIN = 'postgres://qop_test:qop_test@127.0.0.1:5432/postgres';
const SERVICES_SCRIPT = fileURLToPath(new URL('../../test/env/services.sh', import.meta.url));
const SERVICES_STATE = fileURLToPath(new URL('../../test/env/.state', import.meta.url));

let local: Promise<void> | undefined;
/** The machine's own RabbitMQ and PostgreSQL started and the default role made (needs root, as the tests' scripts do); once per process. */
function localServices(): Promise<void> {
  local ??= run('bash', [SERVICES_SCRIPT, 'role', SERVICES_STATE]).then(() => undefined, (err: unknown) => {
    const stderr = err !== null && typeof err === 'object' && 'stderr' in err ? err.stderr : undefined;
    throw new Error(`the local RabbitMQ and PostgreSQL could not be made ready (${SERVICES_SCRIPT} role): ${typeof stderr === 'string' && stderr.trim() !== '' ? stderr.trim() : String(err)}`);
  });
  return local;
}

async function answers(url: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url });
  try {
    await client.connect();
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => undefined);
  }
}

let defaultPg: Promise<string> | undefined;
/**
 * The PostgreSQL URL to make databases with: BENCH_PG_ADMIN_URL, or the local
 * default, the services started and the role made first where it does not answer.
 */
export function pgAdminUrl(): Promise<string> {
  const given = process.env['BENCH_PG_ADMIN_URL'];
  if (given !== undefined && given !== '') return Promise.resolve(given);
  defaultPg ??= answers(DEFAULT_PG_ADMIN).then(async (ok) => {
    if (!ok) await localServices();
    return DEFAULT_PG_ADMIN;
  });
  return defaultPg;
}

export class RunServices implements Services {
  readonly #id = randomBytes(4).toString('hex');
  #vhost: string | undefined;
  readonly #databases = new Set<string>();
  #amqp: Promise<string> | undefined;
  readonly #pg = new Map<string, Promise<string>>();

  amqpUrl(): Promise<string> {
    this.#amqp ??= this.#makeVhost();
    return this.#amqp;
  }

  postgresUrl(purpose: string): Promise<string> {
    let url = this.#pg.get(purpose);
    if (url === undefined) {
      url = this.#makeDatabase(purpose);
      this.#pg.set(purpose, url);
    }
    return url;
  }

  async #makeVhost(): Promise<string> {
    const given = process.env['BENCH_AMQP_URL'];
    if (given !== undefined && given !== '') return given;
    const vhost = `qop-bench-${this.#id}`;
    // A broker that is not running is started once (services.sh), then asked again.
    await run('rabbitmqctl', ['-q', 'add_vhost', vhost]).catch(async () => {
      await localServices();
      await run('rabbitmqctl', ['-q', 'add_vhost', vhost]);
    });
    this.#vhost = vhost;
    await run('rabbitmqctl', ['-q', 'set_permissions', '-p', vhost, 'guest', '.*', '.*', '.*']);
    return `${process.env['BENCH_AMQP_BASE'] ?? DEFAULT_AMQP_BASE}/${encodeURIComponent(vhost)}`;
  }

  async #makeDatabase(purpose: string): Promise<string> {
    if (!/^[a-z0-9_]+$/.test(purpose)) throw new Error(`database purpose "${purpose}" must be [a-z0-9_]+`);
    const admin = await pgAdminUrl();
    const name = `qop_bench_${this.#id}_${purpose}`;
    const client = new pg.Client({ connectionString: admin });
    await client.connect();
    try {
      await client.query(`CREATE DATABASE ${name}`);
      this.#databases.add(name);
    } finally {
      await client.end();
    }
    const url = new URL(admin);
    url.pathname = `/${name}`;
    return url.toString();
  }

  /** Removes what this run made; safe to call twice and after partial set-up. */
  async release(): Promise<string[]> {
    const problems: string[] = [];
    // Settle pending set-ups first, so nothing is created after we looked.
    await Promise.allSettled([this.#amqp, ...this.#pg.values()]);
    this.#amqp = undefined;
    this.#pg.clear();
    if (this.#vhost !== undefined) {
      const vhost = this.#vhost;
      this.#vhost = undefined;
      await run('rabbitmqctl', ['-q', 'delete_vhost', vhost]).catch((err: unknown) => problems.push(`vhost ${vhost} not deleted: ${String(err)}`));
    }
    for (const name of [...this.#databases]) {
      this.#databases.delete(name);
      const client = new pg.Client({ connectionString: await pgAdminUrl() });
      try {
        await client.connect();
        await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } catch (err) {
        problems.push(`database ${name} not dropped: ${String(err)}`);
      } finally {
        await client.end().catch(() => undefined);
      }
    }
    return problems;
  }
}
