/**
 * The difference between a group's previous and new `reduce` outputs. Outputs usually change at
 * the end only (new events complete new records), so the common prefix is skipped by structural
 * comparison, and only the differing tails are consolidated (by structural identity).
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
 * Compares a group's previous outputs with what its function produced now (`next`: raw, as the
 * user pushed or returned it). Throws a TypeError when a changed output is not a `[value,
 * integer multiplicity]` pair with a JSON value; only the part after the unchanged prefix needs
 * checking, since the prefix equals outputs that were accepted before. Zero multiplicities are
 * dropped.
 */
export function diffOutputs(prev: readonly OutputPair[], next: readonly unknown[]): OutputChange {
  let p = 0;
  const n = prev.length < next.length ? prev.length : next.length;
  while (p < n) {
    const q = next[p];
    const r = prev[p];
    if (!Array.isArray(q) || q.length !== 2 || q[1] !== r[1] || !valueEquals(r[0], q[0] as Value)) break;
    p++;
  }
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
  const kept: OutputPair[] = prev.slice(0, p);
  for (let i = p; i < next.length; i++) {
    const q = next[i];
    if (!Array.isArray(q) || q.length !== 2 || !Number.isInteger(q[1])) {
      throw new TypeError('reduce output must be [value, multiplicity] pairs with integer multiplicities');
    }
    if (q[1] === 0) continue;
    const problem = valueProblem(q[0]);
    if (problem !== null) throw new TypeError(`reduce output is not a JSON value: ${problem}`);
    add(q[0] as Value, q[1] as number);
    kept.push(q as unknown as OutputPair);
  }
  return { diff: order.filter((x) => x[1] !== 0), kept };
}

/** Everything a reduce function produced: the pairs it pushed and the ones it returned. */
export function gatherOutputs(pushed: readonly unknown[], returned: unknown): readonly unknown[] {
  if (returned === undefined || returned === pushed) return pushed;
  if (!Array.isArray(returned)) throw new TypeError(`reduce function returned ${typeof returned}, expected an array of [value, multiplicity] or nothing`);
  return pushed.length === 0 ? returned : pushed.concat(returned);
}
