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
import { then, UnaryOperator, type DurableState, type PageReader } from '../operator';
import { groupKeys, runPerGroup, sortKeysOf } from './per-group';
import { acceptOutputs, diffOutputs, gatherOutputs, type OutputPair } from '../output-diff';
import {
  compareInputs,
  dropOlder,
  mergeInputs,
  NO_INPUTS,
  type Entry,
  type SortedInputs,
  type SortedUpdates,
} from '../sorted-inputs';
import { encodeKey } from '../state-key';
import { isThenable, type StepContext } from '../step-context';
import type { MaybePromise, ReduceFn, StateEntry, Value } from '../types';
import { ValueMap } from '../value-map';

/** Above every part key after the group prefix (an encoded `[sort key, value]` starts with the tag `f`). */
const END = '~';

/**
 * With a state store, what a group in memory knows of its stored entries (docs/durable-state.md,
 * "reduce in parts"): a header at the group key's encoding `G` — `[outputs, stale, count]`, its
 * time the group's greatest input time — and a part per input at `G + encodeKey([sort key,
 * value])` — `[sort key, value, multiplicity, time]`, its time the input's. A group in memory is
 * always whole (the function sees every input); a step writes the parts of the inputs it changed
 * and the header.
 */
interface Stored {
  readonly prefix: string;
  /** Inputs changed (or forgotten by compaction) since the last save, by encoded `[sort key, value]`. */
  readonly dirty: Map<string, readonly [order: Value, value: Value]>;
  /** The group had an outcome since the last save: its header (outputs, stale, count) is rewritten. */
  headerDirty: boolean;
  headerBytes: number;
  /** Text length of the parts loaded or written (and how many), for the cache's count of the group. */
  partText: number;
  parts: number;
}

function newStored(prefix: string): Stored {
  return { prefix, dirty: new Map(), headerDirty: false, headerBytes: 0, partText: 0, parts: 0 };
}

/** Marks the updates' inputs changed. */
function markDirty(st: Stored, updates: SortedUpdates): void {
  const { orders, values } = updates;
  for (let j = 0; j < values.length; j++) st.dirty.set(encodeKey([orders[j], values[j]]), [orders[j], values[j]]);
}

/** The index of the input (sort key, value) in `inputs`, or -1. */
function indexOf(inputs: SortedInputs, order: Value, value: Value): number {
  const { entries, orders } = inputs;
  let lo = 0;
  let hi = entries.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const c = compareInputs(orders[mid], entries[mid][0], order, value);
    if (c === 0) return mid;
    if (c < 0) lo = mid + 1;
    else hi = mid - 1;
  }
  return -1;
}

/** Forgets the group's inputs older than `cutoff` (its outputs are then stale); true when none is left. */
function compactGroup(g: ReduceGroup, cutoff: number): boolean {
  const kept = dropOlder(g.inputs, cutoff);
  if (kept === null) return false;
  const st = g.stored;
  if (st !== null) {
    // Their parts are deleted by the commit's forget (their times are below the cutoff) and, should
    // the group be saved again, explicitly.
    const { entries, orders, times } = g.inputs;
    for (let i = 0; i < times.length; i++)
      if (times[i] < cutoff) st.dirty.set(encodeKey([orders[i], entries[i][0]]), [orders[i], entries[i][0]]);
  }
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
  /** With a state store: its stored entries (null without one). */
  readonly stored: Stored | null;
}

type Attempt =
  | { readonly ok: true; readonly outputs: readonly OutputPair[]; readonly diff: readonly OutputPair[] }
  | { readonly ok: false; readonly error: unknown };

interface Outcome {
  readonly key: Value;
  /** The group's updates (the inputs whose parts the step may change). */
  readonly updates: SortedUpdates;
  readonly inputs: SortedInputs;
  readonly outputs: readonly OutputPair[];
  readonly diff: readonly OutputPair[];
}

export class ReduceOperator extends UnaryOperator {
  private readonly groups = new ValueMap<ReduceGroup>();
  private reader: PageReader | null = null;
  /** Groups emptied by the running step: their header and parts are deleted at save. */
  private readonly dropped = new Map<string, Stored>();

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
    return then(this.load(batch), () =>
      then(sortKeysOf(ctx, this.name, this.orderBy, batch), (sortKeys) =>
        runPerGroup(
          batch,
          sortKeys,
          (key, updates) => this.computeGroup(ctx, key, this.groups.get(key) ?? null, updates),
          (outcomes) => this.commit(outcomes),
        ),
      ),
    );
  }

  /**
   * With a store: reads the batch's groups that are not in memory and may be stored, each whole
   * with one `range` (its header and parts). Synchronous unless the store is.
   */
  private load(batch: Columns): MaybePromise<void> {
    const reader = this.reader;
    if (reader === null) return;
    const wanted = new Map<string, Value>();
    groupKeys(batch, wanted);
    const reads: MaybePromise<void>[] = [];
    let async = false;
    for (const [prefix, key] of wanted) {
      if (this.groups.get(key) !== undefined || !reader.mayLoad(prefix)) continue;
      const r = then(reader.range(prefix, prefix + END), (entries) => this.loadGroup(reader, key, prefix, entries));
      if (isThenable(r)) async = true;
      reads.push(r);
    }
    if (async) return Promise.all(reads).then(() => undefined);
  }

  /** Puts a group read from the store in memory, compacted as its entries' cutoffs say (nothing kept: none). */
  private loadGroup(
    reader: PageReader,
    key: Value,
    prefix: string,
    stored: readonly (readonly [string, string])[],
  ): void {
    if (stored.length === 0) return;
    const entries: Entry[] = [];
    const orders: Value[] = [];
    const times: number[] = [];
    let maxTime = -Infinity;
    const st = newStored(prefix);
    let header: { outputs: OutputPair[]; stale: boolean; count: number } | null = null;
    for (const [k, text] of stored) {
      const { data, compactTo } = reader.open(k, text);
      if (k === prefix) {
        const [outputs, stale, count] = data as [OutputPair[], boolean, number];
        header = { outputs, stale, count };
        st.headerBytes = text.length;
        continue;
      }
      const [order, value, mult, time] = data as [Value, Value, number, number];
      st.partText += text.length;
      st.parts++;
      if (compactTo !== null && time < compactTo) {
        // Forgotten by retention; the part is still stored when it was saved in the commit that
        // forgot older entries: deleted at the group's next save.
        st.dirty.set(k.slice(prefix.length), [order, value]);
        continue;
      }
      const n = entries.length;
      // NB: the store returns the parts in key order, which is the inputs' order (encodeKey orders
      // as compareValues: test/engine/state-key.test.ts); checked, since every merge relies on it.
      if (n > 0 && compareInputs(orders[n - 1], entries[n - 1][0], order, value) >= 0)
        throw new Error(`${this.name}: the stored inputs of the group ${prefix} are not in order at ${k}`);
      entries.push(Object.freeze([value, mult] as const)); // as mergeInputs makes them
      orders.push(order);
      times.push(time);
      if (time > maxTime) maxTime = time;
    }
    // NB: parts are written only with their header, and a header's time is its group's greatest
    // input time, so retention forgets the header last; parts without one were all forgotten.
    if (header === null) {
      if (entries.length > 0) throw new Error(`${this.name}: the group ${prefix} has stored inputs and no header`);
      return;
    }
    if (entries.length === 0) return; // retention forgot the whole group
    // Fewer inputs than the header counted: retention forgot some (on disk, or as they loaded) since
    // the header was saved, and its outputs must be recomputed. (More: parts saved before a
    // compaction under the same cutoff; recomputing is what compaction does too.)
    const stale = header.stale || entries.length !== header.count;
    this.groups.set(key, {
      key,
      inputs: { entries, orders, times, maxTime },
      outputs: header.outputs,
      stale,
      stored: st,
    });
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
        if (a.ok) return { key, updates, inputs: merged, outputs: a.outputs, diff: a.diff };
        if (ctx.onError === 'stop') ctx.fail(this.name, key, a.error); // throws OperatorError
        if (updates.values.length > 1) return this.retryOneByOne(ctx, key, before, updates, 0, base, before);
        ctx.fail(this.name, key, a.error, updates.values[0]);
        return { key, updates, inputs: base, outputs: before, diff: [] };
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
      return {
        key,
        updates,
        inputs: state,
        outputs,
        diff: outputs === before ? [] : diffOutputs(before, outputs).diff,
      };
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
    const durable = this.reader !== null;
    for (const o of outcomes) {
      if (o === null) continue;
      let g = this.groups.get(o.key);
      if (o.inputs.entries.length === 0) {
        if (g !== undefined) {
          this.groups.delete(o.key);
          const st = g.stored;
          if (st !== null) {
            // Every part goes. NB: the group is whole in memory, so it empties only when the updates
            // cancel each of its inputs: they name every part it holds. Parts of inputs forgotten
            // by retention are in `dirty` since (compactGroup, loadGroup) or deleted by the commit's
            // forget.
            markDirty(st, o.updates);
            this.dropped.set(st.prefix, st);
          }
        }
      } else {
        if (g) {
          g.inputs = o.inputs;
          g.outputs = o.outputs;
          g.stale = false;
        } else {
          const stored = durable ? newStored(encodeKey(o.key)) : null;
          g = { key: o.key, inputs: o.inputs, outputs: o.outputs, stale: false, stored };
          this.groups.set(o.key, g);
        }
        if (g.stored !== null) {
          markDirty(g.stored, o.updates);
          g.stored.headerDirty = true;
        }
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
   * A header and a part per input (`Stored` above): a step writes the parts of the inputs it
   * changed and the header; a group not in memory is read whole (one `range`) when a batch
   * touches it; an emptied group deletes its header and every part.
   */
  readonly durable: DurableState = {
    timed: true,
    touched: ([input], into) => groupKeys(input, into),
    load: () => {
      throw new Error(`${this.name}: a paged state is read by the operator`);
    },
    save: () => {
      throw new Error(`${this.name}: a paged state is saved by paged.save`);
    },
    evict: (key) => this.groups.delete(key),
    paged: {
      attach: (reader) => {
        this.reader = reader;
      },
      save: (key) => {
        const g = this.groups.get(key);
        const out = new Map<string, StateEntry | null>();
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
        const reader = this.reader!;
        const { entries, times } = g.inputs;
        for (const [enc, [order, value]] of st.dirty) {
          const i = indexOf(g.inputs, order, value);
          if (i < 0) {
            out.set(st.prefix + enc, null);
            continue;
          }
          const text = reader.text([order, entries[i][0], entries[i][1], times[i]]);
          st.partText += text.length;
          st.parts++;
          out.set(st.prefix + enc, { v: text, t: times[i] });
        }
        st.dirty.clear();
        if (st.headerDirty) {
          const header = reader.text([g.outputs, g.stale, entries.length]);
          out.set(st.prefix, { v: header, t: g.inputs.maxTime });
          st.headerBytes = header.length;
          st.headerDirty = false;
        }
        return { entries: out, bytes: this.bytesOf(g) };
      },
      // A group in memory is whole (the function sees all of it): nothing to trim.
      trim: (key) => {
        const g = this.groups.get(key);
        return g === undefined ? 0 : this.bytesOf(g);
      },
    },
  };

  /** A group's size in the cache's count: its header's text and its inputs at the average text length of its parts. */
  private bytesOf(g: ReduceGroup): number {
    const st = g.stored;
    if (st === null) return 0;
    const part = st.parts === 0 ? 0 : st.partText / st.parts;
    return Math.max(1, Math.round(st.headerBytes + g.inputs.entries.length * part));
  }

  stateSize(): number {
    let n = 0;
    for (const g of this.groups.values()) n += g.inputs.entries.length + g.outputs.length;
    return n;
  }
}
