/**
 * Structural identity of values: two values are the same value when they are deep-equal, whatever
 * objects they are. `canonicalKey` gives each value one string (its JSON text with object keys
 * sorted, -0 written as 0 and `undefined` properties dropped); `valueEquals` decides the same
 * without building strings.
 */
import type { Value } from './types';
import { isPlainObject } from './value-check';
import { sortedDefinedKeys } from './value-order';

/**
 * The canonical key of a value: its JSON text with object keys sorted by code unit, -0 written as
 * `0` and properties set to `undefined` dropped. Deep-equal values, and only those, have the same
 * key, and `JSON.parse(canonicalKey(v))` is deep-equal to `v`. Throws a TypeError for anything
 * that is not a value (NaN, ±Infinity, undefined, functions, class instances).
 */
export function canonicalKey(value: Value): string {
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'number':
      if (!Number.isFinite(value)) throw new TypeError(`${String(value)} is not a value (only finite numbers are)`);
      return String(value); // String(-0) === '0'; same digits as JSON
    case 'boolean':
      return value ? 'true' : 'false';
    case 'object':
      if (value === null) return 'null';
      if (Array.isArray(value)) {
        let s = '[';
        for (let i = 0; i < value.length; i++) {
          if (i > 0) s += ',';
          s += canonicalKey(value[i]);
        }
        return s + ']';
      }
      if (isPlainObject(value)) {
        const o = value as Readonly<Record<string, Value>>;
        const keys = sortedDefinedKeys(o);
        let s = '{';
        for (let i = 0; i < keys.length; i++) {
          if (i > 0) s += ',';
          s += JSON.stringify(keys[i]) + ':' + canonicalKey(o[keys[i]]);
        }
        return s + '}';
      }
      break;
  }
  throw new TypeError(`not a JSON value: ${typeof value === 'object' ? 'non-plain object' : String(value)}`);
}

/** True when `a` and `b` are the same value (deep-equal, object key order and -0/0 ignored). */
export function valueEquals(a: Value, b: Value): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  const arrayA = Array.isArray(a);
  if (arrayA !== Array.isArray(b)) return false;
  if (arrayA) {
    const x = a as readonly Value[];
    const y = b as readonly Value[];
    if (x.length !== y.length) return false;
    for (let i = 0; i < x.length; i++) if (!valueEquals(x[i], y[i])) return false;
    return true;
  }
  const x = a as Readonly<Record<string, Value>>;
  const y = b as Readonly<Record<string, Value>>;
  // Fast path (no allocation): all of x's properties defined and equal in y, and y has as many.
  let n = 0;
  let slow = false;
  for (const k in x) {
    const v = x[k];
    const w = y[k];
    n++;
    if (v === w && v !== undefined) continue;
    if (v === undefined || w === undefined) {
      slow = true; // undefined properties count as absent: compare the defined ones below
      break;
    }
    if (typeof v !== 'object' || typeof w !== 'object' || !hasOwn(y, k) || !valueEquals(v, w)) return false;
  }
  if (!slow) {
    for (const _ in y) n--;
    if (n === 0) return true;
  }
  return sameDefinedProperties(x, y, Object.keys(x), Object.keys(y));
}

const hasOwn = (o: object, k: string): boolean => Object.prototype.hasOwnProperty.call(o, k);

/** Equality of objects ignoring properties set to `undefined`. */
function sameDefinedProperties(
  x: Readonly<Record<string, Value>>,
  y: Readonly<Record<string, Value>>,
  kx: string[],
  ky: string[],
): boolean {
  let n = 0;
  for (const k of kx) {
    const v = x[k];
    if (v === undefined) continue;
    n++;
    const w = y[k];
    if (w === undefined || !hasOwn(y, k) || !valueEquals(v, w)) return false;
  }
  for (const k of ky) if (y[k] !== undefined) n--;
  return n === 0;
}
