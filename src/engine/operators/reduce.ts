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
import { groupKeys, runPerGroup, sortKeysOf, groupedPagedState } from './per-group';
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
import { decodeKey, encodeKey } from '../state-key';
import { isThenable, type StepContext } from '../step-context';
import type { MaybePromise, ReduceFn, StateEntry, Value } from '../types';
import { ValueMap } from '../value-map';

/**
 * Inputs per stored part of a group by default (`ReduceOptions.partInputs`). A step rewrites each
 * part holding an input it changed: live, the example flows' median (a group per machine, one input
 * per distinct timespan length) rewrote a part of 64–128 inputs, 4.6–5.9 kB, for a count changed by
 * one; with 16 the part is about 0.5 kB and the state text a live event writes is about half
 * (4.6 → 2.5 kB), at the same catch-up CPU (BENCHMARKS.md, 2026-12-08, "dd-reduce parts of 16").
 * Reading a group back costs a row per part: about 50 rows for a machine with 800 lengths.
 */
export const PART_INPUTS = 16;
/** The first part's key after the group prefix: below every encoded `[sort key, value]` (tag `f`). */
const FIRST = 'a';
/** Above every part key after the group prefix. */
const END = '~';

/** An input's place in its group: (sort key, value). */
type Place = readonly [order: Value, value: Value];

/**
 * With a state store, what a group in memory knows of its stored entries (docs/durable-state.md,
 * "Implementation status"): a header at the group key's encoding `G` — `[outputs, stale, count]`,
 * its time the group's greatest input time — and the inputs in parts of about `partInputs`
 * consecutive inputs: the first at `G + 'a'`, each other at `G + encodeKey([sort key, value])` of
 * the place it starts at — `[sort keys, values, multiplicities, times]`, its time its greatest
 * input time. A group in memory is always whole (the function sees every input); a step rewrites
 * the parts holding the inputs it changed, and the header.
 */
interface Stored {
  readonly prefix: string;
  /** Per part, in order: its key after the prefix (FIRST for the first part, which starts the group), … */
  readonly keys: string[];
  /** … the place it starts at (null for the first), … */
  readonly starts: (Place | null)[];
  /** … and its text length as last saved or loaded (0: not stored). */
  readonly sizes: number[];
  /** Keys of the parts changed (or holding inputs forgotten by retention) since the last save. */
  readonly dirty: Set<string>;
  /** The group had an outcome since the last save: its header (outputs, stale, count) is rewritten. */
  headerDirty: boolean;
  headerBytes: number;
}

function newStored(prefix: string): Stored {
  return { prefix, keys: [FIRST], starts: [null], sizes: [0], dirty: new Set(), headerDirty: false, headerBytes: 0 };
}

/** The index of the part holding the place (order, value): the last one starting at or before it. */
function partOf(st: Stored, order: Value, value: Value): number {
  let lo = 1;
  let hi = st.keys.length - 1;
  let at = 0;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const start = st.starts[mid]!;
    if (compareInputs(start[0], start[1], order, value) <= 0) {
      at = mid;
      lo = mid + 1;
    } else hi = mid - 1;
  }
  return at;
}

/** Marks the parts holding the updates' inputs changed. */
function markDirty(st: Stored, updates: SortedUpdates): void {
  const { orders, values } = updates;
  let last = -1;
  for (let j = 0; j < values.length; j++) {
    const i = partOf(st, orders[j], values[j]);
    if (i !== last) st.dirty.add(st.keys[i]!);
    last = i;
  }
}

/** The index of the first input at or after the place (the inputs' length: none). */
function lowerBound(inputs: SortedInputs, order: Value, value: Value): number {
  const { entries, orders } = inputs;
  let lo = 0;
  let hi = entries.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (compareInputs(orders[mid], entries[mid][0], order, value) < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Forgets the group's inputs older than `cutoff` (its outputs are then stale); true when none is left. */
function compactGroup(g: ReduceGroup, cutoff: number): boolean {
  const kept = dropOlder(g.inputs, cutoff);
  if (kept === null) return false;
  const st = g.stored;
  if (st !== null) {
    // The parts that held them are rewritten at the group's next save (on disk, a part all of whose
    // inputs are older goes with the commit's forget; the others drop them as they load).
    const { entries, orders, times } = g.inputs;
    for (let i = 0; i < times.length; i++)
      if (times[i] < cutoff) st.dirty.add(st.keys[partOf(st, orders[i], entries[i][0])]!);
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
    /** With a state store: inputs per stored part (a part is split when it grows beyond twice this). */
    private readonly partInputs = PART_INPUTS,
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
    let lastKept = FIRST; // the part of the last input kept
    for (const [k, text] of stored) {
      const { data, compactTo } = reader.open(k, text);
      if (k === prefix) {
        const [outputs, stale, count] = data as [OutputPair[], boolean, number];
        header = { outputs, stale, count };
        st.headerBytes = text.length;
        continue;
      }
      const part = k.slice(prefix.length);
      if (part === FIRST) st.sizes[0] = text.length;
      else {
        const start = decodeKey(part) as unknown as Place;
        const n = entries.length;
        // A part of a group that retention forgot, stored after the forget in the same commit, may
        // start inside a part of the group built again since (its own inputs are all dropped
        // below): both are rewritten at the next save, so each input is stored in one part.
        if (n > 0 && compareInputs(orders[n - 1], entries[n - 1][0], start[0], start[1]) >= 0) {
          st.dirty.add(lastKept);
          st.dirty.add(part);
        }
        st.keys.push(part);
        st.starts.push(start);
        st.sizes.push(text.length);
      }
      const [os, vs, ms, ts] = data as [Value[], Value[], number[], number[]];
      for (let j = 0; j < vs.length; j++) {
        const time = ts[j]!;
        if (compactTo !== null && time < compactTo) {
          // Forgotten by retention: the part is rewritten without it at the group's next save.
          st.dirty.add(part);
          continue;
        }
        const n = entries.length;
        // NB: a part holds its inputs in order (as the group held them when it was saved), and parts
        // are read in key order, the key of a part being the place it starts at (encodeKey orders as
        // compareValues: test/engine/state-key.test.ts), so the inputs come in order; checked where
        // one part follows another, since every merge relies on it.
        if (n > 0 && lastKept !== part && compareInputs(orders[n - 1], entries[n - 1][0], os[j], vs[j]) >= 0)
          throw new Error(`${this.name}: the stored inputs of the group ${prefix} are not in order at ${k}`);
        entries.push(Object.freeze([vs[j], ms[j]] as const)); // as mergeInputs makes them
        lastKept = part;
        orders.push(os[j]);
        times.push(time);
        if (time > maxTime) maxTime = time;
      }
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
            this.dropped.set(st.prefix, st); // its header and every part are deleted
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
   * A header and parts of about `partInputs` inputs (`Stored` above): a step rewrites the parts
   * holding the inputs it changed, and the header; a group not in memory is read whole (one
   * `range`) when a batch touches it; an emptied group deletes its header and every part.
   */
  readonly durable: DurableState = groupedPagedState(this.name, (key) => this.groups.delete(key), {
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
        // NB: every stored part has a key in `keys` (loaded ones, saved ones; an emptied part's
        // deletion was written when it left `keys`).
        for (const part of st.keys) out.set(prefix + part, null);
        out.set(prefix, null);
        return { entries: out, bytes: 0 };
      }
      const st = g.stored;
      if (st.dirty.size > 0) this.saveParts(g.inputs, st, out);
      if (st.headerDirty) {
        const header = this.reader!.text([g.outputs, g.stale, g.inputs.entries.length]);
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
    // The group whole, as `load` reads it for a batch that touches it.
    warm: (key) => {
      const reader = this.reader!;
      if (this.groups.get(key) !== undefined) return 0;
      const prefix = encodeKey(key);
      return then(reader.range(prefix, prefix + END), (entries) => {
        this.loadGroup(reader, key, prefix, entries);
        const g = this.groups.get(key);
        return g === undefined ? 0 : this.bytesOf(g);
      });
    },
  });

  /**
   * Writes the group's dirty parts: each holds the inputs from its start to the next part's; an
   * emptied part is deleted (the first keeps its place), one beyond twice `partInputs` is split
   * into parts of about `partInputs`, the new ones keyed by their first input's place.
   */
  private saveParts(inputs: SortedInputs, st: Stored, out: Map<string, StateEntry | null>): void {
    const reader = this.reader!;
    const { entries, orders, times } = inputs;
    const dirty: number[] = [];
    for (let i = 0; i < st.keys.length; i++) if (st.dirty.has(st.keys[i]!)) dirty.push(i);
    st.dirty.clear();
    // From the last to the first: a split or a deletion moves only the parts after it.
    for (let d = dirty.length - 1; d >= 0; d--) {
      const i = dirty[d]!;
      const start = st.starts[i];
      const next = st.starts[i + 1];
      const from = start == null ? 0 : lowerBound(inputs, start[0], start[1]);
      const to = next === undefined ? entries.length : lowerBound(inputs, next![0], next![1]);
      if (from === to) {
        out.set(st.prefix + st.keys[i], null);
        if (i === 0) st.sizes[0] = 0;
        else {
          st.keys.splice(i, 1);
          st.starts.splice(i, 1);
          st.sizes.splice(i, 1);
        }
        continue;
      }
      const n = to - from;
      const pieces = n > 2 * this.partInputs ? Math.ceil(n / this.partInputs) : 1;
      const keys: string[] = [];
      const starts: (Place | null)[] = [];
      const sizes: number[] = [];
      for (let p = 0; p < pieces; p++) {
        const a = from + Math.floor((n * p) / pieces);
        const b = from + Math.floor((n * (p + 1)) / pieces);
        const place: Place | null = p === 0 ? start : [orders[a], entries[a][0]];
        const part = p === 0 ? st.keys[i]! : encodeKey(place as unknown as Value[]);
        const os = orders.slice(a, b);
        const vs = new Array<Value>(b - a);
        const ms = new Array<number>(b - a);
        let t = -Infinity;
        for (let j = a; j < b; j++) {
          vs[j - a] = entries[j][0];
          ms[j - a] = entries[j][1];
          if (times[j] > t) t = times[j];
        }
        const text = reader.text([os, vs, ms, times.slice(a, b)]);
        out.set(st.prefix + part, { v: text, t });
        keys.push(part);
        starts.push(place);
        sizes.push(text.length);
      }
      st.keys.splice(i, 1, ...keys);
      st.starts.splice(i, 1, ...starts);
      st.sizes.splice(i, 1, ...sizes);
    }
  }

  /** A group's size in the cache's count: the text of its header and parts. */
  private bytesOf(g: ReduceGroup): number {
    const st = g.stored;
    if (st === null) return 0;
    let bytes = st.headerBytes;
    for (const size of st.sizes) bytes += size;
    return Math.max(1, bytes);
  }

  stateSize(): number {
    let n = 0;
    for (const g of this.groups.values()) n += g.inputs.entries.length + g.outputs.length;
    return n;
  }
}
