/**
 * The incremental left fold behind `scan`. A group's fold is kept as its sorted inputs, what
 * folding each input emitted, and the fold state before every n-th input (CHECKPOINT_EVERY). A change
 * is refolded from the checkpoint before its first changed input; after its last changed input the
 * refold stops as soon as its state equals the previous fold's state before the same input — from
 * there on both folds see the same inputs from the same state, so everything they emit is the same.
 * Appending in causal order therefore costs O(appended + CHECKPOINT_EVERY), and a late event
 * usually only refolds until the state it disturbed settles again.
 */
import type { OutputPair } from './output-diff';
import type { Entry, SortedInputs } from './sorted-inputs';
import { isThenable } from './step-context';
import type { MaybePromise, Value } from './types';
import { assertValue } from './value-check';
import { cloneValue } from './value-clone';
import { valueEquals } from './value-identity';

/** Default inputs between two checkpoints: memory for states vs. inputs refolded before an appended one. */
export const CHECKPOINT_EVERY = 32;

/** The user's step: the next state from the state and one input; may emit outputs. */
export type StepFn = (state: Value, value: Value, emit: (output: Value, multiplicity?: number) => void, key: Value) => unknown;

export interface Checkpoint {
  /** The state before `entries[index]` was folded (a private copy). */
  readonly index: number;
  readonly state: Value;
}

export interface FoldState {
  readonly inputs: SortedInputs;
  /** What folding each input emitted (null: nothing), parallel to `inputs.entries`. */
  readonly emitted: readonly (readonly OutputPair[] | null)[];
  /** Sorted by index; the first one is at index 0 and holds the initial state. */
  readonly checkpoints: readonly Checkpoint[];
}

export interface Refold {
  readonly inputs: SortedInputs;
  /** Keep the state before every `every`-th input. */
  readonly every: number;
  /** Fold `inputs.entries` from this index… */
  readonly start: number;
  /** …starting from this state (a private copy the step may change), */
  readonly state: Value;
  /** …keeping these checkpoints (indices ≤ start) and these emissions of the inputs before `start`. */
  readonly checkpoints: readonly Checkpoint[];
  readonly emittedBefore: readonly (readonly OutputPair[] | null)[];
  /**
   * The previous fold to rejoin: from new index `rejoinFrom` on, new input i is old input
   * i − shift. Null: fold to the end.
   */
  readonly previous: { readonly fold: FoldState; readonly shift: number; readonly rejoinFrom: number } | null;
}

export interface RefoldResult {
  readonly fold: FoldState;
  /** What the inputs from `start` on emitted now, up to the rejoin point (flattened). */
  readonly emittedNow: OutputPair[];
  /** Where the previous fold was rejoined (an old index), or the previous input count. */
  readonly rejoinedAt: number;
}

/** Runs a refold; throws (or rejects) with the step's error, or a TypeError for a bad state. */
export function refold(plan: Refold, key: Value, step: StepFn): MaybePromise<RefoldResult> {
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

/** Flattens the emissions of inputs [from, to). */
export function emissions(emitted: readonly (readonly OutputPair[] | null)[], from: number, to: number): OutputPair[] {
  const out: OutputPair[] = [];
  for (let i = from; i < to; i++) {
    const e = emitted[i];
    if (e !== null) for (const pair of e) out.push(pair);
  }
  return out;
}

/** One refold, resumable after an asynchronous step. */
class FoldRun {
  private readonly entries: readonly Entry[];
  private i: number;
  /** How often the current input has been folded (an input with multiplicity n is folded n times). */
  private m = 0;
  private state: Value;
  private readonly emitted: (readonly OutputPair[] | null)[] = [];
  private readonly checkpoints: Checkpoint[];
  private lastCheckpoint: number;
  /** The next previous checkpoint that could be rejoined. */
  private oldCheckpoint: number;
  private current: [Value, number][] | null = null;
  /** Emitted values are copied: a later step may change an object it emitted (part of its state). */
  private readonly emit = (output: Value, multiplicity = 1): void => {
    if (!Number.isInteger(multiplicity)) throw new TypeError(`emit: the multiplicity must be an integer, got ${String(multiplicity)}`);
    if (multiplicity === 0) return;
    (this.current ??= []).push([cloneValue(output, 'an emitted output'), multiplicity]);
  };

  constructor(
    private readonly plan: Refold,
    private readonly key: Value,
    private readonly step: StepFn,
  ) {
    this.entries = plan.inputs.entries;
    this.i = plan.start;
    this.state = plan.state;
    this.checkpoints = plan.checkpoints.slice();
    this.lastCheckpoint = this.checkpoints[this.checkpoints.length - 1].index;
    this.oldCheckpoint = plan.previous ? checkpointAfter(plan.previous.fold.checkpoints, plan.previous.rejoinFrom - plan.previous.shift - 1) : 0;
  }

  advance(): MaybePromise<RefoldResult> {
    for (;;) {
      if (this.m === 0) {
        if (this.i === this.entries.length) return this.finish(null);
        const rejoin = this.rejoinable();
        if (rejoin !== null) return this.finish(rejoin);
        if (this.i - this.lastCheckpoint >= this.plan.every) {
          this.checkpoints.push({ index: this.i, state: cloneValue(this.state, 'the scan state') });
          this.lastCheckpoint = this.i;
        }
        this.current = null;
      }
      const [value, multiplicity] = this.entries[this.i];
      if (this.m < multiplicity) {
        this.m++;
        const next = this.step(this.state, value, this.emit, this.key);
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

  /** The index of the previous checkpoint this refold rejoins before input i, or null. */
  private rejoinable(): number | null {
    const prev = this.plan.previous;
    if (prev === null || this.i < prev.rejoinFrom) return null;
    const old = this.i - prev.shift;
    const cps = prev.fold.checkpoints;
    while (this.oldCheckpoint < cps.length && cps[this.oldCheckpoint].index < old) this.oldCheckpoint++;
    const cp = cps[this.oldCheckpoint];
    if (cp === undefined || cp.index !== old || !valueEquals(cp.state, this.state)) return null;
    return this.oldCheckpoint;
  }

  private finish(rejoin: number | null): RefoldResult {
    const { plan } = this;
    const emittedNow = emissions(this.emitted, 0, this.emitted.length);
    const emitted = plan.emittedBefore.slice(0, plan.start);
    for (const e of this.emitted) emitted.push(e);
    const checkpoints = this.checkpoints;
    let rejoinedAt = plan.previous ? plan.previous.fold.inputs.entries.length : 0;
    if (rejoin !== null && plan.previous) {
      const { fold, shift } = plan.previous;
      rejoinedAt = fold.checkpoints[rejoin].index;
      for (let i = rejoinedAt; i < fold.emitted.length; i++) emitted.push(fold.emitted[i]);
      for (let c = rejoin; c < fold.checkpoints.length; c++) {
        const cp = fold.checkpoints[c];
        checkpoints.push(shift === 0 ? cp : { index: cp.index + shift, state: cp.state });
      }
    }
    return { fold: { inputs: plan.inputs, emitted, checkpoints }, emittedNow, rejoinedAt };
  }
}

/**
 * Every state is checked, not only the copied ones: where checkpoints fall depends on how the
 * events were batched, and a failure must hit the same input on every replay.
 */
function checkedState(s: unknown): Value {
  if (s === undefined) throw new TypeError('the scan step returned undefined: it must return the next state (return state;)');
  assertValue(s, 'the scan state');
  return s;
}
