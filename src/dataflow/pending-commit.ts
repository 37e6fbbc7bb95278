/**
 * A commit waiting behind the one that runs: while catching up, later batches of the same phase
 * join it instead of queueing commits of their own (group commit). Steps can then stay small —
 * what a step keeps alive is what the garbage collector copies — while a slow database gets
 * fewer, larger transactions. Joining is exact because the sinks consolidate a batch by row
 * cells: a row a later batch retracts cancels out, the newest offsets and states are written.
 */
import { consolidate } from '../engine/consolidate';
import type { Batch, Update } from '../engine/types';
import type { SinkDatabase, SinkState } from '../sinks/types';
import type { OffsetDelta, OffsetMap } from '../core/offset-map';
import type { SinkWrite } from './commit';
import type { StateWrite } from './durable-state';
import { StepOffsets } from './offset-tracker';

/** A step's write to a sink: its state's offsets are the commit's (PendingCommit.writes). */
export type StepWrite = Omit<SinkWrite, 'state'> & { readonly state: Omit<SinkState, 'offsets' | 'delta'> };

export class PendingCommit<P> {
  /** Set when its transaction begins: from then on, later batches need a commit of their own. */
  started = false;
  private readonly byDb = new Map<SinkDatabase, Map<string, { write: StepWrite; changes: Update[] }>>();
  private readonly tapChanges = new Map<string, Update[]>();
  /** The newest batch's offsets: a step's (materialized when the commit asks), or given whole. */
  private latest: OffsetMap | StepOffsets;
  private eventCount = 0;
  /** The least event timestamp (µs) of the batches joined (Infinity: none known), for the lag in seconds. */
  oldestMicros = Infinity;

  constructor(
    readonly phase: P,
    perDb: readonly (readonly [SinkDatabase, readonly StepWrite[]])[],
    taps: readonly (readonly [string, Batch])[],
    offsets: OffsetMap | StepOffsets,
    events: number,
    /** Durable operator state: the joined steps' state, written with the rows (null: state in memory). */
    readonly state: StateWrite | null = null,
  ) {
    this.latest = offsets;
    this.add(perDb, taps, events);
  }

  /** Adds a later batch: its changes after the earlier ones, its states and offsets instead of theirs. */
  join(
    perDb: readonly (readonly [SinkDatabase, readonly StepWrite[]])[],
    taps: readonly (readonly [string, Batch])[],
    offsets: OffsetMap | StepOffsets,
    events: number,
  ): void {
    if (this.started) throw new Error('a started commit cannot take more changes');
    this.latest = offsets;
    this.add(perDb, taps, events);
  }

  private add(
    perDb: readonly (readonly [SinkDatabase, readonly StepWrite[]])[],
    taps: readonly (readonly [string, Batch])[],
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

  /**
   * The newest batch's offsets (a step's are materialized here, once: OffsetTracker.offsetsAfter),
   * and how they came about from the offsets before, when known.
   */
  private resolved(): { readonly offsets: OffsetMap; readonly delta: OffsetDelta | null } {
    const latest = this.latest;
    return latest instanceof StepOffsets ? latest.materialize() : { offsets: latest, delta: null };
  }

  get offsets(): OffsetMap {
    return this.resolved().offsets;
  }

  /** How `offsets` came about from the offsets materialized before them (the previous commit's), if known. */
  get offsetsDelta(): OffsetDelta | null {
    return this.resolved().delta;
  }

  /**
   * Per database, every sink's joined changes with its newest state and this commit's offsets
   * (with their delta, when known: SinkState.delta).
   */
  writes(): [SinkDatabase, SinkWrite[]][] {
    const { offsets, delta } = this.resolved();
    return [...this.byDb].map(([db, sinks]) => [
      db,
      [...sinks.values()].map(({ write, changes }) => {
        const { fingerprint, watermark } = write.state;
        const state: SinkState =
          delta !== null ? { offsets, fingerprint, watermark, delta } : { offsets, fingerprint, watermark };
        return { ...write, changes, state };
      }),
    ]);
  }

  /** Per database, the sinks' writes as joined, without offsets (what a failed commit reports). */
  sinkWrites(): [SinkDatabase, StepWrite[]][] {
    return [...this.byDb].map(([db, sinks]) => [db, [...sinks.values()].map(({ write }) => write)]);
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
