/**
 * SQL identifiers and SQL type texts from user configuration. Identifiers are validated against a
 * strict pattern and always quoted (double quotes; backticks for MariaDB / MySQL); type texts are
 * checked against an allow-list pattern (they are spliced into CREATE TABLE, so nothing that could
 * end a statement or start a comment or a string literal may pass). Values never go through here:
 * they are always bound parameters.
 */
import { SinkConfigError } from './errors';

/** Letters, digits and `_`, not starting with a digit, at most 63 characters (PostgreSQL's limit). */
export const IDENTIFIER_PATTERN = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

/** Suffixes appended to a table name for its companion objects; the table name leaves room for them. */
export const OFFSETS_SUFFIX = '_offsets';
export const INDEX_SUFFIX = '_index';
/** The shared table holding each sink table's fingerprint and watermark. */
export const META_TABLE = 'deltaflow_meta';
/** The dataflows' leases (lease-sql.ts). */
export const LEASE_TABLE = 'deltaflow_lease';
/** The instances' heartbeats (issue 14, point 3: each knows how many are alive). */
export const INSTANCE_TABLE = 'deltaflow_instance';
/** Longest table name: 63 minus the longest suffix, so `<table>_offsets` is still a valid identifier. */
export const MAX_TABLE_NAME_LENGTH = 63 - OFFSETS_SUFFIX.length;

/**
 * Column names the databases use themselves (row ids and system columns): the multiset delete
 * addresses rows by `rowid` (SQLite) or `ctid` (PostgreSQL), so a user column must not shadow them.
 */
const RESERVED_COLUMNS = new Set(['rowid', 'oid', '_rowid_', 'ctid', 'xmin', 'xmax', 'cmin', 'cmax', 'tableoid']);

/** Letters, digits, spaces, underscores, parentheses, commas; no quotes, semicolons, comments, operators. */
export const SQL_TYPE_PATTERN = /^[A-Za-z][A-Za-z0-9_ (),]*$/;
const MAX_SQL_TYPE_LENGTH = 100;

function describe(text: unknown): string {
  return typeof text === 'string' ? JSON.stringify(text) : String(text);
}

/** Checks a plain identifier; `what` names it in the message (e.g. `column name`). */
export function validateIdentifier(name: unknown, what: string): string {
  if (typeof name !== 'string' || !IDENTIFIER_PATTERN.test(name)) {
    throw new SinkConfigError(
      `invalid ${what} ${describe(name)}: use 1 to 63 letters, digits or underscores, not starting with a digit`,
    );
  }
  return name;
}

/** Suffixes of the table a rebuild fills aside, and of the replaced table while MariaDB swaps (sql-dialect.ts). */
export const SHADOW_SUFFIX = '__deltaflow_new';
export const REPLACED_SUFFIX = '__deltaflow_old';

/**
 * The name of the table a rebuild of `table` fills before it is swapped in (`<table>__deltaflow_new`),
 * or of the replaced table (`<table>__deltaflow_old`); a long name is shortened with a hash of the
 * whole, so the result is still a valid table name.
 */
export function asideTableName(table: string, suffix: string = SHADOW_SUFFIX): string {
  if (table.length + suffix.length <= MAX_TABLE_NAME_LENGTH) return table + suffix;
  let h = 0x811c9dc5;
  for (let i = 0; i < table.length; i++) h = Math.imul(h ^ table.charCodeAt(i), 0x01000193) >>> 0;
  const hash = h.toString(16).padStart(8, '0');
  return `${table.slice(0, MAX_TABLE_NAME_LENGTH - suffix.length - 9)}_${hash}${suffix}`;
}

/** Checks a table name: an identifier short enough for its suffixes, not a name the databases or DeltaFlow reserve. */
export function validateTableName(name: unknown): string {
  validateIdentifier(name, 'table name');
  const n = name as string;
  const lower = n.toLowerCase();
  if (n.length > MAX_TABLE_NAME_LENGTH) {
    throw new SinkConfigError(
      `invalid table name ${describe(n)}: at most ${MAX_TABLE_NAME_LENGTH} characters (room for "${OFFSETS_SUFFIX}")`,
    );
  }
  if (lower.startsWith('sqlite_') || lower.startsWith('pg_')) {
    throw new SinkConfigError(
      `invalid table name ${describe(n)}: names starting with "sqlite_" or "pg_" are reserved by the databases`,
    );
  }
  if (lower === META_TABLE || lower === LEASE_TABLE || lower === INSTANCE_TABLE || lower.endsWith(OFFSETS_SUFFIX)) {
    throw new SinkConfigError(
      `invalid table name ${describe(n)}: "${META_TABLE}", "${LEASE_TABLE}", "${INSTANCE_TABLE}" and names ending in "${OFFSETS_SUFFIX}" are used by DeltaFlow itself`,
    );
  }
  return n;
}

/** Checks a column name: an identifier that is not a row-id or system column name. */
export function validateColumnName(name: unknown): string {
  validateIdentifier(name, 'column name');
  const n = name as string;
  if (RESERVED_COLUMNS.has(n.toLowerCase())) {
    throw new SinkConfigError(
      `invalid column name ${describe(n)}: reserved by the database (row ids and system columns)`,
    );
  }
  return n;
}

/** Checks SQL type text such as `text not null`, `numeric(10, 2)`, `timestamp with time zone`. */
export function validateSqlType(type: unknown, column: string): string {
  if (typeof type !== 'string' || type.trim() === '') {
    throw new SinkConfigError(`column "${column}": an SQL type is required (e.g. text, bigint, double precision)`);
  }
  const t = type.trim();
  if (t.length > MAX_SQL_TYPE_LENGTH || !SQL_TYPE_PATTERN.test(t) || !balancedParentheses(t)) {
    throw new SinkConfigError(
      `column "${column}": invalid SQL type ${describe(type)}: only letters, digits, spaces, underscores and balanced parentheses (with commas inside them) are allowed`,
    );
  }
  return t;
}

/** Balanced parentheses, and commas only inside them (`numeric(10, 2)`): a top-level comma would start another column. */
function balancedParentheses(text: string): boolean {
  let depth = 0;
  for (const c of text) {
    if (c === '(') depth++;
    else if (c === ')' && --depth < 0) return false;
    else if (c === ',' && depth === 0) return false;
  }
  return depth === 0;
}

/** Double-quotes a validated identifier (the pattern admits no quote, so there is nothing to escape). */
export function quoteIdentifier(name: string): string {
  if (!IDENTIFIER_PATTERN.test(name))
    throw new SinkConfigError(`refusing to quote invalid identifier ${describe(name)}`);
  return `"${name}"`;
}

/** Backtick-quotes a validated identifier for MariaDB / MySQL (the pattern admits no backtick). */
export function quoteBacktick(name: string): string {
  if (!IDENTIFIER_PATTERN.test(name))
    throw new SinkConfigError(`refusing to quote invalid identifier ${describe(name)}`);
  return `\`${name}\``;
}
