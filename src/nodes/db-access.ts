/**
 * How db-sink nodes share the database of their db-config node: one SinkDatabase (SQLite
 * connection or PostgreSQL pool) per db-config, reference-counted. It is opened by the first user,
 * and closed when the last user has released it — after that user's dataflow has finished its
 * commit. Node-RED closes a config node in parallel with the nodes using it, so the config node's
 * own close waits for its users instead of pulling the database from under a running commit.
 */
import type { SinkDatabase } from '../sinks/types';
import type { Node, NodeAPI } from './red';

/** One user's hold on the shared database. */
export interface DatabaseLease {
  readonly database: SinkDatabase;
  /** Gives the hold back (idempotent); resolves once the database is closed if this was the last one. */
  release(): Promise<void>;
}

/** Another holder already writes the claimed table. */
export class TableClaimError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TableClaimError';
  }
}

/** A table a holder writes, and who it is (for the message when another holder claims it too). */
export interface TableClaim {
  readonly table: string;
  readonly owner: string;
}

/** What a db-config node offers its users. */
export interface DatabaseConfigNode extends Node {
  /**
   * Takes a hold on the database; throws an Error with a clear message when the config is unusable
   * or when `claim.table` is already written by another holder (two sinks on one table would
   * overwrite each other's rows and offsets).
   */
  acquire(claim?: TableClaim): DatabaseLease;
  /** How many holds are out now (for diagnostics and tests). */
  userCount(): number;
}

/** The database of the db-config node `id`, or null when there is no such node (the caller reports it). */
export function acquireDatabase(RED: NodeAPI, id: unknown, claim?: TableClaim): DatabaseLease | null {
  if (typeof id !== 'string' || id === '') return null;
  const node = RED.nodes.getNode(id) as Partial<DatabaseConfigNode> | null;
  return node && typeof node.acquire === 'function' ? node.acquire(claim) : null;
}

/**
 * The reference count behind a db-config node: opens the database lazily, closes it after the last
 * release, and lets the config node's close wait for its users.
 */
export class SharedDatabase {
  private current: SinkDatabase | null = null;
  private users = 0;
  private closed = false;
  /** Closing of earlier instances still running (a redeploy may reopen before they finish). */
  private closing: Promise<void> = Promise.resolve();
  private idle: (() => void) | null = null;
  /** Claimed table (lower case) → its holder. */
  private readonly tables = new Map<string, string>();

  /** `onCloseError`: a database that fails to close is reported there (closing goes on). */
  constructor(
    private readonly open: () => SinkDatabase,
    private readonly onCloseError: (err: unknown) => void,
  ) {}

  acquire(claim?: TableClaim): DatabaseLease {
    if (this.closed) throw new Error('the database configuration node is being closed');
    // Table names compared without case: SQLite folds them, and PostgreSQL users rarely mean two tables.
    const table = claim?.table.toLowerCase();
    if (table !== undefined) {
      const other = this.tables.get(table);
      if (other !== undefined)
        throw new TableClaimError(
          `table "${claim?.table}" is already written by ${other} on this database; give each db-sink its own table`,
        );
    }
    const database = (this.current ??= this.open());
    this.users++;
    if (table !== undefined && claim) this.tables.set(table, claim.owner);
    let released = false;
    return {
      database,
      release: () => {
        if (released) return this.closing;
        released = true;
        if (table !== undefined) this.tables.delete(table);
        return this.release(database);
      },
    };
  }

  private release(database: SinkDatabase): Promise<void> {
    this.users--;
    if (this.users > 0) return this.closing;
    if (this.current === database) this.current = null;
    const done = database.close().catch(this.onCloseError);
    this.closing = Promise.all([this.closing, done]).then(() => undefined);
    if (this.idle) this.idle();
    return this.closing;
  }

  /** For the config node's close: no new users; resolves when every user released and the database closed. */
  close(): Promise<void> {
    this.closed = true;
    if (this.users === 0) {
      const db = this.current;
      this.current = null;
      if (db) this.closing = Promise.all([this.closing, db.close().catch(this.onCloseError)]).then(() => undefined);
      return this.closing;
    }
    return new Promise<void>((resolve) => {
      this.idle = () => {
        this.idle = null;
        resolve(this.closing);
      };
    });
  }

  /** Number of current users (for tests and status). */
  get userCount(): number {
    return this.users;
  }
}
