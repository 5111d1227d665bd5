// Opens the ledger database named by a URL: `sqlite:PATH` (the embedded
// default) or `postgres://…` (production, shared by every replica).
import { Kysely, PostgresDialect, type PostgresPool, type PostgresPoolClient } from 'kysely';
import { Migrator } from 'kysely/migration';
import { createRequire } from 'node:module';
import type PgModule from 'pg';
import { NodeSqliteDatabase, NodeSqliteDialect } from './sqlite-driver.ts';
import { migrationProvider, type Engine } from './migrations.ts';
import { PREPARED } from './prepared.ts';
import type { LedgerSchema } from './schema.ts';

export const DEFAULT_DB_URL = 'sqlite:./quarantine.db';

export class LedgerUrlError extends Error {
  override name = 'LedgerUrlError';
}

export type DbTarget = { engine: 'sqlite'; path: string } | { engine: 'postgres'; url: string };

export function parseDbUrl(url: string): DbTarget {
  if (url.startsWith('sqlite:')) {
    const path = url.slice('sqlite:'.length).replace(/^\/\/(?=\/)/, '');
    if (path === '') throw new LedgerUrlError(`database URL "${url}" has no file path (use sqlite:PATH or sqlite::memory:)`);
    return { engine: 'sqlite', path };
  }
  if (/^postgres(ql)?:\/\//.test(url)) return { engine: 'postgres', url };
  throw new LedgerUrlError(`unsupported database URL "${redactUrl(url)}": use sqlite:PATH or postgres://USER@HOST/DB`);
}

/** A URL fit for logs and error messages: the password is never shown. */
export function redactUrl(url: string): string {
  return url.replace(/(\/\/[^:/@]+:)[^@]*@/, '$1***@');
}

const PG_INT8 = 20;

// pg (CommonJS) is loaded only for a PostgreSQL ledger: a SQLite CLI call never pays for it.
const requirePg = (): typeof PgModule => createRequire(import.meta.url)('pg') as typeof PgModule;

/** One name per distinct text, the same on every connection (pg keeps a connection's parsed names). */
const preparedNames = new Map<string, string>();

function preparedName(text: string): string {
  let name = preparedNames.get(text);
  if (name === undefined) {
    name = `qop_prepared_${preparedNames.size + 1}`;
    preparedNames.set(text, name);
  }
  return name;
}

/**
 * The pool as Kysely sees it, its clients sending PREPARED texts by name. One
 * wrapper per client: Kysely keeps its connection objects keyed by the client.
 */
function preparingPool(pg: typeof PgModule, pool: PgModule.Pool): PostgresPool {
  const wrapped = new WeakMap<PgModule.PoolClient, PostgresPoolClient>();
  const wrap = (client: PgModule.PoolClient): PostgresPoolClient => wrapped.get(client) ?? remember(client);
  const remember = (client: PgModule.PoolClient): PostgresPoolClient => {
    const proxy = preparing(client);
    wrapped.set(client, proxy);
    return proxy;
  };
  return { Client: pg.Client, options: pool.options, connect: async () => wrap(await pool.connect()), end: () => pool.end() };
}

function preparing(client: PgModule.PoolClient): PostgresPoolClient {
  return new Proxy(client, {
    get(target, key, receiver) {
      if (key !== 'query') return Reflect.get(target, key, receiver) as unknown;
      return (text: unknown, values?: unknown) => {
        if (typeof text === 'string' && text.startsWith(PREPARED) && Array.isArray(values)) {
          return target.query({ name: preparedName(text), text, values });
        }
        return (target.query as (a: unknown, b?: unknown) => unknown)(text, values);
      };
    },
  }) as unknown as PostgresPoolClient;
}

export interface LedgerDb {
  readonly engine: Engine;
  readonly db: Kysely<LedgerSchema>;
  /** The SQLite ledger's file (not for `:memory:`): another connection, in another thread, may open it. */
  readonly file?: string | undefined;
  /** Where connection errors outside any query go (a restart or failover of the server); logged-and-dropped until set. */
  onConnectionError: (err: Error) => void;
  close(): Promise<void>;
}

/** Connections of a PostgreSQL ledger's pool. */
export const POOL_SIZE = 10;

export function openLedgerDb(url: string): LedgerDb {
  const target = parseDbUrl(url);
  if (target.engine === 'sqlite') {
    let database: NodeSqliteDatabase;
    try {
      database = new NodeSqliteDatabase(target.path);
    } catch (err) {
      const why = err instanceof Error ? err.message : String(err);
      throw new LedgerUrlError(`cannot open the SQLite ledger "${target.path}": ${why} (sqlite:PATH names a file, not a directory)`);
    }
    const db = new Kysely<LedgerSchema>({ dialect: new NodeSqliteDialect(database) });
    return { engine: 'sqlite', db, file: target.path === ':memory:' ? undefined : target.path, onConnectionError: () => undefined, close: () => db.destroy() };
  }
  const pg = requirePg();
  const pool = new pg.Pool({
    connectionString: target.url,
    // More than apply.ts's MAX_BESIDE batches can hold while they wait for a second connection.
    max: POOL_SIZE,
    // Epoch-millisecond bigints fit a JS number exactly; reading them as
    // numbers keeps one row type for both engines.
    types: {
      getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
        oid === PG_INT8 ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
    },
  });
  const ledger: LedgerDb = {
    engine: 'postgres',
    db: new Kysely<LedgerSchema>({ dialect: new PostgresDialect({ pool: preparingPool(pg, pool) }) }),
    onConnectionError: () => undefined,
    close: () => ledger.db.destroy(),
  };
  // Without these listeners a server restart or failover is an unhandled
  // 'error' event that ends the process: idle clients report through the
  // pool, a client checked out between two queries of a transaction reports
  // on itself (the pool removes its own listener on checkout).
  pool.on('error', (err) => ledger.onConnectionError(err));
  pool.on('connect', (client) => {
    client.on('error', (err) => ledger.onConnectionError(err));
  });
  return ledger;
}

export class MigrationFailedError extends Error {
  override name = 'MigrationFailedError';
}

/** Brings the schema to the newest migration; returns the names applied now. */
export async function migrateToLatest(ledger: LedgerDb): Promise<string[]> {
  // Migrations are numbered when written, and independent pieces of work may
  // land out of number order: a ledger that already has 0007 still takes 0005.
  const migrator = new Migrator({ db: ledger.db, provider: migrationProvider(ledger.engine), allowUnorderedMigrations: true });
  const { error, results } = await migrator.migrateToLatest();
  if (error !== undefined) {
    const failed = results?.find((r) => r.status === 'Error')?.migrationName ?? 'unknown';
    throw new MigrationFailedError(`ledger migration ${failed} failed: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  }
  return (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
}
