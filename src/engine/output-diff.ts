/**
 * The difference between a group's previous and new `reduce` outputs. Outputs usually change in one
 * place only (new events complete new records at the end; a late event changes one in the middle),
 * so the common prefix and the common suffix are skipped by cheap position-wise structural
 * comparison, and only the differing middles are consolidated (by structural identity, hashing).
 */
import type { Value } from './types';
import { valueProblem } from './value-check';
import { valueEquals } from './value-identity';
import { ValueMap } from './value-map';

export type OutputPair = readonly [value: Value, multiplicity: number];

/** The change between two output lists, and the list to keep as the new previous outputs. */
export interface OutputChange {
  /** `next − prev`, without zero diffs; consolidated unless it only adds (then a value may repeat). */
  readonly diff: readonly OutputPair[];
  /**
   * `next` with its unchanged prefix and suffix taken from `prev`: keeping the already retained
   * objects instead of the function's fresh copies lets the copies die young (much less GC work).
   */
  readonly kept: readonly OutputPair[];
}

/** Same pair at the same place: `q` is raw (as the user produced it), `r` was accepted before. */
function samePair(q: unknown, r: OutputPair): boolean {
  return Array.isArray(q) && q.length === 2 && q[1] === r[1] && valueEquals(r[0], q[0] as Value);
}

/**
 * Compares a group's previous outputs with what its function produced now (`next`: raw, as the
 * user pushed or returned it). Throws a TypeError when a changed output is not a `[value,
 * integer multiplicity]` pair with a JSON value; only the part between the unchanged prefix and
 * suffix needs checking, since those equal outputs that were accepted before. Zero multiplicities
 * are dropped.
 */
export function diffOutputs(prev: readonly OutputPair[], next: readonly unknown[]): OutputChange {
  let p = 0;
  const n = prev.length < next.length ? prev.length : next.length;
  while (p < n && samePair(next[p], prev[p])) p++;
  if (p === prev.length && p === next.length) return { diff: [], kept: prev };
  // The common suffix, not overlapping the prefix.
  let pe = prev.length;
  let ne = next.length;
  while (pe > p && ne > p && samePair(next[ne - 1], prev[pe - 1])) {
    pe--;
    ne--;
  }
  const kept: OutputPair[] = prev.slice(0, p);
  acceptOutputs(next, p, ne, kept);
  const added = kept.length;
  for (let i = pe; i < prev.length; i++) kept.push(prev[i]);
  // next − prev over the middles: kept[p..added) against prev[p..pe).
  const sums = new ValueMap<[Value, number]>();
  const order: [Value, number][] = [];
  const add = (value: Value, diff: number): void => {
    const acc = sums.get(value);
    if (acc) acc[1] += diff;
    else {
      const fresh: [Value, number] = [value, diff];
      sums.set(value, fresh);
      order.push(fresh);
    }
  };
  // Only additions (new inputs appended): nothing can cancel, and whoever needs one entry per value
  // consolidates later (the graph's outputs, the sinks by row) — no hashing here.
  if (p === pe) return { diff: kept.slice(p, added), kept };
  for (let i = p; i < pe; i++) add(prev[i][0], -prev[i][1]);
  for (let i = p; i < added; i++) add(kept[i][0], kept[i][1]);
  return { diff: order.filter((x) => x[1] !== 0), kept };
}

/**
 * Checks the raw outputs `next[from..to)` and appends those with a non-zero multiplicity to `kept`
 * (returned). Throws a TypeError for a malformed pair or a value that is not a JSON value.
 */
export function acceptOutputs(
  next: readonly unknown[],
  from = 0,
  to = next.length,
  kept: OutputPair[] = [],
): OutputPair[] {
  for (let i = from; i < to; i++) {
    const q = next[i];
    if (!Array.isArray(q) || q.length !== 2 || !Number.isInteger(q[1])) {
      throw new TypeError('reduce output must be [value, multiplicity] pairs with integer multiplicities');
    }
    if (q[1] === 0) continue;
    const problem = valueProblem(q[0]);
    if (problem !== null) throw new TypeError(`reduce output is not a JSON value: ${problem}`);
    kept.push(q as unknown as OutputPair);
  }
  return kept;
}

/** Everything a reduce function produced: the pairs it pushed and the ones it returned. */
export function gatherOutputs(pushed: readonly unknown[], returned: unknown): readonly unknown[] {
  if (returned === undefined || returned === pushed) return pushed;
  if (!Array.isArray(returned))
    throw new TypeError(
      `reduce function returned ${typeof returned}, expected an array of [value, multiplicity] or nothing`,
    );
  return pushed.length === 0 ? returned : pushed.concat(returned);
}
