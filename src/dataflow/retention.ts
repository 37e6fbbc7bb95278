/**
 * Retention (window W µs): the watermark is the greatest event timestamp processed — a property of
 * the data, not of the wall clock — and events at or below the cutoff (watermark − W, rounded down
 * to a step of W/8) are forgotten: not replayed at start, left out when they arrive late, and
 * compacted out of operator state while running. Rows already derived from them stay.
 *
 * The clock bound: an event whose timestamp is more than `clockAheadMicros` ahead of the wall clock
 * when it is first processed (a device whose clock is wrong) is processed as data but does not move
 * the watermark. The decision is made once, when the event is first processed, and remembered in
 * the watermark stored with the tables: events a restart reads again (those at or below the stored
 * offsets) never move the watermark past the stored one, so a restart at a later wall clock time
 * decides nothing anew and writes the same rows.
 */

/** Default of DataflowSettings.clockAheadMicros: 10 minutes. */
export const DEFAULT_CLOCK_AHEAD_MICROS = 10 * 60 * 1e6;

/** The greatest timestamp (µs) that may move the watermark at wall clock time `nowMs`. */
export function clockBound(nowMs: number, clockAheadMicros: number): number {
  return Math.floor(nowMs * 1000) + clockAheadMicros;
}

/**
 * Cutoffs move in steps of an eighth of the window (state stays within 1⅛ windows) and are a
 * function of the watermark alone, rounded down to a multiple of the step: the run and a restart,
 * which replays the events after the cutoff of the stored watermark, hold the same events.
 */
export function cutoffStep(windowMicros: number): number {
  return Math.max(1, Math.floor(windowMicros / 8));
}

/** A timestamp (µs) as ISO text with its number (a clock years off may be past what Date can show). */
export function timeText(micros: number): string {
  const d = new Date(Math.floor(micros / 1000));
  return Number.isNaN(d.getTime()) ? `${micros} µs` : `${d.toISOString()} (${micros} µs)`;
}

/** A duration in µs as hours, minutes or seconds. */
export function durationText(micros: number): string {
  const s = micros / 1e6;
  if (s >= 3600 && s % 3600 === 0) return `${s / 3600} h`;
  if (s >= 60 && s % 60 === 0) return `${s / 60} min`;
  return `${s} s`;
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
 * `bound`: events with a greater timestamp do not move the watermark (see clockBound; Infinity = no bound).
 */
export function retentionSegments(
  events: readonly { readonly timestamp: number }[],
  watermark: number | null,
  cutoff: number | null,
  windowMicros: number | null,
  bound = Infinity,
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
    if (t > bound) continue; // ahead of the clock: processed, but it moves no watermark
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
