/**
 * Values crossing between user code (the JavaScript and JSONata of the dd-* nodes) and the engine.
 * The engine shares and keeps the values it is given — several operators see the same record,
 * stateful ones keep it, sinks read it later — so user code must never change one:
 *
 * - A record handed to a JavaScript function is frozen first, all the way down (`readOnly`), so
 *   writing to it throws in the functions' strict mode. Each object is frozen once: a record that
 *   is frozen already costs one check.
 * - What user code returns becomes an engine value with `toValue`: checked, and converted the way
 *   JSON would convert it where it is not plain JSON (Dates to ISO strings, undefined properties
 *   dropped, class instances to their own properties). One walk that allocates nothing when the
 *   result is plain JSON, as it almost always is. Results are not frozen here: user code may
 *   return objects it does not own (`Math`, a global it keeps), and freezing those would change
 *   the process; a result is frozen when it is first handed to a JavaScript function.
 *
 * The shortcut "a frozen object is frozen all the way down" holds for what the engine hands to
 * user code unless user code itself froze a result shallowly (then only what it froze is
 * protected): events arrive unfrozen from the sources, `readOnly` freezes deeply, and the
 * engine freezes no value.
 */
import type { Value } from '../engine/types';

/**
 * Deeper than this, a value is taken apart by the careful conversion (which finds cycles) instead
 * of the fast walk (which has no set of the objects it is inside of and would run into a cycle).
 */
const FAST_DEPTH = 64;

/** Freezes `x` and everything inside it unless it is frozen already (see the module comment). */
export function readOnly<T>(x: T): T {
  if (typeof x === 'object' && x !== null && !Object.isFrozen(x)) freezeDeep(x as object);
  return x;
}

function freezeDeep(x: object): void {
  Object.freeze(x);
  if (Array.isArray(x)) {
    for (let i = 0; i < x.length; i++) {
      const v: unknown = x[i];
      if (typeof v === 'object' && v !== null && !Object.isFrozen(v)) freezeDeep(v);
    }
    return;
  }
  for (const k in x) {
    const v: unknown = (x as Record<string, unknown>)[k];
    if (typeof v === 'object' && v !== null && !Object.isFrozen(v)) freezeDeep(v);
  }
}

/**
 * A user function's result as an engine value: plain JSON as it is; otherwise converted like JSON
 * (Dates to ISO strings, undefined properties dropped, undefined array items to null, class
 * instances and `Object.prototype` to their own enumerable properties). Throws a clear error for
 * `undefined`, functions, symbols, bigints, non-finite numbers and values that contain themselves.
 */
export function toValue(result: unknown, what: string): Value {
  if (plainJson(result, 0)) return result as Value;
  return convert(result, what);
}

/**
 * True when `x` is plain JSON (no undefined property or item, no Date, class instance, function,
 * non-finite number …) no deeper than FAST_DEPTH.
 */
function plainJson(x: unknown, depth: number): boolean {
  switch (typeof x) {
    case 'string':
    case 'boolean':
      return true;
    case 'number':
      return Number.isFinite(x);
    case 'object': {
      if (x === null) return true;
      if (depth === FAST_DEPTH) return false;
      if (Array.isArray(x)) {
        for (let i = 0; i < x.length; i++) {
          const v: unknown = x[i];
          if (typeof v === 'string') continue;
          if (!plainJson(v, depth + 1)) return false;
        }
      } else {
        const proto: unknown = Object.getPrototypeOf(x);
        // (Object.prototype, whose prototype is null, is converted: it must never be frozen as a record.)
        if ((proto !== Object.prototype && proto !== null) || x === Object.prototype) return false;
        for (const k in x) {
          const v: unknown = (x as Record<string, unknown>)[k];
          // Strings and numbers inline: most fields are, and a call per field costs more than the test.
          if (typeof v === 'string') continue;
          if (typeof v === 'number') {
            if (Number.isFinite(v)) continue;
            return false;
          }
          if (!plainJson(v, depth + 1)) return false;
        }
      }
      return true;
    }
    default:
      return false; // undefined, function, symbol, bigint
  }
}

/**
 * The careful conversion, for results that are not plain JSON: converts like JSON, keeps parts
 * that need no conversion as they are, and names the offending part of anything it cannot convert.
 */
function convert(result: unknown, what: string): Value {
  const inside = new Set<object>();
  const at = (where: string): string => (where === '' ? '' : ` at ${where}`);
  const walk = (x: unknown, where: string): Value | undefined => {
    switch (typeof x) {
      case 'string':
      case 'boolean':
        return x;
      case 'number':
        if (!Number.isFinite(x)) throw new Error(`${what} produced the non-finite number ${x}${at(where)}`);
        return x;
      case 'undefined':
        return undefined;
      case 'object': {
        if (x === null) return null;
        if (x instanceof Date) return Number.isNaN(x.getTime()) ? null : x.toISOString();
        if (inside.has(x)) throw new Error(`${what} produced a value that contains itself${at(where)}`);
        inside.add(x);
        let out: Value;
        if (Array.isArray(x)) {
          let changed = false;
          const items = new Array<Value>(x.length);
          for (let i = 0; i < x.length; i++) {
            const item: unknown = x[i];
            const v = walk(item, `${where}[${i}]`);
            if (v !== item || v === undefined) changed = true;
            items[i] = v === undefined ? null : v;
          }
          out = changed ? items : (x as Value[]);
        } else {
          const proto: unknown = Object.getPrototypeOf(x);
          let changed = (proto !== Object.prototype && proto !== null) || x === Object.prototype;
          const entries: [string, Value][] = [];
          for (const [k, item] of Object.entries(x)) {
            const v = walk(item, `${where}.${k}`);
            if (v !== item || v === undefined) changed = true;
            if (v !== undefined) entries.push([k, v]);
          }
          out = changed ? Object.fromEntries(entries) : (x as Value);
        }
        inside.delete(x);
        return out;
      }
      default:
        throw new Error(`${what} produced a ${typeof x}${at(where)}, which is not a JSON value`);
    }
  };
  const value = walk(result, '');
  if (value === undefined) throw new Error(`${what} returned undefined; return a value`);
  return value;
}
