/**
 * The SQLite sink database: one better-sqlite3 connection per file, opened on the first
 * transaction (so a missing directory is an error of that transaction, retried like any other),
 * WAL journal, synchronous=NORMAL (durable across process crashes; a power cut may lose the last
 * commits but never tears one). A transaction waits (asynchronously, up to `busyTimeoutMs`) while
 * another connection holds the write lock. The WAL is checkpointed by a worker thread, not inside
 * a commit (see wal-checkpointer.ts).
 */
import Database from 'better-sqlite3';
import { WalCheckpointer } from '../sqlite/wal-checkpointer';
import { SqlSinkDatabase, type SqlConnection } from './sql-database';
import { sqliteDialect, type Statement } from './sql-dialect';

export interface SqliteOptions {
  /** File path (`:memory:` for tests only: nothing survives). */
  readonly filename: string;
  /** How long a transaction waits for another connection's write lock, ms (default 5000). */
  readonly busyTimeoutMs?: number;
  /** Checkpoint the WAL in a worker thread instead of inside the commit that crosses 1,000 pages (default true). */
  readonly backgroundCheckpoints?: boolean;
}

/** Statements kept prepared per connection; beyond this the cache starts over (rare: few statement shapes). */
const STATEMENT_CACHE_LIMIT = 500;

const RETRYABLE = new Set(['SQLITE_BUSY', 'SQLITE_LOCKED', 'SQLITE_CANTOPEN', 'SQLITE_IOERR', 'SQLITE_FULL', 'SQLITE_PROTOCOL']);

export class SqliteDatabase extends SqlSinkDatabase {
  readonly kind = 'sqlite' as const;
  readonly label: string;
  protected readonly dialect = sqliteDialect;
  private db: Database.Database | null = null;
  private readonly statements = new Map<string, Database.Statement>();
  private checkpointer: WalCheckpointer | null = null;
  /** The checkpoint worker failed: commits checkpoint again as SQLite does by default. */
  private inlineCheckpoints: boolean;

  constructor(private readonly options: SqliteOptions) {
    super();
    this.label = `SQLite ${options.filename}`;
    this.inlineCheckpoints = options.backgroundCheckpoints === false || options.filename === ':memory:' || options.filename === '';
  }

  private open(): Database.Database {
    if (this.db) return this.db;
    const db = new Database(this.options.filename);
    try {
      // No busy timeout inside SQLite: it would block the event loop, and with it a writer of this
      // very process that holds the lock. Taking the write lock is retried asynchronously (begin).
      db.pragma('busy_timeout = 0');
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = NORMAL');
      if (!this.inlineCheckpoints) db.pragma('wal_autocheckpoint = 0');
    } catch (err) {
      db.close();
      throw err;
    }
    this.db = db;
    if (!this.inlineCheckpoints && this.checkpointer === null) {
      this.checkpointer = new WalCheckpointer(this.options.filename, {
        onError: () => {
          this.inlineCheckpoints = true;
          this.db?.pragma('wal_autocheckpoint = 1000');
        },
      });
    }
    return db;
  }

  private prepare(db: Database.Database, sql: string): Database.Statement {
    let st = this.statements.get(sql);
    if (!st) {
      if (this.statements.size >= STATEMENT_CACHE_LIMIT) this.statements.clear();
      st = db.prepare(sql);
      this.statements.set(sql, st);
    }
    return st;
  }

  protected async connect(): Promise<SqlConnection> {
    const db = await this.step(null, async () => this.open());
    const exec = (sql: string): void => {
      db.exec(sql);
    };
    return {
      begin: () => this.begin(db),
      commit: async () => exec('COMMIT'),
      rollback: async () => {
        if (db.inTransaction) exec('ROLLBACK');
      },
      release: (broken) => {
        if (broken) this.drop();
      },
      run: async (s: Statement) => {
        const st = this.prepare(db, s.sql);
        return st.reader ? st.all(...s.params).length : st.run(...s.params).changes;
      },
      all: async (s: Statement) => this.prepare(db, s.sql).all(...s.params) as Record<string, unknown>[],
    };
  }

  /** BEGIN IMMEDIATE (takes the write lock up front), waiting asynchronously while another connection holds it. */
  private async begin(db: Database.Database): Promise<void> {
    const giveUp = Date.now() + Math.max(0, this.options.busyTimeoutMs ?? 5000);
    for (let wait = 2; ; wait = Math.min(wait * 2, 100)) {
      try {
        db.exec('BEGIN IMMEDIATE');
        return;
      } catch (err) {
        const code = (err as { code?: unknown }).code;
        if (code !== 'SQLITE_BUSY' || Date.now() >= giveUp) throw err;
        await new Promise((r) => setTimeout(r, wait));
      }
    }
  }

  private drop(): void {
    this.statements.clear();
    const db = this.db;
    this.db = null;
    try {
      db?.close();
    } catch {
      // already unusable
    }
  }

  protected async shutdown(): Promise<void> {
    this.drop();
    await this.checkpointer?.stop();
    this.checkpointer = null;
  }

  protected isRetryable(err: unknown): boolean {
    const code = (err as { code?: unknown } | null)?.code;
    if (typeof code === 'string') return [...RETRYABLE].some((c) => code.startsWith(c));
    // better-sqlite3 reports a missing directory as a TypeError without code; it may appear (a mount).
    return err instanceof Error && /directory does not exist|unable to open/i.test(err.message);
  }
}
