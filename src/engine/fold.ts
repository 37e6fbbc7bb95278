/**
 * The incremental left fold behind `scan`. A group's fold is kept as its sorted inputs, what
 * folding each input emitted, and the fold state before every n-th input (CHECKPOINT_EVERY). A
 * change is refolded from the checkpoint before its first changed input; after its last changed
 * input the refold stops as soon as its state equals the previous fold's state before the same
 * input — from there on both folds see the same inputs from the same state, so everything they
 * emit is the same. Appending in causal order therefore costs O(appended + n), and a late event
 * usually only refolds until the state it disturbed settles again.
 *
 * A refold does not touch the fold: it returns a patch (ranges to replace), applied in place when
 * the step commits. Copying a group's arrays on every batch would cost O(group) per touched group
 * and feed the garbage collector (live, one event per batch, that was most of the work).
 */
import type { OutputPair } from './output-diff';
import { isThenable } from './step-context';
import type { MaybePromise, Value } from './types';
import { assertValue } from './value-check';
import { cloneValue } from './value-clone';
import { valueEquals } from './value-identity';

/** Default inputs between two checkpoints: memory for states vs. inputs refolded before an appended one. */
export const CHECKPOINT_EVERY = 32;

/** The user's step: the next state from the state and one input; may emit outputs. */
export type StepFn = (
  state: Value,
  value: Value,
  emit: (output: Value, multiplicity?: number) => void,
  key: Value,
) => unknown;

export interface Checkpoint {
  /** The state before input `index` was folded (a private copy). */
  readonly index: number;
  readonly state: Value;
}

/** A group's fold; changed in place by `applyPatch` only. */
export interface FoldState {
  /**
   * The inputs, consolidated and sorted by (sort key, value), as columns: value, sort key (the
   * order key, or the order-by value), multiplicity and time of each. `applyPatch` may replace a
   * column by a new array (a short one is kept at its exact length, see EXACT_UP_TO): read them
   * from the fold, do not keep them across a patch.
   */
  values: Value[];
  orders: Value[];
  mults: number[];
  times: number[];
  maxTime: number;
  /** What folding each input emitted, parallel to the inputs. */
  emitted: Emission[];
  /** Sorted by index; the first one is at index 0 and holds the initial state. */
  checkpoints: Checkpoint[];
  /**
   * The state after the last input (never handed to a step: refolds start from a copy). Inputs
   * appended after all others fold on from it instead of refolding up to `every` inputs from the
   * last checkpoint — the common case: events arrive in causal order.
   */
  tail: Value;
}

/**
 * The inputs after a change, described against the old ones: old inputs [from, to) are replaced
 * by `values` (with `mults` and `times`). Old input j ≥ to is new input j + shift.
 */
export interface InputChange {
  readonly from: number;
  readonly to: number;
  readonly values: readonly Value[];
  readonly orders: readonly Value[];
  readonly mults: readonly number[];
  readonly times: readonly number[];
  /** The new inputs' greatest time. */
  readonly maxTime: number;
}

/** What a refold changes, as ranges of the OLD fold to replace. */
export interface FoldPatch {
  readonly inputs: InputChange;
  /** Old emitted [start, rejoinedAt) are replaced by `emitted`. */
  readonly start: number;
  readonly rejoinedAt: number;
  readonly emitted: readonly Emission[];
  /** Old checkpoints [checkpointFrom, checkpointTo) are replaced by `checkpoints`; later ones move by the input shift. */
  readonly checkpointFrom: number;
  readonly checkpointTo: number;
  readonly checkpoints: readonly Checkpoint[];
  /** The new state after the last input, or null when the refold rejoined the old fold (then it is unchanged). */
  readonly tail: Value | null;
}

export interface Refold {
  readonly fold: FoldState;
  readonly change: InputChange;
  /** Keep the state before every `every`-th input. */
  readonly every: number;
  /** Fold from this (new) index, at most the change's `from`… */
  readonly start: number;
  /** …from this state (a private copy the step may change); old checkpoints before `keptCheckpoints` stay. */
  readonly state: Value;
  readonly keptCheckpoints: number;
  /** The checkpoint of the start state when it is not an old one (a re-baseline from the initial state). */
  readonly startCheckpoint: Checkpoint | null;
}

/** Runs a refold; throws (or rejects) with the step's error, or a TypeError for a bad state. */
export function refold(plan: Refold, key: Value, step: StepFn): MaybePromise<FoldPatch> {
  return new FoldRun(plan, key, step).advance();
}

/** The first index whose checkpoint is after `index` (checkpoints sorted by index). */
export function checkpointAfter(checkpoints: readonly Checkpoint[], index: number): number {
  let lo = 0;
  let hi = checkpoints.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (checkpoints[mid].index <= index) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * Flattens the emissions of inputs [from, to). With `orderOf` (the sort key of emission i), each
 * output is `[[sort key, value], multiplicity]`: compared as such, two equal values emitted at two
 * places are two records (see `unwrapOrdered`).
 */
export function emissions(
  emitted: readonly Emission[],
  from: number,
  to: number,
  orderOf: ((i: number) => Value) | null = null,
): OutputPair[] {
  const out: OutputPair[] = [];
  for (let i = from; i < to; i++) {
    const e = emitted[i] as Emission;
    if (e === null) continue;
    if (orderOf === null) {
      if (isPair(e)) out.push(e);
      else for (let k = 0; k < e.length; k++) out.push(e[k] as OutputPair);
      continue;
    }
    const order = orderOf(i);
    if (isPair(e)) out.push([[order, e[0]], e[1]]);
    else for (let k = 0; k < e.length; k++) out.push([[order, (e[k] as OutputPair)[0]], (e[k] as OutputPair)[1]]);
  }
  return out;
}

/**
 * Calls `f(i, value, multiplicity)` for every output the inputs [from, to) emitted, in order (no
 * pair or list allocated: what `emissions` gives without an order key, one call per output).
 */
export function eachEmission(
  emitted: readonly Emission[],
  from: number,
  to: number,
  f: (i: number, value: Value, multiplicity: number) => void,
): void {
  for (let i = from; i < to; i++) {
    const e = emitted[i] as Emission;
    if (e === null) continue;
    if (isPair(e)) f(i, e[0], e[1]);
    else for (let k = 0; k < e.length; k++) f(i, (e[k] as OutputPair)[0], (e[k] as OutputPair)[1]);
  }
}

/**
 * What folding one input emitted: nothing, one output pair, or a list of two or more. A single
 * pair is kept without a list around it: most inputs emit at most one output, and every event
 * of the retention window keeps its emission (less to allocate and to copy at collections).
 */
export type Emission = OutputPair | readonly OutputPair[] | null;

/** A pair has its multiplicity (a number) second; a list has a pair there. */
function isPair(e: OutputPair | readonly OutputPair[]): e is OutputPair {
  return typeof e[1] === 'number';
}

/** New input i's entry in one column of the inputs after `change` (`old`: the column before it; `changed`: the change's). */
export function inputAfter<T>(change: InputChange, i: number, old: readonly T[], changed: readonly T[]): T {
  if (i < change.from) return old[i] as T;
  const end = change.from + changed.length;
  if (i < end) return changed[i - change.from] as T;
  return old[i - (changed.length - (change.to - change.from))] as T;
}

/**
 * A fold with no inputs, from its first checkpoint (`{index: 0, state: initial}`: checkpoints are
 * never changed, so one object can serve every group of an operator).
 */
export function emptyFold(first: Checkpoint): FoldState {
  return {
    values: NONE,
    orders: NONE,
    mults: NONE,
    times: NONE,
    maxTime: -Infinity,
    emitted: NONE,
    checkpoints: [first],
    tail: first.state,
  };
}

/**
 * The empty columns of every new fold: `replaceRange` never writes into an empty column (it
 * returns a new one), so one frozen array serves them all.
 */
const NONE = Object.freeze([]) as unknown as never[];

/** A copy whose arrays can be patched without touching `fold`. */
export function copyFold(fold: FoldState): FoldState {
  return {
    values: fold.values.slice(),
    orders: fold.orders.slice(),
    mults: fold.mults.slice(),
    times: fold.times.slice(),
    maxTime: fold.maxTime,
    emitted: fold.emitted.slice(),
    checkpoints: fold.checkpoints.slice(),
    tail: fold.tail,
  };
}

/** Applies a refold's patch to the fold it was computed from, in place. */
export function applyPatch(fold: FoldState, patch: FoldPatch): void {
  const { inputs } = patch;
  const shift = inputs.values.length - (inputs.to - inputs.from);
  fold.values = replaceRange(fold.values, inputs.from, inputs.to, inputs.values);
  fold.orders = replaceRange(fold.orders, inputs.from, inputs.to, inputs.orders);
  fold.mults = replaceRange(fold.mults, inputs.from, inputs.to, inputs.mults);
  fold.times = replaceRange(fold.times, inputs.from, inputs.to, inputs.times);
  fold.maxTime = inputs.maxTime;
  fold.emitted = replaceRange(fold.emitted, patch.start, patch.rejoinedAt, patch.emitted);
  const after = patch.checkpointFrom + patch.checkpoints.length;
  const cps = (fold.checkpoints = replaceRange(
    fold.checkpoints,
    patch.checkpointFrom,
    patch.checkpointTo,
    patch.checkpoints,
  ));
  if (shift !== 0)
    for (let c = after; c < cps.length; c++) cps[c] = { index: cps[c].index + shift, state: cps[c].state };
  if (patch.tail !== null) fold.tail = patch.tail;
}

/**
 * Columns that change length while at most this long are rebuilt at their exact length instead of
 * grown in place: V8 grows an array by half its length plus 16 slots, so a group's first input
 * pushed into six empty columns would keep about 700 bytes of empty slots for as long as the group
 * lives (with many keys most groups stay that small, and every one survives the young generation).
 */
const EXACT_UP_TO = 8;

/**
 * `arr` with `arr[from, to)` replaced by `items`: in place, moving the tail once (no spread: items
 * may be many), or as a new array of exactly the new length when that is at most EXACT_UP_TO.
 */
function replaceRange<T>(arr: T[], from: number, to: number, items: readonly T[]): T[] {
  const delta = items.length - (to - from);
  // NB: empty columns may be shared (emptyFold): never written into.
  if (arr.length === 0) return items.length === 0 ? arr : items.slice();
  if (delta !== 0 && arr.length + delta <= EXACT_UP_TO) {
    // slice and concat allocate their result at its length (packed, like the pushed columns)
    if (from === arr.length) return arr.concat(items);
    return arr.slice(0, from).concat(items, arr.slice(to));
  }
  if (from === arr.length) {
    for (let k = 0; k < items.length; k++) arr.push(items[k]); // appending (the common case)
    return arr;
  }
  if (delta > 0) {
    const oldLength = arr.length;
    for (let k = 0; k < delta; k++) arr.push(items[0]); // grow without holes
    for (let k = oldLength - 1; k >= to; k--) arr[k + delta] = arr[k];
  } else if (delta < 0 && from + items.length < arr.length - to) {
    // Less before the range than after it (a compaction drops the oldest inputs): take the
    // entries off the front, which V8 does by moving the array's start, not its elements.
    const head = from > 0 ? arr.slice(0, from) : null;
    arr.splice(0, -delta);
    if (head !== null) for (let k = 0; k < from; k++) arr[k] = head[k] as T;
  } else if (delta < 0) {
    for (let k = to; k < arr.length; k++) arr[k + delta] = arr[k];
    arr.length += delta;
  }
  for (let k = 0; k < items.length; k++) arr[from + k] = items[k];
  return arr;
}

/** One refold, resumable after an asynchronous step. */
class FoldRun {
  private readonly old: FoldState;
  private readonly change: InputChange;
  /** New input count, and the shift of old inputs after the change. */
  private readonly length: number;
  private readonly shift: number;
  private readonly changeEnd: number;
  private i: number;
  /** How often the current input has been folded (an input with multiplicity n is folded n times). */
  private m = 0;
  private state: Value;
  private readonly emitted: Emission[] = [];
  private readonly checkpoints: Checkpoint[] = [];
  private lastCheckpoint: number;
  /** The next old checkpoint that could be rejoined. */
  private oldCheckpoint: number;
  private current: OutputPair | OutputPair[] | null = null;
  /** Emitted values are copied: a later step may change an object it emitted (part of its state). */
  private readonly emit = (output: Value, multiplicity = 1): void => {
    if (!Number.isInteger(multiplicity))
      throw new TypeError(`emit: the multiplicity must be an integer, got ${String(multiplicity)}`);
    if (multiplicity === 0) return;
    const pair: OutputPair = [cloneValue(output, 'an emitted output'), multiplicity];
    if (this.current === null) this.current = pair;
    else if (isPair(this.current)) this.current = [this.current, pair];
    else this.current.push(pair);
  };

  constructor(
    private readonly plan: Refold,
    private readonly key: Value,
    private readonly step: StepFn,
  ) {
    this.old = plan.fold;
    this.change = plan.change;
    this.shift = plan.change.values.length - (plan.change.to - plan.change.from);
    this.length = plan.fold.values.length + this.shift;
    this.changeEnd = plan.change.from + plan.change.values.length;
    this.i = plan.start;
    this.state = plan.state;
    if (plan.startCheckpoint !== null) this.checkpoints.push(plan.startCheckpoint);
    this.lastCheckpoint = plan.startCheckpoint?.index ?? plan.fold.checkpoints[plan.keptCheckpoints - 1].index;
    this.oldCheckpoint = checkpointAfter(plan.fold.checkpoints, plan.change.to - 1);
  }

  /** New input i's entry in one column (values or multiplicities): before the change, in it, or after it. */
  private input<T>(i: number, old: readonly T[], changed: readonly T[]): T {
    if (i < this.change.from) return old[i] as T;
    if (i < this.changeEnd) return changed[i - this.change.from] as T;
    return old[i - this.shift] as T;
  }

  advance(): MaybePromise<FoldPatch> {
    for (;;) {
      if (this.m === 0) {
        if (this.i === this.length) return this.finish(null);
        const rejoin = this.rejoinable();
        if (rejoin !== null) return this.finish(rejoin);
        if (this.i - this.lastCheckpoint >= this.plan.every) {
          this.checkpoints.push({ index: this.i, state: cloneValue(this.state, 'the scan state') });
          this.lastCheckpoint = this.i;
        }
        this.current = null;
      }
      if (this.m < this.input(this.i, this.old.mults, this.change.mults)) {
        this.m++;
        const next = this.step(
          this.state,
          this.input(this.i, this.old.values, this.change.values),
          this.emit,
          this.key,
        );
        if (isThenable(next)) {
          return Promise.resolve(next).then((s) => {
            this.state = checkedState(s);
            return this.advance();
          });
        }
        this.state = checkedState(next);
        continue;
      }
      this.emitted.push(this.current);
      this.i++;
      this.m = 0;
    }
  }

  /** The index of the old checkpoint this refold rejoins before input i, or null. */
  private rejoinable(): number | null {
    if (this.i < this.changeEnd) return null;
    const old = this.i - this.shift;
    const cps = this.old.checkpoints;
    while (this.oldCheckpoint < cps.length && cps[this.oldCheckpoint].index < old) this.oldCheckpoint++;
    const cp = cps[this.oldCheckpoint];
    if (cp === undefined || cp.index !== old || !valueEquals(cp.state, this.state)) return null;
    return this.oldCheckpoint;
  }

  private finish(rejoin: number | null): FoldPatch {
    const { plan, old } = this;
    const rejoinedAt = rejoin === null ? old.values.length : old.checkpoints[rejoin].index;
    return {
      inputs: this.change,
      start: plan.start,
      rejoinedAt,
      emitted: this.emitted,
      checkpointFrom: plan.keptCheckpoints,
      checkpointTo: rejoin ?? old.checkpoints.length,
      checkpoints: this.checkpoints,
      // Folded to the end: the running state is this run's own (checkpoints hold copies of it).
      tail: rejoin === null ? this.state : null,
    };
  }
}

/**
 * Every state is checked, not only the copied ones: where checkpoints fall depends on how the
 * events were batched, and a failure must hit the same input on every replay.
 */
function checkedState(s: unknown): Value {
  if (s === undefined)
    throw new TypeError('the scan step returned undefined: it must return the next state (return state;)');
  assertValue(s, 'the scan state');
  return s;
}
