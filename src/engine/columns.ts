/**
 * How updates travel between operators inside a step: column arrays instead of one tuple per
 * update (fewer allocations on the hot path). `keys` is set on grouped streams.
 */
import { RetractionError, type Value } from './types';

export interface Columns {
  readonly values: Value[];
  readonly diffs: number[];
  readonly times: number[];
  /** Group key of each update, for grouped streams; null for ungrouped ones. */
  readonly keys: Value[] | null;
}

export function emptyColumns(grouped: boolean): Columns {
  return { values: [], diffs: [], times: [], keys: grouped ? [] : null };
}

/** Appends one update to a grouped stream. */
export function pushGrouped(out: Columns, key: Value, value: Value, diff: number, time: number): void {
  out.keys!.push(key);
  out.values.push(value);
  out.diffs.push(diff);
  out.times.push(time);
}

/** For operators planned as insert-only: a retraction is an error, never a silent wrong answer. */
export function rejectRetractions(operator: string, batch: Columns): void {
  for (let i = 0; i < batch.diffs.length; i++)
    if (batch.diffs[i] < 0) throw new RetractionError(operator, batch.values[i]);
}
