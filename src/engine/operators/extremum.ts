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
import { then, UnaryOperator, type DurableState, type PageReader } from '../operator';
import { decodeKeys, encodeKey } from '../state-key';
import { groupKeys, groupedPagedState } from './per-group';
import { isThenable, type StepContext } from '../step-context';
import type { MaybePromise, StateEntry, Value } from '../types';
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

  protected abstract apply(batch: Columns, scores: readonly Evaluated<Value>[]): MaybePromise<Columns | null>;
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

/**
 * With a state store, what a multiset group in memory holds of its stored entries
 * (docs/durable-state.md, "Pages"): a header at the group key's encoding `G` — `[winner, lo,
 * hi]` — and an entry per element at `G + encodeKey([score, value, order])` — `[multiplicity,
 * time]`, its time the element's. The tree holds the elements a step needed (all of them when
 * `whole`); a step reads the elements it changes (unless outside [lo, hi]: new) and, when the
 * winner goes, the next best through the store.
 */
interface Stored {
  readonly prefix: string;
  /** The tree holds every stored element (a group new in memory, or never trimmed). */
  whole: boolean;
  /** The least and greatest element keys (encoded, without the prefix) ever stored; null: none. */
  lo: string | null;
  hi: string | null;
  /** Elements changed since the last save, by encoded key. */
  readonly dirty: Map<string, TreeKey>;
  /**
   * Elements deleted (or forgotten by a compaction) since the last trim: the store may still hold
   * them (their deletion not durable yet).
   */
  readonly gone: Set<string>;
  /** The greatest time of an element ever written: the header's time (retention forgets it with them). */
  maxTime: number;
  /** The winner must be found again (compaction forgot elements that are not in memory). */
  stale: boolean;
  headerBytes: number;
}

/** Rough size in memory of an element kept in a tree (for the state cache's bound; its key array and entry). */
const ELEMENT_BYTES = 300;
/** A trimmed group keeps its tree when it has at most this many elements (then it stays whole). */
const SMALL_GROUP = 16;

interface Touch {
  readonly key: Value;
  readonly changes: ValueMap<BatchChange & { enc: string | null }>;
}

export class ExtremumOperator extends ScoredOperator {
  private readonly groups = new ValueMap<MultisetGroup & { stored: Stored | null }>();
  private reader: PageReader | null = null;
  /** Groups emptied by the running step: their header and changed elements are deleted at save. */
  private readonly dropped = new Map<string, Stored>();

  constructor(name: string, input: number, direction: Direction, fn: ScoreFn) {
    super(name, input, direction, fn, false);
  }

  protected apply(batch: Columns, scores: readonly Evaluated<Value>[]): MaybePromise<Columns | null> {
    const { values, diffs, times } = batch;
    const keys = batch.keys!;
    const orders = this.ordered ? batch.orders : null;
    const touches = new ValueMap<Touch>();
    const list: Touch[] = [];
    for (let i = 0; i < values.length; i++) {
      const score = scores[i];
      if (score === SKIP || diffs[i] === 0) continue;
      const order = orders === null ? null : orders[i];
      let t = touches.get(keys[i]);
      if (t === undefined) {
        t = { key: keys[i], changes: new ValueMap() };
        touches.set(keys[i], t);
        list.push(t);
      }
      // A record is (value, order key): with order keys, one change per pair.
      const id: Value = orders === null ? values[i] : [values[i], order];
      const change = t.changes.get(id);
      if (change === undefined)
        t.changes.set(id, { score, value: values[i], order, diff: diffs[i], time: times[i], enc: null });
      else {
        change.diff += diffs[i];
        if (times[i] > change.time) change.time = times[i];
      }
    }
    return then(this.load(list), () => this.change(list));
  }

  /** With a store: reads the headers of the touched groups not in memory, then the elements the changes need. */
  private load(list: readonly Touch[]): MaybePromise<void> {
    const reader = this.reader;
    if (reader === null) return;
    const missing: Touch[] = [];
    for (const t of list) if (this.groups.get(t.key) === undefined && reader.mayLoad(encodeKey(t.key))) missing.push(t);
    const headers = missing.length === 0 ? [] : reader.get(missing.map((t) => encodeKey(t.key)));
    return then(headers, (texts) => {
      for (let j = 0; j < missing.length; j++) {
        const text = texts[j];
        if (text !== undefined) this.openHeader(reader, missing[j].key, text);
      }
      const wanted: string[] = [];
      const at: { tree: BTree<TreeKey, TreeEntry>; key: TreeKey }[] = [];
      for (const t of list) {
        const g = this.groups.get(t.key);
        const st = g?.stored;
        if (g === undefined || st == null || st.whole) continue;
        for (const c of t.changes.values()) {
          const key: TreeKey = [c.score, c.value, c.order];
          const enc = encodeKey(key as unknown as Value[]);
          c.enc = enc;
          if (st.lo === null || st.hi === null || enc < st.lo || enc > st.hi) continue; // never stored
          if (st.gone.has(enc) || g.tree.get(key) !== undefined) continue;
          wanted.push(st.prefix + enc);
          at.push({ tree: g.tree, key });
        }
      }
      const elements =
        wanted.length === 0
          ? undefined
          : then(reader.get(wanted), (found) => {
              for (let j = 0; j < wanted.length; j++) {
                const text = found[j];
                if (text === undefined) continue;
                const { data, compactTo } = reader.open(wanted[j], text);
                const [mult, time] = data as [number, number];
                if (compactTo !== null && time < compactTo) continue; // forgotten by retention
                at[j].tree.set(at[j].key, { mult, time });
              }
            });
      // A compaction forgot elements that were not in memory: the winner before this step is
      // found again first (silently, as compaction re-baselines), so that the step's difference
      // is taken against it.
      return then(elements, () => {
        const rebaselined: Promise<void>[] = [];
        for (const t of list) {
          const g = this.groups.get(t.key);
          const st = g?.stored;
          if (g === undefined || st == null || !st.stale) continue;
          const w = this.bestStored(g, st);
          if (isThenable(w)) rebaselined.push(Promise.resolve(w).then((x) => void (g.winner = x)));
          else g.winner = w;
        }
        if (rebaselined.length > 0) return Promise.all(rebaselined).then(() => undefined);
      });
    });
  }

  /** Puts a group whose stored header is `text` in memory (its elements are read as changes need them). */
  private openHeader(reader: PageReader, key: Value, text: string): MultisetGroup & { stored: Stored } {
    const prefix = encodeKey(key);
    const { data, compactTo } = reader.open(prefix, text);
    const [w, lo, hi, maxTime] = data as [[Value, Value, Value, number] | null, string | null, string | null, number];
    const winner = w === null ? null : { score: w[0], value: w[1], order: w[2], time: w[3] };
    const stored: Stored = {
      prefix,
      whole: false,
      lo,
      hi,
      dirty: new Map(),
      gone: new Set(),
      // NB: saved before a compaction: elements it forgot may have held the winner.
      stale: compactTo !== null,
      headerBytes: text.length,
      maxTime: maxTime ?? -Infinity, // (JSON has no -Infinity)
    };
    const tree = new BTree<TreeKey, TreeEntry>(undefined, compareTreeKeys);
    const g = { key, tree, winner, stamp: 0, batch: null, stored };
    this.groups.set(key, g);
    return g;
  }

  private change(list: readonly Touch[]): MaybePromise<Columns | null> {
    const durable = this.reader !== null;
    const touched: (MultisetGroup & { stored: Stored | null })[] = [];
    const lost: boolean[] = [];
    for (const t of list) {
      let g = this.groups.get(t.key);
      if (g === undefined) {
        const stored: Stored | null = !durable
          ? null
          : {
              prefix: encodeKey(t.key),
              whole: true,
              lo: null,
              hi: null,
              dirty: new Map(),
              gone: new Set(),
              stale: false,
              headerBytes: 0,
              maxTime: -Infinity,
            };
        g = {
          key: t.key,
          tree: new BTree<TreeKey, TreeEntry>(undefined, compareTreeKeys),
          winner: null,
          stamp: 0,
          batch: null,
          stored,
        };
        this.groups.set(t.key, g);
      }
      const st = g.stored;
      const w = g.winner;
      let winnerLost = false;
      // (forEach, not the values() generator: no iterator result per change.)
      t.changes.forEach((c) => {
        const { score, value, order, diff, time } = c;
        if (diff === 0) return; // updates that cancel out leave the value (and its time) alone
        const k: TreeKey = [score, value, order];
        // A new record (the common case) is one search of the tree, not a get and a set.
        const e = diff > 0 && g.tree.setIfNotPresent(k, { mult: diff, time }) ? undefined : g.tree.get(k);
        let mult: number;
        if (e === undefined) {
          if (diff <= 0) g.tree.set(k, { mult: diff, time }); // (a positive one was set just above)
          mult = diff;
        } else if (e.mult + diff === 0) {
          g.tree.delete(k);
          mult = 0;
        } else {
          e.mult += diff;
          if (time > e.time) e.time = time;
          mult = e.mult;
        }
        if (w !== null && mult <= 0 && compareTreeKeys(k, [w.score, w.value, w.order]) === 0) winnerLost = true;
        if (st !== null) {
          const enc = c.enc ?? encodeKey(k as unknown as Value[]);
          st.dirty.set(enc, k);
          if (mult === 0) st.gone.add(enc);
          else st.gone.delete(enc);
          if (mult !== 0) {
            if (st.lo === null || enc < st.lo) st.lo = enc;
            if (st.hi === null || enc > st.hi) st.hi = enc;
            if (time > st.maxTime) st.maxTime = time;
          }
        }
      });
      touched.push(g);
      lost.push(winnerLost);
    }
    // The new winners: from the tree when it holds the group, else the better of the old winner and
    // the changed elements, or (the winner gone) of the tree and the store.
    const winners: MaybePromise<Winner | null>[] = [];
    let async = false;
    for (let j = 0; j < touched.length; j++) {
      const g = touched[j];
      const st = g.stored;
      let w: MaybePromise<Winner | null>;
      if (st === null || st.whole) w = this.winnerOf(g.tree);
      else if (!lost[j]) w = this.better(g.winner, this.winnerOf(g.tree));
      else w = this.bestStored(g, st);
      if (isThenable(w)) async = true;
      winners.push(w);
    }
    const emit = (after: readonly (Winner | null)[]): Columns | null => {
      const out = emptyColumns(true, this.ordered);
      for (let j = 0; j < touched.length; j++) {
        const g = touched[j];
        const before = g.winner;
        const now = after[j];
        g.winner = now;
        if (g.tree.size === 0 && (g.stored === null || g.stored.whole)) {
          this.groups.delete(g.key);
          if (g.stored !== null) this.dropped.set(g.stored.prefix, g.stored);
        }
        if (
          before !== null &&
          now !== null &&
          compareTreeKeys([before.score, before.value, before.order], [now.score, now.value, now.order]) === 0
        )
          continue;
        if (before !== null) push(out, g.key, before.value, -1, now?.time ?? before.time, before.order);
        if (now !== null) push(out, g.key, now.value, 1, now.time, now.order);
      }
      return out.values.length === 0 ? null : out;
    };
    if (!async) return emit(winners as (Winner | null)[]);
    return Promise.all(winners).then(emit);
  }

  /** The better of two winners (null: none). */
  private better(a: Winner | null, b: Winner | null): Winner | null {
    if (a === null) return b;
    if (b === null) return a;
    // NB: on a tie b, from the tree, carries the element's current time.
    return compareTreeKeys([a.score, a.value, a.order], [b.score, b.value, b.order]) * this.direction > 0 ? a : b;
  }

  /**
   * The best element with a positive multiplicity of a group whose tree holds only some of it:
   * the tree's best against the store's (read from the winning end, skipping elements the tree
   * holds, deleted ones and those retention forgot). The element found is put in the tree.
   */
  private bestStored(g: MultisetGroup & { stored: Stored | null }, st: Stored): MaybePromise<Winner | null> {
    const reader = this.reader!;
    const last = this.direction > 0;
    let from = st.prefix + 'f'; // NB: element keys encode arrays (tag f); the header is the bare prefix
    let to = st.prefix + 'g';
    const inTree = this.winnerOf(g.tree);
    let seen = false;
    const step = (): MaybePromise<Winner | null> =>
      then(reader.seek(from, to, last), (found) => {
        if (found === undefined) {
          st.stale = false;
          // Nothing stored that the tree does not hold: it holds the whole group.
          if (!seen) st.whole = true;
          return inTree;
        }
        const [k, text] = found;
        if (last) to = k;
        else from = k + '!'; // NB: the next key above k ('!' is below every character of a key)
        const enc = k.slice(st.prefix.length);
        const key = decodeKeys(enc)[0] as unknown as TreeKey;
        if (st.gone.has(enc) || g.tree.get(key) !== undefined) return step();
        const { data, compactTo } = reader.open(k, text);
        const [mult, time] = data as [number, number];
        if (compactTo !== null && time < compactTo) return step(); // forgotten by retention
        seen = true;
        g.tree.set(key, { mult, time });
        if (mult <= 0) return step();
        st.stale = false;
        return this.better(inTree, { score: key[0], value: key[1], order: key[2], time });
      });
    return step();
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
  private compactGroup(g: MultisetGroup & { stored: Stored | null }, cutoff: number): boolean {
    const old: TreeKey[] = [];
    g.tree.forEachPair((k, e) => {
      if (e.time < cutoff) old.push(k);
    });
    const st = g.stored;
    if (st !== null && !st.whole) {
      // Elements not in memory may be forgotten too (the store's entries go with the commit's
      // forget): the winner is found again at the group's next touch.
      // NB: a forgotten element is gone, not just out of memory: its newest text may be in a
      // commit not yet durable, and the store's older one (of a time the cutoff spares, from
      // before a deletion) must not be read back. Once the group's saves are durable (trim),
      // the store's text is the forgotten one and reads skip it by its time.
      for (const k of old) {
        g.tree.delete(k);
        st.gone.add(encodeKey(k as unknown as Value[]));
      }
      st.stale = true;
      return false;
    }
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
   * A header and an entry per element (`Stored` above): a step writes the header and the
   * elements it changed.
   */
  readonly durable: DurableState = groupedPagedState(this.name, (key) => this.groups.delete(key), {
    attach: (reader) => {
      this.reader = reader;
    },
    save: (key) => {
      const g = this.groups.get(key);
      const out = new Map<string, StateEntry | null>();
      const reader = this.reader!;
      if (g === undefined || g.stored === null) {
        const prefix = encodeKey(key);
        const st = this.dropped.get(prefix);
        if (st === undefined) return null; // not in memory, not changed
        this.dropped.delete(prefix);
        for (const enc of st.dirty.keys()) out.set(prefix + enc, null);
        out.set(prefix, null);
        return { entries: out, bytes: 0 };
      }
      const st = g.stored;
      // NB: a group still stale was touched by no change (its updates had diff 0 or were skipped:
      // `load` re-baselines every group with changes). Its stored header is older than the
      // compaction, and must stay so: saved again under the new cutoff, the forgotten winner it
      // holds would be taken as current when the group is read back.
      if (st.stale && st.dirty.size === 0) return null;
      for (const [enc, k] of st.dirty) {
        const e = g.tree.get(k);
        out.set(st.prefix + enc, e === undefined ? null : { v: reader.text([e.mult, e.time]), t: e.time });
      }
      st.dirty.clear();
      const w = g.winner;
      const header = reader.text([w === null ? null : [w.score, w.value, w.order, w.time], st.lo, st.hi, st.maxTime]);
      out.set(st.prefix, { v: header, t: Number.isFinite(st.maxTime) ? st.maxTime : null });
      st.headerBytes = header.length;
      return { entries: out, bytes: st.headerBytes + g.tree.size * ELEMENT_BYTES };
    },
    trim: (key) => {
      const g = this.groups.get(key);
      if (g === undefined || g.stored === null) return 0;
      const st = g.stored;
      if (g.tree.size > SMALL_GROUP || !st.whole) {
        g.tree.clear();
        st.whole = false;
      }
      st.gone.clear();
      return st.headerBytes + g.tree.size * ELEMENT_BYTES;
    },
    // Its header, as `load` reads it for a batch that touches the group (elements as changes need them).
    warm: (key) => {
      const reader = this.reader!;
      if (this.groups.get(key) !== undefined) return 0;
      return then(reader.get([encodeKey(key)]), ([text]) =>
        text === undefined ? 0 : this.openHeader(reader, key, text).stored.headerBytes,
      );
    },
  });
}
