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

/** What a db-config node offers its users. */
export interface DatabaseConfigNode extends Node {
  /** Takes a hold on the database; throws an Error with a clear message when the config is unusable. */
  acquire(): DatabaseLease;
  /** How many holds are out now (for diagnostics and tests). */
  userCount(): number;
}

/** The database of the db-config node `id`, or null when there is no such node (the caller reports it). */
export function acquireDatabase(RED: NodeAPI, id: unknown): DatabaseLease | null {
  if (typeof id !== 'string' || id === '') return null;
  const node = RED.nodes.getNode(id) as Partial<DatabaseConfigNode> | null;
  return node && typeof node.acquire === 'function' ? node.acquire() : null;
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

  constructor(private readonly open: () => SinkDatabase) {}

  acquire(): DatabaseLease {
    if (this.closed) throw new Error('the database configuration node is being closed');
    const database = (this.current ??= this.open());
    this.users++;
    let released = false;
    return {
      database,
      release: () => {
        if (released) return this.closing;
        released = true;
        return this.release(database);
      },
    };
  }

  private release(database: SinkDatabase): Promise<void> {
    this.users--;
    if (this.users > 0) return this.closing;
    if (this.current === database) this.current = null;
    const done = database.close().catch(() => undefined);
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
      if (db) this.closing = Promise.all([this.closing, db.close().catch(() => undefined)]).then(() => undefined);
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
