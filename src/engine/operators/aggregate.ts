/**
 * `count` and `sum` per group: O(1) state per group (the number of values and the running sum),
 * with or without retractions. Output `{key, count}` / `{key, sum}` for every non-empty group
 * (a group is non-empty while its multiplicities do not add up to zero). Order keys are ignored;
 * the outputs carry null ones.
 *
 * State per group (what a durable copy must keep to continue): the group key, the count (sum of
 * multiplicities), the sum, and the greatest time seen (`Totals`; its `stamp` and the totals
 * before a step live within that step only).
 *
 * Sums are exact for integers (up to 2^53); for fractional numbers the running sum can differ from
 * a fresh sum in the last bits after retractions. Neither needs compaction: the totals keep no
 * individual inputs, so nothing can be forgotten.
 */
import type { Columns } from '../columns';
import { emptyColumns, pushGrouped, rejectRetractions } from '../columns';
import { evaluateAll, SKIP, type Evaluated, type ResultCheck } from '../evaluate';
import { then, UnaryOperator, type DurableState } from '../operator';
import { groupKeys } from './per-group';
import type { StepContext } from '../step-context';
import type { MaybePromise, Value } from '../types';
import { ValueMap } from '../value-map';

interface Totals {
  readonly key: Value;
  count: number;
  sum: number;
  time: number;
  /** The step that last touched the group (its totals before that step are kept beside `touched`, not here: each group lives long). */
  stamp: number;
}

export type AggregateKind = 'count' | 'sum';

const mustBeNumber: ResultCheck = (r) =>
  typeof r === 'number' && Number.isFinite(r)
    ? null
    : `sum term is not a finite number: ${typeof r === 'number' ? String(r) : typeof r}`;

export class AggregateOperator extends UnaryOperator {
  private readonly groups = new ValueMap<Totals>();
  private stamp = 0;

  /** `term` is the summed function for 'sum', null for 'count'. */
  constructor(
    name: string,
    input: number,
    private readonly kind: AggregateKind,
    private readonly term: ((value: Value) => MaybePromise<number>) | null,
    private readonly insertOnly: boolean,
  ) {
    super(name, input);
  }

  planOrder(): boolean {
    return false; // totals of values: order keys play no part, and the outputs carry null ones
  }

  run([input]: readonly (Columns | null)[], ctx: StepContext): MaybePromise<Columns | null> {
    const batch = input!;
    if (this.insertOnly) rejectRetractions(this.name, batch);
    if (this.term === null) return this.apply(batch, null);
    return then(evaluateAll(ctx, this.name, this.term, batch.values, mustBeNumber), (terms) =>
      this.apply(batch, terms),
    );
  }

  private apply(batch: Columns, terms: readonly Evaluated<number>[] | null): Columns | null {
    const { diffs, times } = batch;
    const keys = batch.keys!;
    const stamp = ++this.stamp;
    // The touched groups and, in parallel, their totals before this step.
    const touched: Totals[] = [];
    const beforeCounts: number[] = [];
    const beforeSums: number[] = [];
    for (let i = 0; i < diffs.length; i++) {
      const d = diffs[i];
      const term = terms === null ? 0 : terms[i];
      if (term === SKIP || d === 0) continue;
      let g = this.groups.get(keys[i]);
      if (g === undefined) {
        g = { key: keys[i], count: 0, sum: 0, time: times[i], stamp: 0 };
        this.groups.set(keys[i], g);
      }
      if (g.stamp !== stamp) {
        g.stamp = stamp;
        touched.push(g);
        beforeCounts.push(g.count);
        beforeSums.push(g.sum);
      }
      g.count += d;
      g.sum += term * d;
      if (times[i] > g.time) g.time = times[i];
    }
    const out = emptyColumns(true);
    const isCount = this.kind === 'count';
    for (let t = 0; t < touched.length; t++) {
      const g = touched[t];
      const beforeCount = beforeCounts[t];
      const beforeSum = beforeSums[t];
      const present = g.count !== 0;
      const wasPresent = beforeCount !== 0;
      const same = isCount ? g.count === beforeCount : present === wasPresent && g.sum === beforeSum;
      if (same) {
        if (!present && g.sum === 0) this.groups.delete(g.key);
        continue;
      }
      if (wasPresent) pushGrouped(out, g.key, this.record(g.key, beforeCount, beforeSum), -1, g.time);
      if (present) pushGrouped(out, g.key, this.record(g.key, g.count, g.sum), 1, g.time);
      // (count 0 with a non-zero sum: a retraction arrived before its insertion; keep the sum)
      else if (g.sum === 0) this.groups.delete(g.key);
    }
    return out.values.length === 0 ? null : out;
  }

  private record(key: Value, count: number, sum: number): Value {
    // -0 + 0: a sum of -0 is written as 0
    return this.kind === 'count' ? { key, count } : { key, sum: sum + 0 };
  }

  compact(): void {}

  stateSize(): number {
    return this.groups.size;
  }

  /** One entry per group: `[count, sum, time]`, never forgotten (totals keep no inputs). */
  readonly durable: DurableState = {
    timed: false,
    touched: ([input], into) => groupKeys(input, into),
    load: (key, data) => {
      const [count, sum, time] = data as [number, number, number];
      this.groups.set(key, { key, count, sum, time, stamp: 0 });
    },
    save: (key) => {
      const g = this.groups.get(key);
      return g === undefined ? null : { data: [g.count, g.sum, g.time], t: null };
    },
    evict: (key) => this.groups.delete(key),
  };
}
