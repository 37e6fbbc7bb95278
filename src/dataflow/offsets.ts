/**
 * Offset maps (`{stream: highest offset processed}`) as the coordinator uses them: a sink's
 * offsets say which events its table reflects, so comparing and advancing them is what makes
 * restart exact. A missing stream means "nothing of it yet" (Actyx offsets start at 0). Any name
 * is a stream, `toString` and `__proto__` included: see offset-map.ts for how maps are read.
 */
import { offsetOf, offsetTable, setOffset, toOffsetMap, type OffsetTable } from '../sources/offset-map';
import type { ActyxEvent, OffsetMap } from '../sources/types';

/** True when `a` covers every event `b` covers (per stream a ≥ b). */
export function covers(a: OffsetMap, b: OffsetMap): boolean {
  for (const stream of Object.keys(b)) {
    const ob = b[stream];
    if (ob === undefined) continue;
    const oa = offsetOf(a, stream);
    if (oa === undefined || oa < ob) return false;
  }
  return true;
}

export function offsetsEqual(a: OffsetMap, b: OffsetMap): boolean {
  return covers(a, b) && covers(b, a);
}

/** Per-stream maximum of two offset maps. */
export function mergeOffsets(a: OffsetMap, b: OffsetMap): OffsetMap {
  const out: Record<string, number> = { ...a };
  for (const stream of Object.keys(b)) {
    const o = b[stream];
    if (o === undefined) continue;
    const cur = offsetOf(out, stream);
    if (cur === undefined || cur < o) setOffset(out, stream, o);
  }
  return out;
}

/** Number of events `upper` covers that `lower` does not (offsets count every event of a stream). */
export function eventsBetween(lower: OffsetMap, upper: OffsetMap): number {
  let n = 0;
  for (const stream of Object.keys(upper)) {
    const u = upper[stream];
    if (u === undefined) continue;
    const l = offsetOf(lower, stream) ?? -1;
    if (u > l) n += u - l;
  }
  return n;
}

/** Sum of (offset + 1) over streams: a total order consistent with `covers`, for sorting. */
export function offsetsWeight(a: OffsetMap): number {
  return eventsBetween({}, a);
}

/** Mutable offset map that advances as events are read (a table: `advance` runs per event). */
export class OffsetTracker {
  private readonly map: OffsetTable;

  constructor(start: OffsetMap) {
    this.map = offsetTable(start);
  }

  advance(event: ActyxEvent): void {
    const cur = this.map[event.stream];
    if (cur === undefined || cur < event.offset) this.map[event.stream] = event.offset;
  }

  /** Raise to cover `other` as well (caught-up offsets, a replay's upper bound). */
  include(other: OffsetMap): void {
    for (const stream of Object.keys(other)) {
      const o = other[stream];
      if (o === undefined) continue;
      const cur = this.map[stream];
      if (cur === undefined || cur < o) this.map[stream] = o;
    }
  }

  snapshot(): OffsetMap {
    return toOffsetMap(this.map);
  }
}
