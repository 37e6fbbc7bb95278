/**
 * Processing: a batch of events read from the source runs through the engine graph — with
 * retention, in one step per cutoff it reaches, the state compacted before each — and each step's
 * sink and tap changes, with the offsets and watermark after it, go to the commit pipeline.
 */
import type { Batch, StepState, Value } from '../engine/types';
import { OperatorError } from '../engine/types';
import type { OffsetMap } from '../core/offset-map';
import type { ActyxEvent } from '../sources/types';
import { sinkOutput, tapOutput, type BuiltDataflow } from './build-graph';
import type { CommitPipeline, DatabaseStepWrites, TapChanges } from './commit-pipeline';
import type { StepWrite } from './pending-commit';
import type { DataflowContext, Phase } from './context';
import type { DataflowStatus } from './dataflow-status';
import { clockBound, retentionSegments } from './retention';
import { Abandoned } from './retry';

/**
 * An event as the engine's input value (the contract in docs/architecture.md). Sources hand over fresh plain objects with exactly the
 * event's fields (parsed from the log's JSON or built by the Actyx client), and the engine never
 * changes a value: the event itself is the value, without a copy per event.
 */
export function eventValue(ev: ActyxEvent): Value {
  // NB: values are never mutated, so the event needs no copy. The engine's property tests run
  // every operator on frozen inputs (test/engine/harness.ts), and the nodes hand user functions
  // frozen values (deepFreeze in src/nodes/user-function.ts).
  return ev as unknown as Value;
}

/** A turn of the event loop, given to a long engine step (StepOptions.pause). */
const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

export class Processor {
  constructor(
    private readonly ctx: DataflowContext,
    private readonly status: DataflowStatus,
    private readonly commits: CommitPipeline,
  ) {}

  /**
   * Runs one batch through the engine and queues its commit; waits while too many commits are
   * pending. With retention, the batch runs in one step per cutoff it reaches, the state compacted
   * to the cutoff before the step (see retentionSegments). `endOffsets`: the offsets the source
   * reports after the batch (the end of a range, or caught up), included in its commit.
   */
  async processBatch(events: readonly ActyxEvent[], endOffsets: OffsetMap | null, phase: Phase): Promise<void> {
    const ctx = this.ctx;
    const bound = this.watermarkBound(phase);
    const segments = retentionSegments(events, ctx.watermark, ctx.cutoff, ctx.settings.retentionMicros, bound);
    for (let s = 0; s < segments.length; s++) {
      if (ctx.stopping) return;
      const { from, to, compactTo } = segments[s] as (typeof segments)[number];
      if (compactTo !== null) {
        // The engine forgets times below its argument; events at the cutoff are outside the window too.
        // NB: timestamps are integers (µs), so cutoff + 1 is the least time inside the window. Both
        // sources reject others, and processSegment checks every event.
        (ctx.built as BuiltDataflow).graph.compact(compactTo + 1);
        ctx.cutoff = compactTo;
      }
      await this.processSegment(events, from, to, s === segments.length - 1 ? endOffsets : null, phase, bound);
    }
  }

  /**
   * The greatest timestamp that may move the watermark in this batch (retention.ts, the clock
   * bound): events an earlier run processed (`phase.decided`) move it no further than the stored
   * watermark, which holds that run's decisions; new ones no further than the wall clock plus
   * clockAheadMicros. Without a retention window the watermark decides nothing: no bound.
   */
  private watermarkBound(phase: Phase): number {
    const ctx = this.ctx;
    if (ctx.settings.retentionMicros === null) return Infinity;
    // NB: events of a decided phase are at or below the greatest stored offsets, whose run stored
    // the greatest timestamp it let move the watermark; restartReads marks only those reads decided
    // (test/dataflow/clock-bound.test.ts restarts at a later clock and compares the rows).
    if (phase.decided) return ctx.watermark ?? -Infinity;
    return clockBound(ctx.now(), ctx.clockAheadMicros);
  }

  /** Events [from, to) in one engine step, their changes joined to a commit. */
  private async processSegment(
    events: readonly ActyxEvent[],
    from: number,
    to: number,
    endOffsets: OffsetMap | null,
    phase: Phase,
    bound: number,
  ): Promise<void> {
    const ctx = this.ctx;
    if (ctx.stopping) return;
    const built = ctx.built as BuiltDataflow;
    const count = to - from;
    // Left out: events the window has passed (late ones; at start, the ones before the replayed window).
    const cut = ctx.cutoff;
    // Columns, not a tuple per event: the engine reads them as they are.
    const inputs = new Map<string, { values: Value[]; times: number[] }>();
    // One source: its columns sized up front (growing by push would reallocate them several times).
    const size = built.sources.length === 1 ? count : 0;
    for (const s of built.sources)
      inputs.set(s.member.id, { values: new Array<Value>(size), times: new Array<number>(size) });
    const single =
      built.sources.length === 1
        ? (inputs.get((built.sources[0] as (typeof built.sources)[number]).member.id) ?? null)
        : null;
    let fed = 0;
    let oldest = Infinity; // the least timestamp, for the lag in seconds
    for (let i = from; i < to; i++) {
      const ev = events[i] as ActyxEvent;
      if (ev.timestamp < oldest) oldest = ev.timestamp;
      // NB: within a stream, events come in offset order and none twice (the EventSource contract):
      // the offsets committed say which events a table reflects, and a restart resumes after them.
      if (!ctx.tracker.advance(ev)) {
        throw new Error(`event source: event ${ev.stream}/${ev.offset} came twice or out of its stream's order`);
      }
      // NB: timestamps are integers (compaction and the replay's `TIME >` depend on it).
      if (!Number.isSafeInteger(ev.timestamp)) {
        throw new Error(
          `event source: event ${ev.stream}/${ev.offset} has the timestamp ${ev.timestamp}, not an integer`,
        );
      }
      if (cut !== null && ev.timestamp <= cut) {
        if (phase.cutoff === null || ev.timestamp > phase.cutoff) ctx.eventsOutsideWindow++; // (the replay's query leaves the others out already)
        continue;
      }
      if (ev.timestamp > bound) {
        // Processed as data, but the watermark (and with it the cutoff) stays where it is.
        if (!phase.decided) this.status.reportAheadOfClock(ev, bound - ctx.clockAheadMicros);
      } else if (ctx.watermark === null || ev.timestamp > ctx.watermark) ctx.watermark = ev.timestamp;
      const value = eventValue(ev);
      fed++;
      if (single !== null) {
        single.values[fed - 1] = value;
        single.times[fed - 1] = ev.timestamp;
        continue;
      }
      for (const s of built.sources) {
        if (!s.matches(ev)) continue;
        const columns = inputs.get(s.member.id) as { values: Value[]; times: number[] };
        columns.values.push(value);
        columns.times.push(ev.timestamp);
      }
    }
    if (single !== null) single.values.length = single.times.length = fed; // events before the cutoff were left out
    if (endOffsets !== null) ctx.tracker.include(endOffsets);
    ctx.eventsRead += count;
    ctx.batchesComputed++;
    if (phase.writing.size === 0 && !phase.taps) ctx.eventsReplayed += fed;

    let outputs: ReadonlyMap<string, Batch> = new Map();
    let state: StepState | undefined;
    if (fed > 0) {
      try {
        // Turns of the event loop during long steps: a commit in flight sends its next statement.
        const step = built.graph.step(inputs, { onError: ctx.settings.onError, pause: nextTurn });
        // NB: stop() waits for `stepping`, so a redeploy never steps the old graph beside the new one.
        ctx.stepping = step.then(
          () => undefined,
          () => undefined,
        );
        const result = await step.finally(() => (ctx.stepping = null));
        outputs = result.outputs;
        state = result.state;
        for (const s of result.skipped) this.status.reportSkipped(s, phase);
      } catch (e) {
        if (e instanceof OperatorError) {
          this.status.haltOnOperatorError(e);
          throw new Abandoned();
        }
        throw e;
      }
    }
    if (ctx.stopping) return;
    // The step's offsets: materialized when its commit starts (a commit of several steps copies
    // the offset map once, not per step).
    const offsets = ctx.tracker.step();
    const watermark = ctx.watermark;
    const perDb: DatabaseStepWrites[] = [];
    for (const [db, sinks] of ctx.databases) {
      const writes: StepWrite[] = [];
      for (const s of sinks) {
        if (!phase.writing.has(s.id)) continue;
        writes.push({
          sink: s,
          table: ctx.shadows.get(s.id) ?? s.table,
          changes: outputs.get(sinkOutput(s.id)) ?? [],
          state: { fingerprint: ctx.fingerprints.get(s.id) as string, watermark },
          // NB: with a retention window a keyed table's stored row may derive from forgotten
          // events (the view no longer holds it), so a new row for its key replaces it (README,
          // Retention); without one, the view holds every stored row and a second is an error.
          replaceStored: ctx.settings.retentionMicros !== null,
        });
      }
      // Durable state: every step's state and level go to H, also while replaying (no table written).
      if (writes.length > 0 || db === ctx.durable?.db) perDb.push([db, writes]);
    }
    const taps: TapChanges[] = phase.taps
      ? built.taps.map((t) => [t.id, outputs.get(tapOutput(t.id)) ?? []] as const).filter(([, b]) => b.length > 0)
      : [];
    if (perDb.length === 0 && taps.length === 0) return;
    await this.commits.add(phase, perDb, taps, offsets, count, endOffsets !== null, state, oldest);
  }
}
