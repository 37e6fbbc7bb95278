/**
 * Runs a user function over the values of a batch before any state is touched. Synchronous
 * results stay synchronous (no microtask per value); only when some call returns a promise is the
 * result a promise, settled once for the whole batch. Failures (a throw, a rejection, or a result
 * `check` refuses) are handed to the step context: skipped (the slot becomes SKIP) or stopping.
 */
import type { MaybePromise, Value } from './types';
import { isThenable, type StepContext } from './step-context';

/** Marks a value whose user function failed and that is left out. */
export const SKIP: unique symbol = Symbol('skip');
export type Evaluated<R> = R | typeof SKIP;

/** Returns an error message when a user function's result is unusable, else null. */
export type ResultCheck = (result: unknown) => string | null;

export function evaluateAll<R>(
  ctx: StepContext,
  operator: string,
  fn: (value: Value) => MaybePromise<R>,
  values: readonly Value[],
  check: ResultCheck | null,
): Evaluated<R>[] | Promise<Evaluated<R>[]> {
  const n = values.length;
  const out: unknown[] = new Array(n);
  let pending: number[] | null = null;
  try {
    for (let i = 0; i < n; i++) {
      let r: unknown;
      try {
        r = fn(values[i]);
      } catch (error) {
        ctx.fail(operator, values[i], error);
        out[i] = SKIP;
        continue;
      }
      if (isThenable(r)) {
        (pending ??= []).push(i);
        out[i] = r;
        continue;
      }
      if (check === null) out[i] = r;
      else out[i] = accept(ctx, operator, values[i], r, check);
    }
  } catch (stop) {
    if (pending) for (const i of pending) (out[i] as Promise<unknown>).then(undefined, ignore);
    throw stop;
  }
  if (pending === null) return out as Evaluated<R>[];
  return settle(ctx, operator, values, out, pending, check);
}

async function settle<R>(
  ctx: StepContext,
  operator: string,
  values: readonly Value[],
  out: unknown[],
  pending: number[],
  check: ResultCheck | null,
): Promise<Evaluated<R>[]> {
  const results = await Promise.allSettled(pending.map((i) => out[i] as Promise<unknown>));
  for (let j = 0; j < pending.length; j++) {
    const i = pending[j];
    const r = results[j];
    if (r.status === 'rejected') {
      ctx.fail(operator, values[i], r.reason);
      out[i] = SKIP;
    } else out[i] = accept(ctx, operator, values[i], r.value, check);
  }
  return out as Evaluated<R>[];
}

function accept(ctx: StepContext, operator: string, value: Value, r: unknown, check: ResultCheck | null): unknown {
  if (check !== null) {
    const problem = check(r);
    if (problem !== null) {
      ctx.fail(operator, value, new TypeError(problem));
      return SKIP;
    }
  }
  return r;
}

function ignore(): void {}
