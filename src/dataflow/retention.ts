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

/**
 * Whether to compact now: when the cutoff moved by an eighth of the window since the last
 * compaction (state stays within 1⅛ windows whatever the batch size), and at least every 256
 * batches (late events below the cutoff are dropped eventually even when time stands still).
 */
export function shouldCompact(cutoff: number, lastCutoff: number | null, windowMicros: number, batchCount: number): boolean {
  if (lastCutoff === null) return true;
  return cutoff - lastCutoff >= windowMicros / 8 || batchCount % 256 === 0;
}

/** Parses a window such as 365 with unit 'days' into µs; null when empty or zero (no retention). */
export function windowMicros(amount: number | null, unit: 'seconds' | 'minutes' | 'hours' | 'days'): number | null {
  if (amount === null || !Number.isFinite(amount) || amount <= 0) return null;
  const seconds = { seconds: 1, minutes: 60, hours: 3600, days: 86400 }[unit];
  return Math.round(amount * seconds * 1e6);
}
