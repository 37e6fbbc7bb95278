/**
 * The internal interface every operator implements. The graph calls `run` once per step with the
 * outputs of the operator's inputs (null for an input that produced nothing). Operators never
 * mutate the column arrays they receive or have returned, so streams can share arrays.
 */
import type { Columns } from './columns';
import { isThenable, type StepContext } from './step-context';
import type { MaybePromise } from './types';

export interface Operator {
  /** For error messages: the user's name, or a generated `kind#n`. */
  readonly name: string;
  /** Indices (in the graph) of the operators feeding this one. */
  readonly inputs: readonly number[];
  run(inputs: readonly (Columns | null)[], ctx: StepContext): MaybePromise<Columns | null>;
  /** Forgets retained inputs older than `cutoff` and silently re-baselines outputs. */
  compact(cutoff: number): void;
  /** Retained state entries. */
  stateSize(): number;
}

/** Chains `f` after `x`, synchronously unless `x` is a promise. */
export function then<A, B>(x: MaybePromise<A>, f: (a: A) => MaybePromise<B>): MaybePromise<B> {
  return isThenable(x) ? Promise.resolve(x).then(f) : f(x as A);
}

/** The base for operators without state. */
export abstract class StatelessOperator implements Operator {
  constructor(
    readonly name: string,
    readonly inputs: readonly number[],
  ) {}
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
  abstract run(inputs: readonly (Columns | null)[], ctx: StepContext): MaybePromise<Columns | null>;
  abstract compact(cutoff: number): void;
  abstract stateSize(): number;
}
