/**
 * `groupBy` attaches a key to every update (the stream becomes grouped); `ungroup` drops the keys
 * again. Neither keeps state: the per-group operators in between index by key.
 */
import { ungrouped, type Columns } from '../columns';
import { evaluateAll, SKIP, type ResultCheck } from '../evaluate';
import { StatelessOperator, then } from '../operator';
import type { StepContext } from '../step-context';
import type { MaybePromise, Value } from '../types';
import { mustBeValue } from './elementwise';

export class GroupByOperator extends StatelessOperator {
  /** The keys' check: none when the caller checked them (CheckedOptions.resultsChecked). */
  private readonly check: ResultCheck | null;

  constructor(
    name: string,
    input: number,
    private readonly keyFn: (value: Value) => MaybePromise<Value>,
    resultsChecked = false,
  ) {
    super(name, [input]);
    this.check = resultsChecked ? null : mustBeValue;
  }

  run([input]: readonly (Columns | null)[], ctx: StepContext): MaybePromise<Columns | null> {
    const batch = input!;
    return then(evaluateAll(ctx, this.name, this.keyFn, batch.values, this.check), (keys) => {
      let skipped = 0;
      for (let i = 0; i < keys.length; i++) if (keys[i] === SKIP) skipped++;
      if (skipped === 0)
        return {
          values: batch.values,
          diffs: batch.diffs,
          times: batch.times,
          keys: keys as Value[],
          orders: batch.orders,
        };
      const out: Columns = { values: [], diffs: [], times: [], keys: [], orders: batch.orders === null ? null : [] };
      for (let i = 0; i < keys.length; i++) {
        const k = keys[i];
        if (k === SKIP) continue;
        out.keys!.push(k);
        out.values.push(batch.values[i]);
        out.diffs.push(batch.diffs[i]);
        out.times.push(batch.times[i]);
        if (out.orders !== null) out.orders.push(batch.orders![i]);
      }
      return out.values.length === 0 ? null : out;
    });
  }
}

export class UngroupOperator extends StatelessOperator {
  run([input]: readonly (Columns | null)[]): Columns | null {
    return ungrouped(input!);
  }
}
