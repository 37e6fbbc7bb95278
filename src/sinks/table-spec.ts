/**
 * From a table's column configuration to SQL cells: validation of the whole spec, property paths
 * (`payload.order`, `a.b[0]`, `a["x y"]`), and the conversion of record values to values the
 * drivers bind. Shared by both dialects.
 */
import type { Value } from '../engine/types';
import type { ColumnSpec, SqlValue, TableSpec } from './types';
import { SinkConfigError } from './errors';
import { validateColumnName, validateSqlType, validateTableName } from './identifiers';
import { indexTypeProblem } from './sql-types';

/** A property path split into keys; numbers index arrays. */
export type PropertyPath = readonly (string | number)[];

const SEGMENT = /^(?:\.?([A-Za-z_$][A-Za-z0-9_$]*)|\[(\d+)\]|\[(?:"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)')\])/;

/** Parses `payload.order`, `a.b[0]`, `a["key with spaces"]`; throws SinkConfigError on anything else. */
export function parsePropertyPath(path: string): PropertyPath {
  const out: (string | number)[] = [];
  let rest = path.trim();
  if (rest === '') throw new SinkConfigError('empty property path');
  let first = true;
  while (rest !== '') {
    const m = SEGMENT.exec(rest);
    if (!m || (first && rest.startsWith('.')) || (!first && m[1] !== undefined && !rest.startsWith('.'))) {
      throw new SinkConfigError(`invalid property path ${JSON.stringify(path)} at ${JSON.stringify(rest)}`);
    }
    if (m[1] !== undefined) out.push(m[1]);
    else if (m[2] !== undefined) out.push(Number(m[2]));
    else if (m[3] !== undefined) out.push(JSON.parse(`"${m[3]}"`) as string);
    else out.push((m[4] ?? '').replace(/\\(.)/g, '$1'));
    rest = rest.slice(m[0].length);
    first = false;
  }
  return out;
}

/** The value at `path` in `record`, or undefined when any step is missing. */
export function readPath(record: unknown, path: PropertyPath): unknown {
  let v: unknown = record;
  for (let i = 0; i < path.length; i++) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<string | number, unknown>)[path[i] as string | number];
  }
  return v;
}

/**
 * Converts what a column's path or function produced to a bound value: null/undefined → NULL,
 * finite numbers, strings, booleans and bigints as they are, non-finite numbers → NULL, dates →
 * ISO-8601 text, objects and arrays → JSON text.
 */
export function toSqlValue(v: unknown): SqlValue {
  switch (typeof v) {
    case 'string':
    case 'boolean':
    case 'bigint':
      return v;
    case 'number':
      return Number.isFinite(v) ? v : null;
    case 'undefined':
      return null;
    case 'object':
      if (v === null) return null;
      if (v instanceof Date) return Number.isNaN(v.getTime()) ? null : v.toISOString();
      return JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? x.toString() : x));
    default:
      return String(v);
  }
}

/** A validated table with its cell extraction compiled. */
export interface CompiledTable {
  readonly spec: TableSpec;
  /** The columns that are written and matched (not excluded), in order. */
  readonly written: readonly ColumnSpec[];
  /** Positions in `written` of the key columns (keyed mode). */
  readonly keyPositions: readonly number[];
  /** The written cells of a record, in `written` order. */
  cells(record: Value): SqlValue[];
  /** The row as `{column: value}` for RowChange. */
  rowObject(cells: readonly SqlValue[]): Record<string, SqlValue>;
}

const compiled = new WeakMap<TableSpec, CompiledTable>();

/** Validates `spec` (throws SinkConfigError with a message naming the bad part) and compiles it once. */
export function compileTable(spec: TableSpec): CompiledTable {
  const hit = compiled.get(spec);
  if (hit) return hit;
  validateTableName(spec.name);
  if (spec.mode !== 'multiset' && spec.mode !== 'keyed') {
    throw new SinkConfigError(
      `table "${spec.name}": mode must be "multiset" or "keyed", not ${JSON.stringify(spec.mode)}`,
    );
  }
  if (!Array.isArray(spec.columns) || spec.columns.length === 0) {
    throw new SinkConfigError(`table "${spec.name}": at least one column is required`);
  }
  const seen = new Set<string>();
  const getters: ((record: Value) => unknown)[] = [];
  const written: ColumnSpec[] = [];
  for (const c of spec.columns) {
    validateColumnName(c.name);
    // SQLite folds identifiers to one case even when quoted: treat `Machine` and `machine` as the same.
    const folded = c.name.toLowerCase();
    if (seen.has(folded)) throw new SinkConfigError(`table "${spec.name}": duplicate column name "${c.name}"`);
    seen.add(folded);
    validateSqlType(c.type, c.name);
    if (c.key && c.exclude)
      throw new SinkConfigError(`table "${spec.name}": key column "${c.name}" cannot be excluded`);
    if (c.key && spec.mode !== 'keyed')
      throw new SinkConfigError(`table "${spec.name}": column "${c.name}" is a key, but only keyed mode has keys`);
    const indexed = c.key ? 'key' : c.index ? 'index' : null;
    const indexProblem = indexed === null ? null : indexTypeProblem(c.type, indexed);
    if (indexProblem !== null)
      throw new SinkConfigError(
        `table "${spec.name}": ${indexed} column "${c.name}" has type ${c.type.trim()}: ${indexProblem}`,
      );
    if (c.exclude) continue;
    written.push(c);
    getters.push(columnGetter(spec.name, c));
  }
  if (written.length === 0)
    throw new SinkConfigError(`table "${spec.name}": every column is excluded; at least one must be written`);
  const keyPositions = written.flatMap((c, i) => (c.key ? [i] : []));
  if (spec.mode === 'keyed' && keyPositions.length === 0) {
    throw new SinkConfigError(`table "${spec.name}": keyed mode needs at least one key column`);
  }
  const names = written.map((c) => c.name);
  const table: CompiledTable = {
    spec,
    written,
    keyPositions,
    cells: (record) => {
      const cells = new Array<SqlValue>(getters.length);
      for (let i = 0; i < getters.length; i++)
        cells[i] = toSqlValue((getters[i] as (record: Value) => unknown)(record));
      return cells;
    },
    rowObject: (cells) => {
      const row: Record<string, SqlValue> = {};
      for (let i = 0; i < names.length; i++) row[names[i]] = cells[i];
      return row;
    },
  };
  compiled.set(spec, table);
  return table;
}

function columnGetter(table: string, c: ColumnSpec): (record: Value) => unknown {
  const source = c.value as { path?: unknown; fn?: unknown } | undefined;
  if (source && typeof source.fn === 'function') return source.fn as (record: Value) => unknown;
  if (source && typeof source.path === 'string') {
    let path: PropertyPath;
    try {
      path = parsePropertyPath(source.path);
    } catch (e) {
      throw new SinkConfigError(`table "${table}", column "${c.name}": ${(e as Error).message}`);
    }
    return (record) => readPath(record, path);
  }
  throw new SinkConfigError(
    `table "${table}", column "${c.name}": a value source (property path or expression) is required`,
  );
}

/** A stable text key for a tuple of cells (bigints and numbers stay distinct). */
export function cellsKey(cells: readonly SqlValue[]): string {
  let s = '';
  for (const c of cells) {
    // Length-prefixed strings need no escaping; each kind has its own tag.
    if (typeof c === 'string') s += `s${c.length}:${c}`;
    else if (typeof c === 'number') s += `d${c};`;
    else if (typeof c === 'bigint') s += `n${c};`;
    else if (typeof c === 'boolean') s += c ? 't' : 'f';
    else s += 'z';
  }
  return s;
}
