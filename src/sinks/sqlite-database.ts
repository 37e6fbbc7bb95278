/**
 * The SQLite sink database: one better-sqlite3 connection per file, opened on the first
 * transaction (so a missing directory is an error of that transaction, retried like any other),
 * WAL journal, synchronous=NORMAL (durable across process crashes; a power cut may lose the last
 * commits but never tears one). The connection runs in this thread, or on request in a worker
 * thread (see sqlite-worker-session.ts): this thread then only builds the statements. On two cores
 * the worker lost to the read-ahead worker and the garbage collector for the second core
 * (BENCHMARKS.md), hence not the default. A transaction waits (asynchronously, up to
 * `busyTimeoutMs`) while another connection holds the write lock. The WAL is checkpointed by a
 * worker thread, not inside a commit (see wal-checkpointer.ts). Asked to (`walLimitBytes`; off by
 * default, see the constructor), the worker also truncates it after a commit, before the next
 * (wal-bound.ts); `journal_size_limit` cuts back a WAL that started over by itself.
 */
import { READER_CACHE_PRAGMA } from '../sqlite/page-cache';
import { WalCheckpointer } from '../sqlite/wal-checkpointer';
import {
  journalSizeLimitPragma,
  truncationOutcome,
  WalBound,
  WAL_LIMIT_BYTES,
  type WalTruncation,
} from '../sqlite/wal-bound';
import { openInProcessSession, type SqliteSession, type SqliteSessionOptions } from '../sqlite/sqlite-session';
import { openWorkerSession, SqliteWorkerGone } from '../sqlite/sqlite-worker-session';
import Database from 'better-sqlite3';
import { SqlSinkDatabase, type ReadConnection, type SqlConnection } from './sql-database';
import { sqliteDialect, type Statement } from './sql-dialect';

export interface SqliteOptions {
  /** File path (`:memory:` for tests only: nothing survives). */
  readonly filename: string;
  /** How long a transaction waits for another connection's write lock, ms (default 5000). */
  readonly busyTimeoutMs?: number;
  /** Checkpoint the WAL in a worker thread instead of inside the commit that crosses 1,000 pages (default true). */
  readonly backgroundCheckpoints?: boolean;
  /** How often the worker checkpoints, ms (default 200; tests make it slow). */
  readonly checkpointIntervalMs?: number;
  /**
   * Past this size of the WAL file (bytes), it is truncated after a commit, before the next
   * (wal-bound.ts; default 0: never — see the constructor; WAL_LIMIT_BYTES, 32 MiB, is the embedded log's).
   */
  readonly walLimitBytes?: number;
  /**
   * Run the connection in a worker thread (default false, unless the environment sets
   * DELTAFLOW_SQLITE_WORKER=1): worth it with cores to spare. `:memory:` always runs in this
   * thread: a worker could not share it.
   */
  readonly worker?: boolean;
}

const RETRYABLE = new Set([
  'SQLITE_BUSY',
  'SQLITE_LOCKED',
  'SQLITE_CANTOPEN',
  'SQLITE_IOERR',
  'SQLITE_FULL',
  'SQLITE_PROTOCOL',
]);

export class SqliteDatabase extends SqlSinkDatabase {
  readonly kind = 'sqlite' as const;
  readonly label: string;
  protected readonly dialect = sqliteDialect;
  private session: SqliteSession | null = null;
  private checkpointer: WalCheckpointer | null = null;
  /** The checkpoint worker failed: commits checkpoint again as SQLite does by default. */
  private inlineCheckpoints: boolean;
  private readonly inWorker: boolean;
  private readonly walLimitBytes: number;
  /** When the WAL wants truncating (wal-bound.ts); null: no bound (`:memory:`, or 0 asked for). */
  private readonly walBound: WalBound | null;

  constructor(private readonly options: SqliteOptions) {
    super();
    this.label = `SQLite ${options.filename}`;
    const memory = options.filename === ':memory:' || options.filename === '';
    this.inlineCheckpoints = options.backgroundCheckpoints === false || memory;
    this.inWorker = !memory && (options.worker ?? process.env.DELTAFLOW_SQLITE_WORKER === '1');
    // NB: off unless asked for (walLimitBytes): live, at 1,000 events/s the WAL grows ≈ 78 MB/s and a
    // truncation every 32 MiB held each next commit ≈ 45 ms — live p99 after 10M events 51–72 ms against
    // 17–56 ms without (BENCHMARKS.md, "the WAL bound and live latency"). The embedded log keeps it.
    this.walLimitBytes = memory ? 0 : Math.max(0, options.walLimitBytes ?? 0);
    this.walBound = this.walLimitBytes > 0 ? new WalBound(options.filename, this.walLimitBytes) : null;
  }

  private async open(): Promise<SqliteSession> {
    if (this.session?.usable) return this.session;
    this.drop(); // its worker died: start over
    const options: SqliteSessionOptions = { backgroundCheckpoints: !this.inlineCheckpoints };
    const session = this.inWorker
      ? await openWorkerSession(this.options.filename, options)
      : openInProcessSession(this.options.filename, options);
    this.session = session;
    // A WAL that started over by itself (the commits paused) is cut back to the limit at the next
    // commit, with or without the bound.
    try {
      await session.exec(`PRAGMA ${journalSizeLimitPragma(this.walLimitBytes || WAL_LIMIT_BYTES)}`);
    } catch (err) {
      this.drop();
      throw err;
    }
    if (!this.inlineCheckpoints && this.checkpointer === null) {
      this.checkpointer = new WalCheckpointer(this.options.filename, {
        intervalMs: this.options.checkpointIntervalMs,
        onError: () => {
          this.inlineCheckpoints = true;
          this.session?.exec('PRAGMA wal_autocheckpoint = 1000').catch(() => undefined);
        },
      });
    }
    return session;
  }

  protected async connect(): Promise<SqlConnection> {
    const session = await this.step(null, () => this.open());
    return {
      begin: () => this.begin(session),
      commit: async () => {
        await session.exec('COMMIT');
        if (this.walBound?.due()) this.walBound.settle(await this.truncateWal(session));
      },
      rollback: () => session.rollback(),
      release: (broken) => {
        if (broken) this.drop();
      },
      run: (s: Statement) => session.run(s.sql, s.params),
      runLater: (s: Statement, table: string) => session.runLater(s.sql, s.params, table),
      all: (s: Statement) => session.all(s.sql, s.params),
    };
  }

  /**
   * Durable state is read on a read-only connection of its own to the same file (WAL: it sees the
   * last committed transaction, never one in progress), in this thread: a read takes microseconds.
   */
  protected override readConnection(): (() => Promise<ReadConnection>) | string {
    const file = this.options.filename;
    if (file === ':memory:' || file === '') return 'an in-memory SQLite database cannot be read by a second connection';
    let db: Database.Database | null = null;
    const statements = new Map<string, Database.Statement>();
    const conn: ReadConnection = {
      all: (s) => {
        if (db === null) {
          db = new Database(file, { readonly: true, fileMustExist: true });
          // Lookups of one row each in a table larger than any cache: page-cache.ts.
          db.pragma(READER_CACHE_PRAGMA);
        }
        let st = statements.get(s.sql);
        if (st === undefined) {
          if (statements.size >= 200) statements.clear();
          st = db.prepare(s.sql);
          statements.set(s.sql, st);
        }
        return Promise.resolve(st.all(...s.params) as Record<string, unknown>[]);
      },
      close: () => {
        statements.clear();
        db?.close();
        db = null;
        return Promise.resolve();
      },
    };
    return () => Promise.resolve(conn);
  }

  /**
   * Truncates the WAL after a commit, before the next transaction (wal-bound.ts): in the checkpoint
   * worker, so that this thread computes meanwhile (the commit pipeline waits, the dataflow does
   * not), or on the session's connection when there is no worker. Never throws: the commit stands.
   */
  private async truncateWal(session: SqliteSession): Promise<WalTruncation> {
    if (this.checkpointer !== null && !this.inlineCheckpoints) return this.checkpointer.truncate();
    try {
      // NB: the session's connection has busy_timeout 0: a busy checkpoint returns at once.
      const [row] = await session.all('PRAGMA wal_checkpoint(TRUNCATE)', []);
      return truncationOutcome(row as { busy?: unknown; log?: unknown });
    } catch {
      return 'failed';
    }
  }

  /** BEGIN IMMEDIATE (takes the write lock up front), waiting asynchronously while another connection holds it. */
  private async begin(session: SqliteSession): Promise<void> {
    const giveUp = Date.now() + Math.max(0, this.options.busyTimeoutMs ?? 5000);
    for (let wait = 2; ; wait = Math.min(wait * 2, 100)) {
      try {
        await session.exec('BEGIN IMMEDIATE');
        return;
      } catch (err) {
        const code = (err as { code?: unknown }).code;
        if (code !== 'SQLITE_BUSY' || Date.now() >= giveUp) throw err;
        await new Promise((r) => setTimeout(r, wait));
      }
    }
  }

  /** Forgets the connection; closing it (in its worker) runs on after the requests already sent. */
  private drop(): Promise<void> {
    const session = this.session;
    this.session = null;
    return session ? session.close() : Promise.resolve();
  }

  protected async shutdown(): Promise<void> {
    await this.drop();
    await this.checkpointer?.stop();
    this.checkpointer = null;
  }

  protected isRetryable(err: unknown): boolean {
    if (err instanceof SqliteWorkerGone) return true;
    const code = (err as { code?: unknown } | null)?.code;
    if (typeof code === 'string') return [...RETRYABLE].some((c) => code.startsWith(c));
    // better-sqlite3 reports a missing directory as a TypeError without code; it may appear (a mount).
    return err instanceof Error && /directory does not exist|unable to open/i.test(err.message);
  }
}
