/**
 * What the SQLite, PostgreSQL and MariaDB sinks share: the transaction queue, the SinkTransaction
 * built on a minimal statement executor, the cached state that lets `writeState` write only what
 * changed, and error wrapping. The database files only add connecting and their driver's calls.
 */
import { errorText } from '../core/message-text';
import type { Batch } from '../engine/types';
import { copyOffsets, offsetDiff, setOffset, type OffsetMap } from '../core/offset-map';
import type {
  ApplyOptions,
  InstanceHeartbeat,
  LeaseAnswer,
  LeaseRequest,
  LeaseToken,
  RowChange,
  SinkDatabase,
  SinkState,
  SinkTransaction,
  SqlValue,
  StateChanges,
  StateReader,
  StateScope,
  TableSpec,
} from './types';
import {
  acquireLease,
  announceInstance,
  ensureInstanceTable,
  ensureLeaseTable,
  fenceLease,
  leaveInstance,
  LeaseLostError,
  releaseLease,
} from './lease-sql';
import { compileTable, type CompiledTable } from './table-spec';
import { duplicateKey, planWrites, type KeyedEntry, type KeyedPlan, type MultisetPlan } from './write-plan';
import { SinkConfigError, SinkDatabaseError, SinkDataError } from './errors';
import { META_TABLE } from './identifiers';
import * as sql from './sql-dialect';
import * as stateSql from './state-sql';

/** Runs statements on the connection of the current transaction. */
export interface SqlExecutor {
  /** Executes a statement; resolves to the number of rows it changed. */
  run(statement: sql.Statement): Promise<number>;
  /** Executes a query; resolves to its rows. */
  all(statement: sql.Statement): Promise<Record<string, unknown>[]>;
  /**
   * Where the connection can: queues a statement whose result is not needed without waiting for it
   * (a worker connection takes a transaction's writes in one go). Its failure, tagged with `table`,
   * is thrown by the next call that waits, so the transaction fails and rolls back. A promise when
   * the queue is full: it resolves once there is room again (or rejects with an earlier failure).
   */
  runLater?(statement: sql.Statement, table: string): void | Promise<void>;
  /**
   * Where the database needs it: a lock on the table's rows and state, taken before the
   * transaction's first statement on the table and held until the transaction ends. A transaction
   * whose connection was lost can still be open on the server, its COMMIT on the way (the server
   * was stopped, the acknowledgement lost): the retry must see its outcome, not race it. It waits
   * here until that transaction has ended, and only then reads the offsets that say whether its
   * batch was committed. (SQLite needs none: BEGIN IMMEDIATE excludes every other writer. Another
   * server database needs one unless its transactions exclude each other in the same way.)
   */
  claimTable?(table: string): Promise<void>;
}

/** One connection for the duration of a transaction. */
export interface SqlConnection extends SqlExecutor {
  begin(): Promise<void>;
  commit(): Promise<void>;
  rollback(): Promise<void>;
  /** Gives the connection back; `broken` when it must not be reused (failed rollback). */
  release(broken: boolean): void;
}

interface CachedState {
  offsets: Record<string, number>;
  fingerprint: string | null;
  watermark: number | null;
}

/** Converts a value read back from the driver (dates, JSON, int8 text, …) to an SqlValue. */
export function fromDriverValue(v: unknown): SqlValue {
  if (v === null || v === undefined) return null;
  switch (typeof v) {
    case 'number':
    case 'string':
    case 'boolean':
    case 'bigint':
      return v;
    default:
      if (v instanceof Date) return v.toISOString();
      if (Buffer.isBuffer(v)) return v.toString('hex');
      return JSON.stringify(v);
  }
}

export abstract class SqlSinkDatabase implements SinkDatabase {
  abstract readonly kind: 'sqlite' | 'postgres' | 'mariadb';
  abstract readonly label: string;
  /** The dialect of the server connected to (read after `connect`, which may learn it from the server). */
  protected abstract readonly dialect: sql.Dialect;
  /** Opens (or takes from the pool) a connection; throws a SinkDatabaseError when that fails. */
  protected abstract connect(): Promise<SqlConnection>;
  /** Closes connections once no transaction runs any more. */
  protected abstract shutdown(): Promise<void>;
  /** Whether a driver error is worth retrying (connection loss, lock timeout, …). */
  protected abstract isRetryable(err: unknown): boolean;
  /** What a driver error says about the configuration and what to set, if anything (retried). */
  protected explain(_err: unknown): { readonly hint: string; readonly advice: string } | null {
    return null;
  }

  /** State known to be committed, per table (null: read it from the database when needed). */
  private readonly committedState = new Map<string, CachedState>();
  /** Column types per table (PostgreSQL: for casts; MariaDB: for binding); dropped with the table. */
  private readonly columnTypes = new Map<string, Map<string, string>>();
  /** Each state scope's level known to be committed (writeScope writes only the streams that changed). */
  private readonly committedLevels = new Map<string, OffsetMap>();
  private tail: Promise<unknown> = Promise.resolve();
  private closing: Promise<void> | null = null;

  transaction<T>(fn: (tx: SinkTransaction) => Promise<T>): Promise<T> {
    if (this.closing)
      return Promise.reject(new SinkDatabaseError(this.label, null, 'the database connection is closed', false));
    const run = this.tail.then(() => this.runTransaction(fn));
    this.tail = run.catch(() => undefined);
    return run;
  }

  /** Waits for queued and running transactions, then closes. Later `transaction` calls reject. */
  close(): Promise<void> {
    this.closing ??= this.tail.then(() => this.shutdown());
    return this.closing;
  }

  private async runTransaction<T>(fn: (tx: SinkTransaction) => Promise<T>): Promise<T> {
    const conn = await this.connect();
    const tx = new SqlSinkTransaction(
      this,
      conn,
      this.dialect,
      this.committedState,
      this.columnTypes,
      this.committedLevels,
    );
    // After the transaction, `tx` must not reach the connection (it may serve another transaction).
    const guarded: SinkTransaction = {
      ensureTable: async (spec) => tx.live().ensureTable(spec),
      dropTable: async (spec) => tx.live().dropTable(spec),
      readState: async (spec) => tx.live().readState(spec),
      hasTable: async (spec) => tx.live().hasTable(spec),
      swapIn: async (spec, shadow) => tx.live().swapIn(spec, shadow),
      copyTable: async (spec, shadow) => tx.live().copyTable(spec, shadow),
      apply: async (spec, changes, report, options) => tx.live().apply(spec, changes, report, options),
      writeState: async (spec, state) => tx.live().writeState(spec, state),
      acquireLease: async (request) => tx.live().acquireLease(request),
      fence: async (token) => tx.live().fence(token),
      releaseLease: async (token) => tx.live().releaseLease(token),
      announceInstance: async (heartbeat) => tx.live().announceInstance(heartbeat),
      leaveInstance: async (pool, instance) => tx.live().leaveInstance(pool, instance),
      readScope: async (scope) => tx.live().readScope(scope),
      resetScope: async (scope) => tx.live().resetScope(scope),
      writeScope: async (scope, level, changes) => tx.live().writeScope(scope, level, changes),
      writeStateHint: async (scope, hint) => tx.live().writeStateHint(scope, hint),
    };
    let broken = false;
    try {
      await this.step(null, () => conn.begin());
      const result = await fn(guarded).finally(() => tx.end());
      await this.step(null, () => conn.commit());
      tx.publishState();
      return result;
    } catch (err) {
      // The commit may have happened even though we saw an error (lost acknowledgement): forget
      // the cached state so that the next readState asks the database.
      this.committedState.clear();
      this.columnTypes.clear();
      this.committedLevels.clear();
      try {
        await conn.rollback();
      } catch {
        broken = true;
      }
      throw err;
    } finally {
      conn.release(broken);
    }
  }

  /**
   * Durable operator state: a reader of committed entries on a connection of its own, or why this
   * database cannot give one (docs/durable-state.md, "Reading state outside the commit transaction").
   */
  stateReader(): StateReader | string {
    const opened = this.readConnection();
    if (typeof opened === 'string') return opened;
    // The dialect as of each read: MariaDB's depends on the server, known once a connection opened.
    const run = async (s: sql.Statement): Promise<Record<string, unknown>[]> => {
      const conn = await opened();
      return this.step(stateSql.STATE_TABLE, () => conn.all(s));
    };
    return {
      get: async (op, keys) => {
        const found = new Map<string, string>();
        for (const s of stateSql.selectEntriesSql(this.dialect, op, keys))
          for (const r of await run(s)) found.set(String(r.k), String(r.v));
        return keys.map((k) => found.get(k));
      },
      seek: async (op, from, to, last) => {
        const rows = await run(stateSql.selectRangeSql(this.dialect, op, from, to, last ? 'last' : 'first'));
        const r = rows[0];
        return r === undefined ? undefined : ([String(r.k), String(r.v)] as const);
      },
      range: async (op, from, to) =>
        (await run(stateSql.selectRangeSql(this.dialect, op, from, to, null))).map(
          (r) => [String(r.k), String(r.v)] as const,
        ),
      close: async () => {
        const conn = await opened().catch(() => null);
        await conn?.close();
      },
    };
  }

  /**
   * A connection for reading state outside the transactions, opened on first use; or why there is
   * none. Default: a connection of `connect` without a transaction (a pool's own connection).
   */
  protected readConnection(): (() => Promise<ReadConnection>) | string {
    return () =>
      Promise.resolve({
        all: async (s: sql.Statement) => {
          const conn = await this.connect();
          try {
            return await conn.all(s);
          } finally {
            conn.release(false);
          }
        },
        close: async () => undefined,
      });
  }

  /** Runs a database call; driver errors become SinkDatabaseErrors naming the database and table. */
  async step<T>(table: string | null, call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (err) {
      throw this.wrap(err, table);
    }
  }

  wrap(err: unknown, table: string | null): Error {
    if (err instanceof LeaseLostError) return err;
    if (err instanceof SinkDatabaseError || err instanceof SinkDataError || err instanceof SinkConfigError) return err;
    // A queued statement's failure names its own table (it surfaces in a later call).
    const tag = (err as { tag?: unknown } | null)?.tag;
    const problem = this.explain(err);
    return new SinkDatabaseError(
      this.label,
      typeof tag === 'string' ? tag : table,
      problem ? `${describeError(err)} — ${problem.advice}` : describeError(err),
      problem !== null || this.isRetryable(err),
      { cause: err, hint: problem?.hint },
    );
  }
}

/** A connection that reads state outside the commit transactions. */
export interface ReadConnection {
  all(statement: sql.Statement): Promise<Record<string, unknown>[]>;
  close(): Promise<void>;
}

/** A SinkTransaction over one connection; collects state changes and publishes them after commit. */
class SqlSinkTransaction implements SinkTransaction {
  /** State written in this transaction (undefined: dropped), published to the cache after commit. */
  private readonly pending = new Map<string, CachedState | undefined>();
  private readonly claimed = new Set<string>();
  private metaEnsured = false;
  private ended = false;
  /** A table's rows were written in this transaction (see `ddl`). */
  private rowsWritten: string | null = null;

  constructor(
    private readonly db: SqlSinkDatabase,
    private readonly exec: SqlExecutor,
    private readonly d: sql.Dialect,
    private readonly committed: Map<string, CachedState>,
    private readonly types: Map<string, Map<string, string>>,
    private readonly levels: Map<string, OffsetMap>,
  ) {}

  /** Scope levels written or read in this transaction (undefined: deleted), published after commit. */
  private readonly pendingLevels = new Map<string, OffsetMap | undefined>();
  private stateEnsured = false;

  /** Runs a statement whose result is not needed: queued where the connection can (see SqlExecutor.runLater). */
  private async later(statement: sql.Statement, table: string): Promise<void> {
    if (this.exec.runLater) await this.exec.runLater(statement, table);
    else await this.exec.run(statement);
  }

  /** Takes the table's lock (SqlExecutor.claimTable) before this transaction's first statement on it. */
  private async claim(table: string): Promise<void> {
    if (!this.exec.claimTable || this.claimed.has(table)) return;
    this.claimed.add(table);
    await this.db.step(table, () => (this.exec.claimTable as (t: string) => Promise<void>)(table));
  }

  /** This transaction, or an error when its function has already returned. */
  live(): this {
    if (this.ended) throw new Error('SinkTransaction used after its transaction function returned');
    return this;
  }

  end(): void {
    this.ended = true;
  }

  publishState(): void {
    for (const [scope, level] of this.pendingLevels) {
      if (level) this.levels.set(scope, level);
      else this.levels.delete(scope);
    }
    for (const [table, state] of this.pending) {
      if (state) this.committed.set(table, state);
      else {
        this.committed.delete(table);
        this.types.delete(table);
      }
    }
  }

  private known(table: string): CachedState | undefined {
    return this.pending.has(table) ? this.pending.get(table) : this.committed.get(table);
  }

  /**
   * Runs DDL statements. NB: MariaDB / MySQL commit the open transaction before and after DDL (the
   * connection starts the next one), so DDL after a table's rows were written would commit them
   * apart from their offsets. The coordinator runs DDL only while opening its sinks (where state,
   * but no row, is written); this check keeps it so.
   */
  private async ddl(table: string | null, statements: readonly sql.Statement[]): Promise<void> {
    if (this.d.ddlCommits && this.rowsWritten !== null) {
      throw new Error(
        `DDL after rows of table "${this.rowsWritten}" were written in the same transaction: ${this.d.kind} would commit them without their offsets`,
      );
    }
    await this.db.step(table, async () => {
      for (const s of statements) await this.exec.run(s);
    });
  }

  private async ensureMeta(): Promise<void> {
    if (this.metaEnsured) return;
    // Where DDL commits, it runs only when the table is missing: reading state must not commit.
    const missing =
      !this.d.ddlCommits ||
      (await this.db.step(null, () => this.exec.all(sql.tableExistsSql(this.d, META_TABLE)))).length === 0;
    if (missing) await this.ddl(null, [{ sql: sql.createMetaSql(this.d), params: [] }]);
    this.metaEnsured = true;
  }

  async acquireLease(request: LeaseRequest): Promise<LeaseAnswer> {
    await this.ddlAllowed();
    await this.db.step(null, () => ensureLeaseTable(this.exec, this.d));
    return this.db.step(null, () => acquireLease(this.exec, this.d, request));
  }

  async fence(token: LeaseToken): Promise<void> {
    // The first statement of a commit (commit.ts): the lease table exists since the acquisition.
    await this.db.step(null, () => fenceLease(this.exec, this.d, token, this.db.label));
  }

  async releaseLease(token: LeaseToken): Promise<void> {
    await this.db.step(null, () => releaseLease(this.exec, this.d, token));
  }

  async announceInstance(heartbeat: InstanceHeartbeat): Promise<number> {
    await this.ddlAllowed();
    await this.db.step(null, () => ensureInstanceTable(this.exec, this.d));
    return this.db.step(null, () => announceInstance(this.exec, this.d, heartbeat));
  }

  async leaveInstance(pool: string, instance: string): Promise<void> {
    await this.db.step(null, () => leaveInstance(this.exec, this.d, pool, instance));
  }

  /** Throws where DDL would commit rows written in this transaction (see `ddl`). */
  private async ddlAllowed(): Promise<void> {
    if (this.d.ddlCommits && this.rowsWritten !== null)
      throw new Error(`a lease taken after rows of table "${this.rowsWritten}" were written in the same transaction`);
  }

  async ensureTable(spec: TableSpec): Promise<void> {
    compileTable(spec); // validates the whole spec before any DDL
    await this.claim(spec.name);
    const cols = {
      name: spec.name,
      columns: spec.columns.map((c) => ({ name: c.name, type: c.type.trim() })),
      keys: spec.mode === 'keyed' ? spec.columns.filter((c) => c.key).map((c) => c.name) : [],
      index: spec.columns.filter((c) => c.index).map((c) => c.name),
    };
    await this.ensureMeta();
    await this.ddl(
      spec.name,
      sql.createTableSql(this.d, cols).map((s) => ({ sql: s, params: [] })),
    );
  }

  async dropTable(spec: TableSpec): Promise<void> {
    await this.claim(spec.name);
    await this.ensureMeta();
    await this.ddl(spec.name, sql.dropTableSql(this.d, spec.name));
    this.pending.set(spec.name, undefined);
    this.types.delete(spec.name);
  }

  async hasTable(spec: TableSpec): Promise<boolean> {
    await this.claim(spec.name);
    return (await this.db.step(spec.name, () => this.exec.all(sql.tableExistsSql(this.d, spec.name)))).length > 0;
  }

  /**
   * A shadow with the table's schema (columns, key, index: tableShapeSql) swaps its contents in: its
   * rows, offsets and meta go into the table as DML (swapContentsSql), so the table keeps its
   * triggers, grants, indexes and views; then the shadow is dropped. A changed schema replaces the
   * table by the shadow (swapTableSql); on PostgreSQL a view on the table stops that, named in the
   * error (retried: the swap goes on once the view is dropped).
   */
  async swapIn(spec: TableSpec, shadow: TableSpec): Promise<void> {
    await this.claim(spec.name);
    await this.claim(shadow.name);
    await this.ensureMeta();
    const state = await this.loadState(shadow.name);
    // NB: a shadow always has a meta row until it is swapped in (start-up and copyTable write one).
    // None: this swap was committed already — on MariaDB by the DROP below, before a later statement
    // of the same transaction failed and the transaction was retried — and only the shadow is left.
    if (state.fingerprint === null) {
      await this.ddl(shadow.name, sql.dropTableSql(this.d, shadow.name));
      return;
    }
    if (await this.sameShape(spec.name, shadow.name)) {
      const columns = spec.columns.map((c) => c.name);
      await this.db.step(spec.name, async () => {
        for (const s of sql.swapContentsSql(this.d, spec.name, shadow.name, columns)) await this.exec.run(s);
      });
      // NB: where DDL commits (MariaDB), this DROP commits the whole swap above with it.
      await this.ddl(shadow.name, sql.dropTableSql(this.d, shadow.name));
    } else {
      if (this.d.kind === 'postgres') await this.refuseDependentViews(spec.name);
      const index = spec.columns.filter((c) => c.index).map((c) => c.name);
      await this.ddl(spec.name, sql.swapTableSql(this.d, spec.name, shadow.name, index));
      this.types.delete(spec.name);
    }
    this.pending.set(spec.name, { ...state, offsets: { ...state.offsets } });
    this.pending.set(shadow.name, undefined);
    this.types.delete(shadow.name);
  }

  /** Whether `table` and `shadow` have the same columns, key and index (tableShapeSql). */
  private async sameShape(table: string, shadow: string): Promise<boolean> {
    const shape = async (t: string): Promise<string[]> =>
      (await this.db.step(t, () => this.exec.all(sql.tableShapeSql(this.d, t))))
        .map((r) => JSON.stringify([String(r.kind), String(r.name), String(r.detail), Number(r.pos)]))
        .sort();
    const [a, b] = [await shape(table), await shape(shadow)];
    return a.length > 0 && a.length === b.length && a.every((x, i) => x === b[i]);
  }

  /** PostgreSQL does not drop a table that a view reads: says which views stop the swap, and what to do. */
  private async refuseDependentViews(table: string): Promise<void> {
    const rows = await this.db.step(table, () => this.exec.all(sql.dependentViewsSql(this.d, table)));
    if (rows.length === 0) return;
    const views = rows.map((r) => String(r.view));
    const named = views.map((v) => `"${v}"`).join(', ');
    const one = views.length === 1;
    throw new SinkDatabaseError(
      this.db.label,
      table,
      `the rebuilt table cannot be swapped in: its columns, key or index changed, so it must replace table "${table}" ` +
        `(DROP TABLE, then RENAME), and PostgreSQL does not drop a table that a view reads — ` +
        `${one ? 'view' : 'views'} ${named} ${one ? 'reads' : 'read'} it. ` +
        `Drop ${one ? 'the view' : 'the views'} (the swap is retried and goes on once ${one ? 'it is' : 'they are'} gone) ` +
        `and create ${one ? 'it' : 'them'} again after the swap.`,
      true,
      { hint: `view ${named} blocks the swap` },
    );
  }

  async copyTable(spec: TableSpec, shadow: TableSpec): Promise<void> {
    await this.claim(spec.name);
    await this.claim(shadow.name);
    const state = await this.queryState(spec.name);
    await this.ensureTable(shadow); // DDL first: where it commits, nothing of the copy is written yet
    const columns = spec.columns.map((c) => c.name);
    await this.db.step(shadow.name, async () => {
      for (const s of sql.copyTableSql(this.d, spec.name, shadow.name, columns)) await this.exec.run(s);
      await this.exec.run(sql.upsertMetaSql(this.d, shadow.name, state.fingerprint, state.watermark));
    });
    this.rowsWritten ??= shadow.name;
    this.pending.set(shadow.name, { ...state, offsets: copyOffsets(state.offsets) });
  }

  /** Always asks the database (the truth after a restart or a lost commit acknowledgement). */
  async readState(spec: TableSpec): Promise<SinkState> {
    const state = await this.queryState(spec.name);
    return { offsets: { ...state.offsets }, fingerprint: state.fingerprint, watermark: state.watermark };
  }

  /**
   * The state as this object last wrote or read it, else read from the database. `writeState`
   * diffs against it, so it assumes that this object is the only writer of the table's state
   * (one db-config per database); any failed transaction clears it.
   */
  private async loadState(table: string): Promise<CachedState> {
    return this.known(table) ?? this.queryState(table);
  }

  private async queryState(table: string): Promise<CachedState> {
    await this.claim(table);
    await this.ensureMeta();
    const state = await this.db.step(table, async (): Promise<CachedState> => {
      const offsets: Record<string, number> = {};
      const exists = await this.exec.all(sql.tableExistsSql(this.d, table + '_offsets'));
      if (exists.length)
        for (const r of await this.exec.all(sql.selectOffsetsSql(this.d, table)))
          setOffset(offsets, String(r.stream), Number(r.offset));
      const meta = await this.exec.all(sql.selectMetaSql(this.d, table));
      const m = meta[0];
      return {
        offsets,
        fingerprint: m && m.fingerprint != null ? String(m.fingerprint) : null,
        watermark: m && m.watermark != null ? Number(m.watermark) : null,
      };
    });
    this.pending.set(table, state);
    return state;
  }

  /** The state tables, created when missing (where DDL commits, only then: reading must not commit). */
  private async ensureStateTables(): Promise<void> {
    if (this.stateEnsured) return;
    const missing =
      !this.d.ddlCommits ||
      (await this.db.step(null, () => this.exec.all(sql.tableExistsSql(this.d, stateSql.STATE_OFFSETS_TABLE))))
        .length === 0;
    if (missing)
      await this.ddl(
        stateSql.STATE_TABLE,
        stateSql.createStateTablesSql(this.d).map((s) => ({ sql: s, params: [] })),
      );
    this.stateEnsured = true;
  }

  async readScope(scope: string): Promise<StateScope | null> {
    await this.claim(stateSql.STATE_SCOPE_TABLE);
    await this.ensureMeta();
    await this.ensureStateTables();
    return this.db.step(stateSql.STATE_SCOPE_TABLE, async () => {
      const rows = await this.exec.all(stateSql.selectScopeSql(this.d, scope));
      const offsets = stateSql.offsetsFromRows(await this.exec.all(stateSql.selectScopeOffsetsSql(this.d, scope)));
      this.pendingLevels.set(scope, offsets);
      const r = rows[0];
      if (r === undefined) return null;
      return {
        format: Number(r.format),
        fingerprint: String(r.fingerprint),
        offsets,
        watermark: r.watermark == null ? null : Number(r.watermark),
        cutoff: r.cutoff == null ? null : Number(r.cutoff),
      };
    });
  }

  async resetScope(scope: string): Promise<void> {
    await this.claim(stateSql.STATE_SCOPE_TABLE);
    await this.ensureStateTables();
    await this.db.step(stateSql.STATE_TABLE, async () => {
      for (const s of stateSql.deleteScopeSql(this.d, scope)) await this.exec.run(s);
    });
    this.pendingLevels.set(scope, {});
  }

  /**
   * One commit's state: first what retention forgot, then the changed entries (an entry saved
   * after the compaction survives it), then the level's changed streams and the scope's row.
   */
  async writeScope(scope: string, level: StateScope, changes: StateChanges): Promise<void> {
    await this.claim(stateSql.STATE_SCOPE_TABLE);
    const table = stateSql.STATE_TABLE;
    let before = this.pendingLevels.has(scope) ? this.pendingLevels.get(scope) : this.levels.get(scope);
    if (before === undefined)
      before = stateSql.offsetsFromRows(
        await this.db.step(table, () => this.exec.all(stateSql.selectScopeOffsetsSql(this.d, scope))),
      );
    const known = before;
    await this.db.step(table, async () => {
      if (changes.forget !== null)
        for (const op of changes.forget.ops)
          await this.later(stateSql.forgetSql(this.d, op, changes.forget.cutoff), table);
      for (const [op, entries] of changes.entries) {
        const upserts: [string, string, number | null][] = [];
        const deletes: string[] = [];
        for (const [k, e] of entries) {
          // NB: MariaDB's primary key holds at most MARIADB_MAX_KEY bytes of key text (ASCII).
          if (this.d.kind === 'mariadb' && k.length > stateSql.MARIADB_MAX_KEY)
            throw new SinkDataError(
              table,
              `operator state of ${op}: a group key's stored form has ${k.length} characters, more than MariaDB's key limit of ${stateSql.MARIADB_MAX_KEY} (shorten the group key)`,
            );
          if (e === null) deletes.push(k);
          else upserts.push([k, e.v, e.t]);
        }
        if (deletes.length > 0)
          for (const s of stateSql.deleteEntriesSql(this.d, op, deletes)) await this.later(s, table);
        if (upserts.length > 0)
          for (const s of stateSql.upsertEntriesSql(this.d, op, upserts)) await this.later(s, table);
      }
      // A level never loses streams (the offsets only rise): nothing is removed.
      const { changed } = offsetChanges(known, level);
      for (const s of stateSql.upsertScopeOffsetsSql(this.d, scope, changed)) await this.later(s, table);
      for (const s of stateSql.upsertScopeSql(
        this.d,
        scope,
        level.format,
        level.fingerprint,
        level.watermark,
        level.cutoff,
      ))
        await this.later(s, table);
    });
    // A level that comes with its delta is frozen (StateScope.delta): kept as it is, it is the next
    // commit's delta base.
    this.pendingLevels.set(scope, level.delta !== undefined ? level.offsets : copyOffsets(level.offsets));
  }

  async writeStateHint(scope: string, hint: string): Promise<void> {
    // Only a cache, written in a commit's transaction: a hint one statement cannot carry (MariaDB's
    // max_allowed_packet, estimated as sql-dialect.ts bounds statements) is left out, never failing it.
    if (3 * hint.length + 9 > this.d.maxStatementBytes) return;
    await this.claim(stateSql.STATE_SCOPE_TABLE);
    await this.ensureStateTables();
    const table = stateSql.STATE_TABLE;
    await this.db.step(table, async () => {
      for (const s of stateSql.upsertEntriesSql(this.d, stateSql.hintOp(scope), [[stateSql.HINT_KEY, hint, null]]))
        await this.later(s, table);
    });
  }

  async writeState(spec: TableSpec, state: SinkState): Promise<void> {
    const table = spec.name;
    await this.claim(table);
    const before = await this.loadState(table);
    const { changed, removed } = offsetChanges(before.offsets, state);
    const metaChanged = state.fingerprint !== before.fingerprint || state.watermark !== before.watermark;
    await this.db.step(table, async () => {
      const both = metaChanged ? sql.upsertStateSql(this.d, table, changed, state.fingerprint, state.watermark) : null;
      if (both !== null) await this.later(both, table);
      else for (const s of sql.upsertOffsetsStatements(this.d, table, changed)) await this.later(s, table);
      for (const part of chunks(removed, sql.chunkSizes(removed.length, 1, this.d)))
        await this.later(sql.deleteOffsetsSql(this.d, table, part), table);
      if (metaChanged && both === null)
        await this.later(sql.upsertMetaSql(this.d, table, state.fingerprint, state.watermark), table);
    });
    this.pending.set(table, {
      // A snapshot that comes with its delta is frozen (SinkState.delta): kept as it is, it is the
      // next commit's delta base.
      offsets: state.delta !== undefined ? state.offsets : copyOffsets(state.offsets),
      fingerprint: state.fingerprint,
      watermark: state.watermark,
    });
  }

  async apply(
    spec: TableSpec,
    changes: Batch,
    report = true,
    options: ApplyOptions = {},
  ): Promise<readonly RowChange[]> {
    const t = compileTable(spec);
    const plan = planWrites(t, changes);
    await this.claim(spec.name);
    this.rowsWritten ??= spec.name;
    return this.db.step(spec.name, () =>
      plan.mode === 'multiset'
        ? this.applyMultiset(t, plan, report)
        : this.applyKeyed(t, plan, report, options.replaceStored === true),
    );
  }

  private async applyMultiset(t: CompiledTable, plan: MultisetPlan, report: boolean): Promise<RowChange[]> {
    const table = t.spec.name;
    const names = t.written.map((c) => c.name);
    const bind = await this.binderFor(table, names);
    // NB: the plan's cells are arrays of its own (planWrites: table.cells makes one per record), and
    // an insert's cells are read no more once bound (its reported row is made before): bound in place.
    const bindInPlace = await this.binderFor(table, names, true);
    const out: RowChange[] = [];
    // Deletes first: a batch never needs a row it deletes, and the table stays smaller for the lookups.
    if (plan.deletes.length) {
      const deleted = new Array<number>(plan.deletes.length).fill(0);
      if (this.d.batchedMultisetDelete) {
        const types = await this.columnTypesOf(table);
        const byNulls = groupBy(
          plan.deletes.map((r, i) => ({ r, i })),
          ({ r }) => r.cells.map((c) => (c === null ? '0' : '1')).join(''),
        );
        for (const group of byNulls) {
          for (const part of chunks(group, sql.chunkSizes(group.length, names.length + 2, this.d))) {
            const rows = await this.exec.all(
              sql.deleteManyMatchingSql(
                this.d,
                table,
                names,
                types,
                part.map(({ r }) => r),
              ),
            );
            for (const row of rows) deleted[part[Number(row['#'])].i] = Number(row.n);
          }
        }
      } else {
        for (let i = 0; i < plan.deletes.length; i++) {
          const r = plan.deletes[i];
          deleted[i] = await this.exec.run(
            sql.deleteOneMatchingSql(this.d, table, names, bind(r.cells), r.count, await this.columnTypesOf(table)),
          );
        }
      }
      if (report) {
        plan.deletes.forEach((r, i) => {
          const row = t.rowObject(r.cells);
          for (let k = 0; k < deleted[i]; k++) out.push({ op: 'delete', row });
        });
      }
    }
    if (plan.inserts.length) {
      const rows: (readonly SqlValue[])[] = [];
      for (const r of plan.inserts) {
        const row = report ? t.rowObject(r.cells) : null;
        const cells = bindInPlace(r.cells);
        for (let k = 0; k < r.count; k++) {
          rows.push(cells);
          if (row !== null) out.push({ op: 'insert', row });
        }
      }
      const types = await this.columnTypesOf(table);
      for (const s of sql.insertStatements(this.d, table, names, types, rows)) await this.later(s, table);
    }
    return out;
  }

  private async applyKeyed(
    t: CompiledTable,
    plan: KeyedPlan,
    report: boolean,
    replaceStored: boolean,
  ): Promise<RowChange[]> {
    if (plan.entries.length === 0) return [];
    const table = t.spec.name;
    const names = t.written.map((c) => c.name);
    const keyNames = t.keyPositions.map((i) => names[i]);
    const types = await this.columnTypesOf(table);
    const bind = await this.binderFor(table, names);
    const bindKey = await this.binderFor(table, keyNames);
    // The rows now stored for the batch's keys: decides insert vs update, and gives `previous`.
    // Without a report, only the keys the batch gives a row without retracting one: the view adds
    // a row for the key, so the table must hold none (see duplicateKey).
    const mustBeNew = (e: KeyedEntry): e is KeyedEntry & { next: readonly SqlValue[] } =>
      !replaceStored && e.next !== null && e.retracted === null;
    const existing = new Array<Record<string, SqlValue> | undefined>(plan.entries.length);
    const lookup: number[] = [];
    plan.entries.forEach((e, i) => {
      if (report || mustBeNew(e)) lookup.push(i);
    });
    const keys = lookup.map((i) => bindKey(plan.entries[i].key));
    for (const { statement, first } of sql.selectByKeysStatements(this.d, table, names, keyNames, types, keys)) {
      for (const r of await this.exec.all(statement)) {
        const row: Record<string, SqlValue> = {};
        for (const n of names) row[n] = fromDriverValue(r[n]);
        existing[lookup[first + Number(r['#'])]] = row;
      }
    }
    plan.entries.forEach((e, i) => {
      const stored = existing[i];
      if (mustBeNew(e) && stored !== undefined) throw duplicateKey(t, e.key, stored, e.next);
    });
    const out: RowChange[] = [];
    const upserts: (readonly SqlValue[])[] = [];
    const deletes: (readonly SqlValue[])[] = [];
    plan.entries.forEach((e, i) => {
      const stored = existing[i];
      // The retracted record is what the view says the row was: same value types as `row`.
      const previous = e.retracted && stored ? t.rowObject(e.retracted) : stored;
      if (e.next) {
        upserts.push(bind(e.next));
        if (!report) return;
        const row = t.rowObject(e.next);
        out.push(previous ? { op: 'update', row, previous } : { op: 'insert', row });
      } else if (previous || !report) {
        deletes.push(bindKey(e.key));
        if (previous) out.push({ op: 'delete', row: previous });
      }
    });
    for (const part of chunks(deletes, sql.chunkSizes(deletes.length, keyNames.length, this.d))) {
      await this.later(sql.deleteByKeysSql(this.d, table, keyNames, types, part), table);
    }
    for (const s of sql.insertStatements(this.d, table, names, types, upserts, keyNames)) await this.later(s, table);
    return out;
  }

  /** Binds the cells of the given columns of `table` as the dialect needs (see sql.rowBinder). */
  private async binderFor(
    table: string,
    columns: readonly string[],
    inPlace = false,
  ): Promise<(cells: readonly SqlValue[]) => readonly SqlValue[]> {
    if (!this.d.bindsByColumnType) return sql.rowBinder(this.d, [], inPlace);
    const types = await this.columnTypesOf(table);
    return sql.rowBinder(
      this.d,
      columns.map((c) => types.get(c)),
      inPlace,
    );
  }

  private async columnTypesOf(table: string): Promise<ReadonlyMap<string, string>> {
    if (!this.d.castsValues && !this.d.bindsByColumnType) return new Map();
    let types = this.types.get(table);
    if (!types) {
      types = new Map();
      for (const r of await this.exec.all(sql.columnTypesSql(this.d, table))) types.set(String(r.name), String(r.type));
      if (types.size === 0) throw new Error(`table does not exist (ensureTable must run first)`);
      this.types.set(table, types);
    }
    return types;
  }
}

/** A driver error's text; Node reports a refused connection to several addresses as an AggregateError without message. */
function describeError(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  if (err.message) return err.message;
  const inner = (err as { errors?: unknown }).errors;
  const parts = Array.isArray(inner) ? inner.map((x) => errorText(x)) : [];
  const code = (err as { code?: unknown }).code;
  return `could not connect: ${parts.length ? parts.join('; ') : String(code ?? err.name)}`;
}

/**
 * The offsets rows to write for `state` (a table's, or a scope's level) where `stored` is stored:
 * the streams whose offset changed and the streams gone. When the state says it is `stored` itself
 * with some streams raised (SinkState.delta, StateScope.delta: the same object), just those; else
 * every stream is compared.
 */
function offsetChanges(
  stored: OffsetMap,
  state: Pick<SinkState, 'offsets' | 'delta'>,
): { changed: (readonly [string, number])[]; removed: string[] } {
  const delta = state.delta;
  // NB: `stored` is then the frozen snapshot this database wrote last (kept by identity, never a
  // copy read back), and the tracker lists every stream raised after it (OffsetTracker.offsetsAfter).
  if (delta !== undefined && delta.base !== null && delta.base === stored)
    return { changed: [...delta.raised], removed: [] };
  return offsetDiff(stored, state.offsets);
}

function* chunks<T>(items: readonly T[], sizes: readonly number[]): Generator<T[]> {
  let at = 0;
  for (const n of sizes) {
    yield items.slice(at, at + n);
    at += n;
  }
}

function groupBy<T>(items: readonly T[], key: (item: T) => string): T[][] {
  const m = new Map<string, T[]>();
  for (const it of items) {
    const k = key(it);
    const g = m.get(k);
    if (g) g.push(it);
    else m.set(k, [it]);
  }
  return [...m.values()];
}
