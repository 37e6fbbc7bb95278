/**
 * A commit waiting behind the one that runs: while catching up, later batches of the same phase
 * join it instead of queueing commits of their own (group commit). Steps can then stay small —
 * what a step keeps alive is what the garbage collector copies — while a slow database gets
 * fewer, larger transactions. Joining is exact because the sinks consolidate a batch by row
 * cells: a row a later batch retracts cancels out, the newest offsets and states are written.
 */
import { consolidate } from '../engine/consolidate';
import type { Batch, Update } from '../engine/types';
import type { SinkDatabase } from '../sinks/types';
import type { OffsetDelta, OffsetMap } from '../core/offset-map';
import type { SinkWrite } from './commit';
import type { StateWrite } from './durable-state';

export class PendingCommit<P> {
  /** Set when its transaction begins: from then on, later batches need a commit of their own. */
  started = false;
  private readonly byDb = new Map<SinkDatabase, Map<string, { write: SinkWrite; changes: Update[] }>>();
  private readonly tapChanges = new Map<string, Update[]>();
  private latestOffsets: OffsetMap;
  /**
   * How `latestOffsets` came about from the offsets before the first batch (null: unknown): the
   * batches' deltas joined while each batch continues the one before it.
   */
  private delta: OffsetDelta | null;
  /** The raised streams of `delta` once joined (a map of this commit's own; a batch's is not changed). */
  private joinedRaised: Map<string, number> | null = null;
  private eventCount = 0;
  /** The least event timestamp (µs) of the batches joined (Infinity: none known), for the lag in seconds. */
  oldestMicros = Infinity;

  constructor(
    readonly phase: P,
    perDb: readonly (readonly [SinkDatabase, readonly SinkWrite[]])[],
    taps: readonly (readonly [string, Batch])[],
    offsets: OffsetMap,
    events: number,
    /** Durable operator state: the joined steps' state, written with the rows (null: state in memory). */
    readonly state: StateWrite | null = null,
    /** How `offsets` came about (OffsetTracker.step), if known. */
    delta: OffsetDelta | null = null,
  ) {
    this.latestOffsets = offsets;
    this.delta = delta;
    this.add(perDb, taps, offsets, events);
  }

  /**
   * Adds a later batch: its changes after the earlier ones, its states and offsets instead of
   * theirs; `delta`: how its offsets came about from the previous batch's (OffsetTracker.step).
   */
  join(
    perDb: readonly (readonly [SinkDatabase, readonly SinkWrite[]])[],
    taps: readonly (readonly [string, Batch])[],
    offsets: OffsetMap,
    events: number,
    delta: OffsetDelta | null = null,
  ): void {
    if (this.started) throw new Error('a started commit cannot take more changes');
    if (this.delta !== null && delta !== null && delta.base === this.latestOffsets) {
      // The batch continues this commit's offsets: its raised streams on top of the earlier ones.
      const raised = (this.joinedRaised ??= new Map(this.delta.raised));
      for (const [stream, offset] of delta.raised) raised.set(stream, offset);
      this.delta = { base: this.delta.base, raised };
    } else this.delta = null;
    this.add(perDb, taps, offsets, events);
  }

  private add(
    perDb: readonly (readonly [SinkDatabase, readonly SinkWrite[]])[],
    taps: readonly (readonly [string, Batch])[],
    offsets: OffsetMap,
    events: number,
  ): void {
    for (const [db, writes] of perDb) {
      let sinks = this.byDb.get(db);
      if (sinks === undefined) this.byDb.set(db, (sinks = new Map()));
      for (const w of writes) {
        const entry = sinks.get(w.sink.id);
        if (entry === undefined) sinks.set(w.sink.id, { write: w, changes: w.changes.slice() });
        else {
          entry.write = w; // the newest state
          for (let i = 0; i < w.changes.length; i++) entry.changes.push(w.changes[i] as Update);
        }
      }
    }
    for (const [id, batch] of taps) {
      const list = this.tapChanges.get(id);
      if (list === undefined) this.tapChanges.set(id, batch.slice());
      else for (let i = 0; i < batch.length; i++) list.push(batch[i] as Update);
    }
    this.latestOffsets = offsets;
    this.eventCount += events;
  }

  /** A joined batch's least event timestamp (µs). */
  spans(oldestMicros: number): void {
    if (oldestMicros < this.oldestMicros) this.oldestMicros = oldestMicros;
  }

  /** Events of the batches joined so far (bounds the changes held in memory). */
  get events(): number {
    return this.eventCount;
  }

  get offsets(): OffsetMap {
    return this.latestOffsets;
  }

  /** How `offsets` came about from the offsets before this commit's first batch, if known. */
  get offsetsDelta(): OffsetDelta | null {
    return this.delta;
  }

  /**
   * Per database, every sink's joined changes with its newest state; a state with this commit's
   * offsets comes with their delta, when known (SinkState.delta).
   */
  writes(): [SinkDatabase, SinkWrite[]][] {
    const delta = this.delta;
    return [...this.byDb].map(([db, sinks]) => [
      db,
      [...sinks.values()].map(({ write, changes }) =>
        delta !== null && write.state.offsets === this.latestOffsets
          ? { ...write, changes, state: { ...write.state, delta } }
          : { ...write, changes },
      ),
    ]);
  }

  /** Per tapped node, its joined changes, consolidated (a node's output message lists each value once). */
  taps(): [string, Batch][] {
    const out: [string, Batch][] = [];
    for (const [id, changes] of this.tapChanges) {
      const batch = consolidate(changes);
      if (batch.length > 0) out.push([id, batch]);
    }
    return out;
  }
}
