/**
 * `filter`, `map` and `flatMap`: one user function call per input update, diffs, times and order
 * keys carried through unchanged (every output of a flatMap gets its input's order key). Linear,
 * so they need no state and preserve insert-only-ness.
 */
import { emptyColumns, pushFrom, type Columns } from '../columns';
import { evaluateAll, SKIP, type Evaluated, type ResultCheck } from '../evaluate';
import { StatelessOperator, then } from '../operator';
import type { StepContext } from '../step-context';
import type { MaybePromise, Value } from '../types';
import { valueProblem } from '../value-check';

type UserFn<R> = (value: Value) => MaybePromise<R>;

export class FilterOperator extends StatelessOperator {
  constructor(
    name: string,
    input: number,
    private readonly fn: UserFn<unknown>,
  ) {
    super(name, [input]);
  }

  run([input]: readonly (Columns | null)[], ctx: StepContext): MaybePromise<Columns | null> {
    const batch = input!;
    return then(evaluateAll(ctx, this.name, this.fn, batch.values, null), (keep) => select(batch, keep));
  }
}

/** Filters of more kept updates than this push them instead of allocating the columns ahead. */
const PREALLOCATED = 8192;

/** Keeps the updates whose evaluation is truthy (JavaScript truthiness, as a Node-RED user expects). */
function select(batch: Columns, keep: readonly Evaluated<unknown>[]): Columns | null {
  let kept = 0;
  for (let i = 0; i < keep.length; i++) if (keep[i] !== SKIP && keep[i]) kept++;
  if (kept === keep.length) return batch;
  if (kept === 0) return null;
  // NB: columns of the kept size, written by position (pushing from empty allocated about as much
  // again as garbage); `new Array(n)` beyond a few thousand slots may not give a fast array.
  if (kept > PREALLOCATED) {
    const out = emptyColumns(false, batch.orders !== null);
    for (let i = 0; i < keep.length; i++) if (keep[i] !== SKIP && keep[i]) pushFrom(out, batch, i);
    return out;
  }
  const values = new Array<Value>(kept);
  const diffs = new Array<number>(kept);
  const times = new Array<number>(kept);
  const orders = batch.orders === null ? null : new Array<Value>(kept);
  let w = 0;
  for (let i = 0; i < keep.length; i++) {
    const k = keep[i];
    if (k === SKIP || !k) continue;
    values[w] = batch.values[i];
    diffs[w] = batch.diffs[i];
    times[w] = batch.times[i];
    if (orders !== null) orders[w] = batch.orders![i];
    w++;
  }
  return { values, diffs, times, keys: null, orders };
}

/** Rejects results that are not values (e.g. a map function returning undefined or NaN). */
export const mustBeValue: ResultCheck = (r) => {
  const p = valueProblem(r);
  return p === null ? null : `result is not a JSON value: ${p}`;
};

export class MapOperator extends StatelessOperator {
  /** The results' check: none when the caller checked them (CheckedOptions.resultsChecked). */
  private readonly check: ResultCheck | null;

  constructor(
    name: string,
    input: number,
    private readonly fn: UserFn<Value>,
    resultsChecked = false,
  ) {
    super(name, [input]);
    this.check = resultsChecked ? null : mustBeValue;
  }

  run([input]: readonly (Columns | null)[], ctx: StepContext): MaybePromise<Columns | null> {
    const batch = input!;
    return then(evaluateAll(ctx, this.name, this.fn, batch.values, this.check), (mapped) => {
      let skipped = 0;
      for (let i = 0; i < mapped.length; i++) if (mapped[i] === SKIP) skipped++;
      if (skipped === 0)
        return { values: mapped as Value[], diffs: batch.diffs, times: batch.times, keys: null, orders: batch.orders };
      const out = emptyColumns(false, batch.orders !== null);
      for (let i = 0; i < mapped.length; i++) {
        const m = mapped[i];
        if (m === SKIP) continue;
        out.values.push(m);
        out.diffs.push(batch.diffs[i]);
        out.times.push(batch.times[i]);
        if (out.orders !== null) out.orders.push(batch.orders![i]);
      }
      return out.values.length === 0 ? null : out;
    });
  }
}

const mustBeArrayOfValues: ResultCheck = (r) => {
  if (!Array.isArray(r)) return `result is not an array: ${r === undefined ? 'undefined' : typeof r}`;
  const p = valueProblem(r);
  return p === null ? null : `result is not an array of JSON values: ${p}`;
};

export class FlatMapOperator extends StatelessOperator {
  constructor(
    name: string,
    input: number,
    private readonly fn: UserFn<readonly Value[]>,
  ) {
    super(name, [input]);
  }

  run([input]: readonly (Columns | null)[], ctx: StepContext): MaybePromise<Columns | null> {
    const batch = input!;
    return then(evaluateAll(ctx, this.name, this.fn, batch.values, mustBeArrayOfValues), (lists) => {
      const out = emptyColumns(false, batch.orders !== null);
      for (let i = 0; i < lists.length; i++) {
        const list = lists[i];
        if (list === SKIP) continue;
        for (const v of list) {
          out.values.push(v);
          out.diffs.push(batch.diffs[i]);
          out.times.push(batch.times[i]);
          if (out.orders !== null) out.orders.push(batch.orders![i]);
        }
      }
      return out.values.length === 0 ? null : out;
    });
  }
}
