/**
 * `distinct`: each value once (multiplicity 1) per group while its multiplicity is positive. Keeps
 * every distinct value with its multiplicity, indexed by structural identity. The ungrouped form
 * runs with every update in one group. Identity is the value alone: copies of a value with
 * different order keys count together, and the outputs carry null order keys.
 *
 * State per group (what a durable copy must keep to continue): the group key (null when
 * ungrouped) and, per distinct value, its multiplicity and its time (`Counted`; the `batch*` and
 * `stamp` fields live within one step only).
 */
import type { Columns } from '../columns';
import { emptyColumns, pushGrouped, ungrouped } from '../columns';
import { UnaryOperator, type DurableState } from '../operator';
import { encodeKey } from '../state-key';
import type { Value } from '../types';
import { ValueMap } from '../value-map';

interface Counted {
  readonly value: Value;
  mult: number;
  time: number;
  /** This batch's updates of the value, summed, and their newest time. */
  batchDiff: number;
  batchTime: number;
  stamp: number;
}
interface DistinctGroup {
  readonly key: Value;
  readonly values: ValueMap<Counted>;
}

export class DistinctOperator extends UnaryOperator {
  private readonly groups = new ValueMap<DistinctGroup>();
  private stamp = 0;

  constructor(
    name: string,
    input: number,
    private readonly grouped: boolean,
  ) {
    super(name, input);
  }

  planOrder(): boolean {
    return false;
  }

  run([input]: readonly (Columns | null)[]): Columns | null {
    const { values, diffs, times } = input!;
    const keys = input!.keys;
    const stamp = ++this.stamp;
    // The touched values and their groups, in parallel (no pair per value).
    const touched: Counted[] = [];
    const touchedGroups: DistinctGroup[] = [];
    for (let i = 0; i < values.length; i++) {
      if (diffs[i] === 0) continue;
      const key = keys === null ? null : keys[i];
      let g = this.groups.get(key);
      if (g === undefined) {
        g = { key, values: new ValueMap() };
        this.groups.set(key, g);
      }
      let c = g.values.get(values[i]);
      if (c === undefined) {
        c = { value: values[i], mult: 0, time: times[i], batchDiff: 0, batchTime: times[i], stamp: 0 };
        g.values.set(values[i], c);
      }
      if (c.stamp !== stamp) {
        c.stamp = stamp;
        c.batchDiff = 0;
        c.batchTime = times[i];
        touched.push(c);
        touchedGroups.push(g);
      }
      c.batchDiff += diffs[i];
      if (times[i] > c.batchTime) c.batchTime = times[i];
    }
    const out = emptyColumns(true);
    for (let t = 0; t < touched.length; t++) {
      const c = touched[t];
      const g = touchedGroups[t];
      // A batch is one change per value: updates that cancel out leave the value (and its time) alone.
      const before = c.mult;
      c.mult += c.batchDiff;
      if (c.batchDiff !== 0) c.time = before === 0 ? c.batchTime : Math.max(c.time, c.batchTime);
      const now = c.mult > 0;
      if (now !== before > 0) pushGrouped(out, g.key, c.value, now ? 1 : -1, c.time);
      if (c.mult === 0) {
        g.values.delete(c.value);
        if (g.values.size === 0) this.groups.delete(g.key);
      }
    }
    if (out.values.length === 0) return null;
    return this.grouped ? out : ungrouped(out);
  }

  compact(cutoff: number): void {
    const emptied: Value[] = [];
    this.groups.forEach((g, key) => {
      const old: Value[] = [];
      g.values.forEach((c, value) => {
        if (c.time < cutoff) old.push(value);
      });
      for (const v of old) g.values.delete(v);
      if (g.values.size === 0) emptied.push(key);
    });
    for (const key of emptied) this.groups.delete(key);
  }

  stateSize(): number {
    let n = 0;
    for (const g of this.groups.values()) n += g.values.size;
    return n;
  }

  /** One entry per (group, value), key = group key ⧺ value: `[multiplicity, time]`; its time is the value's. */
  readonly durable: DurableState = {
    timed: true,
    touched: ([input], into) => {
      const { values, diffs } = input!;
      const keys = input!.keys;
      for (let i = 0; i < values.length; i++) {
        if (diffs[i] === 0) continue;
        const key = keys === null ? null : keys[i];
        into.set(encodeKey(key) + encodeKey(values[i]), [key, values[i]]);
      }
    },
    load: (unit, data, cutoff) => {
      const [key, value] = unit as [Value, Value];
      const [mult, time] = data as [number, number];
      if (cutoff !== null && time < cutoff) return; // compaction forgets it
      let g = this.groups.get(key);
      if (g === undefined) {
        g = { key, values: new ValueMap() };
        this.groups.set(key, g);
      }
      g.values.set(value, { value, mult, time, batchDiff: 0, batchTime: time, stamp: 0 });
    },
    save: (unit) => {
      const [key, value] = unit as [Value, Value];
      const c = this.groups.get(key)?.values.get(value);
      return c === undefined ? null : { data: [c.mult, c.time], t: c.time };
    },
    evict: (unit) => {
      const [key, value] = unit as [Value, Value];
      const g = this.groups.get(key);
      if (g === undefined) return;
      g.values.delete(value);
      if (g.values.size === 0) this.groups.delete(key);
    },
  };
}
