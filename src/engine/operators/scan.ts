/**
 * `scan(initial, step)` per group: a left fold over the group's inputs sorted by (order key,
 * value) or (orderBy(value), value) — the order `reduce` sees them in. Its outputs are what `step`
 * emitted folding from `initial` over all the group's inputs — what a `reduce` doing that fold
 * would output — but each batch only refolds from the checkpoint before its first changed input
 * until the fold rejoins the previous one (see fold.ts), so appending events in causal order
 * costs O(batch), not O(group). An output carries the sort key of the input whose step emitted it
 * as its order key: the same value emitted at two places is two records.
 *
 * State per group (what a durable copy must keep to continue): the group key and its `FoldState`
 * — the inputs as columns sorted by (sort key, value): value, sort key, multiplicity, time; what
 * folding each input emitted (`[value, multiplicity]` pairs; their order key is the input's sort
 * key); a copy of the fold state before every `checkpointEvery`-th input (index, state); the state
 * after the last input; the greatest input time — plus `pendingCutoff` (a compaction not applied
 * yet). The initial state and the step function are the operator's definition, not state.
 *
 * Failures and retention behave as in `reduce`: under 'stop' the first failure aborts the step;
 * under 'skip' a group whose fold fails on the whole batch is retried with the batch's updates
 * applied one by one in value order, leaving out (and reporting) each update after which it fails.
 * Compaction is applied at a group's next touch: its outputs are silently re-baselined to the fold
 * over the retained inputs (cheaply when the forgotten inputs are the oldest in value order: the
 * refold from `initial` soon rejoins the previous fold).
 */
import type { Columns } from '../columns';
import { emptyColumns, pushGrouped } from '../columns';
import {
  applyPatch,
  CHECKPOINT_EVERY,
  checkpointAfter,
  copyFold,
  eachEmission,
  emissions,
  emptyFold,
  inputAfter,
  refold,
  type FoldPatch,
  type Checkpoint,
  type FoldState,
  type InputChange,
  type StepFn,
} from '../fold';
import { then, UnaryOperator, type DurableState, type PageReader } from '../operator';
import { encodeKey } from '../state-key';
import {
  dropPages,
  loadFor,
  loadGroup,
  newPageInfo,
  pagesSize,
  savePages,
  storedKeys,
  trimPages,
  type PageInfo,
} from './scan-pages';
import { runPerGroup, sortKeysOf, groupedPagedState } from './per-group';
import { diffOutputs, type OutputPair } from '../output-diff';
import { dropOlderColumns, mergeColumns, olderCount, type InputColumns, type SortedUpdates } from '../sorted-inputs';
import { isThenable, type StepContext } from '../step-context';
import type { MaybePromise, StateEntry, Value } from '../types';
import { cloneValue } from '../value-clone';
import { compareInputs } from '../sorted-inputs';
import { ValueMap } from '../value-map';

/**
 * Compaction of one group: a group with nothing retained has no outputs, so forgetting it now is
 * the silent re-baseline (true: drop it); otherwise the cutoff is applied at its next touch.
 */
function compactGroup(g: ScanGroup, cutoff: number): boolean {
  if (g.fold.maxTime < cutoff) return true;
  g.pendingCutoff = g.pendingCutoff === null ? cutoff : Math.max(g.pendingCutoff, cutoff);
  return false;
}

interface ScanGroup {
  readonly key: Value;
  fold: FoldState;
  /** A compaction cutoff not applied yet (applied, silently, at the group's next touch). */
  pendingCutoff: number | null;
  /** With a state store: what the fold holds of the group's stored pages (scan-pages.ts); else null. */
  readonly info: PageInfo | null;
}

/**
 * A group's output change: a list of pairs, or ADDED — every output the patch's refold emitted is
 * added and nothing is taken back (inputs appended after all others: no earlier output is refolded).
 */
type OutputDiff = readonly OutputPair[] | typeof ADDED;
const ADDED: unique symbol = Symbol('added');

type Attempt =
  | { readonly ok: true; readonly patch: FoldPatch; readonly diff: OutputDiff }
  | { readonly ok: false; readonly error: unknown };

/** A group's change: a patch to apply to `fold` in place at commit, or `fold` as it is (already changed, a private copy). */
interface Outcome {
  readonly key: Value;
  readonly fold: FoldState;
  readonly patch: FoldPatch | null;
  /** ADDED only with a patch. */
  readonly diff: OutputDiff;
}

/** An empty region of a fold's inputs (mergeColumns never changes the columns it is given). */
const NO_COLUMNS: InputColumns = Object.freeze({
  values: Object.freeze([]),
  orders: Object.freeze([]),
  mults: Object.freeze([]),
  times: Object.freeze([]),
  maxTime: -Infinity,
});

/** How many inputs sort before (`o`, `v`) (strict = false: before or equal to it). */
function position(values: readonly Value[], orders: readonly Value[], o: Value, v: Value, strict: boolean): number {
  let lo = 0;
  let hi = values.length;
  // After every input (appending in causal order): one comparison instead of a binary search.
  if (hi === 0 || compareInputs(orders[hi - 1], values[hi - 1], o, v) < 0) return hi;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const c = compareInputs(orders[mid], values[mid], o, v);
    if (c < 0 || (!strict && c === 0)) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export class ScanOperator extends UnaryOperator {
  private readonly groups = new ValueMap<ScanGroup>();
  /** With a state store: how pages are read (else null). */
  private reader: PageReader | null = null;
  /** Groups emptied by the running step, by encoded key: their entries are deleted at its save. */
  private readonly dropped = new Map<string, PageInfo>();
  /**
   * Stored keys of groups retention forgot, by encoded key, to delete at the group's next save
   * (those the save does not write again). NB: the host commits several steps as one, the forget
   * (by time) first and then the steps' entries (src/dataflow/durable-state.ts, StateWrite): the
   * entries of a forgotten group saved by a step before the compaction, in the same commit, are
   * written after the forget and stay stored. A group built again since writes its header and pages
   * as new: its old deltas and pages at other keys would be read back with it (the durable property
   * tests with merged commits fail without this). Set by `compact` (the keys known in memory:
   * every entry not committed yet is) and by `ensure` when it reads a forgotten header back (the
   * stored keys, read once); dropped at eviction (the entries are committed then; a stale header
   * found later is handled by `ensure`).
   */
  private readonly forgotten = new Map<string, readonly string[]>();
  private readonly initial: Value;
  /** Every new group's first checkpoint: the initial state before input 0 (shared, never changed). */
  private readonly start: Checkpoint;
  /** Whether an operator downstream reads the outputs' order keys (then diffs tell places apart). */
  private ordered = false;

  constructor(
    name: string,
    input: number,
    initial: Value,
    private readonly step: StepFn,
    private readonly every: number = CHECKPOINT_EVERY,
    private readonly orderBy: ((value: Value) => MaybePromise<Value>) | null = null,
  ) {
    super(name, input);
    this.initial = cloneValue(initial, `${name}: the initial state`);
    this.start = { index: 0, state: this.initial };
  }

  planOrder(outputOrdered: boolean): boolean {
    this.ordered = outputOrdered;
    return this.orderBy === null;
  }

  run([input]: readonly (Columns | null)[], ctx: StepContext): MaybePromise<Columns | null> {
    const batch = input!;
    return then(sortKeysOf(ctx, this.name, this.orderBy, batch), (sortKeys) =>
      runPerGroup(
        batch,
        sortKeys,
        (key, updates) => then(this.ensure(key, updates), (group) => this.computeGroup(ctx, key, group, updates)),
        (outcomes) => this.commit(outcomes),
      ),
    );
  }

  /**
   * The group in memory with what the updates need of it (with a state store: its header and
   * last page read when it is not in memory, earlier pages when an update lands before them —
   * scan-pages.ts); null for a new group.
   */
  private ensure(key: Value, updates: SortedUpdates): MaybePromise<ScanGroup | null> {
    const group = this.groups.get(key) ?? null;
    const reader = this.reader;
    if (reader === null) return group;
    const more = (g: ScanGroup): MaybePromise<ScanGroup> => {
      let whole = g.pendingCutoff !== null;
      for (let j = 0; j < updates.diffs.length && !whole; j++) whole = updates.diffs[j] < 0;
      const paged = g as ScanGroup & { info: PageInfo };
      return then(loadFor(reader, paged, whole ? null : [updates.orders[0], updates.values[0]]), () => g);
    };
    if (group !== null) return more(group);
    const prefix = encodeKey(key);
    if (!reader.mayLoad(prefix)) return null;
    return then(loadGroup(reader, prefix), (loaded) => {
      if (loaded === null) return null;
      const g: ScanGroup = { key, fold: loaded.fold, pendingCutoff: loaded.pendingCutoff, info: loaded.info };
      // NB: forgotten by a compaction since it was saved: the store's entries go with its forget,
      // unless they were saved in the commit of the forget (see `forgotten`): deleted at its save.
      if (g.pendingCutoff !== null && g.fold.maxTime < g.pendingCutoff)
        return then(storedKeys(reader, prefix), (keys) => {
          this.forgotten.set(prefix, keys.concat(this.forgotten.get(prefix) ?? []));
          return null;
        });
      this.groups.set(key, g);
      return more(g);
    });
  }

  /** The emissions of `fold`'s inputs [from, to), with their order keys when they are tracked. */
  private emissionsOf(fold: FoldState, from: number, to: number): OutputPair[] {
    return emissions(fold.emitted, from, to, this.ordered ? (i) => fold.orders[i] : null);
  }

  /** The group's output difference and the patch to its fold, computed without changing the fold (compaction aside). */
  private computeGroup(
    ctx: StepContext,
    key: Value,
    group: ScanGroup | null,
    updates: SortedUpdates,
  ): MaybePromise<Outcome> {
    const baseline =
      group === null
        ? emptyFold(this.start)
        : group.pendingCutoff === null
          ? group.fold
          : this.applyCompaction(ctx, key, group);
    return then(baseline, (base) =>
      then(this.attempt(key, base, updates, 0, updates.values.length), (a) => {
        if (a.ok) return { key, fold: base, patch: a.patch, diff: a.diff };
        if (ctx.onError === 'stop') ctx.fail(this.name, key, a.error); // throws OperatorError
        if (updates.values.length > 1) return this.retryOneByOne(ctx, key, base, updates, 0, copyFold(base));
        ctx.fail(this.name, key, a.error, updates.values[0]);
        return { key, fold: base, patch: null, diff: [] };
      }),
    );
  }

  /** Applies the updates one at a time to `fold` (a private copy), leaving out those after which the fold fails. */
  private retryOneByOne(
    ctx: StepContext,
    key: Value,
    before: FoldState,
    updates: SortedUpdates,
    j: number,
    fold: FoldState,
  ): MaybePromise<Outcome> {
    if (j === updates.values.length) {
      const diff = diffOutputs(
        this.emissionsOf(before, 0, before.emitted.length),
        this.emissionsOf(fold, 0, fold.emitted.length),
      ).diff;
      return { key, fold, patch: null, diff };
    }
    return then(this.attempt(key, fold, updates, j, j + 1), (a) => {
      if (a.ok) applyPatch(fold, a.patch);
      else ctx.fail(this.name, key, a.error, updates.values[j]);
      return this.retryOneByOne(ctx, key, before, updates, j + 1, fold);
    });
  }

  /** Applies updates [from, to) to `base` (not changing it): refolds from the checkpoint before the first of them. */
  private attempt(
    key: Value,
    base: FoldState,
    updates: SortedUpdates,
    from: number,
    to: number,
  ): MaybePromise<Attempt> {
    const old = base.values;
    const first = position(old, base.orders, updates.orders[from], updates.values[from], true);
    const last = position(old, base.orders, updates.orders[to - 1], updates.values[to - 1], false);
    const region = mergeColumns(
      first === last
        ? NO_COLUMNS // (appending, or inserting between two inputs: no old input in the region)
        : {
            values: old.slice(first, last),
            orders: base.orders.slice(first, last),
            mults: base.mults.slice(first, last),
            times: base.times.slice(first, last),
            maxTime: -Infinity,
          },
      updates,
      from,
      to,
    );
    let maxTime = base.maxTime;
    let removes = false;
    for (let j = from; j < to; j++) removes ||= updates.diffs[j] < 0;
    if (!removes) maxTime = Math.max(maxTime, region.maxTime);
    else {
      // An input may be gone: the greatest time is that of the inputs left.
      maxTime = region.maxTime;
      for (let i = 0; i < first; i++) if (base.times[i] > maxTime) maxTime = base.times[i];
      for (let i = last; i < old.length; i++) if (base.times[i] > maxTime) maxTime = base.times[i];
    }
    const change: InputChange = {
      from: first,
      to: last,
      values: region.values,
      orders: region.orders,
      mults: region.mults,
      times: region.times,
      maxTime,
    };
    // Appended after every input: fold on from the state after the last one.
    const append = first === old.length;
    const kept = append ? base.checkpoints.length : checkpointAfter(base.checkpoints, first);
    const start = append ? first : base.checkpoints[kept - 1].index;
    let result: MaybePromise<FoldPatch>;
    try {
      const state = cloneValue(append ? base.tail : base.checkpoints[kept - 1].state);
      result = refold(
        { fold: base, change, every: this.every, start, state, keptCheckpoints: kept, startCheckpoint: null },
        key,
        this.step,
      );
    } catch (error) {
      return { ok: false, error };
    }
    const check = (patch: FoldPatch): Attempt => {
      // Folded on after the last input: no old output is in the refolded range, so every new
      // output is added as emitted (in order, a value may repeat, as diffOutputs gives only
      // additions). NB: each was checked and copied by the fold's emit (cloneValue), with a
      // non-zero integer multiplicity, so acceptOutputs has nothing to refuse here.
      if (patch.rejoinedAt === start) return { ok: true, patch, diff: ADDED };
      try {
        // Validates the changed outputs too, while failure is still an option.
        const newOrder = (k: number): Value => inputAfter(change, start + k, base.orders, change.orders);
        const diff = diffOutputs(
          this.emissionsOf(base, start, patch.rejoinedAt),
          emissions(patch.emitted, 0, patch.emitted.length, this.ordered ? newOrder : null),
        ).diff;
        return { ok: true, patch, diff };
      } catch (error) {
        return { ok: false, error };
      }
    };
    if (isThenable(result))
      return Promise.resolve(result).then(check, (error: unknown): Attempt => ({ ok: false, error }));
    return check(result);
  }

  /**
   * Applies a pending compaction to the group's fold, silently and in place (the deferred effect of
   * `compact`). When the forgotten inputs are the first ones in value order (events compacted by
   * age, sorted by Lamport), the refold from the initial state rejoins the previous fold as soon as
   * their states agree; otherwise the retained inputs are refolded. If the fold fails, the group
   * stays as it was (reported, retried at the next compaction).
   */
  private applyCompaction(ctx: StepContext, key: Value, group: ScanGroup): MaybePromise<FoldState> {
    const cutoff = group.pendingCutoff as number;
    group.pendingCutoff = null;
    // Loaded from the store under this compaction, stored pages may be gone anywhere (retention
    // forgot them), and the checkpoints after a gap hold states that folded its inputs: the fold is
    // refolded from the initial state over what is left, with no old checkpoint to rejoin.
    const refoldAll = group.info?.refoldAll === true;
    // NB: every page is saved again (with this cutoff), even when nothing is forgotten: a page
    // saved before the compaction and loaded later would be compacted again as it loads, and with
    // it the inputs that arrived after the compaction with older times (the durable property test
    // with retention fails without this).
    if (group.info !== null) group.info.dirtyFrom = 0;
    const fold: FoldState = refoldAll ? { ...group.fold, checkpoints: [] } : group.fold;
    const older = olderCount(fold.times, cutoff);
    if (older === 0 && !refoldAll) return fold;
    let prefix = !refoldAll;
    for (let i = 0; i < older && prefix; i++) prefix = fold.times[i] < cutoff;
    let change: InputChange;
    if (prefix)
      change = {
        from: 0,
        to: older,
        values: [],
        orders: [],
        mults: [],
        times: [],
        maxTime: older === fold.values.length ? -Infinity : fold.maxTime,
      };
    else {
      const kept = dropOlderColumns(fold, cutoff) ?? fold;
      change = {
        from: 0,
        to: fold.values.length,
        values: kept.values,
        orders: kept.orders,
        mults: kept.mults,
        times: kept.times,
        maxTime: kept.maxTime,
      };
    }
    const keep = (patch: FoldPatch): FoldState => {
      applyPatch(fold, patch);
      group.fold = fold;
      if (group.info !== null) {
        group.info.refoldAll = false;
        group.info.dirtyFrom = 0;
      }
      return fold;
    };
    const failed = (error: unknown): FoldState => {
      ctx.fail(this.name, key, error);
      return group.fold; // as it was, uncompacted
    };
    try {
      const r = refold(
        {
          fold,
          change,
          every: this.every,
          start: 0,
          state: cloneValue(this.initial),
          keptCheckpoints: 0,
          startCheckpoint: this.start,
        },
        key,
        this.step,
      );
      return isThenable(r) ? Promise.resolve(r).then(keep, failed) : keep(r);
    } catch (error) {
      return failed(error);
    }
  }

  private commit(outcomes: readonly (Outcome | null)[]): Columns | null {
    const out = emptyColumns(true, this.ordered);
    for (const o of outcomes) {
      if (o === null) continue;
      if (o.patch !== null) applyPatch(o.fold, o.patch);
      const g = this.groups.get(o.key);
      const dirty = o.patch === null ? 0 : Math.min(o.patch.start, o.patch.inputs.from);
      // NB: a fold that is not whole (scan-pages.ts) may be empty while earlier pages hold inputs.
      if (o.fold.values.length === 0 && (g?.info == null || g.info.whole)) {
        this.groups.delete(o.key);
        if (g?.info) this.dropped.set(g.info.prefix, g.info);
      } else if (g) {
        g.fold = o.fold;
        if (g.info !== null) g.info.dirtyFrom = Math.min(g.info.dirtyFrom, dirty);
      } else {
        const info = this.reader === null ? null : newPageInfo(encodeKey(o.key));
        this.groups.set(o.key, { key: o.key, fold: o.fold, pendingCutoff: null, info });
      }
      if (o.diff === ADDED) {
        // The patch is applied: new input i's order key is o.fold.orders[i].
        const { fold } = o;
        const time = fold.maxTime;
        eachEmission(o.patch!.emitted, 0, o.patch!.emitted.length, (k, value, diff) =>
          pushGrouped(out, o.key, value, diff, time, this.ordered ? fold.orders[o.patch!.start + k] : undefined),
        );
        continue;
      }
      for (let i = 0; i < o.diff.length; i++) {
        const [value, diff] = o.diff[i]!;
        if (!this.ordered) pushGrouped(out, o.key, value, diff, o.fold.maxTime);
        else {
          // [sort key, value] (see emissionsOf)
          const [order, v] = value as readonly [Value, Value];
          pushGrouped(out, o.key, v, diff, o.fold.maxTime, order);
        }
      }
    }
    return out.values.length === 0 ? null : out;
  }

  compact(cutoff: number): void {
    const emptied: Value[] = [];
    this.groups.forEach((g, key) => {
      if (compactGroup(g, cutoff)) emptied.push(key);
    });
    for (const key of emptied) {
      const info = this.groups.get(key)!.info;
      this.groups.delete(key);
      if (info !== null)
        this.forgotten.set(info.prefix, [...dropPages(info).keys(), ...(this.forgotten.get(info.prefix) ?? [])]);
    }
  }

  /**
   * A header and pages per group (scan-pages.ts, docs/durable-state.md, "Pages"): a step writes
   * the header and the pages it changed, and reads the pages it needs.
   */
  readonly durable: DurableState = groupedPagedState(
    this.name,
    (key) => {
      this.groups.delete(key);
      if (this.forgotten.size > 0) this.forgotten.delete(encodeKey(key));
    },
    {
      attach: (reader) => {
        this.reader = reader;
      },
      save: (key) => {
        const g = this.groups.get(key);
        const prefix = g === undefined ? encodeKey(key) : g.info!.prefix;
        const stale = this.forgotten.size === 0 ? undefined : this.forgotten.get(prefix);
        let saved: { entries: Map<string, StateEntry | null>; bytes: number };
        if (g !== undefined) saved = savePages(this.reader!, g.fold, g.info!, g.pendingCutoff);
        else {
          const info = this.dropped.get(prefix);
          if (info !== undefined) {
            this.dropped.delete(prefix);
            saved = { entries: dropPages(info), bytes: 0 };
          } else if (stale !== undefined) saved = { entries: new Map(), bytes: 0 };
          else return null; // not in memory, not changed (its updates cancelled out)
        }
        if (stale !== undefined) {
          this.forgotten.delete(prefix);
          for (const k of stale) if (!saved.entries.has(k)) saved.entries.set(k, null);
        }
        return saved;
      },
      trim: (key) => {
        const g = this.groups.get(key);
        if (g === undefined || g.info === null) return 0;
        g.fold = trimPages(g.fold, g.info);
        return pagesSize(g.info);
      },
      // Its header and last page, as `ensure` reads them for an update after its last input. A
      // group forgotten by a compaction since it was saved is left for `ensure` (it notes the
      // group's stored keys for deletion).
      warm: (key) => {
        if (this.groups.get(key) !== undefined) return 0;
        const prefix = encodeKey(key);
        return then(loadGroup(this.reader!, prefix), (loaded) => {
          if (loaded === null) return 0;
          if (loaded.pendingCutoff !== null && loaded.fold.maxTime < loaded.pendingCutoff) return 0;
          const g: ScanGroup = { key, fold: loaded.fold, pendingCutoff: loaded.pendingCutoff, info: loaded.info };
          this.groups.set(key, g);
          return pagesSize(loaded.info);
        });
      },
    },
  );

  stateSize(): number {
    let n = 0;
    for (const g of this.groups.values()) n += g.fold.values.length + g.fold.emitted.length + g.fold.checkpoints.length;
    return n;
  }
}
