/**
 * A group's inputs as `reduce` hands them to the user function: consolidated `[value,
 * multiplicity]` pairs sorted by (sort key, value), with the sort key (the order key, or the
 * order-by value) and the time of each pair kept in parallel arrays (for the order and for
 * retention). A record is identified by (sort key, value): the same value may be there once per
 * sort key. Updates are merged into a fresh array so the previous state stays intact until the
 * caller commits: a failing user function leaves nothing half-updated. The pairs are frozen; the
 * arrays are not (freezing large arrays is slow in V8), so the user function gets a copy.
 */
import type { Value } from './types';
import { compareValues } from './value-order';

/** The order of a group's inputs: by sort key, then by value. */
export function compareInputs(orderA: Value, a: Value, orderB: Value, b: Value): number {
  if (orderA !== orderB) {
    const c = compareValues(orderA, orderB);
    if (c !== 0) return c;
  }
  return compareValues(a, b);
}

export type Entry = readonly [value: Value, multiplicity: number];

export interface SortedInputs {
  readonly entries: readonly Entry[];
  /** The sort key of each entry. */
  readonly orders: readonly Value[];
  readonly times: readonly number[];
  readonly maxTime: number;
}

export const NO_INPUTS: SortedInputs = { entries: [], orders: [], times: [], maxTime: -Infinity };

/** Updates of one group, sorted by (sort key, value) and consolidated (no zero diffs, no repeated records). */
export interface SortedUpdates {
  readonly values: Value[];
  readonly orders: Value[];
  readonly diffs: number[];
  readonly times: number[];
}

/** Sorts and consolidates the updates at `indices` of the given columns (`orders` null: all sort keys null). */
export function sortUpdates(
  values: readonly Value[],
  orders: readonly Value[] | null,
  diffs: readonly number[],
  times: readonly number[],
  indices: number[],
): SortedUpdates {
  const orderAt = (i: number): Value => (orders === null ? null : orders[i]);
  let ordered = true; // strictly increasing already (the common case: events in causal order)
  for (let j = 1; j < indices.length && ordered; j++) {
    const a = indices[j - 1];
    const b = indices[j];
    ordered = compareInputs(orderAt(a), values[a], orderAt(b), values[b]) < 0;
  }
  if (ordered) {
    // Sized up front (growing by push reallocates), trimmed by the zero diffs left out.
    const n = indices.length;
    const out: SortedUpdates = {
      values: new Array<Value>(n),
      orders: new Array<Value>(n),
      diffs: new Array<number>(n),
      times: new Array<number>(n),
    };
    let m = 0;
    for (let j = 0; j < n; j++) {
      const i = indices[j] as number;
      if (diffs[i] === 0) continue;
      out.values[m] = values[i] as Value;
      out.orders[m] = orderAt(i);
      out.diffs[m] = diffs[i] as number;
      out.times[m] = times[i] as number;
      m++;
    }
    if (m < n) out.values.length = out.orders.length = out.diffs.length = out.times.length = m;
    return out;
  }
  const sorted = indices.slice().sort((a, b) => compareInputs(orderAt(a), values[a], orderAt(b), values[b]));
  const out: SortedUpdates = { values: [], orders: [], diffs: [], times: [] };
  let j = 0;
  while (j < sorted.length) {
    const first = sorted[j];
    let diff = diffs[first];
    let time = times[first];
    let k = j + 1;
    while (
      k < sorted.length &&
      compareInputs(orderAt(first), values[first], orderAt(sorted[k]), values[sorted[k]]) === 0
    ) {
      diff += diffs[sorted[k]];
      if (times[sorted[k]] > time) time = times[sorted[k]];
      k++;
    }
    if (diff !== 0) {
      out.values.push(values[first]);
      out.orders.push(orderAt(first));
      out.diffs.push(diff);
      out.times.push(time);
    }
    j = k;
  }
  return out;
}

/** `base` with `updates` added, as new arrays (entries whose multiplicity becomes zero are dropped). */
export function mergeInputs(
  base: SortedInputs,
  updates: SortedUpdates,
  from = 0,
  to = updates.values.length,
): SortedInputs {
  const { entries, orders, times } = base;
  let maxTime = base.maxTime;
  const n = entries.length;
  // Fast path: all updates sort after the existing inputs (appending events in causal order).
  if (
    from < to &&
    (n === 0 || compareInputs(orders[n - 1], entries[n - 1][0], updates.orders[from], updates.values[from]) < 0)
  ) {
    // Sized up front: growing by push would reallocate (and garbage) the arrays several times.
    const e = new Array<Entry>(n + to - from);
    const o = new Array<Value>(n + to - from);
    const t = new Array<number>(n + to - from);
    for (let i = 0; i < n; i++) {
      e[i] = entries[i] as Entry;
      o[i] = orders[i] as Value;
      t[i] = times[i] as number;
    }
    for (let j = from; j < to; j++) {
      const time = updates.times[j] as number;
      e[n + j - from] = Object.freeze([updates.values[j] as Value, updates.diffs[j] as number] as const);
      o[n + j - from] = updates.orders[j] as Value;
      t[n + j - from] = time;
      if (time > maxTime) maxTime = time;
    }
    return { entries: e, orders: o, times: t, maxTime };
  }
  const e: Entry[] = [];
  const o: Value[] = [];
  const t: number[] = [];
  maxTime = mergeSorted(
    n,
    (i) => entries[i][0],
    (i) => orders[i],
    (i) => entries[i][1],
    (i) => times[i],
    updates,
    from,
    to,
    (value, order, multiplicity, time, old) => {
      e.push(old >= 0 ? entries[old] : Object.freeze([value, multiplicity] as const));
      o.push(order);
      t.push(time);
    },
  );
  return { entries: e, orders: o, times: t, maxTime };
}

/**
 * A group's inputs as parallel columns, sorted and consolidated like `SortedInputs` (how `scan`
 * keeps them: no tuple per input, and appending is a copy of the updates' columns).
 */
export interface InputColumns {
  readonly values: readonly Value[];
  readonly orders: readonly Value[];
  readonly mults: readonly number[];
  readonly times: readonly number[];
  readonly maxTime: number;
}

/** `base` with `updates` [from, to) added, as new arrays (inputs whose multiplicity becomes zero are dropped). */
export function mergeColumns(base: InputColumns, updates: SortedUpdates, from: number, to: number): InputColumns {
  const { values, orders, mults, times } = base;
  const n = values.length;
  if (
    from < to &&
    (n === 0 || compareInputs(orders[n - 1], values[n - 1], updates.orders[from], updates.values[from]) < 0)
  ) {
    let maxTime = base.maxTime;
    for (let j = from; j < to; j++) if (updates.times[j] > maxTime) maxTime = updates.times[j];
    return {
      values: appended(values, updates.values, from, to),
      orders: appended(orders, updates.orders, from, to),
      mults: appended(mults, updates.diffs, from, to),
      times: appended(times, updates.times, from, to),
      maxTime,
    };
  }
  const v: Value[] = [];
  const o: Value[] = [];
  const m: number[] = [];
  const t: number[] = [];
  const maxTime = mergeSorted(
    n,
    (i) => values[i],
    (i) => orders[i],
    (i) => mults[i],
    (i) => times[i],
    updates,
    from,
    to,
    (value, order, multiplicity, time) => {
      v.push(value);
      o.push(order);
      m.push(multiplicity);
      t.push(time);
    },
  );
  return { values: v, orders: o, mults: m, times: t, maxTime };
}

/**
 * `old` followed by `added` [from, to): a new array, or `added` itself when that is all of it (a
 * group's whole batch appended after an empty region: the common case, one copy less per column).
 */
function appended<T>(old: readonly T[], added: readonly T[], from: number, to: number): readonly T[] {
  // NB: columns are never changed after they are built (sortUpdates makes fresh ones per group
  // and step; a fold reads them and copies them into its own arrays), so they can be shared.
  if (old.length === 0) return from === 0 && to === added.length ? added : added.slice(from, to);
  return old.concat(added.slice(from, to));
}

/**
 * Merges n sorted inputs (read through the accessors) with sorted updates [from, to): calls `out`
 * for each resulting input in order (`old`: the index of an input that is unchanged, else -1) and
 * returns their greatest time. Inputs whose multiplicity becomes zero are left out.
 */
function mergeSorted(
  n: number,
  valueAt: (i: number) => Value,
  orderAt: (i: number) => Value,
  multAt: (i: number) => number,
  timeAt: (i: number) => number,
  updates: SortedUpdates,
  from: number,
  to: number,
  out: (value: Value, order: Value, multiplicity: number, time: number, old: number) => void,
): number {
  let maxTime = -Infinity;
  let i = 0;
  let j = from;
  while (i < n || j < to) {
    const c = i === n ? 1 : j === to ? -1 : compareInputs(orderAt(i), valueAt(i), updates.orders[j], updates.values[j]);
    let time: number;
    if (c < 0) {
      time = timeAt(i);
      out(valueAt(i), orderAt(i), multAt(i), time, i);
      i++;
    } else if (c > 0) {
      time = updates.times[j];
      out(updates.values[j], updates.orders[j], updates.diffs[j], time, -1);
      j++;
    } else {
      const mult = multAt(i) + updates.diffs[j];
      time = Math.max(timeAt(i), updates.times[j]);
      const value = valueAt(i);
      const order = orderAt(i);
      i++;
      j++;
      if (mult === 0) continue;
      out(value, order, mult, time, -1);
    }
    if (time > maxTime) maxTime = time;
  }
  return maxTime;
}

/** How many of the times are before `cutoff`. */
export function olderCount(times: readonly number[], cutoff: number): number {
  let older = 0;
  for (let i = 0; i < times.length; i++) if (times[i] < cutoff) older++;
  return older;
}

/** The inputs whose time is at least `cutoff`, or null when none is older. */
export function dropOlder(base: SortedInputs, cutoff: number): SortedInputs | null {
  if (olderCount(base.times, cutoff) === 0) return null;
  const e: Entry[] = [];
  const o: Value[] = [];
  const t: number[] = [];
  let maxTime = -Infinity;
  for (let i = 0; i < base.entries.length; i++) {
    if (base.times[i] < cutoff) continue;
    e.push(base.entries[i]);
    o.push(base.orders[i]);
    t.push(base.times[i]);
    if (base.times[i] > maxTime) maxTime = base.times[i];
  }
  return { entries: e, orders: o, times: t, maxTime };
}

/** `dropOlder` for inputs kept as columns. */
export function dropOlderColumns(base: InputColumns, cutoff: number): InputColumns | null {
  if (olderCount(base.times, cutoff) === 0) return null;
  const kept = {
    values: [] as Value[],
    orders: [] as Value[],
    mults: [] as number[],
    times: [] as number[],
    maxTime: -Infinity,
  };
  for (let i = 0; i < base.values.length; i++) {
    const time = base.times[i];
    if (time < cutoff) continue;
    kept.values.push(base.values[i]);
    kept.orders.push(base.orders[i]);
    kept.mults.push(base.mults[i]);
    kept.times.push(time);
    if (time > kept.maxTime) kept.maxTime = time;
  }
  return kept;
}
