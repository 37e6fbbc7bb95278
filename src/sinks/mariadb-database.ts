/**
 * The MariaDB / MySQL sink database, through mysql2 (why not the `mariadb` connector: see
 * mariadb-connection.ts). One connection per db-config, opened by the first transaction and
 * replaced when it is lost (transactions are serialised, so one is all a sink uses); InnoDB tables
 * in utf8mb4 with a binary collation, READ COMMITTED, every value a parameter of a server-side
 * prepared statement, identifiers in backticks; a transaction's writes are queued (Pipeline) so that
 * the sink builds the next statement while the server runs the last. Lost connections, deadlocks (1213) and lock wait
 * timeouts (1205) fail the transaction with a retryable error; the dataflow retries with backoff.
 */
import { SinkDatabaseError } from './errors';
import {
  describeMariadbTarget,
  driverConfig,
  isRetryableMariadbError,
  MariadbConnection,
  mariadbTarget,
  type MariadbOptions,
  type MariadbTarget,
} from './mariadb-connection';
import { mariadbProblem, type MariadbProblem } from './mariadb-problems';
import { SqlSinkDatabase, type ReadConnection, type SqlConnection } from './sql-database';
import { mariadbDialect, type Dialect, type Statement } from './sql-dialect';

export class MariadbDatabase extends SqlSinkDatabase {
  readonly kind = 'mariadb' as const;
  readonly label: string;
  private readonly target: MariadbTarget | null;
  private readonly problem: string | null;
  private connection: MariadbConnection | null = null;
  private idleTimer: NodeJS.Timeout | null = null;
  /** Durable state's reads: a second connection, opened on first use (see readConnection). */
  private reader: Promise<MariadbConnection> | null = null;
  private readerIdleTimer: NodeJS.Timeout | null = null;
  private readsInFlight = 0;
  private serverDialect: Dialect = dialectFor(true, '', 16 << 20);

  constructor(private readonly options: MariadbOptions = {}) {
    super();
    let target: MariadbTarget | null = null;
    let problem: string | null = null;
    try {
      target = mariadbTarget(options);
      if (!target.database) problem = 'no database named: set the Database field, the URL path or MYSQL_DATABASE';
    } catch (e) {
      problem = e instanceof Error ? e.message : String(e);
    }
    this.target = target;
    this.problem = problem;
    this.label = `MariaDB ${target ? describeMariadbTarget(target) : '(invalid settings)'}`;
  }

  protected get dialect(): Dialect {
    return this.serverDialect;
  }

  protected async connect(): Promise<SqlConnection> {
    if (this.problem !== null || this.target === null)
      throw new SinkDatabaseError(this.label, null, this.problem ?? 'invalid settings', false);
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = null;
    let c = this.connection;
    if (c === null || c.lost !== null) {
      this.connection = null;
      c = await this.step(null, () =>
        MariadbConnection.open(
          driverConfig(this.target as MariadbTarget, this.options, 'deltaflow'),
          this.options,
          true,
        ),
      );
      this.connection = c;
      this.serverDialect = dialectFor(c.server.mariadb, c.server.version, c.server.maxAllowedPacket);
    }
    const conn = c;
    // NB: DDL committed the transaction (MariaDB / MySQL commit before and after it); the
    // statements after it form the next one (autocommit is off: the next statement starts it).
    // The shared layer runs no DDL after rows were written in a transaction
    // (SqlSinkTransaction.ddl checks it).
    const run = (s: Statement): Promise<unknown> => conn.query(s.sql, s.params);
    const writes = new Pipeline(run);
    return {
      // NB: the session runs with autocommit off (MariadbConnection.open, transactional): the
      // transaction's first statement (the lease fence, or the first read) starts it, and it lasts
      // until the COMMIT or ROLLBACK below; a connection lost in between is rolled back by the
      // server. No START TRANSACTION round trip (issue 17: ~27 ms at load 8). Checked in
      // test/sinks/mariadb-database.test.ts ("autocommit off").
      begin: async () => undefined,
      // NB: COMMIT only once every queued write has succeeded (Pipeline.barrier throws the first failure).
      commit: async () => {
        await writes.barrier();
        await conn.query('COMMIT');
      },
      rollback: async () => {
        await writes.settled();
        await conn.query('ROLLBACK');
      },
      release: (broken) => {
        if (broken && this.connection === conn) {
          this.connection = null;
          conn.destroy();
        } else if (this.connection === conn) this.closeWhenIdle(conn);
      },
      run: async (s) => {
        await writes.barrier();
        return Number(((await run(s)) as { affectedRows?: unknown }).affectedRows ?? 0);
      },
      all: async (s) => {
        await writes.barrier();
        return (await run(s)) as Record<string, unknown>[];
      },
      runLater: (s, table) => writes.add(s, table),
    };
  }

  /**
   * Closes the connection after `idleCloseMs` without a transaction, as PostgreSQL's pool does: a
   * dataflow without events holds no server connection, and the server's wait_timeout never ends
   * one of ours (which would be reported as an idle connection lost).
   */
  private closeWhenIdle(conn: MariadbConnection): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => {
      this.idleTimer = null;
      if (this.connection !== conn) return;
      this.connection = null;
      void conn.close();
    }, this.options.idleCloseMs ?? 30_000);
    this.idleTimer.unref();
  }

  /**
   * Durable state is read on a second connection of its own (docs/durable-state.md, "Reading state
   * outside the commit transaction"), opened on first use, replaced when lost, closed after
   * `idleCloseMs` without a read. NB: it runs in autocommit with READ COMMITTED (MariadbConnection.open),
   * so each read is a consistent non-locking read of the last committed state: it neither waits for
   * nor blocks the commit transaction on the other connection, and never sees its uncommitted rows.
   */
  protected override readConnection(): () => Promise<ReadConnection> {
    const conn: ReadConnection = {
      all: async (s) => {
        this.readsInFlight++;
        let c: MariadbConnection | null = null;
        try {
          c = await this.readerConnection();
          return (await c.query(s.sql, s.params)) as Record<string, unknown>[];
        } finally {
          if (--this.readsInFlight === 0 && c !== null) this.closeReaderWhenIdle(c);
        }
      },
      close: () => this.closeReader(),
    };
    return () => Promise.resolve(conn);
  }

  private async readerConnection(): Promise<MariadbConnection> {
    if (this.problem !== null || this.target === null)
      throw new SinkDatabaseError(this.label, null, this.problem ?? 'invalid settings', false);
    if (this.readerIdleTimer) clearTimeout(this.readerIdleTimer);
    this.readerIdleTimer = null;
    const current = this.reader;
    if (current !== null) {
      const c = await current.catch(() => null);
      if (c !== null && c.lost === null) return c;
      if (this.reader === current) this.reader = null;
    }
    const target = this.target;
    const opening = (this.reader ??= MariadbConnection.open(
      driverConfig(target, this.options, 'deltaflow-state'),
      this.options,
    ));
    return opening;
  }

  private closeReaderWhenIdle(c: MariadbConnection): void {
    if (this.readerIdleTimer) clearTimeout(this.readerIdleTimer);
    this.readerIdleTimer = setTimeout(() => {
      this.readerIdleTimer = null;
      void this.reader?.then((r) => {
        if (r !== c) return;
        this.reader = null;
        void c.close();
      });
    }, this.options.idleCloseMs ?? 30_000);
    this.readerIdleTimer.unref();
  }

  private async closeReader(): Promise<void> {
    if (this.readerIdleTimer) clearTimeout(this.readerIdleTimer);
    this.readerIdleTimer = null;
    const r = this.reader;
    this.reader = null;
    const c = await r?.catch(() => null);
    await c?.close();
  }

  protected async shutdown(): Promise<void> {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = null;
    const c = this.connection;
    this.connection = null;
    await Promise.all([c?.close(), this.closeReader()]);
  }

  protected override explain(err: unknown): MariadbProblem | null {
    return mariadbProblem(err, this.options);
  }

  protected isRetryable(err: unknown): boolean {
    return isRetryableMariadbError(err);
  }
}

/**
 * A transaction's writes whose results are not needed (SqlExecutor.runLater): sent one after the
 * other as soon as the previous one is answered, while the sink builds the next ones — the sink's
 * work on a commit overlaps the server's instead of alternating with it. The first failure stops
 * the queue (nothing after it is sent) and is thrown, tagged with its table, by `barrier`, which
 * every statement whose result is awaited (reads, COMMIT) passes first: a transaction whose write
 * failed is never committed, and reads see every write queued before them. At most `MAX_QUEUED`
 * statements wait at a time (bounded memory; each one's statement timeout starts when it is sent).
 */
class Pipeline {
  private static readonly MAX_QUEUED = 16;
  private tail: Promise<void> = Promise.resolve();
  private queued = 0;
  private failure: Error | null = null;

  constructor(private readonly run: (s: Statement) => Promise<unknown>) {}

  /** Queues `s`; resolves at once, or once the queue has room again. */
  async add(s: Statement, table: string): Promise<void> {
    if (this.failure) throw this.failure;
    if (this.queued >= Pipeline.MAX_QUEUED) await this.barrier();
    this.queued++;
    this.tail = this.tail.then(async () => {
      this.queued--;
      if (this.failure) return;
      try {
        await this.run(s);
      } catch (e) {
        const err = e instanceof Error ? e : new Error(String(e));
        this.failure = Object.assign(err, { tag: table });
      }
    });
  }

  /** Waits for every queued statement; throws the first failure (and again at every later call). */
  async barrier(): Promise<void> {
    await this.tail;
    if (this.failure) throw this.failure;
  }

  /** Waits for every queued statement, failed or not (before a ROLLBACK). */
  async settled(): Promise<void> {
    await this.tail;
  }
}

/**
 * The dialect for a server: MariaDB's binary collation without trailing-space padding is
 * `utf8mb4_nopad_bin`, MySQL 8's `utf8mb4_0900_bin`; MySQL 5.7 has only `utf8mb4_bin` (which
 * ignores trailing spaces in comparisons). Statements stay below half of `max_allowed_packet`.
 */
function dialectFor(mariadb: boolean, version: string, maxAllowedPacket: number): Dialect {
  const major = Number(/^(\d+)/.exec(version)?.[1] ?? 0);
  const collation = mariadb ? 'utf8mb4_nopad_bin' : major >= 8 ? 'utf8mb4_0900_bin' : 'utf8mb4_bin';
  return mariadbDialect(collation, Math.max(64 << 10, Math.floor(maxAllowedPacket / 2)));
}
