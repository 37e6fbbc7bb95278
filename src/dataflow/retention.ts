/**
 * Retention (window W µs): the watermark is the greatest event timestamp processed — a property of
 * the data, not of the wall clock — and events at or below the cutoff (watermark − W, rounded down
 * to a step of W/8) are forgotten: not replayed at start, left out when they arrive late, and
 * compacted out of operator state while running. Rows already derived from them stay.
 */

/**
 * Cutoffs move in steps of an eighth of the window (state stays within 1⅛ windows) and are a
 * function of the watermark alone, rounded down to a multiple of the step: the run and a restart,
 * which replays the events after the cutoff of the stored watermark, hold the same events.
 */
export function cutoffStep(windowMicros: number): number {
  return Math.max(1, Math.floor(windowMicros / 8));
}

/** Events with timestamp ≤ cutoff are outside the window; null = keep everything. */
export function retentionCutoff(watermark: number | null, windowMicros: number | null): number | null {
  if (windowMicros === null || watermark === null) return null;
  const step = cutoffStep(windowMicros);
  return Math.floor((watermark - windowMicros) / step) * step;
}

/** Events [from, to) of a batch, computed in one step after compacting the state to `compactTo` (null: no compaction). */
export interface RetentionSegment {
  readonly from: number;
  readonly to: number;
  readonly compactTo: number | null;
}

/**
 * Splits a batch where its events move the cutoff: each segment starts with the event that moved
 * it, after the state was compacted to the new cutoff. Every event is thus combined with exactly
 * the events after the cutoff of the watermark it arrived at — as if the events came one per
 * batch — so how the events were batched (which a restart changes) never changes the results.
 * `watermark` and `cutoff` are the dataflow's before the batch. One segment when the cutoff stays.
 */
export function retentionSegments(
  events: readonly { readonly timestamp: number }[],
  watermark: number | null,
  cutoff: number | null,
  windowMicros: number | null,
): RetentionSegment[] {
  if (windowMicros === null) return [{ from: 0, to: events.length, compactTo: null }];
  const segments: RetentionSegment[] = [];
  let from = 0;
  let compactTo: number | null = null;
  let w = watermark;
  let c = cutoff;
  for (let i = 0; i < events.length; i++) {
    const t = (events[i] as { readonly timestamp: number }).timestamp;
    if (w !== null && t <= w) continue; // the cutoff only moves with the watermark
    w = t;
    const next = retentionCutoff(w, windowMicros) as number;
    if (c !== null && next <= c) continue;
    if (i > from) segments.push({ from, to: i, compactTo });
    from = i;
    compactTo = next;
    c = next;
  }
  segments.push({ from, to: events.length, compactTo });
  return segments;
}

/** Parses a window such as 365 with unit 'days' into µs; null when empty or zero (no retention). */
export function windowMicros(amount: number | null, unit: 'seconds' | 'minutes' | 'hours' | 'days'): number | null {
  if (amount === null || !Number.isFinite(amount) || amount <= 0) return null;
  const seconds = { seconds: 1, minutes: 60, hours: 3600, days: 86400 }[unit];
  return Math.round(amount * seconds * 1e6);
}
