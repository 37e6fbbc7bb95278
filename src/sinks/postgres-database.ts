/**
 * The PostgreSQL sink database: a pg Pool (connections from config fields, a connection string,
 * or the standard PG* environment / DATABASE_URL), statements prepared by name per connection,
 * one pooled client per transaction. Nothing waits for ever: connecting gives up after the connect
 * timeout, a statement after the statement timeout (on the server, and here when the server does not
 * answer at all: stopped, or the network gone), with a clear error the caller shows and retries.
 * A connection that dies while a transaction holds it fails that transaction, never the process
 * (see postgres-pool.ts).
 */
import { createHash } from 'node:crypto';
import pg from 'pg';
import { SinkDatabaseError } from './errors';
import { quoteIdentifier, validateIdentifier } from './identifiers';
import { connectionLost, markLost, openPool } from './postgres-pool';
import { SqlSinkDatabase, type SqlConnection } from './sql-database';
import { postgresDialect, type Statement } from './sql-dialect';
import { postgresProblem, type PostgresProblem } from './postgres-problems';

export interface PostgresOptions {
  /** `postgres://user:password@host:port/database?sslmode=…`; fields below override its parts. */
  readonly connectionString?: string;
  readonly host?: string;
  readonly port?: number;
  readonly database?: string;
  readonly user?: string;
  readonly password?: string;
  /** TLS: true verifies the server certificate; `{rejectUnauthorized: false}` accepts any. */
  readonly ssl?: boolean | { readonly rejectUnauthorized: boolean };
  /**
   * Schema for the tables (the connections' `search_path`); default: the server's (usually
   * `public`). It must exist: a missing schema is reported as a retryable error.
   */
  readonly schema?: string;
  /** Most connections (default 4). Transactions are serialised, so more than a few rarely helps. */
  readonly poolSize?: number;
  /** How long connecting may take before it fails, ms (default 10000). */
  readonly connectionTimeoutMs?: number;
  /** How long a statement waits for a lock held by another session before failing (retryable), ms (default 30000). */
  readonly lockTimeoutMs?: number;
  /**
   * How long one statement may run before the server cancels it, ms (default 60000); also how long a
   * sink transaction may sit idle on the server before the server ends it. A little longer without
   * any answer (a stopped server, a dead network) and the connection is dropped here. Either way the
   * commit fails with a retryable error.
   */
  readonly statementTimeoutMs?: number;
  /** Called for errors of idle pooled connections (server restart, network loss); they are replaced. */
  readonly onIdleError?: (err: Error) => void;
}

/**
 * SQLSTATE classes and codes worth a retry: connection, transaction rollback, resources, shutdown,
 * statement timeout (57014), lock timeout, idle transaction ended by the server (25P03).
 */
const RETRYABLE_SQLSTATE = /^(08|40|53|57P0|57014|55P03|25P03|58)/;
const RETRYABLE_NODE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  'EPIPE',
  'ENOTFOUND',
]);

export class PostgresDatabase extends SqlSinkDatabase {
  readonly kind = 'postgres' as const;
  readonly label: string;
  protected readonly dialect = postgresDialect;
  private readonly pool: pg.Pool;
  private readonly schema: string | undefined;
  private readonly options: PostgresOptions;
  /** How long a query may go without any answer before its connection is given up, ms. */
  private readonly answerTimeoutMs: number;
  /** The schema was found once: connections need not look again. */
  private schemaChecked = false;

  constructor(options: PostgresOptions = {}) {
    super();
    const config: pg.PoolConfig = {
      ...poolConfig(options),
      max: Math.max(1, Math.floor(options.poolSize ?? 4)),
      idleTimeoutMillis: 30_000,
      application_name: 'deltaflow',
      // A lock held elsewhere (someone's open transaction on the table) fails the commit after
      // this long with a retryable error instead of stalling the dataflow without a status.
      lock_timeout: Math.max(1, Math.floor(options.lockTimeoutMs ?? 30_000)),
      // A transaction left open by a lost connection (the server still waiting for its next statement)
      // is ended by the server, releasing its locks: the retry waits for it (claimTable) no longer.
      idle_in_transaction_session_timeout: statementTimeout(options),
      // Dead peers (a server that vanished without closing the connection) are detected.
      keepAlive: true,
    };
    this.answerTimeoutMs = config.query_timeout as number;
    this.pool = openPool(config, (err) => options.onIdleError?.(err));
    this.schema = options.schema;
    this.options = options;
    this.label = `PostgreSQL ${describeTarget(options, config.connectionString)}${options.schema ? ` schema ${options.schema}` : ''}`;
  }

  protected async connect(): Promise<SqlConnection> {
    const client = await this.step(null, () => this.pool.connect());
    // Every query of the transaction goes through here: a connection that died meanwhile (its error
    // was recorded by the pool's listener) fails the next call with that error, and a query without
    // an answer in time gives the connection up (its state on the server is unknown).
    const send = async <R>(call: () => Promise<R>): Promise<R> => {
      const gone = connectionLost(client);
      if (gone) throw gone;
      try {
        return await call();
      } catch (err) {
        // NB: pg's query_timeout rejects with exactly this message and leaves the connection as it is
        // (the chaos test that stops the server checks that our message replaces it).
        if (err instanceof Error && err.message === 'Query read timeout') {
          const e = Object.assign(
            new Error(
              `no answer from the server within ${this.answerTimeoutMs / 1000} s: it is stopped, overloaded or unreachable (statement timeout)`,
            ),
            { code: 'ETIMEDOUT' },
          );
          markLost(client, e);
          throw e;
        }
        throw err;
      }
    };
    const release = (broken: boolean): void => {
      const lost = connectionLost(client);
      client.release(lost ?? (broken || undefined));
    };
    if (this.schema !== undefined && !this.schemaChecked) {
      // PostgreSQL ignores a search_path entry that does not exist, and then fails CREATE TABLE
      // with "no schema has been selected": say what is wrong instead (retried: it may be created).
      const found = await this.step(null, () =>
        send(() => client.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [this.schema])),
      ).catch((e: unknown) => {
        release(true);
        throw e;
      });
      if (found.rowCount === 0) {
        release(false);
        throw new SinkDatabaseError(
          this.label,
          null,
          `schema ${quoteIdentifier(this.schema)} does not exist: create it (CREATE SCHEMA ${quoteIdentifier(this.schema)}) or clear the schema field of the db-config`,
          true,
          { hint: `no schema ${quoteIdentifier(this.schema)}: create it` },
        );
      }
      this.schemaChecked = true;
    }
    const query = (s: Statement) =>
      send(() =>
        s.params.length
          ? client.query({ name: statementName(s.sql), text: s.sql, values: s.params })
          : client.query(s.sql),
      );
    return {
      begin: async () => void (await query({ sql: 'BEGIN', params: [] })),
      commit: async () => void (await query({ sql: 'COMMIT', params: [] })),
      rollback: async () => void (await query({ sql: 'ROLLBACK', params: [] })),
      release,
      run: async (s) => (await query(s)).rowCount ?? 0,
      all: async (s) => (await query(s)).rows as Record<string, unknown>[],
      claimTable: async (table) => void (await query({ sql: CLAIM_TABLE_SQL, params: [table] })),
    };
  }

  protected async shutdown(): Promise<void> {
    await this.pool.end();
  }

  protected override explain(err: unknown): PostgresProblem | null {
    return postgresProblem(err, this.options);
  }

  protected isRetryable(err: unknown): boolean {
    const e = err as { code?: unknown; message?: unknown; errors?: unknown } | null;
    if (!e) return false;
    if (typeof e.code === 'string' && (RETRYABLE_SQLSTATE.test(e.code) || RETRYABLE_NODE_CODES.has(e.code)))
      return true;
    if (Array.isArray(e.errors)) return e.errors.some((x) => this.isRetryable(x));
    const msg = typeof e.message === 'string' ? e.message : '';
    return /timeout exceeded when trying to connect|Connection terminated|not queryable|connection.*(closed|ended)/i.test(
      msg,
    );
  }
}

/**
 * A transaction-scoped advisory lock per table (schema-qualified name): what a transaction holds
 * from its first statement on the table to its end. See SqlExecutor.claimTable.
 */
const CLAIM_TABLE_SQL = `SELECT pg_advisory_xact_lock(hashtextextended('deltaflow:' || coalesce(current_schema(), '') || '.' || $1, 0))`;

function statementTimeout(options: PostgresOptions): number {
  return Math.max(1, Math.floor(options.statementTimeoutMs ?? 60_000));
}

/**
 * Where and how to connect (pool size and session settings aside): the connection string (or
 * DATABASE_URL when neither it nor a host is set), the fields that override its parts, TLS, the
 * connect timeout and the statement timeout: the server cancels a statement after it, and the
 * client gives a query up when it has had no answer 2 s later (the server stopped, the network
 * gone; the server's own cancellation would have arrived by then). Shared by the sink's pool and
 * db-query's.
 */
export function poolConfig(options: PostgresOptions): pg.PoolConfig {
  const config: pg.PoolConfig = {
    connectionString: options.connectionString || (!options.host && process.env.DATABASE_URL) || undefined,
    connectionTimeoutMillis: Math.max(1, Math.floor(options.connectionTimeoutMs ?? 10_000)),
    statement_timeout: statementTimeout(options),
    query_timeout: statementTimeout(options) + 2000,
  };
  if (options.host) config.host = options.host;
  if (options.port) config.port = options.port;
  if (options.database) config.database = options.database;
  if (options.user) config.user = options.user;
  if (options.password) config.password = options.password;
  if (options.ssl !== undefined)
    config.ssl = options.ssl === true ? true : options.ssl === false ? false : { ...options.ssl };
  // Unqualified table names (ours and a db-query's) resolve in the schema; tables are created there.
  if (options.schema)
    config.options = `-c search_path=${quoteIdentifier(validateIdentifier(options.schema, 'schema'))}`;
  return config;
}

/** pg prepares a named statement once per connection; the name must identify the text. */
function statementName(sql: string): string {
  return 'df_' + createHash('sha1').update(sql).digest('hex').slice(0, 24);
}

/** `user@host:port/database`, never the password. */
function describeTarget(o: PostgresOptions, connectionString: string | undefined): string {
  let host = o.host,
    port = o.port ? String(o.port) : undefined,
    db = o.database,
    user = o.user;
  if (connectionString) {
    try {
      const u = new URL(connectionString);
      host ??= decodeURIComponent(u.hostname) || undefined;
      port ??= u.port || undefined;
      db ??= decodeURIComponent(u.pathname.replace(/^\//, '')) || undefined;
      user ??= decodeURIComponent(u.username) || undefined;
    } catch {
      // not a URL (key=value form): leave it to the environment defaults below
    }
  }
  host ??= process.env.PGHOST || 'localhost';
  port ??= process.env.PGPORT || '5432';
  db ??= process.env.PGDATABASE || user || process.env.PGUSER || '';
  user ??= process.env.PGUSER || '';
  return `${user ? user + '@' : ''}${host}:${port}/${db}`;
}
