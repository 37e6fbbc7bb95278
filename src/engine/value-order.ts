/**
 * The total order over values: null < false < true < numbers < strings < arrays < objects.
 * Numbers compare numerically (-0 equals 0), strings by UTF-16 code unit, arrays element-wise and
 * then by length, objects by their sorted key lists (element-wise, then length) and then by their
 * values in sorted key order. Properties set to `undefined` are ignored, as in JSON.
 *
 * `compareValues(a, b) === 0` exactly when `a` and `b` are the same value (deep-equal), so the
 * order doubles as structural identity for sorted containers.
 *
 * Note for record design: a record sorts by its alphabetically first key, so to see records in
 * causal order (the seed's `Excerpt`), name the Lamport field so it sorts first (e.g. `lamport`
 * before `machine`, `payload`, `timestamp`) or use an array `[lamport, …]`.
 */
import type { Value } from './types';
import { isPlainObject } from './value-check';

const NULL = 0;
const BOOLEAN = 1;
const NUMBER = 2;
const STRING = 3;
const ARRAY = 4;
const OBJECT = 5;

function rank(v: Value): number {
  if (v === null) return NULL;
  switch (typeof v) {
    case 'boolean':
      return BOOLEAN;
    case 'number':
      return NUMBER;
    case 'string':
      return STRING;
    case 'object':
      if (Array.isArray(v)) return ARRAY;
      if (isPlainObject(v)) return OBJECT;
      break;
  }
  throw new TypeError(`not a JSON value: ${typeof v === 'object' ? 'non-plain object' : String(v)}`);
}

/**
 * Compares two values in the total order: negative, zero or positive. Throws a TypeError for NaN
 * and for things that are not values (undefined, functions, class instances). ±Infinity are not
 * values either (see `assertValue`), but if met they order as numbers.
 */
export function compareValues(a: Value, b: Value): number {
  if (a === b) return 0;
  const ta = typeof a;
  if (ta === typeof b) {
    if (ta === 'number') return compareNumbers(a as number, b as number);
    if (ta === 'string') return (a as string) < (b as string) ? -1 : 1;
  }
  const ra = rank(a);
  const rb = rank(b);
  if (ra !== rb) return ra < rb ? -1 : 1;
  switch (ra) {
    case BOOLEAN:
      return a ? 1 : -1; // a !== b, so one is true and the other false
    case ARRAY:
      return compareArrays(a as readonly Value[], b as readonly Value[]);
    case OBJECT:
      return compareObjects(a as Readonly<Record<string, Value>>, b as Readonly<Record<string, Value>>);
  }
  throw new TypeError(`not a JSON value: ${String(a)}`); // rank(null) cases are caught by a === b
}

function compareNumbers(a: number, b: number): number {
  if (a < b) return -1;
  if (a > b) return 1;
  if (a === b) return 0;
  throw new TypeError('NaN is not a value and has no place in the order of values');
}

function compareArrays(a: readonly Value[], b: readonly Value[]): number {
  const n = a.length < b.length ? a.length : b.length;
  for (let i = 0; i < n; i++) {
    const c = compareValues(a[i], b[i]);
    if (c !== 0) return c;
  }
  return a.length === b.length ? 0 : a.length < b.length ? -1 : 1;
}

function compareObjects(a: Readonly<Record<string, Value>>, b: Readonly<Record<string, Value>>): number {
  const fast = compareSameSortedKeys(a, b);
  if (fast !== null) return fast;
  const ka = sortedDefinedKeys(a);
  const kb = sortedDefinedKeys(b);
  const n = ka.length < kb.length ? ka.length : kb.length;
  for (let i = 0; i < n; i++) {
    if (ka[i] !== kb[i]) return ka[i] < kb[i] ? -1 : 1;
  }
  if (ka.length !== kb.length) return ka.length < kb.length ? -1 : 1;
  for (let i = 0; i < ka.length; i++) {
    const c = compareValues(a[ka[i]], b[ka[i]]);
    if (c !== 0) return c;
  }
  return 0;
}

/**
 * The common case without building key lists (objects are compared while sorting every group's
 * inputs): `a`'s keys are already in code-unit order, none is undefined, `b` has each of them, and
 * no other. Then both sorted key lists are equal and the values decide, in that order. Null
 * otherwise. Each value is read once: reading a double-valued field boxes it (an allocation).
 */
function compareSameSortedKeys(a: Readonly<Record<string, Value>>, b: Readonly<Record<string, Value>>): number | null {
  let prev: string | null = null;
  let n = 0;
  let c = 0;
  for (const k in a) {
    if (prev !== null && !(prev < k)) return null;
    if (!hasOwn.call(b, k)) return null;
    if (c === 0) {
      const x = a[k];
      const y = b[k];
      if (x === undefined || y === undefined) return null;
      c = compareValues(x, y);
    } else if (a[k] === undefined || b[k] === undefined) return null; // (a value only tested is not boxed)
    prev = k;
    n++;
  }
  // b has exactly these keys when it has no more (an undefined-valued key makes it more: slow path).
  let m = 0;
  for (const _k in b) m++;
  return m === n ? c : null;
}

const hasOwn = Object.prototype.hasOwnProperty;

/** The keys whose values are not undefined, sorted by code unit (sorting is skipped when already sorted). */
export function sortedDefinedKeys(o: Readonly<Record<string, unknown>>): string[] {
  const keys = Object.keys(o);
  let sorted = true;
  let defined = true;
  for (let i = 0; i < keys.length; i++) {
    if (o[keys[i]] === undefined) defined = false;
    if (i > 0 && keys[i - 1] > keys[i]) sorted = false;
  }
  const result = defined ? keys : keys.filter((k) => o[k] !== undefined);
  return sorted ? result : result.sort();
}
