/**
 * Retention (window W µs): the watermark is the greatest event timestamp processed — a property of
 * the data, not of the wall clock — and events older than watermark − W are forgotten: not replayed
 * at start and compacted out of operator state while running. Rows already derived from them stay.
 */

/** Events with timestamp ≤ cutoff are outside the window; null = keep everything. */
export function retentionCutoff(watermark: number | null, windowMicros: number | null): number | null {
  if (windowMicros === null || watermark === null) return null;
  return watermark - windowMicros;
}

/** How often (in batches) the running dataflow compacts operator state. */
export const COMPACT_EVERY_BATCHES = 16;

/** Parses a window such as 365 with unit 'days' into µs; null when empty or zero (no retention). */
export function windowMicros(amount: number | null, unit: 'seconds' | 'minutes' | 'hours' | 'days'): number | null {
  if (amount === null || !Number.isFinite(amount) || amount <= 0) return null;
  const seconds = { seconds: 1, minutes: 60, hours: 3600, days: 86400 }[unit];
  return Math.round(amount * seconds * 1e6);
}
