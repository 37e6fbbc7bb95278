/**
 * `db-query`: runs one SQL statement against the database of a db-config node and sends the rows —
 * for flows that read the tables the dataflow keeps (a dashboard page, an outbox to deliver) and
 * keep their own bookkeeping tables (e.g. which bookings were delivered). It never writes the
 * tables a db-sink owns behind the dataflow's back unless the statement says so.
 *
 * It uses its own connection (SQLite, MariaDB) or small pool (PostgreSQL) with the db-config's
 * settings, so a slow query never delays a dataflow commit. Values are always bound parameters
 * (`msg.params`). Exactly one statement runs per message: the databases are asked to prepare it as
 * one (SQLite's prepare, PostgreSQL's extended protocol, MariaDB's connection without
 * multipleStatements), so `SELECT …; DROP TABLE t` in a `msg.topic` built from outside input is
 * refused, not run. The one opt-in, *script*, runs the node's own SQL field (never `msg.topic`) as
 * several statements without parameters.
 */
import Database from 'better-sqlite3';
import pg from 'pg';
import { errorText } from '../core/message-text';
import type { DbConfigNode } from './db-config';
import { poolConfig, type PostgresOptions } from '../sinks/postgres-database';
import { openPool } from '../sinks/postgres-pool';
import { postgresProblem, type PostgresProblem } from '../sinks/postgres-problems';
import { driverConfig, MariadbConnection, mariadbTarget, type MariadbOptions } from '../sinks/mariadb-connection';
import { mariadbProblem } from '../sinks/mariadb-problems';
import type { Node, NodeAPI, NodeDef, NodeMessage } from './red';

type Params = readonly unknown[] | Readonly<Record<string, unknown>>;
type DatabaseProblem = PostgresProblem;

/** How long a statement keeps retrying while another connection holds the SQLite write lock. */
const SQLITE_BUSY_LIMIT_MS = 10_000;

/** One open connection, whatever the database. */
interface QueryConnection {
  /** Runs exactly one statement; several are refused (SeveralStatements). */
  query(sql: string, params: Params): Promise<{ rows?: Record<string, unknown>[]; changes?: number }>;
  /** Runs a script of several statements, without parameters (the node's opt-in). */
  script(sql: string): Promise<{ changes: number }>;
  /** What a failure says about the configuration and what to set, if anything. */
  explain(err: unknown): DatabaseProblem | null;
  close(): Promise<void>;
}

/** The SQL of a message held more than one statement. */
class SeveralStatements extends Error {
  constructor(cause: unknown) {
    super(
      `refused: the SQL holds more than one statement, and db-query runs exactly one per message (values go in msg.params; a fixed script in the node's SQL field runs with "script" ticked): ${cause instanceof Error ? cause.message : String(cause)}`,
    );
    this.name = 'SeveralStatements';
  }
}

/**
 * SQLite through better-sqlite3, whose calls are synchronous: a busy timeout would block the
 * event loop while a dataflow in this very process holds the write lock and waits for the event
 * loop to commit. So no busy timeout here; a busy database is retried asynchronously instead.
 */
function sqliteConnection(filename: string): QueryConnection {
  let db: Database.Database | null = null;
  const run = (sql: string, params: Params): { rows?: Record<string, unknown>[]; changes?: number } => {
    const statement = prepare(open(), sql);
    const args = Array.isArray(params) ? params : [params];
    if (statement.reader) return { rows: statement.all(...args) as Record<string, unknown>[] };
    return { changes: statement.run(...args).changes };
  };
  const open = (): Database.Database => {
    if (!db) {
      const opened = new Database(filename);
      opened.pragma('busy_timeout = 0');
      db = opened;
      db.pragma('journal_mode = WAL');
    }
    return db;
  };
  const runScript = (sql: string): { changes: number } => {
    const conn = open();
    const total = conn.prepare('SELECT total_changes() AS n').pluck();
    const before = total.get() as number;
    conn.exec(sql);
    return { changes: (total.get() as number) - before };
  };
  /** Retries while another connection holds the write lock (asynchronously: see above). */
  const whenFree = async <T>(work: () => T): Promise<T> => {
    const giveUp = Date.now() + SQLITE_BUSY_LIMIT_MS;
    for (let wait = 5; ; wait = Math.min(wait * 2, 100)) {
      try {
        return work();
      } catch (err) {
        const code = (err as { code?: unknown }).code;
        if (typeof code !== 'string' || !/^SQLITE_(BUSY|LOCKED)/.test(code) || Date.now() > giveUp) throw err;
        await new Promise((r) => setTimeout(r, wait));
      }
    }
  };
  return {
    query: (sql, params) => whenFree(() => run(sql, params)),
    script: (sql) => whenFree(() => runScript(sql)),
    explain: () => null,
    async close() {
      db?.close();
      db = null;
    },
  };
}

/** better-sqlite3 refuses to prepare several statements (RangeError "more than one statement"). */
function prepare(db: Database.Database, sql: string): Database.Statement {
  try {
    return db.prepare(sql);
  } catch (err) {
    if (err instanceof RangeError && /more than one statement/.test(err.message)) throw new SeveralStatements(err);
    throw err;
  }
}

/** PostgreSQL's answer when the extended protocol is given several statements (SQLSTATE 42601). */
const PG_SEVERAL_STATEMENTS = /cannot insert multiple commands into a prepared statement/;

function postgresConnection(settings: PostgresOptions, onIdleError: (err: Error) => void): QueryConnection {
  const config: pg.PoolConfig = { ...poolConfig(settings), max: 2, application_name: 'deltaflow-query' };
  // Its connections' errors are listened to: a server that dies under a query fails that query only.
  const pool = openPool(config, onIdleError);
  return {
    async query(sql, params) {
      if (!Array.isArray(params))
        throw new Error('PostgreSQL takes positional parameters: set msg.params to an array for $1, $2, …');
      // NB: the extended protocol (also without parameters) takes exactly one statement; the simple
      // protocol, which pg uses for a query without values, would run `SELECT 1; DROP TABLE t`.
      // (queryMode is pg's option since 8.12; its type definitions do not list it.)
      const query = { text: sql, values: params as unknown[], queryMode: 'extended' } as pg.QueryConfig;
      const result = await pool.query(query).catch((err: unknown) => {
        throw err instanceof Error && PG_SEVERAL_STATEMENTS.test(err.message) ? new SeveralStatements(err) : err;
      });
      return result.command === 'SELECT' || (result.fields?.length ?? 0) > 0
        ? { rows: result.rows as Record<string, unknown>[] }
        : { changes: result.rowCount ?? 0 };
    },
    async script(sql) {
      // The simple protocol runs the statements as one implicit transaction; pg answers one result per statement.
      const results = (await pool.query(sql)) as unknown as pg.QueryResult | pg.QueryResult[];
      const list = Array.isArray(results) ? results : [results];
      return { changes: list.reduce((n, r) => n + (r.rowCount ?? 0), 0) };
    },
    explain: (err) => postgresProblem(err, settings),
    close: () => pool.end(),
  };
}

/**
 * MariaDB / MySQL: one connection (the statements of concurrent messages run one after another),
 * opened on first use and replaced when lost. One statement per message: the connection's
 * multipleStatements is off (`SELECT 1; DROP TABLE t` is a syntax error at the `;`), and statements
 * with parameters are server-side prepared statements. A script runs on a second connection of its
 * own, the only one with multipleStatements on.
 */
function mariadbConnection(settings: MariadbOptions, onIdleError: (err: Error) => void): QueryConnection {
  const options: MariadbOptions = { ...settings, onIdleError };
  const opened: { single: Promise<MariadbConnection> | null; script: Promise<MariadbConnection> | null } = {
    single: null,
    script: null,
  };
  const connection = async (which: 'single' | 'script'): Promise<MariadbConnection> => {
    const current = opened[which];
    const c = current ? await current.catch(() => null) : null;
    if (c && c.lost === null) return c;
    const config = driverConfig(mariadbTarget(options), options, 'deltaflow-query');
    if (which === 'script') config.multipleStatements = true;
    const next = MariadbConnection.open(config, options);
    next.catch(() => undefined); // the caller awaits it; a later call opens a new one
    opened[which] = next;
    return next;
  };
  return {
    async query(sql, params) {
      if (!Array.isArray(params))
        throw new Error('MariaDB takes positional parameters: set msg.params to an array for ?, ?, …');
      const result = await (await connection('single')).query(sql, params).catch((err: unknown) => {
        throw severalMariadbStatements(err, sql) ? new SeveralStatements(err) : err;
      });
      return Array.isArray(result)
        ? { rows: result as Record<string, unknown>[] }
        : { changes: Number((result as { affectedRows?: unknown }).affectedRows ?? 0) };
    },
    async script(sql) {
      const result = await (await connection('script')).query(sql);
      const list = Array.isArray(result) ? (result as unknown[]) : [result];
      let changes = 0;
      for (const r of list)
        if (r && !Array.isArray(r)) changes += Number((r as { affectedRows?: unknown }).affectedRows ?? 0);
      return { changes };
    },
    explain: (err) => mariadbProblem(err, settings),
    async close() {
      const all = [opened.single, opened.script];
      opened.single = opened.script = null;
      for (const p of all) await (p ? await p.catch(() => null) : null)?.close();
    },
  };
}

/**
 * Whether MariaDB's syntax error is the second statement of several: the text it quotes (`near
 * '…'`) follows a `;` in the SQL.
 */
function severalMariadbStatements(err: unknown, sql: string): boolean {
  const e = err as { errno?: unknown; sqlMessage?: unknown } | null;
  if (e?.errno !== 1064 || typeof e.sqlMessage !== 'string') return false;
  const near = /near '([\s\S]*)' at line \d+$/.exec(e.sqlMessage)?.[1];
  if (!near) return false;
  const at = sql.lastIndexOf(near.slice(0, 40));
  return at > 0 && sql.slice(0, at).trimEnd().endsWith(';');
}

export default function (RED: NodeAPI): void {
  function DbQueryNode(this: Node, config: NodeDef): void {
    RED.nodes.createNode(this, config);
    const node = this;
    const fixedSql = typeof config.sql === 'string' ? config.sql.trim() : '';
    // The opt-in for several statements: only the node's own SQL, never msg.topic.
    const script = config.script === true;

    let connection: QueryConnection | null = null;
    let problem: string | null = null;
    const dbId = typeof config.database === 'string' ? config.database : '';
    const dbNode = dbId ? (RED.nodes.getNode(dbId) as Partial<DbConfigNode> | null) : null;
    // The db-config's settings as it parsed them at its deploy, with the ${VAR} values Node-RED
    // substituted (the flow definition holds the raw text).
    const parsed = dbNode?.type === 'db-config' ? dbNode.parsedConfig : undefined;
    if (!parsed) {
      problem = 'no database selected: choose a db-config node';
    } else if (script && fixedSql === '') {
      problem =
        'script is ticked but the SQL field is empty: a script runs only the SQL written in the node, never msg.topic';
    } else {
      const { settings, problems } = parsed;
      if (problems.length > 0) problem = `database misconfigured: ${problems.join('; ')}`;
      else {
        // Opened on first use: a missing database at deploy is a per-message error, not a crash.
        const onIdleError = (err: Error): void => node.warn(`idle connection lost: ${err.message}`);
        const open = (): QueryConnection => {
          if (settings.kind === 'sqlite') return sqliteConnection(settings.filename);
          if (settings.kind === 'mariadb') return mariadbConnection(settings.options, onIdleError);
          return postgresConnection(settings.options, onIdleError);
        };
        node.on('input', (msg: NodeMessage, send, done) => {
          const sql = fixedSql || (typeof msg.topic === 'string' ? msg.topic.trim() : '');
          if (sql === '') {
            node.status({ fill: 'red', shape: 'ring', text: 'no SQL' });
            done(new Error(`no SQL statement: set it in the node or in msg.topic`));
            return;
          }
          const raw = msg.params;
          const params: Params =
            raw === undefined || raw === null ? [] : typeof raw === 'object' ? (raw as Params) : [raw];
          const hasParams = Array.isArray(params) ? params.length > 0 : Object.keys(params).length > 0;
          if (script && hasParams) {
            node.status({ fill: 'red', shape: 'ring', text: 'query failed' });
            done(new Error(`a script takes no parameters (msg.params): run a single statement for values`));
            return;
          }
          const current = (connection ??= open());
          Promise.resolve()
            .then(() => (script ? current.script(sql) : current.query(sql, params)))
            .then(
              (result) => {
                node.status({
                  fill: 'green',
                  shape: 'dot',
                  text: result.rows ? `${result.rows.length} rows` : `${result.changes} changed`,
                });
                msg.payload = result.rows ?? { changes: result.changes };
                send(msg);
                done();
              },
              (err: unknown) => {
                // A configuration problem (no user, no database, no server, …) says what to set.
                const problem = current.explain(err);
                const text = err instanceof Error ? err.message : String(err);
                const status = err instanceof SeveralStatements ? 'refused: several statements' : 'query failed';
                node.status({ fill: 'red', shape: 'ring', text: problem ? problem.hint : status });
                done(new Error(`${text}${problem ? ` — ${problem.advice}` : ''}`));
              },
            );
        });
      }
    }
    if (problem) {
      node.error(problem);
      node.status({ fill: 'red', shape: 'ring', text: 'invalid config' });
      node.on('input', (_msg, _send, done) => done(new Error(problem)));
    }

    node.on('close', (_removed: boolean, done: () => void) => {
      const c = connection;
      connection = null;
      if (!c) return done();
      c.close()
        .catch((err: unknown) => node.warn(`closing the connection failed: ${errorText(err)}`))
        .finally(done);
    });
  }
  RED.nodes.registerType('db-query', DbQueryNode);
}
