/**
 * Consolidation: one update per value, diffs summed, zero sums dropped. The time of a consolidated
 * update is the greatest time among the updates it sums.
 */
import type { Batch, Update, Value } from './types';
import { ValueMap } from './value-map';

/**
 * Sums the diffs of deep-equal values and drops the values whose diffs cancel out. Keeps the order
 * in which values first appear; the time of each result is the greatest time of its updates.
 */
export function consolidate<T extends Value>(batch: Batch<T>): Update<T>[] {
  if (batch.length <= 1) return batch.length === 1 && batch[0][1] !== 0 ? [batch[0]] : [];
  const sums = new ValueMap<[T, number, number]>();
  const order: [T, number, number][] = [];
  for (let i = 0; i < batch.length; i++) {
    const value = batch[i][0];
    const diff = batch[i][1];
    const time = batch[i][2];
    const fresh: [T, number, number] = [value, diff, time];
    const acc = sums.addIfAbsent(value, fresh);
    if (acc === undefined) order.push(fresh);
    else {
      acc[1] += diff;
      if (time > acc[2]) acc[2] = time;
    }
  }
  const out: Update<T>[] = [];
  for (const u of order) if (u[1] !== 0) out.push(u);
  return out;
}
