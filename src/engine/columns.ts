/**
 * How updates travel between operators inside a step: column arrays instead of one tuple per
 * update (fewer allocations on the hot path). `keys` is set on grouped streams.
 *
 * `orders` holds each update's order key (see "Order keys" in types.ts): the causal position of
 * the record, carried from the input where it was computed. It is null when nobody downstream
 * needs order keys (the graph decides once, before the first step: `Operator.planOrder`) or when
 * the stream has none; null stands for "every order key is null".
 */
import { RetractionError, type Value } from './types';

export interface Columns {
  readonly values: Value[];
  readonly diffs: number[];
  readonly times: number[];
  /** Group key of each update, for grouped streams; null for ungrouped ones. */
  readonly keys: Value[] | null;
  /** Order key of each update, or null: all order keys are null (not tracked, or none). */
  readonly orders: Value[] | null;
  /**
   * True when no value appears twice and no diff is zero (the graph then returns the batch as an
   * output without consolidating it). Only set where an operator guarantees it.
   */
  readonly consolidated?: boolean;
}

/** Empty columns to push into; `ordered`: with an order key column. */
export function emptyColumns(grouped: boolean, ordered = false): Columns {
  return { values: [], diffs: [], times: [], keys: grouped ? [] : null, orders: ordered ? [] : null };
}

/** Appends one update to a grouped stream (`order` is ignored when the stream has no order keys). */
export function pushGrouped(out: Columns, key: Value, value: Value, diff: number, time: number, order?: Value): void {
  out.keys!.push(key);
  out.values.push(value);
  out.diffs.push(diff);
  out.times.push(time);
  if (out.orders !== null) out.orders.push(order ?? null);
}

/** Appends update `i` of `from` to `out` (same kind of stream: grouped or not, ordered or not). */
export function pushFrom(out: Columns, from: Columns, i: number): void {
  if (out.keys !== null) out.keys.push(from.keys![i]);
  out.values.push(from.values[i]);
  out.diffs.push(from.diffs[i]);
  out.times.push(from.times[i]);
  if (out.orders !== null) out.orders.push(from.orders === null ? null : from.orders[i]);
}

/** The columns as an ungrouped stream (the same arrays). */
export function ungrouped(c: Columns): Columns {
  return {
    values: c.values,
    diffs: c.diffs,
    times: c.times,
    keys: null,
    orders: c.orders,
    consolidated: c.consolidated,
  };
}

/** For operators planned as insert-only: a retraction is an error, never a silent wrong answer. */
export function rejectRetractions(operator: string, batch: Columns): void {
  for (let i = 0; i < batch.diffs.length; i++)
    if (batch.diffs[i] < 0) throw new RetractionError(operator, batch.values[i]);
}
