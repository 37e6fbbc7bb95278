/**
 * The SQL column types the sinks support and test on both databases, and what they need beyond
 * the type text: which PostgreSQL types have no equality operator (a multiset delete matches their
 * cells by text form) and which types cannot be key columns. Other types that pass the type
 * pattern (identifiers.ts) are created as written; they work where the database can bind a string,
 * number or boolean to them and compare them with `=`.
 */

/** The types DeltaFlow tests in multiset and keyed tables, inserts and retractions, on SQLite and PostgreSQL. */
export const SUPPORTED_SQL_TYPES: readonly string[] = [
  'text',
  'varchar(40)',
  'char(8)',
  'smallint',
  'integer',
  'bigint',
  'real',
  'double precision',
  'numeric',
  'numeric(10, 2)',
  'boolean',
  'date',
  'time',
  'timestamp',
  'timestamp with time zone',
  'json',
  'jsonb',
  'uuid',
];

/**
 * PostgreSQL types (as `format_type` names them) without an equality operator: `json` (use `jsonb`
 * to compare values), `xml` and the geometric types. A multiset delete matches their cells by text
 * form, exact because both sides are the same bound text cast to the column's type.
 */
const WITHOUT_EQUALITY = new Set(['json', 'xml', 'point', 'line', 'lseg', 'box', 'path', 'polygon', 'circle']);

/** The type name without modifiers, array brackets or constraints: `numeric(10, 2) not null` → `numeric`. */
export function baseTypeName(type: string): string {
  const t = type.trim().toLowerCase();
  const m = /^([a-z_][a-z0-9_]*(?: (?:precision|varying|with time zone|without time zone))*)/.exec(t);
  return m ? (m[1] as string) : t;
}

/** Whether a PostgreSQL column of this type (`format_type` text) is matched by text form (see WITHOUT_EQUALITY). */
export function comparedAsText(pgType: string): boolean {
  return WITHOUT_EQUALITY.has(baseTypeName(pgType.replace(/\[\]$/, '')));
}

/**
 * Why a column of `type` cannot be a key or index column, or null when it can: PostgreSQL cannot
 * index a type without equality (CREATE TABLE or CREATE INDEX would fail), and on SQLite the same
 * table must mean the same.
 */
export function indexTypeProblem(type: string, as: 'key' | 'index'): string | null {
  const base = baseTypeName(type);
  if (!WITHOUT_EQUALITY.has(base)) return null;
  const what = as === 'key' ? 'form a key' : 'be indexed';
  return base === 'json'
    ? `json values cannot be compared, so they cannot ${what}: use jsonb (or text)`
    : `${base} values cannot be compared, so they cannot ${what}`;
}
