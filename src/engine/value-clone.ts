/**
 * Deep copies of values. `scan` keeps fold states at checkpoints; the user's step function may
 * change its state in place, so a checkpoint must be a private copy, taken and handed out again
 * by copying.
 */
import type { Value } from './types';
import { isPlainObject, valueProblem } from './value-check';

/** A deep copy of `v`; throws a TypeError naming the offending part when `v` is not a Value. */
export function cloneValue(v: unknown, what = 'value'): Value {
  const copy = tryClone(v);
  if (copy === undefined) throw new TypeError(`${what} is not a JSON value: ${valueProblem(v) ?? 'not a value'}`);
  return copy;
}

/** The copy, or undefined when `v` is not a Value. */
function tryClone(v: unknown): Value | undefined {
  switch (typeof v) {
    case 'string':
    case 'boolean':
      return v;
    case 'number':
      return Number.isFinite(v) ? v : undefined;
    case 'object': {
      if (v === null) return null;
      if (Array.isArray(v)) {
        const out: Value[] = new Array<Value>(v.length);
        for (let i = 0; i < v.length; i++) {
          const x = tryClone(v[i]);
          if (x === undefined) return undefined;
          out[i] = x;
        }
        return out;
      }
      if (!isPlainObject(v)) return undefined;
      const out: Record<string, Value> = {};
      for (const k in v) {
        const x = (v as Record<string, unknown>)[k];
        if (x === undefined) continue;
        const c = tryClone(x);
        if (c === undefined) return undefined;
        if (k === '__proto__')
          Object.defineProperty(out, k, { value: c, enumerable: true, configurable: true, writable: true });
        else out[k] = c;
      }
      return out;
    }
    default:
      return undefined;
  }
}
