/**
 * How `reduce` and `scan` run a batch: the touched groups' updates, sorted and consolidated per
 * key by (sort key, value), each computed without changing the operator, then all committed
 * together (so a failing group under 'stop' leaves every group as it was). Synchronous unless a
 * group's computation returned a promise.
 */
import type { Columns } from '../columns';
import { evaluateAll, SKIP, type Evaluated } from '../evaluate';
import { sortUpdates, type SortedUpdates } from '../sorted-inputs';
import { isThenable, type StepContext } from '../step-context';
import { mustBeValue } from './elementwise';
import type { MaybePromise, Value } from '../types';
import { ValueMap } from '../value-map';
import { encodeKey } from '../state-key';
import { pagedOnly, type DurableState, type PagedState } from '../operator';

/**
 * `sortKeys`: the sort key of each update (null: all null); an update whose sort key is SKIP
 * (its order-by function failed) is left out.
 */
export function runPerGroup<O>(
  batch: Columns,
  sortKeys: readonly Evaluated<Value>[] | null,
  compute: (key: Value, updates: SortedUpdates) => MaybePromise<O>,
  commit: (outcomes: readonly O[]) => Columns | null,
): MaybePromise<Columns | null> {
  const keys = batch.keys!;
  const buckets = new ValueMap<number[]>();
  const order: Value[] = [];
  for (let i = 0; i < keys.length; i++) {
    if (batch.diffs[i] === 0) continue;
    if (sortKeys !== null && sortKeys[i] === SKIP) continue;
    const b = buckets.get(keys[i]);
    if (b) b.push(i);
    else {
      buckets.set(keys[i], [i]);
      order.push(keys[i]);
    }
  }
  const outcomes: MaybePromise<O>[] = [];
  let async = false;
  const sorts = sortKeys as readonly Value[] | null;
  for (const key of order) {
    const updates = sortUpdates(batch.values, sorts, batch.diffs, batch.times, buckets.get(key)!);
    if (updates.values.length === 0) continue; // the key's updates cancel out
    const o = compute(key, updates);
    if (isThenable(o)) async = true;
    outcomes.push(o);
  }
  if (!async) return commit(outcomes as O[]);
  return Promise.all(outcomes).then((all) => commit(all));
}

/**
 * The sort keys of a batch for `reduce`/`scan`: `orderBy` of each value when given (a failure
 * skips the update: SKIP), else the batch's order keys when the operator reads them, else null.
 */
export function sortKeysOf(
  ctx: StepContext,
  name: string,
  orderBy: ((value: Value) => MaybePromise<Value>) | null,
  batch: Columns,
): MaybePromise<readonly Evaluated<Value>[] | null> {
  if (orderBy === null) return batch.orders;
  return evaluateAll(ctx, name, orderBy, batch.values, mustBeValue);
}

/** The group keys of a grouped batch, by encoded key. */
export function groupKeys(input: Columns | null, into: Map<string, Value>): void {
  if (input === null) return;
  const keys = input.keys!;
  let last: Value | undefined;
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i];
    if (k === last) continue; // (consecutive updates of a group often share the key object)
    last = k;
    into.set(encodeKey(k), k);
  }
}

/**
 * The `DurableState` of a grouped operator whose groups are stored as several entries (`paged`):
 * its units are its groups, a batch touches its records' group keys, entries carry times, and the
 * cache never calls `load` or `save` (`pagedOnly`).
 */
export function groupedPagedState(name: string, evict: (key: Value) => void, paged: PagedState): DurableState {
  return { timed: true, touched: ([input], into) => groupKeys(input, into), ...pagedOnly(name), evict, paged };
}
