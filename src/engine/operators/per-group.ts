/**
 * How `reduce` and `scan` run a batch: the touched groups' updates, sorted and consolidated per
 * key, each computed without changing the operator, then all committed together (so a failing
 * group under 'stop' leaves every group as it was). Synchronous unless a group's computation
 * returned a promise.
 */
import type { Columns } from '../columns';
import { sortUpdates, type SortedUpdates } from '../sorted-inputs';
import { isThenable } from '../step-context';
import type { MaybePromise, Value } from '../types';
import { ValueMap } from '../value-map';

export function runPerGroup<O>(
  batch: Columns,
  compute: (key: Value, updates: SortedUpdates) => MaybePromise<O>,
  commit: (outcomes: readonly O[]) => Columns | null,
): MaybePromise<Columns | null> {
  const keys = batch.keys!;
  const buckets = new ValueMap<number[]>();
  const order: Value[] = [];
  for (let i = 0; i < keys.length; i++) {
    if (batch.diffs[i] === 0) continue;
    const b = buckets.get(keys[i]);
    if (b) b.push(i);
    else {
      buckets.set(keys[i], [i]);
      order.push(keys[i]);
    }
  }
  const outcomes: MaybePromise<O>[] = [];
  let async = false;
  for (const key of order) {
    const updates = sortUpdates(batch.values, batch.diffs, batch.times, buckets.get(key)!);
    if (updates.values.length === 0) continue; // the key's updates cancel out
    const o = compute(key, updates);
    if (isThenable(o)) async = true;
    outcomes.push(o);
  }
  if (!async) return commit(outcomes as O[]);
  return Promise.all(outcomes).then((all) => commit(all));
}
