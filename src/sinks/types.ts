/**
 * The sink interface: a database (SQLite, PostgreSQL, MariaDB / MySQL) that applies consolidated row changes of
 * one or more tables together with their offset maps in one transaction.
 */
import type { Batch, StateEntry, StateStore, Value } from '../engine/types';
import type { OffsetDelta, OffsetMap } from '../core/offset-map';

/** What a column cell may hold once converted for the driver. */
export type SqlValue = null | number | string | boolean | bigint;

export interface ColumnSpec {
  /** Validated identifier, always quoted in SQL. */
  readonly name: string;
  /** SQL type text (e.g. `text not null`, `bigint`, `timestamptz`), validated against an allow-list pattern. */
  readonly type: string;
  /** Where the cell comes from: a property path of the record (`payload.order`), or a function of the record. */
  readonly value: { readonly path: string } | { readonly fn: (record: Value) => unknown };
  /** Part of the table's non-unique index `<table>_index`. */
  readonly index?: boolean;
  /** Part of the primary key (keyed mode). */
  readonly key?: boolean;
  /** Created but never written nor matched (e.g. an auto-increment id). */
  readonly exclude?: boolean;
}

export interface TableSpec {
  /** Validated identifier, always quoted in SQL. */
  readonly name: string;
  /**
   * `multiset`: +n inserts n rows, −n deletes n rows matching all non-excluded columns (NULL-safe).
   * `keyed`: the key columns are a primary key; a retraction and an insertion of one key in one
   * batch become one update; there is never more than one row per key.
   */
  readonly mode: 'multiset' | 'keyed';
  readonly columns: readonly ColumnSpec[];
}

/** One committed row change, as db-sink sends it downstream after the commit. */
export interface RowChange {
  readonly op: 'insert' | 'delete' | 'update';
  readonly row: Readonly<Record<string, SqlValue>>;
  /** For `update`: the row before. */
  readonly previous?: Readonly<Record<string, SqlValue>>;
}

/** What a sink remembers beside its rows, written in the same transaction as the rows. */
export interface SinkState {
  /** Offsets of all events whose effects are in the table. */
  readonly offsets: OffsetMap;
  /** Fingerprint of the definition of everything upstream of the sink (logic-change detection). */
  readonly fingerprint: string | null;
  /** Greatest event timestamp (µs) processed, for retention at restart. */
  readonly watermark: number | null;
  /**
   * Given only with frozen `offsets` that never change (the dataflow's commit offsets): how they
   * came about from an earlier snapshot. A sink may keep `offsets` itself instead of a copy and,
   * when the table's stored offsets are `delta.base` itself, write only `delta.raised`.
   */
  readonly delta?: OffsetDelta;
}

/** Asks for the lease of a dataflow in one database (lease-sql.ts). */
export interface LeaseRequest {
  /** The dataflow's lease name (by default the dd-dataflow node's id). */
  readonly name: string;
  /** The instance asking, as others see it in `standby (held by …)`. */
  readonly holder: string;
  /** How long the lease lasts without renewal, ms (by the database's clock). */
  readonly leaseMs: number;
  /** Only look who holds it, never take it (an instance over its fair share). */
  readonly peek?: boolean;
}

/**
 * An instance's heartbeat in a pool (issue 14, point 3): the instances running the same set of
 * leased dataflows on one database, so each knows how many are alive (lease-sql.ts).
 */
export interface InstanceHeartbeat {
  /** The pool's name (the same set of dataflows gives the same name). */
  readonly pool: string;
  readonly instance: string;
  /** How long the heartbeat counts without renewal, ms (the lease time). */
  readonly leaseMs: number;
}

/** A lease held: its epoch is the fencing token every commit transaction checks. */
export interface LeaseToken extends LeaseRequest {
  readonly epoch: number;
}

export type LeaseAnswer =
  | { readonly held: true; readonly token: LeaseToken }
  /** Held by someone else (or just taken by someone else: holder null only if it was released meanwhile). */
  | { readonly held: false; readonly holder: string | null; readonly epoch: number; readonly remainingMs: number };

/** How `apply` treats a keyed table's stored rows. */
export interface ApplyOptions {
  /**
   * A new row for a key whose stored row the batch does not retract: false (default) — the view
   * then holds two rows for the key, a SinkDataError naming both, whatever the batching; true —
   * the stored row is replaced (upsert). A dataflow with a retention window passes true: the
   * stored row may derive from events it has forgotten, which the view no longer holds.
   */
  readonly replaceStored?: boolean;
}

export interface SinkTransaction {
  /** Creates the table, its `<table>_offsets` table, its index and the meta table if missing. */
  ensureTable(spec: TableSpec): Promise<void>;
  /** Drops the table and its offsets/meta entries (logic change, forced rebuild). */
  dropTable(spec: TableSpec): Promise<void>;
  readState(spec: TableSpec): Promise<SinkState>;
  /** Whether the table exists (a shadow table left by an interrupted rebuild). */
  hasTable(spec: TableSpec): Promise<boolean>;
  /**
   * Replaces the table by `shadow` (built aside by a rebuild, see identifiers.asideTableName) with
   * the shadow's offsets and meta, atomically for readers: they see the old table or the new one.
   */
  swapIn(spec: TableSpec, shadow: TableSpec): Promise<void>;
  /**
   * Creates `shadow` (missing: see identifiers.asideTableName) as a copy of the table with its
   * offsets and meta, for a table brought forward aside; later writes to `shadow` and swapIn
   * replace the table by it. Where DDL commits (MariaDB), call it before any row is written.
   */
  copyTable(spec: TableSpec, shadow: TableSpec): Promise<void>;
  /**
   * Applies a batch of records (equal records may repeat: their diffs add up); returns the row changes actually made, or nothing
   * when `report` is false (no one listens: the rows are not built, and a keyed table's old rows
   * are not read — upserts and deletes by key need no lookup).
   */
  apply(spec: TableSpec, changes: Batch, report?: boolean, options?: ApplyOptions): Promise<readonly RowChange[]>;
  writeState(spec: TableSpec, state: SinkState): Promise<void>;
  /** Takes a dataflow's lease when it is free or expired (creating the lease table if missing). */
  acquireLease(request: LeaseRequest): Promise<LeaseAnswer>;
  /**
   * The fencing check (issue 14), the first statement of a commit transaction: extends the lease
   * when `token` still holds it, else throws LeaseLostError (lease-sql.ts). Also the renewal.
   */
  fence(token: LeaseToken): Promise<void>;
  /** Gives the lease up (nothing when the token no longer holds it). */
  releaseLease(token: LeaseToken): Promise<void>;
  /** Writes the instance's heartbeat (creating the table if missing); returns how many instances of its pool are alive. */
  announceInstance(heartbeat: InstanceHeartbeat): Promise<number>;
  /** Deletes the instance's heartbeat (a clean stop: the others count one less at once). */
  leaveInstance(pool: string, instance: string): Promise<void>;
  /**
   * Durable operator state (docs/durable-state.md): the stored scope of a dataflow, null when it
   * has none (creates the state tables when missing). Absent where the database keeps no state.
   */
  readScope?(scope: string): Promise<StateScope | null>;
  /** Deletes a scope's entries, level and row (the state is rebuilt from the events). */
  resetScope?(scope: string): Promise<void>;
  /** Writes a commit's state changes and the scope's level, watermark and cutoff. */
  writeScope?(scope: string, level: StateScope, changes: StateChanges): Promise<void>;
  /**
   * Replaces the scope's warm-up hint (state-sql.ts, `hintOp`): which units to read back after a
   * restart. Only a hint: a stale or missing one changes no result.
   */
  writeStateHint?(scope: string, hint: string): Promise<void>;
}

/** A dataflow's stored operator state: its format, what it was computed by, and its level. */
export interface StateScope {
  readonly format: number;
  /** Fingerprint of the operators that computed it (the dataflow's definition without its sinks). */
  readonly fingerprint: string;
  /** The offsets the state reflects (its level). */
  readonly offsets: OffsetMap;
  readonly watermark: number | null;
  /** The retention cutoff the engine had compacted it to (`StepState.cutoff`). */
  readonly cutoff: number | null;
  /**
   * As SinkState.delta, given to `writeScope` only with frozen `offsets` that never change (the
   * dataflow's commit offsets): when the scope's level is `delta.base` itself, only `delta.raised`
   * is written.
   */
  readonly delta?: OffsetDelta;
}

/** The state entries a commit writes: per operator (`scope/state id`), the new texts or null (deleted). */
export interface StateChanges {
  readonly entries: ReadonlyMap<string, ReadonlyMap<string, StateEntry | null>>;
  /** Delete the entries of these operators with a time below `cutoff` (before writing `entries`). */
  readonly forget: { readonly cutoff: number; readonly ops: readonly string[] } | null;
}

/** Reads a scope's committed entries outside the commit transactions (StateStore); `close` when done. */
export interface StateReader extends StateStore {
  close(): Promise<void>;
}

/** One db-config: a SQLite file, a PostgreSQL pool or a MariaDB / MySQL connection. */
export interface SinkDatabase {
  readonly kind: 'sqlite' | 'postgres' | 'mariadb';
  /** For logs and status: file name or host/database, never a password. */
  readonly label: string;
  /** Runs `fn` in one transaction: commit when it resolves, roll back when it throws. Serialised per database. */
  transaction<T>(fn: (tx: SinkTransaction) => Promise<T>): Promise<T>;
  /**
   * Durable operator state: a reader of committed entries on a connection of its own (ops are
   * `scope/state id`), or a reason why this database cannot hold state (then the dataflow keeps
   * its state in memory). Absent: no durable state.
   */
  stateReader?(): StateReader | string;
  close(): Promise<void>;
}
