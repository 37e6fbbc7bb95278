/**
 * The SQL of durable operator state (docs/durable-state.md, "Layout"): three tables beside
 * `deltaflow_meta` — the entries (`deltaflow_state`: op, k, v, t), each dataflow's scope (format,
 * fingerprint, watermark, cutoff) and the scope's level (offsets per stream). Table and column
 * names are constants, quoted; every value is a parameter; one statement per query.
 */
import { setOffset, type OffsetMap } from '../core/offset-map';
import {
  chunkSizes,
  insertStatements,
  lockingRead,
  Params,
  timestampValue,
  type Dialect,
  type Statement,
} from './sql-dialect';

export const STATE_TABLE = 'deltaflow_state';
export const STATE_SCOPE_TABLE = 'deltaflow_state_scope';
export const STATE_OFFSETS_TABLE = 'deltaflow_state_offsets';

/**
 * Longest key text on MariaDB: InnoDB indexes at most 3,072 bytes, the primary key holds `op`
 * (VARCHAR(160)) and `k` (ASCII, one byte per character).
 */
export const MARIADB_MAX_KEY = 2900;

const ENTRY_TYPES: ReadonlyMap<string, string> = new Map([
  ['op', 'text'],
  ['k', 'text'],
  ['v', 'text'],
  ['t', 'bigint'],
]);
const OFFSET_TYPES: ReadonlyMap<string, string> = new Map([
  ['scope', 'text'],
  ['stream', 'text'],
  ['offset', 'bigint'],
]);

/**
 * CREATE TABLE IF NOT EXISTS for the three tables. Keys compare byte-wise (docs/durable-state.md):
 * SQLite's BINARY collation by default, `COLLATE "C"` on PostgreSQL, `ascii_bin` on MariaDB.
 */
export function createStateTablesSql(d: Dialect): string[] {
  const q = d.quote;
  const maria = d.kind === 'mariadb';
  const key =
    d.kind === 'postgres'
      ? 'text COLLATE "C"'
      : maria
        ? `VARCHAR(${MARIADB_MAX_KEY}) CHARACTER SET ascii COLLATE ascii_bin`
        : 'text';
  const name = maria
    ? 'VARCHAR(160) CHARACTER SET ascii COLLATE ascii_bin'
    : d.kind === 'postgres'
      ? 'text COLLATE "C"'
      : 'text';
  const scope = maria ? 'VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin' : 'text';
  const stream = maria ? 'VARCHAR(255)' : 'text';
  const long = maria ? 'LONGTEXT' : 'text';
  return [
    `CREATE TABLE IF NOT EXISTS ${q(STATE_TABLE)} (${q('op')} ${name} NOT NULL, ${q('k')} ${key} NOT NULL, ${q('v')} ${long} NOT NULL, ${q('t')} bigint, PRIMARY KEY (${q('op')}, ${q('k')}))${d.tableOptions}`,
    `CREATE TABLE IF NOT EXISTS ${q(STATE_SCOPE_TABLE)} (${q('scope')} ${scope} NOT NULL PRIMARY KEY, ${q('format')} integer NOT NULL, ${q('fingerprint')} ${long} NOT NULL, ${q('watermark')} bigint, ${q('cutoff')} bigint, ${q('updated_at')} ${d.timestampType})${d.tableOptions}`,
    `CREATE TABLE IF NOT EXISTS ${q(STATE_OFFSETS_TABLE)} (${q('scope')} ${scope} NOT NULL, ${q('stream')} ${stream} NOT NULL, ${q('offset')} bigint NOT NULL, PRIMARY KEY (${q('scope')}, ${q('stream')}))${d.tableOptions}`,
  ];
}

export function selectScopeSql(d: Dialect, scope: string): Statement {
  const q = d.quote;
  const p = new Params(d);
  return {
    sql: `SELECT ${q('format')}, ${q('fingerprint')}, ${q('watermark')}, ${q('cutoff')} FROM ${q(STATE_SCOPE_TABLE)} WHERE ${q('scope')} = ${p.add(scope)}${lockingRead(d)}`,
    params: p.values,
  };
}

export function selectScopeOffsetsSql(d: Dialect, scope: string): Statement {
  const q = d.quote;
  const p = new Params(d);
  return {
    sql: `SELECT ${q('stream')}, ${q('offset')} FROM ${q(STATE_OFFSETS_TABLE)} WHERE ${q('scope')} = ${p.add(scope)}${lockingRead(d)}`,
    params: p.values,
  };
}

export function upsertScopeSql(
  d: Dialect,
  scope: string,
  format: number,
  fingerprint: string,
  watermark: number | null,
  cutoff: number | null,
): Statement[] {
  return insertStatements(
    d,
    STATE_SCOPE_TABLE,
    ['scope', 'format', 'fingerprint', 'watermark', 'cutoff', 'updated_at'],
    new Map(),
    [[scope, format, fingerprint, watermark, cutoff, timestampValue(d, new Date())]],
    ['scope'],
  );
}

export function upsertScopeOffsetsSql(
  d: Dialect,
  scope: string,
  entries: readonly (readonly [string, number])[],
): Statement[] {
  if (entries.length === 0) return [];
  return insertStatements(
    d,
    STATE_OFFSETS_TABLE,
    ['scope', 'stream', 'offset'],
    OFFSET_TYPES,
    entries.map(([s, o]) => [scope, s, o]),
    ['scope', 'stream'],
  );
}

/** Deletes a scope: its entries (ops `scope/…`), its level and its row. */
export function deleteScopeSql(d: Dialect, scope: string): Statement[] {
  const q = d.quote;
  const [from, to] = opRange(scope);
  const a = new Params(d);
  const b = new Params(d);
  const c = new Params(d);
  return [
    {
      sql: `DELETE FROM ${q(STATE_TABLE)} WHERE ${q('op')} >= ${a.add(from)} AND ${q('op')} < ${a.add(to)}`,
      params: a.values,
    },
    { sql: `DELETE FROM ${q(STATE_OFFSETS_TABLE)} WHERE ${q('scope')} = ${b.add(scope)}`, params: b.values },
    { sql: `DELETE FROM ${q(STATE_SCOPE_TABLE)} WHERE ${q('scope')} = ${c.add(scope)}`, params: c.values },
  ];
}

/** The `op` texts of a scope's operators: `scope/…`, i.e. from `scope/` up to `scope0` ('0' follows '/'). */
export function opRange(scope: string): [string, string] {
  return [`${scope}/`, `${scope}0`];
}

/**
 * The warm-up hint of a scope (docs/durable-state.md, "Warm-up after a restart"): one row of the
 * state table at `op` = `scope/` (no state id is empty) and `k` = '', `t` NULL (no forget deletes
 * it), deleted with the scope.
 */
export function hintOp(scope: string): string {
  return `${scope}/`;
}
export const HINT_KEY = '';

/** The entries of one operator with a time below `cutoff` (retention forgot them). */
export function forgetSql(d: Dialect, op: string, cutoff: number): Statement {
  const q = d.quote;
  const p = new Params(d);
  return {
    sql: `DELETE FROM ${q(STATE_TABLE)} WHERE ${q('op')} = ${p.add(op)} AND ${q('t')} < ${p.add(cutoff)}`,
    params: p.values,
  };
}

export function upsertEntriesSql(
  d: Dialect,
  op: string,
  entries: readonly (readonly [string, string, number | null])[],
): Statement[] {
  return insertStatements(
    d,
    STATE_TABLE,
    ['op', 'k', 'v', 't'],
    ENTRY_TYPES,
    entries.map(([k, v, t]) => [op, k, v, t]),
    ['op', 'k'],
  );
}

export function deleteEntriesSql(d: Dialect, op: string, keys: readonly string[]): Statement[] {
  return entriesByKeySql(d, op, keys, `DELETE FROM ${d.quote(STATE_TABLE)}`);
}

/** The stored entries of the given keys of one operator, in statements of at most 500 keys. */
export function selectEntriesSql(d: Dialect, op: string, keys: readonly string[]): Statement[] {
  const q = d.quote;
  return entriesByKeySql(d, op, keys, `SELECT ${q('k')}, ${q('v')} FROM ${q(STATE_TABLE)}`);
}

/** `head` (a DELETE or SELECT of the state table) for the given keys of one operator, in chunks of bound keys. */
function entriesByKeySql(d: Dialect, op: string, keys: readonly string[], head: string): Statement[] {
  const q = d.quote;
  const out: Statement[] = [];
  let at = 0;
  for (const n of chunkSizes(keys.length, 1, d, 1)) {
    const p = new Params(d);
    const o = p.add(op);
    const marks = keys.slice(at, at + n).map((k) => p.add(k));
    at += n;
    out.push({ sql: `${head} WHERE ${q('op')} = ${o} AND ${q('k')} IN (${marks.join(', ')})`, params: p.values });
  }
  return out;
}

/** Entries with from ≤ k < to in key order; `limit` 1 with `last` for a seek. */
export function selectRangeSql(
  d: Dialect,
  op: string,
  from: string,
  to: string,
  seek: 'first' | 'last' | null,
): Statement {
  const q = d.quote;
  const p = new Params(d);
  const order = seek === 'last' ? 'DESC' : 'ASC';
  return {
    sql: `SELECT ${q('k')}, ${q('v')} FROM ${q(STATE_TABLE)} WHERE ${q('op')} = ${p.add(op)} AND ${q('k')} >= ${p.add(from)} AND ${q('k')} < ${p.add(to)} ORDER BY ${q('k')} ${order}${seek === null ? '' : ' LIMIT 1'}`,
    params: p.values,
  };
}

/** A level as the offsets rows read back. */
export function offsetsFromRows(rows: readonly Record<string, unknown>[]): OffsetMap {
  const out: Record<string, number> = {};
  for (const r of rows) setOffset(out, String(r.stream), Number(r.offset));
  return out;
}
