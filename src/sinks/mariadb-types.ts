/**
 * Column types on MariaDB / MySQL. A db-sink's SQL type text (checked against the allow-list in
 * identifiers.ts) is often written as for PostgreSQL or SQLite; the names MariaDB lacks or gives
 * another meaning are mapped to their MariaDB equivalents, so one flow runs on all three databases.
 * MariaDB's own type names pass unchanged, and so does what follows the type (`not null`, …):
 *
 * | written                                                        | created on MariaDB               |
 * |----------------------------------------------------------------|----------------------------------|
 * | `text`, `varchar`, `character varying` (no length)             | `LONGTEXT`; `VARCHAR(255)` as a key column (shorter when several text key columns share the 3,072-byte key limit); an index on it covers its first 255 characters |
 * | `timestamptz`, `timestamp`, `timestamp with[out] time zone`    | `DATETIME(6)` (UTC)              |
 * | `timestamp(p)`, `timestamptz(p)`, `… with[out] time zone`      | `DATETIME(p)` (UTC)              |
 * | `json`, `jsonb`                                                | `JSON`; `VARCHAR(255)` as a key  |
 * | `real`, `float8`, `double precision`                           | `DOUBLE`                         |
 * | `numeric`, `decimal` (no precision)                            | `DECIMAL(65, 30)`                |
 * | `bytea`                                                        | `LONGBLOB`                       |
 * | `time`, `timetz`, `time(p)`, `… with[out] time zone`           | `TIME(6)`, `TIME(p)`             |
 * | `uuid`                                                         | `CHAR(36)`                       |
 * | anything else (`integer`, `bigint`, `boolean`, `numeric(12, 2)`, `varchar(40)`, `date`, `datetime(3)`, `mediumtext`, …) | as written |
 *
 * Bound values are converted to the kind of their column (see `mariadbBinder`), so stored values
 * and the NULL-safe comparisons of multiset deletes are exact: numbers bound to text columns as
 * their text, ISO-8601 timestamps bound to DATETIME/TIMESTAMP columns as UTC date-times.
 */
import type { SqlValue } from './types';

/** InnoDB's limit for one index (DYNAMIC rows): 3,072 bytes, 768 characters of utf8mb4. */
const INDEX_CHARACTERS = 768;
/** The longest text key column / index prefix, in characters. */
const MAX_TEXT_KEY = 255;

const RULES: readonly { readonly written: RegExp; readonly created: (m: RegExpExecArray) => string }[] = [
  { written: /^(?:text|varchar|character\s+varying)$/i, created: () => 'LONGTEXT' },
  {
    written: /^(?:timestamptz|timestamp)(?:\s*\(\s*(\d)\s*\))?(?:\s+with(?:out)?\s+time\s+zone)?$/i,
    created: (m) => `DATETIME(${m[1] ?? 6})`,
  },
  { written: /^jsonb?$/i, created: () => 'JSON' },
  { written: /^(?:real|float8|double\s+precision)$/i, created: () => 'DOUBLE' },
  // MariaDB's NUMERIC without precision is DECIMAL(10, 0): it would round the fraction away.
  { written: /^(?:numeric|decimal)$/i, created: () => 'DECIMAL(65, 30)' },
  { written: /^bytea$/i, created: () => 'LONGBLOB' },
  // PostgreSQL's time keeps microseconds; MariaDB's TIME without precision rounds to seconds.
  {
    written: /^(?:timetz|time)(?:\s*\(\s*(\d)\s*\))?(?:\s+with(?:out)?\s+time\s+zone)?$/i,
    created: (m) => `TIME(${m[1] ?? 6})`,
  },
  { written: /^uuid$/i, created: () => 'CHAR(36)' },
];

/** The leading type phrase of a type text: words, with a parenthesised part; the rest are modifiers. */
const TYPE_PHRASE =
  /^((?:timestamptz|timestamp|timetz|time)(?![A-Za-z0-9_])(?:\s*\(\s*\d\s*\))?(?:\s+with(?:out)?\s+time\s+zone)?|double\s+precision|character\s+varying(?:\s*\([^)]*\))?|[A-Za-z][A-Za-z0-9_]*(?:\s*\([^)]*\))?)(.*)$/is;

/** How a column takes part in the table's keys. */
export type ColumnRole = 'key' | 'index' | 'plain';

/**
 * The MariaDB type of a column whose type text is `type` (validated); `textKeys` is the number of
 * text key columns of the table (they share the key length limit).
 */
export function mariadbColumnType(type: string, role: ColumnRole, textKeys = 1): string {
  const m = TYPE_PHRASE.exec(type.trim());
  if (!m) return type.trim();
  const phrase = (m[1] as string).replace(/\s+/g, ' ');
  const rest = m[2] as string;
  for (const rule of RULES) {
    const hit = rule.written.exec(phrase);
    if (!hit) continue;
    let created = rule.created(hit);
    // A key cannot be unbounded text (nor MariaDB's JSON, which is LONGTEXT): a bounded VARCHAR.
    if ((created === 'LONGTEXT' || created === 'JSON') && role === 'key')
      created = `VARCHAR(${textKeyLength(textKeys)})`;
    return created + rest;
  }
  return phrase + rest;
}

/** Whether a (mapped) type is text of unbounded length: a key needs VARCHAR, an index a prefix. */
export function isLongTextType(type: string): boolean {
  return /^(?:(?:tiny|medium|long)?(?:text|blob)|json|text|varchar|character\s+varying)(?:\s|$)/i.test(type.trim());
}

/** The length of each of `textKeys` text key columns: 255 characters, or less so that all fit in one key. */
export function textKeyLength(textKeys: number): number {
  return Math.max(1, Math.min(MAX_TEXT_KEY, Math.floor(INDEX_CHARACTERS / Math.max(1, textKeys))));
}

/** The prefix (characters) by which each of `longColumns` unbounded columns enters the table's index. */
export function indexPrefixLength(longColumns: number): number {
  return textKeyLength(longColumns);
}

type Converter = (v: SqlValue) => SqlValue;

const TEXT_TYPES = new Set(['char', 'varchar', 'tinytext', 'text', 'mediumtext', 'longtext', 'enum', 'set']);
const DATETIME_TYPES = new Set(['datetime', 'timestamp']);

const toText: Converter = (v) => {
  if (typeof v === 'number' || typeof v === 'bigint') return String(v);
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  return v;
};

const toDatetime: Converter = (v) => (typeof v === 'string' ? utcDatetime(v) : v);

const toDate: Converter = (v) => (typeof v === 'string' && /^\d{4}-\d{2}-\d{2}[T ]/.test(v) ? v.slice(0, 10) : v);

const ISO_8601 = /^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}(?::\d{2})?)(\.\d+)?(Z|[+-]\d{2}(?::?\d{2})?)?$/i;
/** `2024-05-06T07:08:09.123Z`: a UTC date-time with milliseconds, as Date.prototype.toISOString writes it. */
const CANONICAL_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

/**
 * An ISO-8601 date-time (`2024-05-06T07:08:09.123Z`, `…+02:00`) as the UTC date-time text that
 * DATETIME and TIMESTAMP columns take (`2024-05-06 07:08:09.123`), the fraction kept to
 * microseconds. A time without a zone is taken as UTC, as the sink's sessions run in UTC; any other
 * text is left for the server to judge.
 *
 * @example utcDatetime('2024-05-06T09:27:00.000+02:00') // '2024-05-06 07:27:00.000'
 */
export function utcDatetime(text: string): string {
  // What Date.prototype.toISOString writes (most values): sliced, without the general pattern's captures.
  if (text.length === 24 && CANONICAL_UTC.test(text)) return `${text.slice(0, 10)} ${text.slice(11, 23)}`;
  const m = ISO_8601.exec(text);
  if (!m) return text;
  const [, date, time, fraction = '', zone] = m as unknown as [string, string, string, string?, string?];
  const frac = fraction.slice(0, 7);
  if (zone === undefined || /^(?:z|[+-]00(?::?00)?)$/i.test(zone)) return `${date} ${time}${frac}`;
  const offset = /^[+-]\d{2}$/.test(zone)
    ? `${zone}:00`
    : zone.length === 5
      ? `${zone.slice(0, 3)}:${zone.slice(3)}`
      : zone;
  const ms = Date.parse(`${date}T${time.length === 5 ? `${time}:00` : time}${offset}`);
  if (Number.isNaN(ms)) return text;
  const utc = new Date(ms).toISOString();
  return `${utc.slice(0, 10)} ${utc.slice(11, 19)}${frac}`;
}

function converterFor(columnType: string | undefined): Converter | null {
  // information_schema's COLUMN_TYPE (`varchar(255)`, `int(10) unsigned`): the name before any `(` or space.
  const t = /^[a-z]+/i.exec(columnType ?? '')?.[0]?.toLowerCase() ?? '';
  if (TEXT_TYPES.has(t)) return toText;
  if (DATETIME_TYPES.has(t)) return toDatetime;
  if (t === 'date') return toDate;
  return null;
}

/**
 * A function binding a row's cells for columns of the given information_schema column types
 * (`varchar(255)`, `datetime(6)`, …, in the row's column order); the cells themselves when none
 * needs a conversion, a new array otherwise — or, `inPlace`, the cells converted in their own array
 * (for cells that the caller owns and reads no more).
 */
export function mariadbBinder(
  columnTypes: readonly (string | undefined)[],
  inPlace = false,
): (cells: readonly SqlValue[]) => readonly SqlValue[] {
  const converters = columnTypes.map(converterFor);
  if (converters.every((c) => c === null)) return (cells) => cells;
  return (cells) => {
    // In place: the cells' own array; otherwise a copy made at the first cell that changes.
    let out: SqlValue[] | null = inPlace ? (cells as SqlValue[]) : null;
    for (let i = 0; i < converters.length; i++) {
      const convert = converters[i];
      if (!convert) continue;
      const v = cells[i] as SqlValue;
      const c = convert(v);
      if (c !== v) {
        out ??= cells.slice();
        out[i] = c;
      }
    }
    return out ?? cells;
  };
}
