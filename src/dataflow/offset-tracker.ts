/**
 * The offsets of the events read so far, advanced per event as the coordinator reads them: what
 * each commit stores with its sinks' changes, so a restart resumes exactly after them. Comparing
 * and combining offset maps: core/offset-map.ts.
 */
import {
  copyOffsets,
  type OffsetDelta,
  type OffsetMap,
  offsetTable,
  type OffsetTable,
  setOffset,
  toOffsetMap,
} from '../core/offset-map';
import type { ActyxEvent } from '../sources/types';

/** One engine step's offsets (OffsetTracker.step), materialized when first asked for. */
export class StepOffsets {
  constructor(
    private readonly tracker: OffsetTracker,
    readonly seq: number,
  ) {}

  /** The offsets after the step, frozen, and their delta (see OffsetTracker.offsetsAfter). */
  materialize(): { readonly offsets: OffsetMap; readonly delta: OffsetDelta } {
    return this.tracker.offsetsAfter(this.seq);
  }
}

/** Mutable offset map that advances as events are read (a table: `advance` runs per event). */
export class OffsetTracker {
  private readonly map: OffsetTable;
  /** The streams raised since the last `step()`, with their offsets (every write to `map` lands here too). */
  private raised = new Map<string, number>();
  /** The last step's number (0: none yet). */
  private lastSeq = 0;
  /** Steps taken and not materialized yet, oldest first, with the streams each raised. */
  private readonly unmaterialized: { readonly seq: number; readonly raised: ReadonlyMap<string, number> }[] = [];
  /** The newest materialized step's offsets and delta (seq 0: the start). */
  private materialized: { readonly seq: number; readonly offsets: OffsetMap; readonly delta: OffsetDelta };

  constructor(start: OffsetMap) {
    this.map = offsetTable(start);
    this.materialized = {
      seq: 0,
      offsets: Object.freeze(toOffsetMap(this.map)),
      delta: { base: null, raised: new Map() },
    };
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

  /** The offsets now (a copy; not a step). */
  snapshot(): OffsetMap {
    return toOffsetMap(this.map);
  }

  /**
   * Ends a step: its offsets are the tracker's now, materialized only when asked (`offsetsAfter`),
   * so that a step whose commit takes later steps too costs no copy of every stream.
   */
  step(): StepOffsets {
    const seq = ++this.lastSeq;
    this.unmaterialized.push({ seq, raised: this.raised });
    this.raised = new Map();
    return new StepOffsets(this, seq);
  }

  /**
   * The offsets after step `seq`, frozen, with their delta from the offsets materialized before
   * (the previous call's; for the first, the start's): the streams the steps between raised.
   * Steps are materialized in order (commits start in order); asking again for the newest gives
   * the same objects. Throws for a step older than the newest materialized one.
   */
  offsetsAfter(seq: number): { readonly offsets: OffsetMap; readonly delta: OffsetDelta } {
    const m = this.materialized;
    if (seq === m.seq) return m;
    if (seq < m.seq || seq > this.lastSeq)
      throw new Error(`offsets of step ${seq} asked after step ${m.seq} (of ${this.lastSeq}) was materialized`);
    const raised = new Map<string, number>();
    while (this.unmaterialized.length > 0 && (this.unmaterialized[0] as { seq: number }).seq <= seq) {
      const step = this.unmaterialized.shift() as { readonly raised: ReadonlyMap<string, number> };
      for (const [stream, offset] of step.raised) raised.set(stream, offset);
    }
    const offsets = copyOffsets(m.offsets);
    for (const [stream, offset] of raised) setOffset(offsets, stream, offset);
    // NB: frozen, so that no holder can change what a sink keeps as its table's stored offsets
    // (the db-sinks' messages carry the same object to user code).
    this.materialized = { seq, offsets: Object.freeze(offsets), delta: { base: m.offsets, raised } };
    return this.materialized;
  }
}
