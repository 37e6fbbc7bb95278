/**
 * The offsets of the events read so far, advanced per event as the coordinator reads them: what
 * each commit stores with its sinks' changes, so a restart resumes exactly after them. Comparing
 * and combining offset maps: core/offset-map.ts.
 */
import { type OffsetMap, offsetTable, type OffsetTable, toOffsetMap } from '../core/offset-map';
import type { ActyxEvent } from '../sources/types';

/** Mutable offset map that advances as events are read (a table: `advance` runs per event). */
export class OffsetTracker {
  private readonly map: OffsetTable;

  constructor(start: OffsetMap) {
    this.map = offsetTable(start);
  }

  /**
   * Takes the event's offset when it is beyond the stream's; returns false (and changes nothing)
   * for an event at or below it: a repeated event, or one out of its stream's order.
   */
  advance(event: ActyxEvent): boolean {
    const cur = this.map[event.stream];
    if (cur !== undefined && cur >= event.offset) return false;
    this.map[event.stream] = event.offset;
    return true;
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
