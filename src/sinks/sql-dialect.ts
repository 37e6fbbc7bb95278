/**
 * SQL text for the databases (SQLite, PostgreSQL, MariaDB / MySQL), parameterised by a small
 * dialect description: identifier quoting, placeholder style, parameter limits, how bound values
 * are prepared, whether parameters need casts (PostgreSQL infers no type for a parameter in a
 * VALUES list that is not an INSERT's). Identifiers are quoted here and nowhere else; every value
 * becomes a parameter.
 */
import type { SqlValue } from './types';
import {
  asideTableName,
  INDEX_SUFFIX,
  META_TABLE,
  OFFSETS_SUFFIX,
  quoteBacktick,
  quoteIdentifier,
  REPLACED_SUFFIX,
} from './identifiers';
import { indexPrefixLength, isLongTextType, mariadbBinder, mariadbColumnType, utcDatetime } from './mariadb-types';
import { comparedAsText } from './sql-types';

export interface Dialect {
  readonly kind: 'sqlite' | 'postgres' | 'mariadb';
  /** Quotes a validated identifier. */
  quote(name: string): string;
  /** Placeholder of the n-th parameter (1-based). */
  placeholder(n: number): string;
  /** Most parameters one statement may carry. */
  readonly maxParams: number;
  /** The type of the meta table's `updated_at` column. */
  readonly timestampType: string;
  /** Multiset deletes of many distinct rows in one statement (needs LATERAL); else one statement per row. */
  readonly batchedMultisetDelete: boolean;
  /** Whether a parameter in a bare VALUES list needs a cast to the column's type. */
  readonly castsValues: boolean;
  /**
   * A placeholder compared with (or selected as) a column of `type`, cast where the dialect needs
   * it: PostgreSQL always (`$1::type`); MariaDB for DECIMAL columns (a number compares with the
   * stored, rounded DECIMAL only after the same conversion the INSERT made); SQLite never.
   */
  castParam(placeholder: string, type: string): string;
  /** Inserts of many rows as one statement with one array parameter per column (`unnest`). */
  readonly arrayInserts: boolean;
  /**
   * DDL commits the open transaction (MariaDB / MySQL): the sink runs no DDL once rows were written
   * in a transaction, and creates a table only when it is missing.
   */
  readonly ddlCommits: boolean;
  /** Values are bound converted to the kind of their column (MariaDB: the columns' types are read). */
  readonly bindsByColumnType: boolean;
  /** Most bytes of text one statement's values may carry (MariaDB: below `max_allowed_packet`). */
  readonly maxStatementBytes: number;
  /** Table options after CREATE TABLE's column list (MariaDB: engine, character set, collation). */
  readonly tableOptions: string;
  /**
   * A batch's rows beyond its full chunks go in ONE statement of any row count (MariaDB: every
   * statement is a round trip, and a new row count costs at most one more, its prepare), instead
   * of one statement per power of two (SQLite, PostgreSQL: few distinct texts, cached).
   */
  readonly remainderInOneStatement: boolean;
}

export const sqliteDialect: Dialect = {
  kind: 'sqlite',
  quote: quoteIdentifier,
  placeholder: () => '?',
  maxParams: 32766,
  timestampType: 'text',
  batchedMultisetDelete: false,
  castsValues: false,
  castParam: (p) => p,
  arrayInserts: false,
  ddlCommits: false,
  bindsByColumnType: false,
  maxStatementBytes: Infinity,
  tableOptions: '',
  remainderInOneStatement: false,
};

export const postgresDialect: Dialect = {
  kind: 'postgres',
  quote: quoteIdentifier,
  placeholder: (n) => `$${n}`,
  maxParams: 65535,
  timestampType: 'timestamptz',
  batchedMultisetDelete: true,
  castsValues: true,
  castParam: (p, type) => `${p}::${type}`,
  arrayInserts: true,
  ddlCommits: false,
  bindsByColumnType: false,
  maxStatementBytes: Infinity,
  tableOptions: '',
  remainderInOneStatement: false,
};

/**
 * MariaDB / MySQL, for a server whose binary collation without trailing-space padding is
 * `collation` (MariaDB `utf8mb4_nopad_bin`, MySQL 8 `utf8mb4_0900_bin`): text compares byte for
 * byte, so `'a'`, `'A'` and `'a '` are three keys, as in SQLite and PostgreSQL. `maxStatementBytes`
 * keeps statements below the server's `max_allowed_packet`.
 */
export function mariadbDialect(collation: string, maxStatementBytes: number): Dialect {
  if (!/^[a-z0-9_]+$/.test(collation)) throw new Error(`invalid collation name ${JSON.stringify(collation)}`);
  return {
    kind: 'mariadb',
    quote: quoteBacktick,
    placeholder: () => '?',
    // The prepared-statement protocol counts parameters in 16 bits.
    maxParams: 65535,
    timestampType: 'DATETIME(6)',
    batchedMultisetDelete: false,
    castsValues: false,
    castParam: (p, type) => {
      // information_schema's COLUMN_TYPE, e.g. `decimal(10,2)` or `decimal(10,2) unsigned`.
      const m = /^decimal\((\d+),(\d+)\)/i.exec(type);
      return m ? `CAST(${p} AS DECIMAL(${m[1]}, ${m[2]}))` : p;
    },
    arrayInserts: false,
    ddlCommits: true,
    bindsByColumnType: true,
    maxStatementBytes,
    tableOptions: ` ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=${collation}`,
    remainderInOneStatement: true,
  };
}

/**
 * How a row's cells are bound: SQLite binds no booleans (stored as 1/0, as SQLite itself does);
 * MariaDB converts values to the kind of their column, given the columns' data types
 * (mariadb-types.ts); PostgreSQL binds them as they are (its casts do the rest). The cells
 * themselves when nothing changes; where something does, a new array — or, `inPlace`, the cells'
 * own array converted (cells that the caller owns and reads no more: no array per row).
 */
export function rowBinder(
  d: Dialect,
  dataTypes: readonly (string | undefined)[],
  inPlace = false,
): (cells: readonly SqlValue[]) => readonly SqlValue[] {
  if (d.kind === 'mariadb') return mariadbBinder(dataTypes, inPlace);
  if (d.kind !== 'sqlite') return (cells) => cells;
  return (cells) => {
    if (!cells.some((v) => typeof v === 'boolean')) return cells;
    const out = inPlace ? (cells as SqlValue[]) : cells.slice();
    for (let i = 0; i < out.length; i++) {
      const v = out[i];
      if (typeof v === 'boolean') out[i] = v ? 1 : 0;
    }
    return out;
  };
}

/** The meta table's `updated_at` value for `date`: ISO-8601, or UTC date-time text where the column is one. */
export function timestampValue(d: Dialect, date: Date): string {
  const iso = date.toISOString();
  return d.kind === 'mariadb' ? utcDatetime(iso) : iso;
}

/** Most rows per multi-row statement; more gains nothing measurable and makes statements huge. */
const MAX_ROWS_PER_STATEMENT = 500;

/** A statement and its parameters. */
/** A bound parameter: a value, or (PostgreSQL array inserts) one column's values. */
export type SqlParam = SqlValue | readonly SqlValue[];

export interface Statement {
  readonly sql: string;
  readonly params: SqlParam[];
}

/**
 * A PostgreSQL array literal (`{"a",NULL,"b \\"c\\""}`, `{1,2}`) for an array parameter: what pg
 * would send for the array, built without its per-element regular expressions and string copies
 * (for a 5,000-row insert, 20,000 elements, pg's encoder took more main-thread time than the
 * engine's steps). Strings are quoted (so `NULL` and `""` stay strings), `\` and `"` escaped;
 * numbers, booleans and bigints are written as their `String` form, as pg does.
 */
export function arrayLiteral(values: readonly SqlValue[]): string {
  let out = '{';
  for (let i = 0; i < values.length; i++) {
    if (i > 0) out += ',';
    const v = values[i];
    if (v === null || v === undefined) out += 'NULL';
    else if (typeof v === 'string') out += '"' + (NEEDS_ESCAPE.test(v) ? v.replace(ESCAPED, '\\$&') : v) + '"';
    else out += String(v);
  }
  return out + '}';
}

const NEEDS_ESCAPE = /[\\"]/;
const ESCAPED = /[\\"]/g;

/** Collects parameters and hands out their placeholders. */
export class Params {
  readonly values: SqlParam[] = [];
  constructor(private readonly d: Dialect) {}
  add(v: SqlParam, cast?: string): string {
    // Array parameters exist only where the dialect takes them (PostgreSQL's unnest statements).
    this.values.push(Array.isArray(v) ? arrayLiteral(v as readonly SqlValue[]) : v);
    const p = this.d.placeholder(this.values.length);
    return cast ? this.d.castParam(p, cast) : p;
  }
}

/**
 * Splits `count` rows into statement sizes: full chunks, then the remainder as powers of two, so
 * that only a few distinct statement texts exist (prepared once, reused) — or, where the dialect
 * says so (`remainderInOneStatement`), as one statement.
 *
 * @example chunkSizes(1234, 4, sqliteDialect) // [500, 500, 128, 64, 32, 8, 2]
 * @example chunkSizes(1234, 4, mariadbDialect('utf8mb4_nopad_bin', 1 << 23)) // [500, 500, 234]
 */
export function chunkSizes(count: number, paramsPerRow: number, d: Dialect, extraParams = 0): number[] {
  const max = Math.max(
    1,
    Math.min(MAX_ROWS_PER_STATEMENT, Math.floor((d.maxParams - extraParams) / Math.max(1, paramsPerRow))),
  );
  const sizes: number[] = [];
  let rest = count;
  while (rest >= max) {
    sizes.push(max);
    rest -= max;
  }
  if (d.remainderInOneStatement) {
    if (rest > 0) sizes.push(rest);
  } else for (let bit = 1 << 30; bit >= 1; bit >>>= 1) if (rest & bit) sizes.push(bit);
  return sizes;
}

const list = (d: Dialect, names: readonly string[]): string => names.map(d.quote).join(', ');
/** The quoted alias `#` of a row's position among a statement's keys (not an identifier users may write). */
const positionAlias = (d: Dialect): string => (d.kind === 'mariadb' ? '`#`' : '"#"');

/** The column definitions a table is created with. */
export interface TableColumns {
  readonly name: string;
  readonly columns: readonly { readonly name: string; readonly type: string }[];
  readonly keys: readonly string[];
  readonly index: readonly string[];
}

export function createTableSql(d: Dialect, t: TableColumns): string[] {
  if (d.kind === 'mariadb') return createMariadbTableSql(d, t);
  const q = d.quote;
  const defs = t.columns.map((c) => `${q(c.name)} ${c.type}`);
  if (t.keys.length) defs.push(`PRIMARY KEY (${list(d, t.keys)})`);
  const out = [`CREATE TABLE IF NOT EXISTS ${q(t.name)} (${defs.join(', ')})`];
  if (t.index.length)
    out.push(`CREATE INDEX IF NOT EXISTS ${q(t.name + INDEX_SUFFIX)} ON ${q(t.name)} (${list(d, t.index)})`);
  // SQLite: the offsets table WITHOUT ROWID, so that a stream's row lives in its key's b-tree
  // alone, not in a rowid table plus the key's index (half the pages written per new stream: a
  // stream per device writes one row per table for each device that appears). Tables made before
  // keep their rowid; both are read and written alike.
  const without = d.kind === 'sqlite' ? ' WITHOUT ROWID' : '';
  out.push(
    `CREATE TABLE IF NOT EXISTS ${q(t.name + OFFSETS_SUFFIX)} (${q('stream')} text PRIMARY KEY, ${q('offset')} bigint NOT NULL)${without}`,
  );
  return out;
}

/**
 * MariaDB / MySQL: the column types mapped (mariadb-types.ts), the index inside CREATE TABLE (MySQL
 * has no CREATE INDEX IF NOT EXISTS), unbounded text columns indexed by a prefix, InnoDB with the
 * binary collation. Stream names of the offsets table: up to 768 characters (one key's limit).
 */
function createMariadbTableSql(d: Dialect, t: TableColumns): string[] {
  const q = d.quote;
  const textKeys = t.columns.filter(
    (c) => t.keys.includes(c.name) && isLongTextType(mariadbColumnType(c.type, 'plain')),
  );
  const types = new Map(
    t.columns.map((c) => [
      c.name,
      mariadbColumnType(
        c.type,
        t.keys.includes(c.name) ? 'key' : t.index.includes(c.name) ? 'index' : 'plain',
        textKeys.length,
      ),
    ]),
  );
  const defs = t.columns.map((c) => `${q(c.name)} ${types.get(c.name)}`);
  if (t.keys.length) defs.push(`PRIMARY KEY (${list(d, t.keys)})`);
  if (t.index.length) {
    const long = t.index.filter((c) => isLongTextType(types.get(c) ?? ''));
    const prefix = indexPrefixLength(long.length);
    const parts = t.index.map((c) => (long.includes(c) ? `${q(c)}(${prefix})` : q(c)));
    defs.push(`INDEX ${q(t.name + INDEX_SUFFIX)} (${parts.join(', ')})`);
  }
  return [
    `CREATE TABLE IF NOT EXISTS ${q(t.name)} (${defs.join(', ')})${d.tableOptions}`,
    `CREATE TABLE IF NOT EXISTS ${q(t.name + OFFSETS_SUFFIX)} (${q('stream')} VARCHAR(768) NOT NULL PRIMARY KEY, ${q('offset')} BIGINT NOT NULL)${d.tableOptions}`,
  ];
}

export function createMetaSql(d: Dialect): string {
  const q = d.quote;
  // MariaDB: a key cannot be unbounded text; table names have at most 63 characters.
  const nameType = d.kind === 'mariadb' ? 'VARCHAR(64)' : 'text';
  const textType = d.kind === 'mariadb' ? 'LONGTEXT' : 'text';
  return `CREATE TABLE IF NOT EXISTS ${q(META_TABLE)} (${q('table_name')} ${nameType} PRIMARY KEY, ${q('fingerprint')} ${textType}, ${q('watermark')} bigint, ${q('updated_at')} ${d.timestampType})${d.tableOptions}`;
}

/** The meta statements of a swap: the table's row goes, the shadow's row becomes the table's. */
function moveMetaSql(d: Dialect, table: string, shadow: string): Statement[] {
  const q = d.quote;
  const del = new Params(d);
  const ren = new Params(d);
  return [
    { sql: `DELETE FROM ${q(META_TABLE)} WHERE ${q('table_name')} = ${del.add(table)}`, params: del.values },
    {
      sql: `UPDATE ${q(META_TABLE)} SET ${q('table_name')} = ${ren.add(table)} WHERE ${q('table_name')} = ${ren.add(shadow)}`,
      params: ren.values,
    },
  ];
}

/**
 * Puts the contents of `shadow` (a rebuild or a copy built aside, with the same columns, key and
 * index as `table`) into `table`, with its offsets and its meta row, as plain DML in the caller's
 * transaction: the table itself stays, with its triggers, grants, indexes and the views on it, and
 * readers see the old rows or the new ones (MVCC; SQLite: WAL). The shadow is not dropped here.
 * NB: DELETE, not TRUNCATE: TRUNCATE commits by itself on MariaDB, and on PostgreSQL it locks
 * readers out until the commit and shows a snapshot taken before it an empty table. The table's row
 * triggers fire for every row deleted and inserted.
 *
 * @example swapContentsSql(sqliteDialect, 'v', 'v__deltaflow_new', ['k', 'n']).map((s) => s.sql)
 * // DELETE FROM "v"; DELETE FROM "v_offsets"; INSERT INTO "v" ("k", "n") SELECT "k", "n" FROM
 * // "v__deltaflow_new"; the same for "v_offsets"; then the meta row moves (moveMetaSql)
 */
export function swapContentsSql(d: Dialect, table: string, shadow: string, columns: readonly string[]): Statement[] {
  const q = d.quote;
  return [
    { sql: `DELETE FROM ${q(table)}`, params: [] },
    { sql: `DELETE FROM ${q(table + OFFSETS_SUFFIX)}`, params: [] },
    ...copyTableSql(d, shadow, table, columns),
    ...moveMetaSql(d, table, shadow),
  ];
}

/**
 * What decides whether a contents swap is possible: one row per column (name, type and
 * nullability, position in the primary key) and per column of the table's own index
 * `<table>_index` (position in it). Equal rows for the table and its shadow mean the same schema.
 * Rows: `kind` ('column' | 'index'), `name`, `detail`, `pos`.
 */
export function tableShapeSql(d: Dialect, table: string): Statement {
  const index = table + INDEX_SUFFIX;
  if (d.kind === 'sqlite')
    return {
      sql:
        `SELECT 'column' AS kind, name, type || CASE WHEN "notnull" THEN ' not null' ELSE '' END AS detail, pk AS pos FROM pragma_table_info(?) ` +
        `UNION ALL SELECT 'index', name, '', seqno FROM pragma_index_info(?)`,
      params: [table, index],
    };
  if (d.kind === 'mariadb')
    return {
      sql:
        "SELECT 'column' AS `kind`, COLUMN_NAME AS `name`, CONCAT(COLUMN_TYPE, ' ', IS_NULLABLE) AS `detail`, 0 AS `pos` " +
        'FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? ' +
        "UNION ALL SELECT IF(INDEX_NAME = 'PRIMARY', 'key', 'index'), COLUMN_NAME, COALESCE(SUB_PART, ''), SEQ_IN_INDEX " +
        "FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND INDEX_NAME IN ('PRIMARY', ?)",
      params: [table, table, index],
    };
  return {
    sql:
      `SELECT 'column' AS kind, a.attname AS name, format_type(a.atttypid, a.atttypmod) || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END AS detail, ` +
      `COALESCE(array_position(i.indkey::int2[], a.attnum), 0) AS pos ` +
      `FROM pg_attribute a LEFT JOIN pg_index i ON i.indrelid = a.attrelid AND i.indisprimary ` +
      `WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped ` +
      `UNION ALL SELECT 'index', a.attname, '', array_position(i.indkey::int2[], a.attnum) ` +
      `FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey) WHERE i.indexrelid = to_regclass($2)`,
    params: [d.quote(table), d.quote(index)],
  };
}

/** PostgreSQL: the views and materialized views that read `table` (they keep DROP TABLE from running). Rows: `view`. */
export function dependentViewsSql(d: Dialect, table: string): Statement {
  return {
    sql:
      `SELECT DISTINCT v.oid::regclass::text AS view FROM pg_depend dep ` +
      `JOIN pg_rewrite r ON r.oid = dep.objid JOIN pg_class v ON v.oid = r.ev_class ` +
      `WHERE dep.classid = 'pg_rewrite'::regclass AND dep.refobjid = to_regclass($1) AND v.oid <> dep.refobjid ORDER BY 1`,
    params: [d.quote(table)],
  };
}

/**
 * Replaces `table` by `shadow` (a rebuild built aside whose schema differs: columns, key or index
 * changed, so its rows cannot go into the table) with its offsets table and its meta row. The table
 * is a new one: triggers, grants and indexes of the old one are gone. SQLite and PostgreSQL: in the
 * caller's transaction, so readers see the old table or the new one; the index keeps the name
 * `<table>_index` (PostgreSQL renames it; SQLite has no ALTER INDEX, so it is made again). SQLite
 * renames with `legacy_alter_table` on, so a view on the table (which it would otherwise check and
 * refuse: "error in view …: no such table") reads the new table. PostgreSQL refuses to drop a table
 * a view reads (see dependentViewsSql). MariaDB: RENAME TABLE swaps all four tables in one atomic
 * statement (DDL commits on its own); the meta row follows in the next transaction, and the
 * replaced tables are dropped.
 */
export function swapTableSql(d: Dialect, table: string, shadow: string, index: readonly string[]): Statement[] {
  const q = d.quote;
  const meta = moveMetaSql(d, table, shadow);
  const plain = (sql: string): Statement => ({ sql, params: [] });
  if (d.kind === 'mariadb') {
    const old = asideTableName(table, REPLACED_SUFFIX);
    return [
      plain(`DROP TABLE IF EXISTS ${q(old)}, ${q(old + OFFSETS_SUFFIX)}`),
      plain(
        `RENAME TABLE ${q(table)} TO ${q(old)}, ${q(table + OFFSETS_SUFFIX)} TO ${q(old + OFFSETS_SUFFIX)}, ` +
          `${q(shadow)} TO ${q(table)}, ${q(shadow + OFFSETS_SUFFIX)} TO ${q(table + OFFSETS_SUFFIX)}`,
      ),
      ...meta,
      plain(`DROP TABLE IF EXISTS ${q(old)}, ${q(old + OFFSETS_SUFFIX)}`),
    ];
  }
  const out = [
    ...(d.kind === 'sqlite' ? [plain('PRAGMA legacy_alter_table = ON')] : []),
    plain(`DROP TABLE IF EXISTS ${q(table)}`),
    plain(`DROP TABLE IF EXISTS ${q(table + OFFSETS_SUFFIX)}`),
    plain(`ALTER TABLE ${q(shadow)} RENAME TO ${q(table)}`),
    plain(`ALTER TABLE ${q(shadow + OFFSETS_SUFFIX)} RENAME TO ${q(table + OFFSETS_SUFFIX)}`),
    ...(d.kind === 'sqlite' ? [plain('PRAGMA legacy_alter_table = OFF')] : []),
  ];
  if (index.length > 0) {
    if (d.kind === 'postgres')
      out.push(plain(`ALTER INDEX ${q(shadow + INDEX_SUFFIX)} RENAME TO ${q(table + INDEX_SUFFIX)}`));
    else {
      out.push(plain(`DROP INDEX IF EXISTS ${q(shadow + INDEX_SUFFIX)}`));
      out.push(plain(`CREATE INDEX ${q(table + INDEX_SUFFIX)} ON ${q(table)} (${list(d, index)})`));
    }
  }
  return [...out, ...meta];
}

/**
 * Copies `table`'s rows and offsets into `shadow` (created empty with the same columns just
 * before): a table brought forward from its own offsets is caught up aside, in the copy, while
 * readers keep seeing the original. Column names are validated identifiers, quoted.
 */
export function copyTableSql(d: Dialect, table: string, shadow: string, columns: readonly string[]): Statement[] {
  const q = d.quote;
  const cols = list(d, columns);
  const offsetCols = list(d, ['stream', 'offset']);
  return [
    { sql: `INSERT INTO ${q(shadow)} (${cols}) SELECT ${cols} FROM ${q(table)}`, params: [] },
    {
      sql: `INSERT INTO ${q(shadow + OFFSETS_SUFFIX)} (${offsetCols}) SELECT ${offsetCols} FROM ${q(table + OFFSETS_SUFFIX)}`,
      params: [],
    },
  ];
}

export function dropTableSql(d: Dialect, table: string): Statement[] {
  const q = d.quote;
  const p = new Params(d);
  return [
    { sql: `DROP TABLE IF EXISTS ${q(table)}`, params: [] },
    { sql: `DROP TABLE IF EXISTS ${q(table + OFFSETS_SUFFIX)}`, params: [] },
    { sql: `DELETE FROM ${q(META_TABLE)} WHERE ${q('table_name')} = ${p.add(table)}`, params: p.values },
  ];
}

/** Multi-row INSERT; with `conflictKeys` an upsert that overwrites the non-key columns. */
/** Texts of multi-row inserts by shape: a statement's text depends on its row count, not its values. */
const insertTexts = new Map<string, string>();

export function insertSql(
  d: Dialect,
  table: string,
  columns: readonly string[],
  rows: readonly (readonly SqlValue[])[],
  conflictKeys?: readonly string[],
): Statement {
  const shape = [d.kind, table, rows.length, conflictKeys?.join('\u0000') ?? '', ...columns].join('\u0000');
  let sql = insertTexts.get(shape);
  if (sql === undefined) {
    const tuples: string[] = [];
    for (let r = 0, n = 1; r < rows.length; r++) {
      const marks: string[] = [];
      for (let c = 0; c < columns.length; c++) marks.push(d.placeholder(n++));
      tuples.push(`(${marks.join(', ')})`);
    }
    sql = `INSERT INTO ${d.quote(table)} (${list(d, columns)}) VALUES ${tuples.join(', ')}`;
    if (conflictKeys) sql += onConflict(d, columns, conflictKeys);
    if (insertTexts.size >= 1000) insertTexts.clear();
    insertTexts.set(shape, sql);
  }
  const width = columns.length;
  const params = new Array<SqlParam>(rows.length * width);
  for (let r = 0; r < rows.length; r++) {
    const row = rows[r] as readonly SqlValue[];
    for (let c = 0; c < width; c++) params[r * width + c] = row[c] as SqlValue;
  }
  return { sql, params };
}

/** Most rows per `unnest` insert: bounds the size of one statement's parameters. */
const MAX_ROWS_PER_ARRAY_INSERT = 20_000;

/**
 * The column types for array parameters (`type[]`), or null when array statements do not apply:
 * SQLite, a type that is unknown, or a type that is itself an array (unnest would flatten it).
 */
function arrayTypes(d: Dialect, columns: readonly string[], types: ReadonlyMap<string, string>): string[] | null {
  if (!d.arrayInserts) return null;
  const out: string[] = [];
  for (const c of columns) {
    const t = types.get(c);
    if (t === undefined || t.endsWith(']')) return null;
    out.push(`${t}[]`);
  }
  return out;
}

/**
 * Statements inserting (or, with conflict keys, upserting) `rows`. PostgreSQL: one statement per
 * up to 20,000 rows, one array parameter per column — a round trip per statement is what a commit
 * waits for, and a multi-row VALUES list holds at most 500 rows. Columns whose type is unknown or
 * itself an array (unnest would flatten it) fall back to VALUES lists.
 */
export function insertStatements(
  d: Dialect,
  table: string,
  columns: readonly string[],
  types: ReadonlyMap<string, string>,
  rows: readonly (readonly SqlValue[])[],
  conflictKeys?: readonly string[],
): Statement[] {
  const casts = arrayTypes(d, columns, types);
  const out: Statement[] = [];
  if (casts !== null) {
    for (let at = 0; at < rows.length; at += MAX_ROWS_PER_ARRAY_INSERT) {
      const part = rows.slice(at, at + MAX_ROWS_PER_ARRAY_INSERT);
      const p = new Params(d);
      const arrays = casts.map((cast, i) =>
        p.add(
          part.map((r) => r[i]),
          cast,
        ),
      );
      let text = `INSERT INTO ${d.quote(table)} (${list(d, columns)}) SELECT * FROM unnest(${arrays.join(', ')})`;
      if (conflictKeys) text += onConflict(d, columns, conflictKeys);
      out.push({ sql: text, params: p.values });
    }
    return out;
  }
  let at = 0;
  for (const n of byteBounded(rows, chunkSizes(rows.length, columns.length, d), d.maxStatementBytes)) {
    out.push(insertSql(d, table, columns, rows.slice(at, at + n), conflictKeys));
    at += n;
  }
  return out;
}

/**
 * The chunk sizes split further where a chunk's values would exceed `maxBytes` (estimated: three
 * bytes per UTF-16 unit of text, nine per other value), halving to powers of two, so that the
 * statement texts stay few. A single row larger than the bound goes alone (the server judges it).
 */
function byteBounded(rows: readonly (readonly SqlValue[])[], sizes: readonly number[], maxBytes: number): number[] {
  if (maxBytes === Infinity) return sizes as number[];
  const out: number[] = [];
  const fit = (at: number, n: number): void => {
    if (n > 1 && estimatedBytes(rows, at, n) > maxBytes) {
      const half = 2 ** Math.floor(Math.log2(n - 1));
      fit(at, half);
      fit(at + half, n - half);
    } else out.push(n);
  };
  let at = 0;
  for (const n of sizes) {
    fit(at, n);
    at += n;
  }
  return out;
}

function estimatedBytes(rows: readonly (readonly SqlValue[])[], at: number, n: number): number {
  let bytes = 0;
  for (let r = at; r < at + n; r++) {
    const row = rows[r] as readonly SqlValue[];
    for (let c = 0; c < row.length; c++) {
      const v = row[c];
      bytes += typeof v === 'string' ? 3 * v.length + 9 : 9;
    }
  }
  return bytes;
}

function onConflict(d: Dialect, columns: readonly string[], conflictKeys: readonly string[]): string {
  const q = d.quote;
  const rest = columns.filter((c) => !conflictKeys.includes(c));
  if (d.kind === 'mariadb') {
    // VALUES(col) is what MariaDB knows (MySQL 8 still takes it, with a deprecation note); a table
    // of key columns only sets a key to itself: an upsert that changes nothing.
    const set = rest.length ? rest : conflictKeys.slice(0, 1);
    return ` ON DUPLICATE KEY UPDATE ${set.map((c) => `${q(c)} = ${rest.length ? `VALUES(${q(c)})` : q(c)}`).join(', ')}`;
  }
  return (
    ` ON CONFLICT (${list(d, conflictKeys)}) DO ` +
    (rest.length ? `UPDATE SET ${rest.map((c) => `${q(c)} = excluded.${q(c)}`).join(', ')}` : 'NOTHING')
  );
}

/** `col = param`, or `col IS NULL` for a NULL value: NULL-safe equality that indexes can serve. */
function matchCell(d: Dialect, column: string, alias: string, value: SqlValue, param: () => string): string {
  return value === null ? `${alias}${d.quote(column)} IS NULL` : `${alias}${d.quote(column)} = ${param()}`;
}

/**
 * Deletes up to `count` rows equal to `cells` (one row). SQLite: addressed by rowid. MariaDB:
 * `DELETE … LIMIT` with the NULL-safe `<=>` for every column, so one statement text serves a
 * table's rows whatever their NULLs (prepared once), and an index on the columns serves it.
 */
export function deleteOneMatchingSql(
  d: Dialect,
  table: string,
  columns: readonly string[],
  cells: readonly SqlValue[],
  count: number,
  types: ReadonlyMap<string, string> = new Map(),
): Statement {
  const q = d.quote;
  const p = new Params(d);
  if (d.kind === 'mariadb') {
    const where = columns.map((c, i) => `${q(c)} <=> ${p.add(cells[i] as SqlValue, types.get(c))}`).join(' AND ');
    return { sql: `DELETE FROM ${q(table)} WHERE ${where} LIMIT ${p.add(count)}`, params: p.values };
  }
  const where = columns.map((c, i) => matchCell(d, c, '', cells[i], () => p.add(cells[i]))).join(' AND ');
  const limit = p.add(count);
  return {
    sql: `DELETE FROM ${q(table)} WHERE rowid IN (SELECT rowid FROM ${q(table)} WHERE ${where} LIMIT ${limit})`,
    params: p.values,
  };
}

/**
 * Deletes up to `count` rows equal to each of `rows` in one statement (PostgreSQL, by ctid through
 * LATERAL). All `rows` must have NULLs in the same columns. Returns `#` (row position) and `n`
 * (rows deleted) for each row that matched something.
 */
export function deleteManyMatchingSql(
  d: Dialect,
  table: string,
  columns: readonly string[],
  types: ReadonlyMap<string, string>,
  rows: readonly CountedCells[],
): Statement {
  const q = d.quote;
  const p = new Params(d);
  const nonNull = columns.flatMap((c, i) => (rows[0].cells[i] === null ? [] : [i]));
  const nulls = columns.filter((_c, i) => rows[0].cells[i] === null);
  const tuples = rows.map(
    (r, j) =>
      `(${[p.add(j, 'integer'), p.add(r.count, 'integer'), ...nonNull.map((i) => p.add(r.cells[i], types.get(columns[i])))].join(', ')})`,
  );
  const vcols = ['i', 'n', ...nonNull.map((i) => `c${i}`)];
  const cond = [
    ...nonNull.map((i) => equalCells(`t.${q(columns[i])}`, `v.c${i}`, types.get(columns[i]))),
    ...nulls.map((c) => `t.${q(c)} IS NULL`),
  ];
  const sql =
    `WITH v (${vcols.join(', ')}) AS (VALUES ${tuples.join(', ')}), ` +
    `doomed AS MATERIALIZED (SELECT v.i, x.ctid FROM v CROSS JOIN LATERAL (SELECT t.ctid FROM ${q(table)} t WHERE ${cond.join(' AND ')} LIMIT v.n) x), ` +
    `gone AS (DELETE FROM ${q(table)} WHERE ctid = ANY (ARRAY(SELECT ctid FROM doomed)) RETURNING 1) ` +
    `SELECT i AS "#", count(*)::integer AS n FROM doomed GROUP BY i`;
  return { sql, params: p.values };
}

/**
 * `column = value` for a column of PostgreSQL type `type`; types without an equality operator
 * (`json`, …: sql-types.ts) are compared by their text form, which is exact here: both sides are
 * the same bound text cast to the column's type.
 */
function equalCells(column: string, value: string, type: string | undefined): string {
  return type !== undefined && comparedAsText(type) ? `${column}::text = ${value}::text` : `${column} = ${value}`;
}

export interface CountedCells {
  readonly cells: readonly SqlValue[];
  readonly count: number;
}

/** Rows of a keyed table for the given keys, with `#` = the key's position in `keys`. */
export function selectByKeysSql(
  d: Dialect,
  table: string,
  columns: readonly string[],
  keyColumns: readonly string[],
  types: ReadonlyMap<string, string>,
  keys: readonly (readonly SqlValue[])[],
): Statement {
  const p = new Params(d);
  if (d.kind === 'mariadb') {
    // A derived table of the keys (MySQL's VALUES needs ROW(); UNION ALL reads the same in both).
    const rows = keys.map((k, j) =>
      j === 0
        ? `SELECT ${[`${p.add(j)} AS i`, ...k.map((v, i) => `${p.add(v, types.get(keyColumns[i]))} AS k${i}`)].join(', ')}`
        : `SELECT ${[p.add(j), ...k.map((v, i) => p.add(v, types.get(keyColumns[i])))].join(', ')}`,
    );
    const q = d.quote;
    const on = keyColumns.map((c, i) => `t.${q(c)} = v.k${i}`).join(' AND ');
    return {
      sql: `SELECT v.i AS ${positionAlias(d)}, ${columns.map((c) => `t.${q(c)}`).join(', ')} FROM (${rows.join(' UNION ALL ')}) v JOIN ${q(table)} t ON ${on}`,
      params: p.values,
    };
  }
  const tuples = keys.map(
    (k, j) => `(${[p.add(j, 'integer'), ...k.map((v, i) => p.add(v, types.get(keyColumns[i])))].join(', ')})`,
  );
  return { sql: selectJoiningKeys(d, `VALUES ${tuples.join(', ')}`, table, columns, keyColumns), params: p.values };
}

/** The rows of `table` matching the keys that `source` yields as rows (i, k0, k1, …), with `"#"` = i. */
function selectJoiningKeys(
  d: Dialect,
  source: string,
  table: string,
  columns: readonly string[],
  keyColumns: readonly string[],
): string {
  const q = d.quote;
  const vcols = ['i', ...keyColumns.map((_c, i) => `k${i}`)];
  const on = keyColumns.map((c, i) => `t.${q(c)} = v.k${i}`).join(' AND ');
  return `WITH v (${vcols.join(', ')}) AS (${source}) SELECT v.i AS ${positionAlias(d)}, ${columns.map((c) => `t.${q(c)}`).join(', ')} FROM v JOIN ${q(table)} t ON ${on}`;
}

/**
 * The stored rows of the given keys, each with `"#"` = the key's index in `keys` (one statement per
 * key chunk; PostgreSQL: keys as array parameters, one statement per 20,000 keys).
 */
export function selectByKeysStatements(
  d: Dialect,
  table: string,
  columns: readonly string[],
  keyColumns: readonly string[],
  types: ReadonlyMap<string, string>,
  keys: readonly (readonly SqlValue[])[],
): { readonly statement: Statement; readonly first: number }[] {
  const casts = arrayTypes(d, keyColumns, types);
  const out: { statement: Statement; first: number }[] = [];
  if (casts !== null) {
    for (let at = 0; at < keys.length; at += MAX_ROWS_PER_ARRAY_INSERT) {
      const part = keys.slice(at, at + MAX_ROWS_PER_ARRAY_INSERT);
      const p = new Params(d);
      const arrays = [
        p.add(
          part.map((_k, j) => j),
          'integer[]',
        ),
        ...casts.map((cast, i) =>
          p.add(
            part.map((k) => k[i]),
            cast,
          ),
        ),
      ];
      out.push({
        statement: {
          sql: selectJoiningKeys(d, `SELECT * FROM unnest(${arrays.join(', ')})`, table, columns, keyColumns),
          params: p.values,
        },
        first: at,
      });
    }
    return out;
  }
  let at = 0;
  for (const n of chunkSizes(keys.length, keyColumns.length + 1, d)) {
    out.push({ statement: selectByKeysSql(d, table, columns, keyColumns, types, keys.slice(at, at + n)), first: at });
    at += n;
  }
  return out;
}

/** Deletes the rows of the given keys. */
export function deleteByKeysSql(
  d: Dialect,
  table: string,
  keyColumns: readonly string[],
  types: ReadonlyMap<string, string>,
  keys: readonly (readonly SqlValue[])[],
): Statement {
  const p = new Params(d);
  const tuples = keys.map((k) => `(${k.map((v, i) => p.add(v, types.get(keyColumns[i]))).join(', ')})`);
  // MariaDB / MySQL: row constructors (MySQL's VALUES needs ROW()).
  const source = d.kind === 'mariadb' ? tuples.join(', ') : `VALUES ${tuples.join(', ')}`;
  return {
    sql: `DELETE FROM ${d.quote(table)} WHERE (${list(d, keyColumns)}) IN (${source})`,
    params: p.values,
  };
}

export function tableExistsSql(d: Dialect, table: string): Statement {
  if (d.kind === 'sqlite')
    return { sql: `SELECT 1 AS "exists" FROM sqlite_master WHERE type = 'table' AND name = ?`, params: [table] };
  if (d.kind === 'mariadb')
    return {
      sql: 'SELECT 1 AS `exists` FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?',
      params: [table],
    };
  return { sql: `SELECT 1 AS "exists" WHERE to_regclass($1) IS NOT NULL`, params: [d.quote(table)] };
}

/**
 * The type of each column: PostgreSQL the declared type (for the casts of VALUES lists), MariaDB
 * the column type (`varchar(255)`, `decimal(10,2)`, `datetime(6)`, …, for the conversion of bound
 * values and the casts of DECIMAL comparisons).
 */
export function columnTypesSql(d: Dialect, table: string): Statement {
  if (d.kind === 'mariadb')
    return {
      sql: 'SELECT COLUMN_NAME AS `name`, COLUMN_TYPE AS `type` FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?',
      params: [table],
    };
  return {
    sql: `SELECT a.attname AS "name", format_type(a.atttypid, a.atttypmod) AS "type" FROM pg_attribute a WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped`,
    params: [d.quote(table)],
  };
}

/**
 * MariaDB reads a table's state with `FOR UPDATE`: a locking read waits for a transaction that
 * still holds the rows (a commit whose acknowledgement was lost, still being applied by the
 * server) and then reads its result, so a retried commit never misses it.
 */
export const lockingRead = (d: Dialect): string => (d.kind === 'mariadb' ? ' FOR UPDATE' : '');

export function selectOffsetsSql(d: Dialect, table: string): Statement {
  const q = d.quote;
  return {
    sql: `SELECT ${q('stream')}, ${q('offset')} FROM ${q(table + OFFSETS_SUFFIX)}${lockingRead(d)}`,
    params: [],
  };
}

const OFFSET_COLUMN_TYPES: ReadonlyMap<string, string> = new Map([
  ['stream', 'text'],
  ['offset', 'bigint'],
]);

export function upsertOffsetsStatements(
  d: Dialect,
  table: string,
  entries: readonly (readonly [string, number])[],
): Statement[] {
  return insertStatements(d, table + OFFSETS_SUFFIX, ['stream', 'offset'], OFFSET_COLUMN_TYPES, entries, ['stream']);
}

/**
 * PostgreSQL: a table's changed offsets and its meta row in ONE statement (a data-modifying CTE),
 * one round trip instead of two for every commit; null where that does not apply (SQLite, or more
 * streams than one array insert takes), then the two statements are used.
 */
export function upsertStateSql(
  d: Dialect,
  table: string,
  entries: readonly (readonly [string, number])[],
  fingerprint: string | null,
  watermark: number | null,
): Statement | null {
  if (!d.arrayInserts || entries.length === 0 || entries.length > MAX_ROWS_PER_ARRAY_INSERT) return null;
  const [offsets] = upsertOffsetsStatements(d, table, entries) as [Statement];
  const meta = upsertMetaSql(d, table, fingerprint, watermark);
  // The meta statement's placeholders move behind the offsets statement's.
  const shift = offsets.params.length;
  const metaSql = meta.sql.replace(/\$(\d+)/g, (_m, n: string) => `$${Number(n) + shift}`);
  return { sql: `WITH offsets AS (${offsets.sql}) ${metaSql}`, params: [...offsets.params, ...meta.params] };
}

export function deleteOffsetsSql(d: Dialect, table: string, streams: readonly string[]): Statement {
  const q = d.quote;
  const p = new Params(d);
  return {
    sql: `DELETE FROM ${q(table + OFFSETS_SUFFIX)} WHERE ${q('stream')} IN (${streams.map((s) => p.add(s)).join(', ')})`,
    params: p.values,
  };
}

export function selectMetaSql(d: Dialect, table: string): Statement {
  const q = d.quote;
  const p = new Params(d);
  return {
    sql: `SELECT ${q('fingerprint')}, ${q('watermark')} FROM ${q(META_TABLE)} WHERE ${q('table_name')} = ${p.add(table)}${lockingRead(d)}`,
    params: p.values,
  };
}

export function upsertMetaSql(
  d: Dialect,
  table: string,
  fingerprint: string | null,
  watermark: number | null,
): Statement {
  return insertSql(
    d,
    META_TABLE,
    ['table_name', 'fingerprint', 'watermark', 'updated_at'],
    [[table, fingerprint, watermark, timestampValue(d, new Date())]],
    ['table_name'],
  );
}
