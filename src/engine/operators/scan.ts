/**
 * `scan(initial, step)` per group: a left fold over the group's inputs in the total order of values
 * (the order `reduce` sees them in). Its outputs are what `step` emitted folding from `initial`
 * over all the group's inputs — what a `reduce` doing that fold would output — but each batch only
 * refolds from the checkpoint before its first changed input until the fold rejoins the previous
 * one (see fold.ts), so appending events in causal order costs O(batch), not O(group).
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
import { CHECKPOINT_EVERY, checkpointAfter, emissions, refold, type FoldState, type RefoldResult, type StepFn } from '../fold';
import { then, UnaryOperator } from '../operator';
import { diffOutputs } from '../output-diff';
import { dropOlder, mergeInputs, NO_INPUTS, sortUpdates, type Entry, type SortedUpdates } from '../sorted-inputs';
import { isThenable, type StepContext } from '../step-context';
import type { MaybePromise, Value } from '../types';
import { cloneValue } from '../value-clone';
import { compareValues } from '../value-order';
import { ValueMap } from '../value-map';

interface ScanGroup {
  readonly key: Value;
  fold: FoldState;
  /** A compaction cutoff not applied yet (applied, silently, at the group's next touch). */
  pendingCutoff: number | null;
}

type Attempt = { readonly ok: true; readonly fold: FoldState; readonly diff: readonly [Value, number][] } | { readonly ok: false; readonly error: unknown };

interface Outcome {
  readonly key: Value;
  readonly fold: FoldState;
  readonly diff: readonly [Value, number][];
}

/** How many entries sort before `v` (strict = false: before or equal to it). */
function position(entries: readonly Entry[], v: Value, strict: boolean): number {
  let lo = 0;
  let hi = entries.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const c = compareValues(entries[mid][0], v);
    if (c < 0 || (!strict && c === 0)) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export class ScanOperator extends UnaryOperator {
  private readonly groups = new ValueMap<ScanGroup>();
  private readonly empty: FoldState;

  constructor(
    name: string,
    input: number,
    initial: Value,
    private readonly step: StepFn,
    private readonly every: number = CHECKPOINT_EVERY,
  ) {
    super(name, input);
    this.empty = { inputs: NO_INPUTS, emitted: [], checkpoints: [{ index: 0, state: cloneValue(initial, `${name}: the initial state`) }] };
  }

  run([input]: readonly (Columns | null)[], ctx: StepContext): MaybePromise<Columns | null> {
    const batch = input!;
    const keys = batch.keys!;
    const buckets = new ValueMap<number[]>();
    const order: Value[] = [];
    for (let i = 0; i < keys.length; i++) {
      if (batch.diffs[i] === 0) continue;
      const b = buckets.get(keys[i]);
      if (b) b.push(i);
      else {
        buckets.set(keys[i], [i]);
        order.push(keys[i]);
      }
    }
    const outcomes: MaybePromise<Outcome | null>[] = [];
    let async = false;
    for (const key of order) {
      const updates = sortUpdates(batch.values, batch.diffs, batch.times, buckets.get(key)!);
      if (updates.values.length === 0) continue;
      const o = this.computeGroup(ctx, key, this.groups.get(key) ?? null, updates);
      if (isThenable(o)) async = true;
      outcomes.push(o);
    }
    if (!async) return this.commit(outcomes as (Outcome | null)[]);
    return Promise.all(outcomes).then((all) => this.commit(all));
  }

  /** The group's new fold and output difference, computed without touching the group. */
  private computeGroup(ctx: StepContext, key: Value, group: ScanGroup | null, updates: SortedUpdates): MaybePromise<Outcome> {
    const baseline = group === null ? this.empty : group.pendingCutoff === null ? group.fold : this.compacted(ctx, key, group.fold, group.pendingCutoff);
    return then(baseline, (base) =>
      then(this.attempt(key, base, updates, 0, updates.values.length), (a) => {
        if (a.ok) return { key, fold: a.fold, diff: a.diff };
        if (ctx.onError === 'stop') ctx.fail(this.name, key, a.error); // throws OperatorError
        if (updates.values.length > 1) return this.retryOneByOne(ctx, key, base, updates, 0, base);
        ctx.fail(this.name, key, a.error, updates.values[0]);
        return { key, fold: base, diff: [] };
      }),
    );
  }

  private retryOneByOne(ctx: StepContext, key: Value, before: FoldState, updates: SortedUpdates, j: number, fold: FoldState): MaybePromise<Outcome> {
    if (j === updates.values.length) {
      const diff = fold === before ? [] : diffOutputs(emissions(before.emitted, 0, before.emitted.length), emissions(fold.emitted, 0, fold.emitted.length)).diff;
      return { key, fold, diff };
    }
    return then(this.attempt(key, fold, updates, j, j + 1), (a) => {
      if (a.ok) return this.retryOneByOne(ctx, key, before, updates, j + 1, a.fold);
      ctx.fail(this.name, key, a.error, updates.values[j]);
      return this.retryOneByOne(ctx, key, before, updates, j + 1, fold);
    });
  }

  /** Applies updates [from, to) to `base`: refolds from the checkpoint before the first of them. */
  private attempt(key: Value, base: FoldState, updates: SortedUpdates, from: number, to: number): MaybePromise<Attempt> {
    const old = base.inputs.entries;
    const inputs = mergeInputs(base.inputs, updates, from, to);
    const firstChange = position(old, updates.values[from], true);
    const cp = base.checkpoints[checkpointAfter(base.checkpoints, firstChange) - 1];
    let result: MaybePromise<RefoldResult>;
    try {
      result = refold(
        {
          inputs,
          every: this.every,
          start: cp.index,
          state: cloneValue(cp.state),
          checkpoints: base.checkpoints.slice(0, checkpointAfter(base.checkpoints, cp.index)),
          emittedBefore: base.emitted,
          previous: { fold: base, shift: inputs.entries.length - old.length, rejoinFrom: position(inputs.entries, updates.values[to - 1], false) },
        },
        key,
        this.step,
      );
    } catch (error) {
      return { ok: false, error };
    }
    const check = (r: RefoldResult): Attempt => {
      try {
        // Validates the changed outputs too, while failure is still an option.
        const diff = diffOutputs(emissions(base.emitted, cp.index, r.rejoinedAt), r.emittedNow).diff;
        return { ok: true, fold: r.fold, diff };
      } catch (error) {
        return { ok: false, error };
      }
    };
    if (isThenable(result)) return Promise.resolve(result).then(check, (error: unknown): Attempt => ({ ok: false, error }));
    return check(result);
  }

  /**
   * The fold over the inputs retained after `cutoff`, computed silently. When the forgotten inputs
   * are the first ones in value order (events compacted by age, sorted by Lamport), the refold from
   * the initial state rejoins the previous fold as soon as their states agree.
   */
  private compacted(ctx: StepContext, key: Value, fold: FoldState, cutoff: number): MaybePromise<FoldState> {
    const kept = dropOlder(fold.inputs, cutoff);
    if (kept === null) return fold;
    if (kept.entries.length === 0) return this.empty;
    const dropped = fold.inputs.entries.length - kept.entries.length;
    let prefix = true;
    for (let i = 0; i < dropped && prefix; i++) prefix = fold.inputs.times[i] < cutoff;
    let result: MaybePromise<RefoldResult>;
    try {
      result = refold(
        {
          inputs: kept,
          every: this.every,
          start: 0,
          state: cloneValue(this.empty.checkpoints[0].state),
          checkpoints: this.empty.checkpoints,
          emittedBefore: [],
          previous: prefix ? { fold, shift: -dropped, rejoinFrom: 0 } : null,
        },
        key,
        this.step,
      );
    } catch (error) {
      ctx.fail(this.name, key, error);
      return fold; // keep the group as it was, uncompacted
    }
    return then(result, (r) => r.fold);
  }

  private commit(outcomes: readonly (Outcome | null)[]): Columns | null {
    const out = emptyColumns(true);
    for (const o of outcomes) {
      if (o === null) continue;
      if (o.fold.inputs.entries.length === 0) this.groups.delete(o.key);
      else {
        const g = this.groups.get(o.key);
        if (g) {
          g.fold = o.fold;
          g.pendingCutoff = null;
        } else this.groups.set(o.key, { key: o.key, fold: o.fold, pendingCutoff: null });
      }
      for (const [value, diff] of o.diff) pushGrouped(out, o.key, value, diff, o.fold.inputs.maxTime);
    }
    return out.values.length === 0 ? null : out;
  }

  compact(cutoff: number): void {
    const emptied: Value[] = [];
    this.groups.forEach((g, key) => {
      // A group with nothing retained has no outputs: forgetting it now is the silent re-baseline.
      if (g.fold.inputs.maxTime < cutoff) emptied.push(key);
      else g.pendingCutoff = g.pendingCutoff === null ? cutoff : Math.max(g.pendingCutoff, cutoff);
    });
    for (const key of emptied) this.groups.delete(key);
  }

  stateSize(): number {
    let n = 0;
    for (const g of this.groups.values()) n += g.fold.inputs.entries.length + g.fold.emitted.length + g.fold.checkpoints.length;
    return n;
  }
}
