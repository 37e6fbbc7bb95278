/**
 * The difference between a group's previous and new `reduce` outputs. Outputs usually change at
 * the end only (new events complete new records), so the common prefix is skipped by structural
 * comparison, and only the differing tails are consolidated by canonical key.
 */
import type { Value } from './types';
import { valueProblem } from './value-check';
import { valueEquals } from './value-identity';
import { ValueMap } from './value-map';

export type OutputPair = readonly [value: Value, multiplicity: number];

/** The change between two output lists, and the list to keep as the new previous outputs. */
export interface OutputChange {
  /** `next − prev`, consolidated (no zero diffs). */
  readonly diff: [Value, number][];
  /**
   * `next` with its unchanged prefix taken from `prev`: keeping the already retained objects
   * instead of the function's fresh copies lets the copies die young (much less GC work).
   */
  readonly kept: readonly OutputPair[];
}

/**
 * Compares a group's previous and new outputs. Throws a TypeError when a new output is not a
 * value (only the values outside the unchanged prefix are checked: the prefix equals outputs that
 * were accepted before).
 */
export function diffOutputs(prev: readonly OutputPair[], next: readonly OutputPair[]): OutputChange {
  let p = 0;
  const n = prev.length < next.length ? prev.length : next.length;
  while (p < n && prev[p][1] === next[p][1] && valueEquals(prev[p][0], next[p][0])) p++;
  if (p === prev.length && p === next.length) return { diff: [], kept: prev };
  const sums = new ValueMap<[Value, number]>();
  const order: [Value, number][] = [];
  const add = (value: Value, diff: number) => {
    const acc = sums.get(value);
    if (acc) acc[1] += diff;
    else {
      const fresh: [Value, number] = [value, diff];
      sums.set(value, fresh);
      order.push(fresh);
    }
  };
  for (let i = p; i < prev.length; i++) add(prev[i][0], -prev[i][1]);
  for (let i = p; i < next.length; i++) {
    const problem = valueProblem(next[i][0]);
    if (problem !== null) throw new TypeError(`reduce output is not a JSON value: ${problem}`);
    add(next[i][0], next[i][1]);
  }
  let kept: OutputPair[] | readonly OutputPair[] = next;
  if (p > 0) {
    const k = prev.slice(0, p);
    for (let i = p; i < next.length; i++) k.push(next[i]);
    kept = k;
  }
  return { diff: order.filter((x) => x[1] !== 0), kept };
}

/** Checks the shape of what a reduce function produced and drops zero multiplicities. */
export function collectOutputs(pushed: readonly unknown[], returned: unknown): readonly OutputPair[] {
  let all: readonly unknown[] = pushed;
  if (returned !== undefined && returned !== pushed) {
    if (!Array.isArray(returned)) throw new TypeError(`reduce function returned ${typeof returned}, expected an array of [value, multiplicity] or nothing`);
    all = pushed.length === 0 ? returned : pushed.concat(returned);
  }
  let zeros = 0;
  for (const pair of all) {
    if (!Array.isArray(pair) || pair.length !== 2 || !Number.isInteger(pair[1])) {
      throw new TypeError('reduce output must be [value, multiplicity] pairs with integer multiplicities');
    }
    if (pair[1] === 0) zeros++;
  }
  if (zeros === 0) return all as readonly OutputPair[];
  return (all as readonly OutputPair[]).filter((pair) => pair[1] !== 0);
}
