/**
 * `reduce(fn(key, inputs, outputs))` per group, as in the seed: the function sees the group's
 * consolidated inputs sorted by (order key, value) — or (orderBy(value), value) — and the engine
 * emits only the difference between its new and its previous outputs. Only groups touched by a
 * batch run. The outputs carry null order keys (a result of the whole group has no one place).
 *
 * State per group (what a durable copy must keep to continue): the group key; its inputs as
 * `[value, multiplicity]` pairs sorted by (sort key, value), with the sort key and the time of
 * each in parallel arrays (`SortedInputs`); the outputs last emitted (`[value, multiplicity]`
 * pairs, in the function's order); and `stale` (compaction forgot inputs: recompute the outputs
 * silently before the next difference). The sort key is the input's order key, or its `orderBy`
 * value with an explicit order.
 *
 * Failures: under 'stop' the first failure aborts the step. Under 'skip', a group whose function
 * fails on the whole batch is retried with the batch's updates applied one by one in value order;
 * an update after which the function fails is left out and reported (with the group key), so the
 * group ends in a deterministic state that the function accepted. Nothing is committed until all
 * groups of the batch have been computed.
 */
import type { Columns } from '../columns';
import { emptyColumns, pushGrouped } from '../columns';
import { then, UnaryOperator, type DurableState } from '../operator';
import { groupKeys, runPerGroup, sortKeysOf } from './per-group';
import { acceptOutputs, diffOutputs, gatherOutputs, type OutputPair } from '../output-diff';
import { dropOlder, mergeInputs, NO_INPUTS, type Entry, type SortedInputs, type SortedUpdates } from '../sorted-inputs';
import { isThenable, type StepContext } from '../step-context';
import type { MaybePromise, ReduceFn, Value } from '../types';
import { ValueMap } from '../value-map';

/** Forgets the group's inputs older than `cutoff` (its outputs are then stale); true when none is left. */
function compactGroup(g: ReduceGroup, cutoff: number): boolean {
  const kept = dropOlder(g.inputs, cutoff);
  if (kept === null) return false;
  g.inputs = kept;
  g.stale = true;
  return kept.entries.length === 0;
}

interface ReduceGroup {
  readonly key: Value;
  inputs: SortedInputs;
  outputs: readonly OutputPair[];
  /** Inputs were forgotten by `compact`: `outputs` must be recomputed silently before use. */
  stale: boolean;
}

type Attempt =
  | { readonly ok: true; readonly outputs: readonly OutputPair[]; readonly diff: readonly OutputPair[] }
  | { readonly ok: false; readonly error: unknown };

interface Outcome {
  readonly key: Value;
  readonly inputs: SortedInputs;
  readonly outputs: readonly OutputPair[];
  readonly diff: readonly OutputPair[];
}

export class ReduceOperator extends UnaryOperator {
  private readonly groups = new ValueMap<ReduceGroup>();

  constructor(
    name: string,
    input: number,
    private readonly fn: ReduceFn<Value, Value, Value>,
    private readonly orderBy: ((value: Value) => MaybePromise<Value>) | null = null,
  ) {
    super(name, input);
  }

  planOrder(): boolean {
    return this.orderBy === null; // the outputs carry null order keys
  }

  run([input]: readonly (Columns | null)[], ctx: StepContext): MaybePromise<Columns | null> {
    const batch = input!;
    return then(sortKeysOf(ctx, this.name, this.orderBy, batch), (sortKeys) =>
      runPerGroup(
        batch,
        sortKeys,
        (key, updates) => this.computeGroup(ctx, key, this.groups.get(key) ?? null, updates),
        (outcomes) => this.commit(outcomes),
      ),
    );
  }

  /** The group's new state and output difference, computed without touching the group. */
  private computeGroup(
    ctx: StepContext,
    key: Value,
    group: ReduceGroup | null,
    updates: SortedUpdates,
  ): MaybePromise<Outcome | null> {
    const base = group?.inputs ?? NO_INPUTS;
    const baseline = group === null ? [] : group.stale ? this.rebaseline(ctx, key, group) : group.outputs;
    const merged = mergeInputs(base, updates);
    return then(baseline, (before) =>
      then(this.attempt(key, merged, before), (a) => {
        if (a.ok) return { key, inputs: merged, outputs: a.outputs, diff: a.diff };
        if (ctx.onError === 'stop') ctx.fail(this.name, key, a.error); // throws OperatorError
        if (updates.values.length > 1) return this.retryOneByOne(ctx, key, before, updates, 0, base, before);
        ctx.fail(this.name, key, a.error, updates.values[0]);
        return { key, inputs: base, outputs: before, diff: [] };
      }),
    );
  }

  private retryOneByOne(
    ctx: StepContext,
    key: Value,
    before: readonly OutputPair[],
    updates: SortedUpdates,
    j: number,
    state: SortedInputs,
    outputs: readonly OutputPair[],
  ): MaybePromise<Outcome> {
    if (j === updates.values.length)
      return { key, inputs: state, outputs, diff: outputs === before ? [] : diffOutputs(before, outputs).diff };
    const next = mergeInputs(state, updates, j, j + 1);
    return then(this.attempt(key, next, before), (a) => {
      if (a.ok) return this.retryOneByOne(ctx, key, before, updates, j + 1, next, a.outputs);
      ctx.fail(this.name, key, a.error, updates.values[j]);
      return this.retryOneByOne(ctx, key, before, updates, j + 1, state, outputs);
    });
  }

  /**
   * Calls the user function; an empty group has no outputs and is not called. With `before` null
   * (a silent recompute) only the outputs are checked and kept, no difference is computed.
   */
  private attempt(key: Value, inputs: SortedInputs, before: readonly OutputPair[] | null): MaybePromise<Attempt> {
    if (inputs.entries.length === 0)
      return { ok: true, outputs: [], diff: before === null ? [] : diffOutputs(before, []).diff };
    const pushed: [Value, number][] = [];
    let r: unknown;
    try {
      r = this.fn(key, inputs.entries.slice(), pushed); // a copy: the function cannot disturb the state
    } catch (error) {
      return { ok: false, error };
    }
    const check = (returned: unknown): Attempt => {
      try {
        // Also validates the changed outputs, now, while failure is still an option.
        const produced = gatherOutputs(pushed, returned);
        if (before === null) return { ok: true, outputs: acceptOutputs(produced), diff: [] };
        const change = diffOutputs(before, produced);
        return { ok: true, outputs: change.kept, diff: change.diff };
      } catch (error) {
        return { ok: false, error };
      }
    };
    if (isThenable(r)) return Promise.resolve(r).then(check, (error: unknown): Attempt => ({ ok: false, error }));
    return check(r);
  }

  /** Outputs of a group whose inputs were compacted, recomputed without emitting anything. */
  private rebaseline(ctx: StepContext, key: Value, group: ReduceGroup): MaybePromise<readonly OutputPair[]> {
    return then(this.attempt(key, group.inputs, null), (a) => {
      if (a.ok) return a.outputs;
      ctx.fail(this.name, key, a.error);
      return group.outputs; // keep the old baseline
    });
  }

  private commit(outcomes: readonly (Outcome | null)[]): Columns | null {
    const out = emptyColumns(true);
    for (const o of outcomes) {
      if (o === null) continue;
      if (o.inputs.entries.length === 0) this.groups.delete(o.key);
      else {
        const g = this.groups.get(o.key);
        if (g) {
          g.inputs = o.inputs;
          g.outputs = o.outputs;
          g.stale = false;
        } else this.groups.set(o.key, { key: o.key, inputs: o.inputs, outputs: o.outputs, stale: false });
      }
      for (let i = 0; i < o.diff.length; i++) pushGrouped(out, o.key, o.diff[i]![0], o.diff[i]![1], o.inputs.maxTime);
    }
    return out.values.length === 0 ? null : out;
  }

  compact(cutoff: number): void {
    const emptied: Value[] = [];
    this.groups.forEach((g, key) => {
      if (compactGroup(g, cutoff)) emptied.push(key);
    });
    for (const key of emptied) this.groups.delete(key);
  }

  /**
   * One entry per group (its inputs in parts are later work, docs/durable-state.md): `[inputs,
   * sort keys, times, outputs, stale]` — the inputs as `[value, multiplicity]` pairs in order, the
   * outputs last emitted as pairs; its time is the greatest input time.
   */
  readonly durable: DurableState = {
    timed: true,
    touched: ([input], into) => groupKeys(input, into),
    load: (key, data, cutoff) => {
      const [entries, orders, times, outputs, stale] = data as [Entry[], Value[], number[], OutputPair[], boolean];
      let maxTime = -Infinity;
      for (const t of times) if (t > maxTime) maxTime = t;
      for (const e of entries) Object.freeze(e); // as mergeInputs makes them
      const g: ReduceGroup = { key, inputs: { entries, orders, times, maxTime }, outputs, stale };
      if (cutoff !== null && compactGroup(g, cutoff)) return;
      this.groups.set(key, g);
    },
    save: (key) => {
      const g = this.groups.get(key);
      if (g === undefined) return null;
      const { entries, orders, times, maxTime } = g.inputs;
      return { data: [entries, orders, times, g.outputs, g.stale], t: maxTime };
    },
    evict: (key) => this.groups.delete(key),
  };

  stateSize(): number {
    let n = 0;
    for (const g of this.groups.values()) n += g.inputs.entries.length + g.outputs.length;
    return n;
  }
}
