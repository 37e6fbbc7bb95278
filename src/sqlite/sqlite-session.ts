/**
 * One better-sqlite3 connection behind an asynchronous interface, so that the sink can run it in a
 * worker thread (sqlite-worker-session.ts) or, for `:memory:` and when asked, in this thread. Both
 * run the same session code: it is plain CommonJS text, evaluated here and in the worker (which
 * needs no TypeScript loader, so it runs the same from `src/` under tsx and from `dist/`).
 */
import Database from 'better-sqlite3';
import { WRITER_CACHE_PRAGMA } from './page-cache';

/** Statement parameters as better-sqlite3 binds them (structured clone keeps bigint and null). */
export type SqliteParams = readonly unknown[];

export type SqliteRow = Record<string, unknown>;

export interface SqliteSessionOptions {
  /** The WAL is checkpointed elsewhere (a WalCheckpointer): the connection never checkpoints in a commit. */
  readonly backgroundCheckpoints: boolean;
}

export interface SqliteSession {
  /** Runs a statement (prepared once per session): the rows it changed, or returned for a query. */
  run(sql: string, params: SqliteParams): Promise<number>;
  /**
   * Runs a statement whose result nobody needs, without waiting for it: in a worker, statements
   * queue up in one go instead of a message round trip each. A failure is kept and thrown by the
   * next call that waits (with `tag` set to the given table), and the statements between are skipped.
   */
  runLater(sql: string, params: SqliteParams, tag: string): void;
  /** Runs a query: its rows. */
  all(sql: string, params: SqliteParams): Promise<SqliteRow[]>;
  /** Runs statements without parameters (BEGIN, COMMIT, PRAGMA …). */
  exec(sql: string): Promise<void>;
  /** Rolls back the open transaction, if any. */
  rollback(): Promise<void>;
  /** Closes the connection; never rejects. */
  close(): Promise<void>;
  /** False once statements can no longer run (closed, or its worker died): open a new session. */
  readonly usable: boolean;
}

/** A request to the session code; `close` ends it. */
export type SessionOp = 'run' | 'later' | 'all' | 'exec' | 'rollback' | 'close';

/** What the session code returns per request. */
export type SessionHandler = (
  op: SessionOp,
  sql: string,
  params: SqliteParams,
  tag?: string,
) => number | SqliteRow[] | null;

/**
 * Defines `openSqliteSession(Database, file, options)`: opens the connection (busy_timeout=0: a
 * busy timeout inside SQLite would block its thread, and the caller retries BEGIN asynchronously)
 * and returns the handler of requests. Statements are kept prepared; past the limit (rare: few
 * statement shapes) the cache starts over.
 */
export const SESSION_SOURCE = `
function openSqliteSession(Database, file, options) {
  const STATEMENT_CACHE_LIMIT = 500;
  const db = new Database(file);
  try {
    db.pragma('busy_timeout = 0');
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    if (options.backgroundCheckpoints) db.pragma('wal_autocheckpoint = 0');
    // A multi-row INSERT keeps a statement journal; past 64 KiB SQLite spills it to a temporary
    // file (thousands of writes per catch-up commit). In memory it costs a commit's changed pages.
    db.pragma('temp_store = MEMORY');
    db.pragma('${WRITER_CACHE_PRAGMA}');
  } catch (err) {
    db.close();
    throw err;
  }
  const statements = new Map();
  function prepare(sql) {
    let st = statements.get(sql);
    if (!st) {
      if (statements.size >= STATEMENT_CACHE_LIMIT) statements.clear();
      st = db.prepare(sql);
      statements.set(sql, st);
    }
    return st;
  }
  // The failure of a 'later' statement, thrown by the next request (rollback and close clear it).
  let deferred = null;
  return function handle(op, sql, params, tag) {
    if (op === 'later') {
      if (deferred !== null) return null; // the transaction fails anyway: skip
      try {
        prepare(sql).run(...params);
      } catch (err) {
        if (err && typeof err === 'object') err.tag = tag;
        deferred = err;
      }
      return null;
    }
    if (op === 'rollback' || op === 'close') deferred = null;
    else if (deferred !== null) {
      const err = deferred;
      deferred = null;
      throw err;
    }
    switch (op) {
      case 'run': {
        const st = prepare(sql);
        return st.reader ? st.all(...params).length : st.run(...params).changes;
      }
      case 'all':
        return prepare(sql).all(...params);
      case 'exec':
        db.exec(sql);
        return null;
      case 'rollback':
        if (db.inTransaction) db.exec('ROLLBACK');
        return null;
      case 'close':
        statements.clear();
        db.close();
        return null;
      default:
        throw new Error('unknown SQLite session request ' + op);
    }
  };
}
`;

const openSqliteSession = new Function(
  'Database',
  'file',
  'options',
  `${SESSION_SOURCE}\nreturn openSqliteSession(Database, file, options);`,
) as (driver: typeof Database, file: string, options: SqliteSessionOptions) => SessionHandler;

/** A session on this thread: each call runs synchronously and blocks it, as better-sqlite3 does. */
export function openInProcessSession(file: string, options: SqliteSessionOptions): SqliteSession {
  const handle = openSqliteSession(Database, file, options);
  let open = true;
  const call = async (op: SessionOp, sql = '', params: SqliteParams = []) => {
    if (!open) throw new Error('the SQLite connection is closed');
    return handle(op, sql, params);
  };
  return {
    run: async (sql, params) => (await call('run', sql, params)) as number,
    runLater: (sql, params, tag) => {
      if (open) handle('later', sql, params, tag);
    },
    all: async (sql, params) => (await call('all', sql, params)) as SqliteRow[],
    exec: async (sql) => void (await call('exec', sql)),
    rollback: async () => void (await call('rollback')),
    close: async () => {
      if (!open) return;
      open = false;
      try {
        handle('close', '', []);
      } catch {
        // already unusable
      }
    },
    get usable() {
      return open;
    },
  };
}
