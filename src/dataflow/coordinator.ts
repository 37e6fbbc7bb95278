/**
 * The dataflow coordinator: reads the one event source of a dataflow, runs the events in batches
 * through the engine graph built from the members, and commits every sink's changes together with
 * its offsets in one transaction per database. At start it brings each sink forward from its own
 * stored offsets (replaying without writing what a table already reflects), rebuilds the tables
 * whose upstream definition changed, and then follows the source live. No Node-RED in here.
 *
 * This file wires the parts, which share one DataflowContext (context.ts): start-up planning
 * (start-up.ts), reading (reader.ts), processing (processor.ts), the commit pipeline
 * (commit-pipeline.ts) and the status (dataflow-status.ts).
 */
import { errorText } from '../core/message-text';
import { unionQuery } from '../sources/aql';
import { buildDataflow } from './build-graph';
import { sinksByDatabase } from './commit';
import { CommitPipeline } from './commit-pipeline';
import { DataflowContext, type Fencing } from './context';
import { LeasedDataflow } from './leased-dataflow';
import { LeaseLostError } from '../sinks/lease-sql';
import { DataflowStatus } from './dataflow-status';
import { sinkFingerprint } from './fingerprint';
import {
  DEFAULT_STATE_CACHE_BYTES,
  durableHost,
  warmUpHint,
  warmUpUnits,
  MEMORY_STATE_HINT,
  scopedStore,
  WARM_UP_MS,
} from './durable-state';
import { HINT_KEY, hintOp } from '../sinks/state-sql';
import { OffsetTracker } from './offset-tracker';
import { Processor } from './processor';
import { Reader } from './reader';
import { retentionCutoff } from './retention';
import { Abandoned } from './retry';
import { bringForwardAside, openSinks, restartReads, warnIfAhead } from './start-up';
import type { Level } from './restart-plan';
import { eventsBetween, mergeOffsets, type OffsetMap } from '../core/offset-map';
import type { DataflowDefinition, DataflowLag, DataflowListener, DataflowStats, RunningDataflow } from './types';

export type { DataflowLag, DataflowPhase, DataflowStats, RunningDataflow } from './types';
export { eventValue } from './processor';

/**
 * Starts a dataflow; problems are reported through the listener, never thrown. With a lease and
 * a sink, it runs only while this instance holds the lease (leased-dataflow.ts).
 */
export function startDataflow(definition: DataflowDefinition, listener: DataflowListener): RunningDataflow {
  if (definition.lease !== undefined && definition.members.some((m) => m.role === 'sink'))
    return new LeasedDataflow(
      definition,
      definition.lease,
      listener,
      (fencing) => new Coordinator(definition, listener, fencing),
    );
  return new Coordinator(definition, listener);
}

class Coordinator implements RunningDataflow {
  readonly finished: Promise<void>;
  readonly live: Promise<void>;
  private resolveLive!: () => void;
  private readonly ctx: DataflowContext;
  private readonly status: DataflowStatus;
  private readonly commits: CommitPipeline;
  private readonly reader: Reader;

  constructor(definition: DataflowDefinition, listener: DataflowListener, fencing: Fencing | null = null) {
    const ctx = (this.ctx = new DataflowContext(definition, listener, fencing));
    this.status = new DataflowStatus(ctx);
    this.commits = new CommitPipeline(ctx, this.status);
    this.reader = new Reader(ctx, this.status, new Processor(ctx, this.status, this.commits), this.commits);
    this.live = new Promise((resolve) => (this.resolveLive = resolve));
    this.finished = this.run()
      .catch((e: unknown) => {
        if (e instanceof Abandoned) return;
        if (e instanceof LeaseLostError) return ctx.leaseLost(e);
        // Not swallowed while stopping either: logged.
        if (ctx.stopping) ctx.listener.log('warn', `while stopping: ${errorText(e)}`);
        else this.status.halt(`dataflow stopped: ${errorText(e)}`);
      })
      .finally(() => ctx.durable?.reader.close());
  }

  stats(): DataflowStats {
    const ctx = this.ctx;
    const state = ctx.built?.graph.stateStats() ?? null;
    return {
      phase: ctx.phaseName,
      eventsRead: ctx.eventsRead,
      eventsReplayed: ctx.eventsReplayed,
      eventsOutsideWindow: ctx.eventsOutsideWindow,
      eventsAheadOfClock: ctx.eventsAheadOfClock,
      batchesComputed: ctx.batchesComputed,
      batchesCommitted: ctx.batchesCommitted,
      skipped: new Map(ctx.skipped),
      committedOffsets: ctx.committedOffsets,
      watermark: ctx.watermark,
      rebuilt: [...ctx.rebuilt],
      error: ctx.failed?.message ?? null,
      stateSize: ctx.built?.graph.stateSize() ?? 0,
      durableState: ctx.durable !== null,
      stateBytes: state?.bytes ?? 0,
      stateLoads: state?.loads ?? 0,
    };
  }

  lag(): DataflowLag | null {
    const ctx = this.ctx;
    if (ctx.phaseName === 'stopped' || ctx.phaseName === 'standby') return null;
    const known = mergeOffsets(ctx.present, ctx.tracker.snapshot());
    const oldest = this.commits.oldestUncommittedMicros();
    const seconds = oldest === null ? 0 : Math.max(0, (ctx.now() * 1000 - oldest) / 1e6);
    return { events: eventsBetween(ctx.committedOffsets, known), seconds };
  }

  /** The lease was lost (found by its renewal): nothing more is committed; stop() follows. */
  leaseLost(e: LeaseLostError): void {
    this.ctx.leaseLost(e);
  }

  async stop(): Promise<void> {
    const ctx = this.ctx;
    if (!ctx.stopping) {
      this.commits.queueHeld(); // computed work is committed, not dropped
      ctx.end();
    }
    // The step in progress finishes (its result is dropped: its events were not committed).
    await ctx.stepping;
    await this.commits.whenCommitted();
    await this.saveHint();
    await ctx.durable?.reader.close();
    if (ctx.phaseName !== 'error' && ctx.phaseName !== 'standby') ctx.phaseName = 'stopped';
    this.status.close();
  }

  /**
   * Reads back what the state cache held at the last clean stop or live hint (its stored hint),
   * before the first step, for at most `warmUpMs` (default WARM_UP_MS; docs/durable-state.md,
   * "Warm-up after a restart"). Only a cache: a failure is logged and the dataflow goes on without it.
   */
  private async warmUp(): Promise<void> {
    const ctx = this.ctx;
    const durable = ctx.durable!;
    const graph = ctx.built!.graph;
    const ms = ctx.settings.warmUpMs ?? WARM_UP_MS;
    if (ms <= 0) return;
    const t0 = Date.now();
    try {
      const [text] = await durable.reader.get(hintOp(durable.scope), [HINT_KEY]);
      const units = warmUpUnits(text);
      if (units.length === 0 || ctx.stopping) return;
      const w = await graph.warm(units, { deadline: t0 + ms });
      ctx.listener.log(
        'info',
        `state cache warmed: ${w.units.toLocaleString('en-US')} groups (${(w.bytes / 1048576).toFixed(1)} MB) read back in ${Date.now() - t0} ms` +
          (w.skipped > 0 ? `, ${w.skipped.toLocaleString('en-US')} of the hint left to load on first touch` : ''),
      );
    } catch (e) {
      ctx.listener.log('warn', `warming the state cache failed (it loads on first touch): ${errorText(e)}`);
    }
  }

  /**
   * At a clean stop: stores which units the state cache holds (the warm-up hint of the next start),
   * in a transaction of its own, after the lease's fencing check. Only a hint: a failure is logged.
   */
  private async saveHint(): Promise<void> {
    const ctx = this.ctx;
    const durable = ctx.durable;
    const graph = ctx.built?.graph;
    if (durable === null || graph === undefined || ctx.phaseName === 'error' || ctx.phaseName === 'standby') return;
    const units = graph.hotUnits();
    if (units.length === 0) return;
    const { text } = warmUpHint(units, ctx.settings.stateCacheBytes ?? DEFAULT_STATE_CACHE_BYTES);
    try {
      await durable.db.transaction(async (tx) => {
        if (tx.writeStateHint === undefined) return;
        await this.commits.fenceIn(durable.db, tx);
        await tx.writeStateHint(durable.scope, text);
      });
    } catch (e) {
      if (!(e instanceof LeaseLostError))
        ctx.listener.log('warn', `storing the state cache's warm-up hint failed: ${errorText(e)}`);
    }
  }

  private async run(): Promise<void> {
    const ctx = this.ctx;
    const built = buildDataflow(ctx.definition.members);
    ctx.built = built;
    this.status.showBuildFailures(built);
    if (built.sinks.length === 0 && built.taps.length === 0) {
      this.status.idle(built);
      this.resolveLive();
      return;
    }
    ctx.databases = sinksByDatabase(built.sinks);
    for (const s of built.sinks) ctx.fingerprints.set(s.id, sinkFingerprint(s, built.byId));
    this.status.setPhase('starting');
    const host = durableHost(ctx.definition, built.graph, built.sinks);
    if (typeof host === 'string') ctx.listener.log('warn', `operator state kept in memory: ${host}`);
    else if (host !== null) ctx.durable = host;
    else if (ctx.settings.retentionMicros === null && built.graph.stateIds().length > 0) {
      // Once per start: a dd-dataflow without the setting (saved before it existed, or written by
      // hand) keeps the state in memory, and without a window that grows with the history.
      ctx.listener.log('info', MEMORY_STATE_HINT);
    }

    let levels: Level[];
    let stateLevel: OffsetMap | null;
    const openingFailed = (e: unknown): void => {
      if (e instanceof LeaseLostError) return ctx.leaseLost(e);
      if (e instanceof Abandoned || ctx.stopping) return;
      const message = `opening the tables failed: ${errorText(e)}; the dataflow stopped`;
      const blamed = built.sinks.filter((s) => errorText(e).includes(`"${s.table.name}"`));
      for (const s of blamed.length > 0 ? blamed : built.sinks) ctx.listener.error(s.id, message);
      this.status.halt(message, blamed[0]?.id);
    };
    try {
      ({ levels, stateLevel } = await openSinks(ctx, this.commits, built.sinks));
    } catch (e) {
      return openingFailed(e);
    }
    if (ctx.stopping) return;
    ctx.present = await this.status.retrying('source', () => ctx.source.presentOffsets());
    if (ctx.stopping) return;
    warnIfAhead(ctx, ctx.present, levels, built.sinks);
    try {
      await bringForwardAside(ctx, this.commits, levels);
    } catch (e) {
      return openingFailed(e);
    }
    if (ctx.stopping) return;
    // The stored watermark's cutoff: the replay rebuilds exactly the events the state held.
    const cutoff = retentionCutoff(ctx.watermark, ctx.settings.retentionMicros);
    ctx.cutoff = cutoff;
    if (ctx.durable !== null) {
      built.graph.useStore(scopedStore(ctx.durable.reader, ctx.durable.scope), {
        cacheBytes: ctx.settings.stateCacheBytes ?? DEFAULT_STATE_CACHE_BYTES,
        stored: stateLevel !== null,
        cutoff: ctx.stateCutoff,
      });
      // The state as the replay of today's version would hold it: compacted to the stored
      // watermark's cutoff (entries on disk compact as they load; the next commit forgets them).
      if (cutoff !== null) built.graph.compact(cutoff + 1);
      ctx.tracker = new OffsetTracker(stateLevel ?? {});
      if (stateLevel !== null) {
        // NB: stop() waits for `stepping`: the warm-up reads through the state reader it closes.
        const warming = this.warmUp();
        ctx.stepping = warming;
        await warming.finally(() => (ctx.stepping = null));
      }
    }
    const query = unionQuery(built.sources.map((s) => s.member.query));
    for (const read of restartReads(levels, ctx.present, cutoff, stateLevel)) {
      if (ctx.stopping) return;
      await this.reader.readBounded(query, read.lower, read.upper, read.phase);
    }
    if (ctx.stopping) return;
    const writing = new Set(built.sinks.map((s) => s.id));
    await this.reader.follow(
      query,
      { name: 'catching up', writing, cutoff: null, taps: true, decided: false },
      this.resolveLive,
    );
  }
}
