/**
 * What counts as a `Value`: null, booleans, finite numbers, strings, arrays of values and plain
 * objects whose properties are values (properties set to `undefined` are ignored, as in JSON).
 * NaN, ±Infinity, `undefined`, functions, symbols, bigints and class instances (Date, Map, …) are
 * not values: they have no JSON form, so identity and order could not be settled for them.
 */
import type { Value } from './types';

/** True when `v` is a Value (fast: builds nothing). */
export function isValue(v: unknown): v is Value {
  switch (typeof v) {
    case 'string':
    case 'boolean':
      return true;
    case 'number':
      return Number.isFinite(v);
    case 'object': {
      if (v === null) return true;
      if (Array.isArray(v)) {
        for (let i = 0; i < v.length; i++) if (!isValue(v[i])) return false;
        return true;
      }
      if (!isPlainObject(v)) return false;
      for (const k in v) {
        const x = (v as Record<string, unknown>)[k];
        // Strings and numbers inline: most fields are, and a call per field costs more than the test.
        if (typeof x === 'string') continue;
        if (typeof x === 'number') {
          if (!Number.isFinite(x)) return false;
          continue;
        }
        if (x !== undefined && !isValue(x)) return false;
      }
      return true;
    }
    default:
      return false;
  }
}

/** Why `v` is not a Value (with the path of the offending part), or null when it is one. */
export function valueProblem(v: unknown, path = '$'): string | null {
  return isValue(v) ? null : describeProblem(v, path);
}

function describeProblem(v: unknown, path: string): string | null {
  switch (typeof v) {
    case 'string':
    case 'boolean':
      return null;
    case 'number':
      return Number.isFinite(v) ? null : `${path} is ${String(v)} (only finite numbers are values)`;
    case 'object': {
      if (v === null) return null;
      if (Array.isArray(v)) {
        for (let i = 0; i < v.length; i++) {
          const p = describeProblem(v[i], `${path}[${i}]`);
          if (p !== null) return p;
        }
        return null;
      }
      if (!isPlainObject(v)) return `${path} is a ${describe(v)} (only plain objects are values)`;
      for (const k in v) {
        const x = (v as Record<string, unknown>)[k];
        if (x === undefined) continue;
        const p = describeProblem(x, `${path}.${k}`);
        if (p !== null) return p;
      }
      return null;
    }
    default:
      return `${path} is ${typeof v === 'undefined' ? 'undefined' : `a ${typeof v}`} (not a JSON value)`;
  }
}

/** Throws a TypeError naming the offending part unless `v` is a Value. */
export function assertValue(v: unknown, what = 'value'): asserts v is Value {
  if (!isValue(v)) throw new TypeError(`${what} is not a JSON value: ${describeProblem(v, '$')}`);
}

export function isPlainObject(v: object): boolean {
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

function describe(v: object): string {
  const ctor = (v as { constructor?: { name?: unknown } }).constructor;
  return typeof ctor?.name === 'string' && ctor.name !== '' ? ctor.name : 'non-plain object';
}
