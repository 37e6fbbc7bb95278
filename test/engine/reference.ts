/**
 * A naive from-scratch evaluator, the oracle for the engine's incremental results. Written
 * independently of src/engine and as plainly as possible: collections are Z-sets (value →
 * multiplicity) keyed by sorted-key JSON text, and every operator recomputes everything.
 */
import type { Value } from '../../src/engine';

/** A collection: JSON text of the value (keys sorted) → [value, multiplicity ≠ 0]. */
export type Z = Map<string, [Value, number]>;

/** JSON text with object keys sorted (JSON.stringify already writes -0 as 0 and drops undefined properties). */
export function refKey(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) => {
    if (x === null || typeof x !== 'object' || Array.isArray(x)) return x;
    const sorted: Record<string, unknown> = {};
    for (const k of Object.keys(x).sort()) sorted[k] = (x as Record<string, unknown>)[k];
    return sorted;
  });
}

function rankOf(v: Value): number {
  if (v === null) return 0;
  if (typeof v === 'boolean') return 1;
  if (typeof v === 'number') return 2;
  if (typeof v === 'string') return 3;
  return Array.isArray(v) ? 4 : 5;
}

function codeUnitCompare(a: string, b: string): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    const d = a.charCodeAt(i) - b.charCodeAt(i);
    if (d !== 0) return Math.sign(d);
  }
  return Math.sign(a.length - b.length);
}

/** The documented total order, written out naively. */
export function refCompare(a: Value, b: Value): number {
  const r = rankOf(a) - rankOf(b);
  if (r !== 0) return Math.sign(r);
  if (typeof a === 'boolean') return Number(a) - Number(b as boolean);
  if (typeof a === 'number') return Math.sign(a - (b as number));
  if (typeof a === 'string') return codeUnitCompare(a, b as string);
  if (a === null) return 0;
  if (Array.isArray(a)) {
    const y = b as Value[];
    for (let i = 0; i < Math.min(a.length, y.length); i++) {
      const c = refCompare(a[i], y[i]);
      if (c !== 0) return c;
    }
    return Math.sign(a.length - y.length);
  }
  const entries = (o: Value) =>
    Object.entries(o as Record<string, Value>)
      .filter(([, x]) => x !== undefined)
      .sort(([p], [q]) => codeUnitCompare(p, q));
  const ea = entries(a);
  const eb = entries(b);
  const keysA = ea.map(([k]) => k);
  const keysB = eb.map(([k]) => k);
  const c = refCompare(keysA, keysB);
  if (c !== 0) return c;
  for (let i = 0; i < ea.length; i++) {
    const d = refCompare(ea[i][1], eb[i][1]);
    if (d !== 0) return d;
  }
  return 0;
}

export function zAdd(z: Z, value: Value, diff: number): void {
  if (diff === 0) return;
  const k = refKey(value);
  const e = z.get(k);
  if (e === undefined) z.set(k, [value, diff]);
  else if (e[1] + diff === 0) z.delete(k);
  else e[1] += diff;
}

export function zFrom(pairs: Iterable<readonly [Value, number, ...unknown[]]>): Z {
  const z: Z = new Map();
  for (const [v, d] of pairs) zAdd(z, v, d);
  return z;
}

/** `a − b`. */
export function zMinus(a: Z, b: Z): Z {
  const z: Z = new Map();
  for (const [v, d] of a.values()) zAdd(z, v, d);
  for (const [v, d] of b.values()) zAdd(z, v, -d);
  return z;
}

/** A comparable form: sorted [json, multiplicity] pairs. */
export function zShow(z: Z): [string, number][] {
  return [...z.entries()]
    .map(([k, [, d]]): [string, number] => [k, d])
    .sort((p, q) => (p[0] < q[0] ? -1 : p[0] > q[0] ? 1 : 0));
}

/** Grouped collection: JSON of the key → {key, z}. */
export type G = Map<string, { key: Value; z: Z }>;

export const ref = {
  filter(z: Z, fn: (v: Value) => unknown): Z {
    const out: Z = new Map();
    for (const [v, d] of z.values()) if (fn(v)) zAdd(out, v, d);
    return out;
  },
  map(z: Z, fn: (v: Value) => Value): Z {
    const out: Z = new Map();
    for (const [v, d] of z.values()) zAdd(out, fn(v), d);
    return out;
  },
  flatMap(z: Z, fn: (v: Value) => Value[]): Z {
    const out: Z = new Map();
    for (const [v, d] of z.values()) for (const w of fn(v)) zAdd(out, w, d);
    return out;
  },
  concat(...zs: Z[]): Z {
    const out: Z = new Map();
    for (const z of zs) for (const [v, d] of z.values()) zAdd(out, v, d);
    return out;
  },
  distinct(z: Z): Z {
    const out: Z = new Map();
    for (const [v, d] of z.values()) if (d > 0) zAdd(out, v, 1);
    return out;
  },
  groupBy(z: Z, keyFn: (v: Value) => Value): G {
    const g: G = new Map();
    for (const [v, d] of z.values()) {
      const key = keyFn(v);
      const k = refKey(key);
      if (!g.has(k)) g.set(k, { key, z: new Map() });
      zAdd(g.get(k)!.z, v, d);
    }
    for (const [k, e] of g) if (e.z.size === 0) g.delete(k);
    return g;
  },
  perGroup(g: G, fn: (key: Value, z: Z) => Z): G {
    const out: G = new Map();
    for (const [k, { key, z }] of g) {
      const r = fn(key, z);
      if (r.size > 0) out.set(k, { key, z: r });
    }
    return out;
  },
  /** maxBy (dir 1) / minBy (dir -1): the best (score, value) among values with positive multiplicity. */
  extremum(g: G, fn: (v: Value) => Value, dir: 1 | -1): G {
    return ref.perGroup(g, (_key, z) => {
      let best: Value | undefined;
      for (const [v, d] of z.values()) {
        if (d <= 0) continue;
        if (best === undefined) best = v;
        else {
          const c = refCompare(fn(v), fn(best)) || refCompare(v, best);
          if (c * dir > 0) best = v;
        }
      }
      return best === undefined ? new Map() : zFrom([[best, 1]]);
    });
  },
  reduce(g: G, fn: (key: Value, inputs: [Value, number][], outputs: [Value, number][]) => void): G {
    return ref.perGroup(g, (key, z) => {
      const inputs = [...z.values()].map(([v, d]): [Value, number] => [v, d]).sort((p, q) => refCompare(p[0], q[0]));
      const outputs: [Value, number][] = [];
      fn(key, inputs, outputs);
      return zFrom(outputs);
    });
  },
  count(g: G): G {
    return ref.perGroup(g, (key, z) => {
      let n = 0;
      for (const [, d] of z.values()) n += d;
      return n === 0 ? new Map() : zFrom([[{ key, count: n }, 1]]);
    });
  },
  sum(g: G, fn: (v: Value) => number): G {
    return ref.perGroup(g, (key, z) => {
      let n = 0;
      let s = 0;
      for (const [v, d] of z.values()) {
        n += d;
        s += fn(v) * d;
      }
      return n === 0 ? new Map() : zFrom([[{ key, sum: s }, 1]]);
    });
  },
  distinctPerGroup(g: G): G {
    return ref.perGroup(g, (_key, z) => ref.distinct(z));
  },
  ungroup(g: G): Z {
    return ref.concat(...[...g.values()].map((e) => e.z));
  },
};
