/**
 * Per-step bookkeeping shared by all operators: the caller's error policy and the inputs skipped
 * because a user function failed.
 */
import { OperatorError, type SkippedInput, type Value } from './types';

export class StepContext {
  readonly skipped: SkippedInput[] = [];
  constructor(readonly onError: 'skip' | 'stop') {}

  /**
   * A user function failed on `value`: throws OperatorError under 'stop', records the skip under
   * 'skip' (the caller then leaves that input out).
   */
  fail(operator: string, value: Value, error: unknown, input?: Value): void {
    if (this.onError === 'stop') throw new OperatorError(operator, value, error);
    this.skipped.push(input === undefined ? { operator, value, error } : { operator, value, error, input });
  }
}

export function isThenable(x: unknown): x is PromiseLike<unknown> {
  return x !== null && typeof x === 'object' && typeof (x as { then?: unknown }).then === 'function';
}
