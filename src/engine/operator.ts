/**
 * The internal interface every operator implements. The graph calls `run` once per step with the
 * outputs of the operator's inputs (null for an input that produced nothing). Operators never
 * mutate the column arrays they receive or have returned, so streams can share arrays.
 */
import type { Columns } from './columns';
import { isThenable, type StepContext } from './step-context';
import type { MaybePromise, StateEntry, Value } from './types';

export interface Operator {
  /** For error messages: the user's name, or a generated `kind#n`. */
  readonly name: string;
  /** Indices (in the graph) of the operators feeding this one. */
  readonly inputs: readonly number[];
  /**
   * Called once before the first step, consumers before their inputs: `outputOrdered` says
   * whether an operator downstream reads this operator's order keys. Returns whether this
   * operator reads its inputs' order keys. An operator that returns false must not read them
   * (they may be null), and one told false may emit null order keys: whether order keys are
   * tracked is fixed for the graph's life, so an operator's state never mixes the two.
   */
  planOrder(outputOrdered: boolean): boolean;
  run(inputs: readonly (Columns | null)[], ctx: StepContext): MaybePromise<Columns | null>;
  /** Forgets retained inputs older than `cutoff` and silently re-baselines outputs. */
  compact(cutoff: number): void;
  /** Retained state entries. */
  stateSize(): number;
  /** How the operator's state is stored per entry, for a state store (stateless operators: absent). */
  readonly durable?: DurableState;
}

/**
 * A stateful operator's state as entries (docs/durable-state.md, "What each operator stores"): a
 * unit is what one entry holds (a group, or a group's value, or a key's side of a join), named by
 * its encoded key. The graph loads the units a step touches before `run`, and saves them after it.
 */
export interface DurableState {
  /** Whether entries carry times (retention deletes them), false for totals that forget nothing. */
  readonly timed: boolean;
  /**
   * Adds every unit the step's inputs touch (`run` reads or changes no other unit) to `into`, by
   * encoded key.
   */
  touched(inputs: readonly (Columns | null)[], into: Map<string, Value>): void;
  /**
   * Puts a stored entry (what `save` returned as `data`, through JSON) in memory — the unit is not
   * in memory — and compacts it to `cutoff` when not null (what `compact` did to the units in
   * memory since the entry was saved).
   */
  load(unit: Value, data: unknown, cutoff: number | null): void;
  /** The unit's state as JSON-able data with its time (null: never forgotten), or null when it holds nothing. */
  save(unit: Value): { readonly data: unknown; readonly t: number | null } | null;
  /** Drops the unit from memory (it is stored, and not changed since). */
  evict(unit: Value): void;
  /**
   * Set for an operator whose units are stored as several entries (a group's header and pages,
   * docs/durable-state.md, "Pages"): the cache does not read its units before `run` (`load` is not
   * called); the operator reads the entries it needs through the reader, during `run`, and `save`
   * is replaced by `paged.save`.
   */
  readonly paged?: PagedState;
}

/** The cache's side of a paged operator's entries (`StateCache` implements it per operator). */
/**
 * The `load` and `save` of a paged `DurableState` (`paged` set): the cache never calls them, since
 * the operator reads its entries through the reader and saves through `paged.save`.
 */
export function pagedOnly(name: string): Pick<DurableState, 'load' | 'save'> {
  return {
    load: () => {
      throw new Error(`${name}: a paged state is read by the operator`);
    },
    save: () => {
      throw new Error(`${name}: a paged state is saved by paged.save`);
    },
  };
}

export interface PageReader {
  /**
   * Whether the store may hold entries of the unit that are not in memory: false while the
   * operator is known to have stored nothing, and for a unit the cache holds (in memory, or
   * deleted or dropped by compaction in a commit not durable yet: its stored entries are stale).
   */
  mayLoad(unit: string): boolean;
  get(keys: readonly string[]): MaybePromise<readonly (string | undefined)[]>;
  seek(from: string, to: string, last: boolean): MaybePromise<readonly [string, string] | undefined>;
  range(from: string, to: string): MaybePromise<readonly (readonly [string, string])[]>;
  /** A stored entry's data, and the cutoff to compact it to (null: none), as for `load`. */
  open(key: string, text: string): { readonly data: unknown; readonly compactTo: number | null };
  /** The stored text of an entry's data (as the cache writes entries: with the graph's cutoff). */
  text(data: unknown): string;
}

export interface PagedState {
  /** Called once by the cache, before the first step. */
  attach(reader: PageReader): void;
  /**
   * The unit's entries changed by the step (key: the full entry key; null: delete), and the size
   * (text length) of what the unit holds in memory afterwards (0: it holds nothing any more);
   * null when the unit is not in memory and the step did not change it (its updates cancelled out).
   */
  save(unit: Value): { readonly entries: ReadonlyMap<string, StateEntry | null>; readonly bytes: number } | null;
  /** The unit is clean (its entries committed): drop what a next step is unlikely to need; returns its size in memory. */
  trim(unit: Value): number;
  /**
   * Reads the unit (not in memory, `mayLoad` true) as a step's first touch would, trimmed, and
   * returns its size in memory (0: nothing stored, nothing kept). Between steps only (`Graph.warm`).
   */
  warm(unit: Value): MaybePromise<number>;
}

/** Chains `f` after `x`, synchronously unless `x` is a promise. */
export function then<A, B>(x: MaybePromise<A>, f: (a: A) => MaybePromise<B>): MaybePromise<B> {
  return isThenable(x) ? Promise.resolve(x).then(f) : f(x as A);
}

/** The base for operators without state: their outputs carry their inputs' order keys. */
export abstract class StatelessOperator implements Operator {
  constructor(
    readonly name: string,
    readonly inputs: readonly number[],
  ) {}
  planOrder(outputOrdered: boolean): boolean {
    return outputOrdered;
  }
  abstract run(inputs: readonly (Columns | null)[], ctx: StepContext): MaybePromise<Columns | null>;
  compact(): void {}
  stateSize(): number {
    return 0;
  }
}

/** The base for stateful operators with one input. */
export abstract class UnaryOperator implements Operator {
  readonly inputs: readonly number[];
  constructor(
    readonly name: string,
    input: number,
  ) {
    this.inputs = [input];
  }
  abstract planOrder(outputOrdered: boolean): boolean;
  abstract run(inputs: readonly (Columns | null)[], ctx: StepContext): MaybePromise<Columns | null>;
  abstract compact(cutoff: number): void;
  abstract stateSize(): number;
}
