/**
 * Connections to MariaDB / MySQL through the `mysql2` driver, for the sink and for db-query: the
 * connection settings (fields, a `mysql://` URL, the MYSQL_* environment), one connection with an
 * `error` listener from the moment it is made, a time limit for every statement, and which driver
 * errors are worth a retry.
 *
 * Why mysql2 and not MariaDB's own `mariadb` connector (both tried against MariaDB 10.11, 2026-12):
 * mysql2 is MIT-licensed (mariadb: LGPL-2.1-or-later, which many plants' legal reviews flag in an
 * Apache-2.0 package), is written for MySQL 5.7/8 (caching_sha2_password) as much as for MariaDB,
 * is released often (3.26, 2026-12) and installs in 5.5 MB (mariadb 9.3 MB, lru-cache alone 4 MB).
 * Both refuse `SELECT 1; DROP TABLE t` by default (multipleStatements off), bind BigInts exactly
 * and ran 100,000 rows of 500-row prepared INSERTs in about the same time (mysql2 304–377 ms,
 * mariadb 267–289 ms; mariadb's bulk `batch()` took 1.9–2.2 s). The mariadb connector returns
 * BIGINT as BigInt (mysql2: a number, or a string beyond 2^53 with supportBigNumbers); the sink
 * reads back only offsets, watermarks and keyed rows, where either serves. Neither pool is used:
 * an unexpected close without a listener crashed the process with mariadb, and mysql2's pooled
 * connections listen for `error` only once; the sink keeps one connection of its own.
 */
import { userInfo } from 'node:os';
import type { Socket } from 'node:net';
import mysql from 'mysql2';

export interface MariadbOptions {
  /** `mysql://user:password@host:port/database?ssl-mode=REQUIRED` (or `mariadb://`); fields below override its parts. */
  readonly url?: string;
  /** Host name or address; a path starting with `/` is a Unix socket. */
  readonly host?: string;
  readonly port?: number;
  readonly database?: string;
  readonly user?: string;
  readonly password?: string;
  /** TLS: true verifies the server certificate; `{rejectUnauthorized: false}` accepts any; false: none. */
  readonly ssl?: boolean | { readonly rejectUnauthorized: boolean };
  /** How long connecting may take before it fails, ms (default 10000). */
  readonly connectionTimeoutMs?: number;
  /**
   * How long one statement may take, ms (default 60000): MariaDB's `max_statement_time` cancels a
   * longer one and its `idle_transaction_timeout` ends a transaction left idle that long; when no
   * answer comes at all 2 s after it (a stopped server, a network gone), the connection is given up.
   */
  readonly statementTimeoutMs?: number;
  /** How long a statement waits for a row lock held by another session before failing (retryable), ms (default 30000; whole seconds). */
  readonly lockTimeoutMs?: number;
  /** How long the sink's connection stays open without a transaction, ms (default 30000). */
  readonly idleCloseMs?: number;
  /** Called when an idle connection is lost (server restart, network loss, wait_timeout); it is replaced when needed. */
  readonly onIdleError?: (err: Error) => void;
}

/** Where to connect and as whom, from the options, the URL and the environment (MYSQL_*, MARIADB_URL, MYSQL_URL). */
export interface MariadbTarget {
  readonly host: string;
  readonly port: number;
  readonly socketPath?: string;
  readonly user: string;
  readonly password?: string;
  readonly database?: string;
  readonly ssl?: boolean | { readonly rejectUnauthorized: boolean };
}

function env(name: string): string | undefined {
  const v = process.env[name];
  return v === undefined || v === '' ? undefined : v;
}

/** The TLS setting of a URL's `ssl-mode` (MySQL's names) or `ssl` parameter; undefined when it has none. */
function urlSsl(u: URL): MariadbTarget['ssl'] {
  const mode = (u.searchParams.get('ssl-mode') ?? u.searchParams.get('sslmode') ?? u.searchParams.get('ssl_mode'))
    ?.trim()
    .toUpperCase();
  if (mode === 'DISABLED' || mode === 'PREFERRED') return false;
  if (mode === 'REQUIRED') return { rejectUnauthorized: false };
  if (mode === 'VERIFY_CA' || mode === 'VERIFY_IDENTITY') return true;
  const ssl = u.searchParams.get('ssl')?.trim().toLowerCase();
  if (ssl === 'true' || ssl === '1') return true;
  if (ssl === 'false' || ssl === '0') return false;
  return undefined;
}

/**
 * The connection target: a field wins over the URL's part, the URL over the environment
 * (MYSQL_HOST, MYSQL_PORT or MYSQL_TCP_PORT, MYSQL_DATABASE, MYSQL_USER, MYSQL_PASSWORD or
 * MYSQL_PWD); the URL itself comes from the options, or, when neither it nor a host is set, from
 * MARIADB_URL or MYSQL_URL. Defaults: localhost:3306, the operating-system user. Throws on a
 * malformed URL.
 */
export function mariadbTarget(o: MariadbOptions): MariadbTarget {
  const raw = o.url || (!o.host && (env('MARIADB_URL') ?? env('MYSQL_URL'))) || undefined;
  let u: URL | undefined;
  if (raw) {
    try {
      u = new URL(raw);
    } catch {
      throw new Error('the MariaDB URL is not a URL (expected mysql://user:password@host:3306/database)');
    }
    if (!/^(mysql|mariadb):$/.test(u.protocol))
      throw new Error(`the MariaDB URL must start with mysql:// or mariadb://, not ${u.protocol}//`);
  }
  const part = (s: string | undefined): string | undefined => (s ? decodeURIComponent(s) : undefined);
  const host = o.host || part(u?.hostname) || env('MYSQL_HOST') || 'localhost';
  const portText = o.port ? String(o.port) : u?.port || env('MYSQL_PORT') || env('MYSQL_TCP_PORT') || '3306';
  const port = Number(portText);
  if (!Number.isInteger(port) || port < 1 || port > 65535)
    throw new Error(`invalid MariaDB port ${JSON.stringify(portText)}`);
  const database = o.database || part(u?.pathname.replace(/^\//, '')) || env('MYSQL_DATABASE');
  const user = o.user || part(u?.username) || env('MYSQL_USER') || safeUserName();
  const password = o.password || part(u?.password) || env('MYSQL_PASSWORD') || env('MYSQL_PWD');
  const ssl = o.ssl ?? (u ? urlSsl(u) : undefined);
  return {
    host,
    port,
    ...(host.startsWith('/') ? { socketPath: host } : {}),
    user,
    ...(password !== undefined ? { password } : {}),
    ...(database ? { database } : {}),
    ...(ssl !== undefined ? { ssl } : {}),
  };
}

function safeUserName(): string {
  try {
    return userInfo().username;
  } catch {
    return 'root';
  }
}

/** `user@host:port/database`, never the password. */
export function describeMariadbTarget(t: MariadbTarget): string {
  const where = t.socketPath ?? `${t.host}:${t.port}`;
  return `${t.user}@${where}/${t.database ?? ''}`;
}

/** The driver's settings for a target: one statement per query, exact big numbers, UTC dates. */
export function driverConfig(t: MariadbTarget, o: MariadbOptions, programName: string): mysql.ConnectionOptions {
  const config: mysql.ConnectionOptions = {
    user: t.user,
    password: t.password,
    database: t.database,
    connectTimeout: Math.max(1, Math.floor(o.connectionTimeoutMs ?? 10_000)),
    // NB: one statement per query; `SELECT 1; DROP TABLE t` is a syntax error (tested in db-query's tests).
    multipleStatements: false,
    // BIGINT and DECIMAL beyond 2^53 as exact strings, numbers otherwise.
    supportBigNumbers: true,
    bigNumberStrings: false,
    // DATETIME values are UTC (the sessions run with time_zone +00:00).
    timezone: 'Z',
    enableKeepAlive: true,
    // The server counts prepared statements against max_prepared_stmt_count (16,382 for all sessions).
    maxPreparedStatements: 256,
    connectAttributes: { program_name: programName },
  };
  if (t.socketPath) config.socketPath = t.socketPath;
  else {
    config.host = t.host;
    config.port = t.port;
  }
  if (t.ssl === true) config.ssl = { rejectUnauthorized: true };
  else if (t.ssl) config.ssl = { rejectUnauthorized: t.ssl.rejectUnauthorized };
  return config;
}

/** What the server said about itself at connect. */
export interface ServerInfo {
  readonly version: string;
  readonly mariadb: boolean;
  readonly maxAllowedPacket: number;
}

type Abort = (err: Error) => void;

/** How long after the statement timeout a statement without any answer gives its connection up. */
const NO_ANSWER_GRACE_MS = 2000;

/**
 * One mysql2 connection, promise-based. Every statement is answered or fails within the statement
 * timeout (the connection is then given up: its protocol state is unknown); once lost, the
 * connection fails every call at once (`lost`), and its owner replaces it.
 */
export class MariadbConnection {
  /** Why the connection is unusable; null while it works. */
  lost: Error | null = null;
  /** Whether `open` has finished: until then a failure is the attempt's own error, not an idle connection lost. */
  private opened = false;
  private readonly pending = new Set<Abort>();
  server: ServerInfo = { version: '', mariadb: true, maxAllowedPacket: 16 << 20 };

  private constructor(
    private readonly raw: mysql.Connection,
    private readonly statementTimeoutMs: number,
    private readonly onIdleError: ((err: Error) => void) | undefined,
  ) {}

  /**
   * Connects and prepares the session (UTC, READ COMMITTED, strict SQL mode, lock wait timeout);
   * rejects with the driver's error. `transactional`: the session runs with autocommit off, so its
   * first statement starts a transaction and every one after it stays in that transaction until
   * COMMIT or ROLLBACK (the sink's writer: no START TRANSACTION round trip per commit); otherwise
   * each statement commits by itself (db-query, durable state's reader).
   */
  static async open(
    config: mysql.ConnectionOptions,
    options: MariadbOptions,
    transactional = false,
  ): Promise<MariadbConnection> {
    const raw = mysql.createConnection(config);
    const statementMs = Math.max(1000, Math.floor(options.statementTimeoutMs ?? 60_000));
    const c = new MariadbConnection(raw, statementMs + NO_ANSWER_GRACE_MS, options.onIdleError);
    // NB: the listeners are attached where the connection is made, before it can fail: an `error`
    // event without a listener would be an uncaught exception and end the Node-RED process (issue 19).
    raw.on('error', (err: Error) => c.fail(err));
    raw.on('end', () => c.fail(connectionClosed('the server closed the connection')));
    await new Promise<void>((resolve, reject) => {
      raw.connect((err: unknown) => {
        if (err) {
          c.destroy();
          reject(connectError(err, config));
        } else resolve();
      });
    });
    try {
      const [info] = (await c.query('SELECT VERSION() AS `version`, @@max_allowed_packet AS `maxAllowedPacket`')) as {
        version: string;
        maxAllowedPacket: number | string;
      }[];
      c.server = {
        version: String(info?.version ?? ''),
        mariadb: /mariadb/i.test(String(info?.version ?? '')),
        maxAllowedPacket: Number(info?.maxAllowedPacket ?? 16 << 20),
      };
      await c.query(
        "SET SESSION time_zone = '+00:00', SESSION innodb_lock_wait_timeout = CAST(? AS UNSIGNED), SESSION sql_mode = CONCAT_WS(',', NULLIF(@@SESSION.sql_mode, ''), 'STRICT_TRANS_TABLES', 'NO_ENGINE_SUBSTITUTION')",
        [Math.max(1, Math.round((options.lockTimeoutMs ?? 30_000) / 1000))],
      );
      // MariaDB cancels a statement that runs longer, and ends a transaction left idle that long
      // (its client gone without the server noticing): its locks do not outlive it. (MySQL has
      // neither variable; there the client's own timeout applies.)
      if (c.server.mariadb)
        await c.query(
          'SET SESSION max_statement_time = CAST(? AS DECIMAL(12, 3)), SESSION idle_transaction_timeout = CAST(? AS UNSIGNED)',
          [statementMs / 1000, Math.ceil(statementMs / 1000)],
        );
      // Each transaction reads only the state of tables it alone writes: no gap locks needed.
      await c.query('SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED');
      // Last: until here no statement may open a transaction (SET TRANSACTION must not run in one).
      if (transactional) await c.query('SET SESSION autocommit = 0');
    } catch (e) {
      c.destroy();
      throw e;
    }
    c.opened = true;
    return c;
  }

  /**
   * Runs one statement: with parameters as a server-side prepared statement (values never enter the
   * SQL text), without as plain text. Resolves to the rows (SELECT) or the result header.
   */
  query(sql: string, params: readonly unknown[] = []): Promise<unknown> {
    if (this.lost) return Promise.reject(connectionClosed(`the connection is closed: ${this.lost.message}`));
    return new Promise((resolve, reject) => {
      let done = false;
      const settle = (err: Error | null, result?: unknown): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        this.pending.delete(abort);
        if (err) reject(err);
        else resolve(result);
      };
      const abort: Abort = (err) => settle(err);
      this.pending.add(abort);
      const timer = setTimeout(() => {
        const err = connectionClosed(
          `no answer from the server within ${Math.round(this.statementTimeoutMs / 1000)} s; the connection is given up`,
          'PROTOCOL_SEQUENCE_TIMEOUT',
        );
        this.destroy(err);
      }, this.statementTimeoutMs);
      const callback = (err: Error | null, result?: unknown): void => settle(err, result);
      try {
        if (params.length) this.raw.execute(sql, params as mysql.ExecuteValues, callback);
        else this.raw.query(sql, callback);
      } catch (e) {
        // mysql2 checks parameters synchronously (undefined, unsupported types).
        settle(e instanceof Error ? e : new Error(String(e)));
      }
    });
  }

  /** Ends the connection politely (COM_QUIT), or at once when that takes longer than a second. */
  async close(): Promise<void> {
    if (this.lost) return this.destroy();
    this.lost = connectionClosed('the connection was closed');
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.destroy();
        resolve();
      }, 1000);
      this.raw.end(() => {
        clearTimeout(timer);
        resolve();
      });
    });
    this.destroy();
  }

  /** Drops the connection now; pending statements fail with `err`. */
  destroy(err: Error = connectionClosed('the connection was closed')): void {
    this.fail(err, true);
    try {
      this.raw.destroy();
      (this.raw as unknown as { stream?: Socket }).stream?.destroy();
    } catch {
      // already gone
    }
  }

  private fail(err: Error, deliberate = false): void {
    const first = this.lost === null;
    this.lost ??= err;
    const idle = this.pending.size === 0;
    for (const abort of [...this.pending]) abort(err);
    this.pending.clear();
    // NB: mysql2 emits a failed connect as an `error` event too, before the connect callback.
    if (first && idle && !deliberate && this.opened) this.onIdleError?.(err);
  }
}

/**
 * The driver's `connect ETIMEDOUT` says nothing about where: a server that accepted the connection
 * but never greeted (stopped, overloaded) or a network that drops packets. The message names it;
 * the code stays (retryable, and the status hint names the address).
 */
function connectError(err: unknown, config: mysql.ConnectionOptions): unknown {
  const e = err as { code?: unknown } | null;
  if (!(err instanceof Error) || e?.code !== 'ETIMEDOUT') return err;
  const where = config.socketPath ?? `${config.host}:${config.port}`;
  const ms = Number(config.connectTimeout ?? 10_000);
  const within = ms >= 1000 ? `${Math.round(ms / 1000)} s` : `${ms} ms`;
  return Object.assign(
    new Error(`no answer from the server at ${where} within ${within} while connecting (connect timeout)`),
    {
      code: 'ETIMEDOUT',
      cause: err,
    },
  );
}

/** A connection-level error (no server error number): retryable. */
function connectionClosed(message: string, code = 'PROTOCOL_CONNECTION_LOST'): Error {
  return Object.assign(new Error(message), { code, fatal: true });
}

/**
 * Server errors worth a retry: deadlock (1213), lock wait timeout (1205), too many connections
 * (1040, 1203, 1226), shutdown (1053), killed connection (1927), interrupted query (1317), network
 * errors (1158–1161), out of memory or resources (1037, 1041), disk or table full (1021, 1114,
 * 1206), error during commit or rollback (1180, 1181), read-only server (1290, 1792: a failover
 * in progress), inactivity disconnect (4031), max_statement_time exceeded (1969).
 */
const RETRYABLE_ERRNOS = new Set([
  1213, 1205, 1040, 1203, 1226, 1053, 1927, 1317, 1158, 1159, 1160, 1161, 1037, 1041, 1021, 1114, 1206, 1180, 1181,
  1290, 1792, 4031, 1969,
]);
const RETRYABLE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  'EPIPE',
  'ENOTFOUND',
  'PROTOCOL_CONNECTION_LOST',
  'PROTOCOL_SEQUENCE_TIMEOUT',
]);

/** Whether a mysql2 error is worth a retry: connection loss, deadlock, lock wait timeout, server overload. */
export function isRetryableMariadbError(err: unknown): boolean {
  const e = err as { code?: unknown; errno?: unknown; fatal?: unknown; errors?: unknown } | null;
  if (!e || typeof e !== 'object') return false;
  if (typeof e.errno === 'number' && RETRYABLE_ERRNOS.has(e.errno)) return true;
  if (typeof e.code === 'string' && RETRYABLE_CODES.has(e.code)) return true;
  if (Array.isArray(e.errors)) return e.errors.some(isRetryableMariadbError);
  // The driver's own connection errors ("Can't add new command when connection is in closed state")
  // carry no server error number and no code; a TLS failure (a certificate refused) has a code and
  // needs the configuration changed.
  return e.fatal === true && typeof e.errno !== 'number' && e.code === undefined;
}
