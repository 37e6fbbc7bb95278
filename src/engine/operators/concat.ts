/** `concat`: the union of several collections (multiplicities add up; consolidation happens downstream). */
import type { Columns } from '../columns';
import { StatelessOperator } from '../operator';

export class ConcatOperator extends StatelessOperator {
  run(inputs: readonly (Columns | null)[]): Columns | null {
    const present = inputs.filter((c): c is Columns => c !== null);
    if (present.length <= 1) return present[0] ?? null;
    return {
      values: present.flatMap((c) => c.values),
      diffs: present.flatMap((c) => c.diffs),
      times: present.flatMap((c) => c.times),
      keys: null,
    };
  }
}
