/**
 * `concat`: the union of several collections (multiplicities add up; consolidation happens
 * downstream). Each update keeps its order key.
 */
import type { Columns } from '../columns';
import { StatelessOperator } from '../operator';

export class ConcatOperator extends StatelessOperator {
  run(inputs: readonly (Columns | null)[]): Columns | null {
    const present = inputs.filter((c): c is Columns => c !== null);
    if (present.length <= 1) return present[0] ?? null;
    const ordered = present.some((c) => c.orders !== null);
    return {
      values: present.flatMap((c) => c.values),
      diffs: present.flatMap((c) => c.diffs),
      times: present.flatMap((c) => c.times),
      keys: null,
      orders: ordered ? present.flatMap((c) => c.orders ?? new Array<null>(c.values.length).fill(null)) : null,
    };
  }
}
