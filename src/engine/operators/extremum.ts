/**
 * `maxBy` / `minBy` per group. The winner is the value with the greatest (least) `fn(value)`;
 * ties are broken by the total order of values (greatest value for max, least for min), then —
 * where order keys are tracked — by the order key the same way, so the result never depends on
 * arrival order. Each group outputs its winner with multiplicity 1 and the winner's order key.
 *
 * Two plans: `MonotonicExtremumOperator` for insert-only input keeps O(1) state per group (the
 * seed's `monotonic_max_by`) and throws RetractionError on a retraction; `ExtremumOperator` keeps
 * a sorted multiset per group (sorted-btree) and handles retractions.
 *
 * State per group (what a durable copy must keep to continue): insert-only: the group key and
 * its winner (value, score, order key, time). With retractions: the group key, every present
 * (score, value, order key) with its multiplicity and time, sorted (the tree), and the winner last
 * emitted. Order keys are null unless an operator downstream reads them (`planOrder`).
 */
import BTree from 'sorted-btree';
import type { Columns } from '../columns';
import { emptyColumns, pushGrouped as push, rejectRetractions } from '../columns';
import { evaluateAll, SKIP, type Evaluated, type ResultCheck } from '../evaluate';
import { then, UnaryOperator, type DurableState } from '../operator';
import { groupKeys } from './per-group';
import type { StepContext } from '../step-context';
import type { MaybePromise, Value } from '../types';
import { valueProblem } from '../value-check';
import { ValueMap } from '../value-map';
import { compareValues } from '../value-order';

/** +1: the greatest wins (maxBy); -1: the least wins (minBy). */
export type Direction = 1 | -1;

type ScoreFn = (value: Value) => MaybePromise<Value>;

const mustBeScore: ResultCheck = (r) => {
  if (typeof r === 'number')
    return Number.isFinite(r) ? null : `order value is ${String(r)} (only finite numbers are values)`;
  const p = valueProblem(r);
  return p === null ? null : `order value is not a JSON value: ${p}`;
};

function compareScores(a: Value, b: Value): number {
  if (typeof a === 'number' && typeof b === 'number') return a < b ? -1 : a > b ? 1 : 0;
  return compareValues(a, b);
}

const NONE: unique symbol = Symbol('none');

interface MonotonicGroup {
  readonly key: Value;
  value: Value;
  score: Value;
  order: Value;
  time: number;
  /** The winner before the current step (NONE for a group new in this step), and its order key. */
  before: Value | typeof NONE;
  beforeOrder: Value;
  stamp: number;
}

/** What both plans share: scores are computed for the whole batch before any group changes. */
abstract class ScoredOperator extends UnaryOperator {
  protected stamp = 0;
  /** Whether order keys are tracked (an operator downstream reads them): they then break ties. */
  protected ordered = false;

  constructor(
    name: string,
    input: number,
    protected readonly direction: Direction,
    private readonly fn: ScoreFn,
    private readonly insertOnly: boolean,
  ) {
    super(name, input);
  }

  planOrder(outputOrdered: boolean): boolean {
    this.ordered = outputOrdered;
    return outputOrdered;
  }

  run([input]: readonly (Columns | null)[], ctx: StepContext): MaybePromise<Columns | null> {
    const batch = input!;
    if (this.insertOnly) rejectRetractions(this.name, batch); // before any user function runs
    return then(evaluateAll(ctx, this.name, this.fn, batch.values, mustBeScore), (scores) => this.apply(batch, scores));
  }

  protected abstract apply(batch: Columns, scores: readonly Evaluated<Value>[]): Columns | null;
}

export class MonotonicExtremumOperator extends ScoredOperator {
  private readonly groups = new ValueMap<MonotonicGroup>();

  constructor(name: string, input: number, direction: Direction, fn: ScoreFn) {
    super(name, input, direction, fn, true);
  }

  protected apply(batch: Columns, scores: readonly Evaluated<Value>[]): Columns | null {
    const { values, diffs, times } = batch;
    const keys = batch.keys!;
    const orders = this.ordered ? batch.orders : null;
    const dir = this.direction;
    const stamp = ++this.stamp;
    const touched: MonotonicGroup[] = [];
    for (let i = 0; i < values.length; i++) {
      const score = scores[i];
      if (score === SKIP || diffs[i] === 0) continue;
      const value = values[i];
      const order = orders === null ? null : orders[i];
      let g = this.groups.get(keys[i]);
      if (g === undefined) {
        g = { key: keys[i], value, score, order, time: times[i], before: NONE, beforeOrder: null, stamp };
        this.groups.set(keys[i], g);
        touched.push(g);
        continue;
      }
      if (g.stamp !== stamp) {
        g.stamp = stamp;
        g.before = g.value;
        g.beforeOrder = g.order;
        touched.push(g);
      }
      let c = compareScores(score, g.score) * dir;
      // NB: streams interleave arbitrarily, so arrival order must not pick the winner: equal scores
      // go by the order of values (the property tests shuffle arrival order and batch cuts).
      if (c === 0) c = compareValues(value, g.value) * dir;
      if (c === 0 && order !== g.order) c = compareValues(order, g.order) * dir;
      if (c > 0) {
        g.value = value;
        g.score = score;
        g.order = order;
        g.time = times[i];
      }
    }
    const out = emptyColumns(true, this.ordered);
    for (const g of touched) {
      // The winner is only replaced by a strictly better record, so new references mean a change.
      if (g.before === g.value && g.beforeOrder === g.order) continue;
      if (g.before !== NONE) push(out, g.key, g.before, -1, g.time, g.beforeOrder);
      push(out, g.key, g.value, 1, g.time, g.order);
      g.before = NONE;
      g.beforeOrder = null;
    }
    return out.values.length === 0 ? null : out;
  }

  compact(): void {} // O(1) per group: nothing to forget

  stateSize(): number {
    return this.groups.size;
  }

  /** One entry per group: its winner `[value, score, order, time]`, never forgotten. */
  readonly durable: DurableState = {
    timed: false,
    touched: ([input], into) => groupKeys(input, into),
    load: (key, data) => {
      const [value, score, order, time] = data as [Value, Value, Value, number];
      this.groups.set(key, { key, value, score, order, time, before: NONE, beforeOrder: null, stamp: 0 });
    },
    save: (key) => {
      const g = this.groups.get(key);
      return g === undefined ? null : { data: [g.value, g.score, g.order, g.time], t: null };
    },
    evict: (key) => this.groups.delete(key),
  };
}

type TreeKey = readonly [score: Value, value: Value, order: Value];
interface TreeEntry {
  mult: number;
  time: number;
}
interface Winner {
  readonly score: Value;
  readonly value: Value;
  readonly order: Value;
  readonly time: number;
}
interface MultisetGroup {
  readonly key: Value;
  readonly tree: BTree<TreeKey, TreeEntry>;
  winner: Winner | null;
  stamp: number;
  /** This batch's updates per value, summed (a batch is one change per value). */
  batch: ValueMap<BatchChange> | null;
}
interface BatchChange {
  readonly score: Value;
  readonly value: Value;
  readonly order: Value;
  diff: number;
  time: number;
}

function compareTreeKeys(a: TreeKey, b: TreeKey): number {
  return compareScores(a[0], b[0]) || compareValues(a[1], b[1]) || compareValues(a[2], b[2]);
}

export class ExtremumOperator extends ScoredOperator {
  private readonly groups = new ValueMap<MultisetGroup>();

  constructor(name: string, input: number, direction: Direction, fn: ScoreFn) {
    super(name, input, direction, fn, false);
  }

  protected apply(batch: Columns, scores: readonly Evaluated<Value>[]): Columns | null {
    const { values, diffs, times } = batch;
    const keys = batch.keys!;
    const orders = this.ordered ? batch.orders : null;
    const stamp = ++this.stamp;
    const touched: MultisetGroup[] = [];
    for (let i = 0; i < values.length; i++) {
      const score = scores[i];
      if (score === SKIP || diffs[i] === 0) continue;
      const order = orders === null ? null : orders[i];
      let g = this.groups.get(keys[i]);
      if (g === undefined) {
        g = {
          key: keys[i],
          tree: new BTree<TreeKey, TreeEntry>(undefined, compareTreeKeys),
          winner: null,
          stamp: 0,
          batch: null,
        };
        this.groups.set(keys[i], g);
      }
      if (g.stamp !== stamp) {
        g.stamp = stamp;
        g.batch = new ValueMap();
        touched.push(g);
      }
      // A record is (value, order key): with order keys, one change per pair.
      const id: Value = orders === null ? values[i] : [values[i], order];
      const change = g.batch!.get(id);
      if (change === undefined) g.batch!.set(id, { score, value: values[i], order, diff: diffs[i], time: times[i] });
      else {
        change.diff += diffs[i];
        if (times[i] > change.time) change.time = times[i];
      }
    }
    for (const g of touched) {
      // (forEach, not the values() generator: no iterator result per change.)
      g.batch!.forEach(({ score, value, order, diff, time }) => {
        if (diff === 0) return; // updates that cancel out leave the value (and its time) alone
        const k: TreeKey = [score, value, order];
        // A new record (the common case) is one search of the tree, not a get and a set.
        if (diff > 0 && g.tree.setIfNotPresent(k, { mult: diff, time })) return;
        const e = g.tree.get(k);
        if (e === undefined) g.tree.set(k, { mult: diff, time });
        else if (e.mult + diff === 0) g.tree.delete(k);
        else {
          e.mult += diff;
          if (time > e.time) e.time = time;
        }
      });
      g.batch = null;
    }
    const out = emptyColumns(true, this.ordered);
    for (const g of touched) {
      const before = g.winner;
      const after = this.winnerOf(g.tree);
      if (
        before !== null &&
        after !== null &&
        compareTreeKeys([before.score, before.value, before.order], [after.score, after.value, after.order]) === 0
      )
        continue;
      if (before !== null) push(out, g.key, before.value, -1, after?.time ?? before.time, before.order);
      if (after !== null) push(out, g.key, after.value, 1, after.time, after.order);
      g.winner = after;
      if (g.tree.size === 0) this.groups.delete(g.key);
    }
    return out.values.length === 0 ? null : out;
  }

  /** The best entry with a positive multiplicity (entries can be negative while a retraction waits for its insertion). */
  private winnerOf(tree: BTree<TreeKey, TreeEntry>): Winner | null {
    const entries = this.direction > 0 ? tree.entriesReversed() : tree.entries();
    for (const [[score, value, order], e] of entries) if (e.mult > 0) return { score, value, order, time: e.time };
    return null;
  }

  compact(cutoff: number): void {
    const emptied: Value[] = [];
    this.groups.forEach((g, key) => {
      if (this.compactGroup(g, cutoff)) emptied.push(key);
    });
    for (const key of emptied) this.groups.delete(key);
  }

  /** Forgets the group's entries older than `cutoff`; true when it is empty then. */
  private compactGroup(g: MultisetGroup, cutoff: number): boolean {
    const old: TreeKey[] = [];
    g.tree.forEachPair((k, e) => {
      if (e.time < cutoff) old.push(k);
    });
    if (old.length === 0) return false;
    for (const k of old) g.tree.delete(k);
    g.winner = this.winnerOf(g.tree); // silent re-baseline: nothing is emitted
    return g.tree.size === 0;
  }

  stateSize(): number {
    let n = 0;
    for (const g of this.groups.values()) n += g.tree.size;
    return n;
  }

  /**
   * One entry per group (pages of a group are later work, docs/durable-state.md): `[winner,
   * entries]`, the winner last emitted as `[score, value, order, time]` or null, the entries as
   * `[score, value, order, multiplicity, time]` in tree order; its time is the greatest entry time.
   */
  readonly durable: DurableState = {
    timed: true,
    touched: ([input], into) => groupKeys(input, into),
    load: (key, data, cutoff) => {
      const [w, entries] = data as [[Value, Value, Value, number] | null, [Value, Value, Value, number, number][]];
      const tree = new BTree<TreeKey, TreeEntry>(undefined, compareTreeKeys);
      for (const [score, value, order, mult, time] of entries) tree.set([score, value, order], { mult, time });
      const winner = w === null ? null : { score: w[0], value: w[1], order: w[2], time: w[3] };
      const g: MultisetGroup = { key, tree, winner, stamp: 0, batch: null };
      if (cutoff !== null && this.compactGroup(g, cutoff)) return;
      this.groups.set(key, g);
    },
    save: (key) => {
      const g = this.groups.get(key);
      if (g === undefined) return null;
      const entries: [Value, Value, Value, number, number][] = [];
      let t = -Infinity;
      g.tree.forEachPair(([score, value, order], e) => {
        entries.push([score, value, order, e.mult, e.time]);
        if (e.time > t) t = e.time;
      });
      const w = g.winner;
      return { data: [w === null ? null : [w.score, w.value, w.order, w.time], entries], t };
    },
    evict: (key) => this.groups.delete(key),
  };
}
