/**
 * The offsets of the events read so far, advanced per event as the coordinator reads them: what
 * each commit stores with its sinks' changes, so a restart resumes exactly after them. Comparing
 * and combining offset maps: core/offset-map.ts.
 */
import { type OffsetDelta, type OffsetMap, offsetTable, type OffsetTable, toOffsetMap } from '../core/offset-map';
import type { ActyxEvent } from '../sources/types';

/** Mutable offset map that advances as events are read (a table: `advance` runs per event). */
export class OffsetTracker {
  private readonly map: OffsetTable;
  /** The streams raised since the last `step()`, with their offsets (every write to `map` lands here too). */
  private raised = new Map<string, number>();
  /** The last `step()`'s snapshot. */
  private last: OffsetMap | null = null;

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
    this.raised.set(event.stream, event.offset);
    return true;
  }

  /** Raise to cover `other` as well (caught-up offsets, a replay's upper bound). */
  include(other: OffsetMap): void {
    for (const stream of Object.keys(other)) {
      const o = other[stream];
      if (o === undefined) continue;
      const cur = this.map[stream];
      if (cur === undefined || cur < o) {
        this.map[stream] = o;
        this.raised.set(stream, o);
      }
    }
  }

  snapshot(): OffsetMap {
    return toOffsetMap(this.map);
  }

  /**
   * The offsets after a step, frozen, with how they came about from the previous step's (see
   * OffsetDelta): a commit hands both to its sinks, which then write only the streams raised.
   * `snapshot()` between steps does not count as a step.
   */
  step(): { readonly offsets: OffsetMap; readonly delta: OffsetDelta } {
    // NB: frozen, so that no holder can change what a sink keeps as its table's stored offsets
    // (the db-sinks' messages carry the same object to user code).
    const offsets = Object.freeze(toOffsetMap(this.map));
    const delta: OffsetDelta = { base: this.last, raised: this.raised };
    this.raised = new Map();
    this.last = offsets;
    return { offsets, delta };
  }
}
