/**
 * Reading: stored events in a range of offsets (replay, catch-up of lower levels), then stored and
 * live events forever (follow), in batches handed to the processor; a failed read is retried from
 * the offsets processed so far. The source's diagnostics go to the log and the source nodes' status.
 */
import { errorText } from '../core/message-text';
import { formatRfc3339Micros, parseQuery, printExpr } from '../sources/aql';
import type { OffsetMap } from '../core/offset-map';
import type { ActyxEvent, SubscriptionItem } from '../sources/types';
import type { TableSpec } from '../sinks/types';
import { chunksOf, readInBatches } from './batcher';
import type { CommitPipeline } from './commit-pipeline';
import type { DataflowContext, Phase } from './context';
import type { DataflowStatus } from './dataflow-status';
import { OffsetTracker } from './offset-tracker';
import type { Processor } from './processor';
import { Abandoned } from './retry';

export class Reader {
  constructor(
    private readonly ctx: DataflowContext,
    private readonly status: DataflowStatus,
    private readonly processor: Processor,
    private readonly commits: CommitPipeline,
  ) {}

  /** Stored events in (lower, upper], through the engine; sinks in `phase.writing` receive the changes. */
  async readBounded(query: string, lower: OffsetMap, upper: OffsetMap, phase: Phase): Promise<void> {
    const ctx = this.ctx;
    ctx.tracker = new OffsetTracker(lower);
    this.status.setPhase(phase.name, phase);
    const text =
      phase.cutoff === null
        ? query
        : `FROM (${printExpr(parseQuery(query).expr)}) & TIME > ${formatRfc3339Micros(phase.cutoff)}`;
    await this.status.retrying('source', async () => {
      const from = ctx.tracker.snapshot();
      const options = { signal: ctx.abort.signal, onDiagnostic: this.onDiagnostic };
      const chunks = ctx.source.queryBatches
        ? ctx.source.queryBatches(text, from, upper, options)
        : chunksOf(ctx.source.query(text, from, upper, options));
      // Stored events are all available: larger steps save engine work (a reduce recomputes a
      // touched group once per step) and commits.
      await readInBatches<ActyxEvent>(
        chunks,
        { batchSize: ctx.catchUpBatchSize, batchMs: ctx.settings.batchMs, signal: ctx.abort.signal },
        (events, end) => this.fatalOnError(this.processor.processBatch(events, end ? upper : null, phase)),
      );
    });
  }

  /** Stored events after the tracker's offsets, then live ones, forever (until stopped); `onLive` when caught up. */
  async follow(query: string, phase: Phase, onLive: () => void): Promise<void> {
    const ctx = this.ctx;
    let current = phase;
    this.status.setPhase(current.name, current);
    await this.status.retrying('source', async () => {
      const from = ctx.tracker.snapshot();
      const options = { signal: ctx.abort.signal, onDiagnostic: this.onDiagnostic };
      const chunks = ctx.source.subscribeBatches
        ? ctx.source.subscribeBatches(query, from, options)
        : chunksOf(ctx.source.subscribe(query, from, options));
      await readInBatches<SubscriptionItem>(
        chunks,
        {
          // Large steps until caught up with the stored events, then small ones (latency).
          batchSize: () => (current.name === 'live' ? ctx.settings.batchSize : ctx.catchUpBatchSize),
          batchMs: ctx.settings.batchMs,
          signal: ctx.abort.signal,
          flushesBatch: (i) => i.type === 'caughtUp',
        },
        async (items) => {
          let caughtUp: OffsetMap | null = null;
          const events = new Array<ActyxEvent>(items.length); // sized up front, trimmed below
          let n = 0;
          for (let i = 0; i < items.length; i++) {
            const item = items[i] as SubscriptionItem;
            if (item.type === 'event') events[n++] = item.event;
            else caughtUp = item.offsets;
          }
          events.length = n;
          await this.fatalOnError(this.processor.processBatch(events, caughtUp, current));
          if (caughtUp !== null) {
            // Also after a reconnect: "retrying" gives way to "live" even when no event follows.
            current = { ...current, name: 'live' };
            await this.commits.whenCommitted();
            await this.swapInShadows();
            ctx.present = ctx.tracker.snapshot();
            this.status.setPhase('live', current);
            onLive();
          }
        },
      );
      if (!ctx.stopping) throw new Error('the event subscription ended unexpectedly');
    });
  }

  /**
   * Tables rebuilt aside are complete once every commit of the catch-up is done: each shadow is
   * swapped in, with its offsets and meta, in one transaction per database (retried like a commit);
   * later commits write to the table itself. A failure halts like a commit that cannot succeed.
   */
  private async swapInShadows(): Promise<void> {
    const ctx = this.ctx;
    if (ctx.shadows.size === 0 || ctx.failed !== null || ctx.stopping) return;
    for (const [db, sinks] of ctx.databases) {
      const swaps = sinks.filter((s) => ctx.shadows.has(s.id));
      if (swaps.length === 0) continue;
      await this.fatalOnError(
        this.commits.dbWork(db, () =>
          db.transaction(async (tx) => {
            await this.commits.fenceIn(db, tx);
            for (const s of swaps) await tx.swapIn(s.table, ctx.shadows.get(s.id) as TableSpec);
          }),
        ),
      );
      for (const s of swaps) ctx.shadows.delete(s.id);
    }
  }

  /** Errors of processing (not of reading) are not retried: they would fail again the same way. */
  private async fatalOnError(work: Promise<void>): Promise<void> {
    try {
      await work;
    } catch (e) {
      if (!(e instanceof Abandoned)) this.status.halt(`dataflow stopped: ${errorText(e)}`);
      throw new Abandoned();
    }
  }

  private readonly onDiagnostic = (d: {
    severity: 'info' | 'warning' | 'error';
    message: string;
    detail?: string;
  }): void => this.status.sourceDiagnostic(d);
}
