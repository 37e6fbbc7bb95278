/**
 * A group's inputs as `reduce` hands them to the user function: consolidated `[value,
 * multiplicity]` pairs sorted by the total order of values, with the time of each pair kept in a
 * parallel array (for retention). Updates are merged into a fresh array so the previous state stays
 * intact until the caller commits: a failing user function leaves nothing half-updated. The pairs
 * are frozen; the arrays are not (freezing large arrays is slow in V8), so the user function gets
 * a copy.
 */
import type { Value } from './types';
import { compareValues } from './value-order';

export type Entry = readonly [value: Value, multiplicity: number];

export interface SortedInputs {
  readonly entries: readonly Entry[];
  readonly times: readonly number[];
  readonly maxTime: number;
}

export const NO_INPUTS: SortedInputs = { entries: [], times: [], maxTime: -Infinity };

/** Updates of one group, sorted by value and consolidated (no zero diffs, no repeated values). */
export interface SortedUpdates {
  readonly values: Value[];
  readonly diffs: number[];
  readonly times: number[];
}

/** Sorts and consolidates the updates at `indices` of the given columns. */
export function sortUpdates(values: readonly Value[], diffs: readonly number[], times: readonly number[], indices: number[]): SortedUpdates {
  let ordered = true; // strictly increasing already (the common case: events in Lamport order)
  for (let j = 1; j < indices.length && ordered; j++) ordered = compareValues(values[indices[j - 1]], values[indices[j]]) < 0;
  if (ordered) {
    // Sized up front (growing by push reallocates), trimmed by the zero diffs left out.
    const n = indices.length;
    const out: SortedUpdates = { values: new Array<Value>(n), diffs: new Array<number>(n), times: new Array<number>(n) };
    let m = 0;
    for (let j = 0; j < n; j++) {
      const i = indices[j] as number;
      if (diffs[i] === 0) continue;
      out.values[m] = values[i] as Value;
      out.diffs[m] = diffs[i] as number;
      out.times[m] = times[i] as number;
      m++;
    }
    if (m < n) out.values.length = out.diffs.length = out.times.length = m;
    return out;
  }
  const sorted = indices.slice().sort((a, b) => compareValues(values[a], values[b]));
  const out: SortedUpdates = { values: [], diffs: [], times: [] };
  let j = 0;
  while (j < sorted.length) {
    const first = sorted[j];
    let diff = diffs[first];
    let time = times[first];
    let k = j + 1;
    while (k < sorted.length && compareValues(values[first], values[sorted[k]]) === 0) {
      diff += diffs[sorted[k]];
      if (times[sorted[k]] > time) time = times[sorted[k]];
      k++;
    }
    if (diff !== 0) {
      out.values.push(values[first]);
      out.diffs.push(diff);
      out.times.push(time);
    }
    j = k;
  }
  return out;
}

/** `base` with `updates` added, as new arrays (entries whose multiplicity becomes zero are dropped). */
export function mergeInputs(base: SortedInputs, updates: SortedUpdates, from = 0, to = updates.values.length): SortedInputs {
  const { entries, times } = base;
  let maxTime = base.maxTime;
  // Fast path: all updates sort after the existing inputs (appending events in causal order).
  if (from < to && (entries.length === 0 || compareValues(entries[entries.length - 1][0], updates.values[from]) < 0)) {
    // Sized up front: growing by push would reallocate (and garbage) the arrays several times.
    const n = entries.length;
    const e = new Array<Entry>(n + to - from);
    const t = new Array<number>(n + to - from);
    for (let i = 0; i < n; i++) {
      e[i] = entries[i] as Entry;
      t[i] = times[i] as number;
    }
    for (let j = from; j < to; j++) {
      const time = updates.times[j] as number;
      e[n + j - from] = Object.freeze([updates.values[j] as Value, updates.diffs[j] as number] as const);
      t[n + j - from] = time;
      if (time > maxTime) maxTime = time;
    }
    return { entries: e, times: t, maxTime };
  }
  const e: Entry[] = [];
  const t: number[] = [];
  maxTime = -Infinity;
  let i = 0;
  let j = from;
  const add = (entry: Entry, time: number) => {
    e.push(entry);
    t.push(time);
    if (time > maxTime) maxTime = time;
  };
  while (i < entries.length || j < to) {
    const c = i === entries.length ? 1 : j === to ? -1 : compareValues(entries[i][0], updates.values[j]);
    if (c < 0) {
      add(entries[i], times[i]);
      i++;
    } else if (c > 0) {
      add(Object.freeze([updates.values[j], updates.diffs[j]] as const), updates.times[j]);
      j++;
    } else {
      const mult = entries[i][1] + updates.diffs[j];
      if (mult !== 0) add(Object.freeze([entries[i][0], mult] as const), Math.max(times[i], updates.times[j]));
      i++;
      j++;
    }
  }
  return { entries: e, times: t, maxTime };
}

/** The inputs whose time is at least `cutoff`, or null when none is older. */
export function dropOlder(base: SortedInputs, cutoff: number): SortedInputs | null {
  let older = 0;
  for (const t of base.times) if (t < cutoff) older++;
  if (older === 0) return null;
  const e: Entry[] = [];
  const t: number[] = [];
  let maxTime = -Infinity;
  for (let i = 0; i < base.entries.length; i++) {
    if (base.times[i] < cutoff) continue;
    e.push(base.entries[i]);
    t.push(base.times[i]);
    if (base.times[i] > maxTime) maxTime = base.times[i];
  }
  return { entries: e, times: t, maxTime };
}
