/**
 * The dataflow coordinator: reads the one event source of a dataflow, runs the events in batches
 * through the engine graph built from the members, and commits every sink's changes together with
 * its offsets in one transaction per database. At start it brings each sink forward from its own
 * stored offsets (replaying without writing what a table already reflects), rebuilds the tables
 * whose upstream definition changed, and then follows the source live. No Node-RED in here.
 */
import type { Batch, SkippedInput, Value } from '../engine/types';
import { OperatorError } from '../engine/types';
import { formatRfc3339Micros, parseQuery, printExpr, unionQuery } from '../sources/aql';
import type { ActyxEvent, EventSource, OffsetMap, SubscriptionItem } from '../sources/types';
import { offsetOf } from '../sources/offset-map';
import { SinkConfigError, SinkDatabaseError, SinkDataError } from '../sinks/errors';
import type { SinkDatabase, SinkState } from '../sinks/types';
import { catchUpBatchSize, chunksOf, readInBatches } from './batcher';
import { buildDataflow, sinkOutput, tapOutput, type BuiltDataflow } from './build-graph';
import { commitToDatabase, sinksByDatabase, type CommitAttempts, type SinkWrite } from './commit';
import { PendingCommit } from './pending-commit';
import { sinkFingerprint } from './fingerprint';
import { covers, eventsBetween, OffsetTracker } from './offsets';
import { planRestart, type Level } from './restart-plan';
import { retentionCutoff, retentionSegments } from './retention';
import { Abandoned, retryWithBackoff } from './retry';
import { StatusReporter } from './status-reporter';
import type { DataflowDefinition, DataflowListener, DataflowMember, MemberStatus, SinkMember } from './types';

/** What the running dataflow is doing (shown in every member's status). */
export type DataflowPhase =
  'starting' | 'replaying' | 'catching up' | 'live' | 'retrying' | 'error' | 'stopped' | 'idle';

/** Counters for tests, benchmarks and the status line. */
export interface DataflowStats {
  readonly phase: DataflowPhase;
  /** Events read from the source and fed to the engine (including replayed ones). */
  readonly eventsRead: number;
  /** Events fed during replay whose outputs were discarded (already in every table). */
  readonly eventsReplayed: number;
  /** Events left out because they arrived after the retention window had passed their timestamp. */
  readonly eventsOutsideWindow: number;
  /** Batches run through the engine (catching up: steps; one commit may cover several). */
  readonly batchesComputed: number;
  readonly batchesCommitted: number;
  /** Inputs skipped because a user function threw, per member id. */
  readonly skipped: ReadonlyMap<string, number>;
  /** The offsets of the last commit. */
  readonly committedOffsets: OffsetMap;
  readonly watermark: number | null;
  /** Sinks dropped and rebuilt at this start, with the reason. */
  readonly rebuilt: readonly { readonly id: string; readonly reason: string }[];
  /** Why the dataflow halted (on error: stop, or an unexpected failure); null while fine. */
  readonly error: string | null;
  /** Retained engine state entries (`Graph.stateSize`), for metrics and benchmarks. */
  readonly stateSize: number;
}

/** A running dataflow. */
export interface RunningDataflow {
  /**
   * Stops reading, finishes the commits already computed (or abandons one that is retrying: an
   * uncommitted batch is simply read again at the next start), and resolves when no commit runs.
   */
  stop(): Promise<void>;
  /** Resolves when the dataflow has ended (stopped, halted on an error, or nothing to run). */
  readonly finished: Promise<void>;
  stats(): DataflowStats;
  /**
   * Resolves once every sink has caught up with the source and the dataflow follows it live (at
   * once when there is nothing to run); stays pending when the dataflow ends before that.
   */
  readonly live: Promise<void>;
}

/** Starts a dataflow; problems are reported through the listener, never thrown. */
export function startDataflow(definition: DataflowDefinition, listener: DataflowListener): RunningDataflow {
  return new Coordinator(definition, listener);
}

/** Which sinks a batch is written to, and whether taps send. */
interface Phase {
  readonly name: 'replaying' | 'catching up' | 'live';
  /** Sinks whose tables receive this phase's changes; the others already reflect these events. */
  readonly writing: ReadonlySet<string>;
  /** The retention cutoff at start: the phase reads only events after it (`TIME >`); null = all. While running, `this.cutoff` decides what is fed. */
  readonly cutoff: number | null;
  /** Tapped operators send their changes (only for events no earlier run has processed). */
  readonly taps: boolean;
}

class Coordinator implements RunningDataflow {
  readonly finished: Promise<void>;
  readonly live: Promise<void>;
  private resolveLive!: () => void;
  private readonly abort = new AbortController();
  private stopping = false;
  private readonly status: StatusReporter;
  private readonly settings: DataflowDefinition['settings'];
  /** Largest step over stored events (catch-up, replay); live steps use `settings.batchSize`. */
  private readonly catchUpBatchSize: number;
  private readonly source: EventSource;
  private built: BuiltDataflow | null = null;
  private databases = new Map<SinkDatabase, SinkMember[]>();
  private fingerprints = new Map<string, string>();
  private tracker = new OffsetTracker({});
  private watermark: number | null = null;
  private committedOffsets: OffsetMap = {};
  private present: OffsetMap = {};
  private phaseName: DataflowPhase = 'starting';
  private rebuilding = new Set<string>();
  private rebuilt: { id: string; reason: string }[] = [];
  /** Every database operation, in order; stop() awaits it. */
  private dbTail: Promise<void> = Promise.resolve();
  /** Commits queued or running. */
  private inFlight = 0;
  /** The queued commit that later batches of its phase join; null once it started. */
  private pending: PendingCommit<Phase> | null = null;
  /**
   * Catching up: the commit not queued yet, which the next steps join until it covers maxInFlight
   * steps' worth. A SQLite table with an index rewrites the index's touched pages in every
   * transaction: 1,250 rows per transaction cost ≈ 2.9 µs per row, 10,000 ≈ 1.7 µs (BENCHMARKS.md).
   */
  private held: { readonly commit: PendingCommit<Phase>; readonly timer: NodeJS.Timeout } | null = null;
  private wakeCapacity: (() => void) | null = null;
  /** Retention: the cutoff the engine state was compacted to (events at or below it are left out); null = none yet. */
  private cutoff: number | null = null;
  private eventsRead = 0;
  private eventsOutsideWindow = 0;
  private eventsReplayed = 0;
  private batchesComputed = 0;
  private batchesCommitted = 0;
  private readonly skipped = new Map<string, number>();
  private retryingDb: string | null = null;
  private failed: Error | null = null;

  constructor(
    private readonly definition: DataflowDefinition,
    private readonly listener: DataflowListener,
  ) {
    this.settings = definition.settings;
    this.catchUpBatchSize = this.settings.catchUpBatchSize ?? catchUpBatchSize(this.settings.batchSize);
    this.source = definition.source;
    this.status = new StatusReporter(listener);
    this.live = new Promise((resolve) => (this.resolveLive = resolve));
    this.finished = this.run().catch((e: unknown) => {
      if (e instanceof Abandoned || this.stopping) return;
      this.halt(`dataflow stopped: ${(e as Error).message ?? String(e)}`);
    });
  }

  stats(): DataflowStats {
    return {
      phase: this.phaseName,
      eventsRead: this.eventsRead,
      eventsReplayed: this.eventsReplayed,
      eventsOutsideWindow: this.eventsOutsideWindow,
      batchesComputed: this.batchesComputed,
      batchesCommitted: this.batchesCommitted,
      skipped: new Map(this.skipped),
      committedOffsets: this.committedOffsets,
      watermark: this.watermark,
      rebuilt: [...this.rebuilt],
      error: this.failed?.message ?? null,
      stateSize: this.built?.graph.stateSize() ?? 0,
    };
  }

  async stop(): Promise<void> {
    if (!this.stopping) {
      this.queueHeld(); // computed work is committed, not dropped
      this.stopping = true;
      this.abort.abort();
      this.wakeCapacity?.();
    }
    await this.dbTail;
    if (this.phaseName !== 'error') this.phaseName = 'stopped';
    this.status.close();
  }

  // ---- start-up ----------------------------------------------------------------------------

  private async run(): Promise<void> {
    const built = buildDataflow(this.definition.members);
    this.built = built;
    for (const f of built.failures) {
      if (f.cause) this.listener.error(f.memberId, f.message);
      this.status.set(
        f.memberId,
        { fill: 'red', shape: f.cause ? 'dot' : 'ring', text: f.cause ? 'error: see debug' : 'input failed' },
        true,
      );
    }
    if (built.sinks.length === 0 && built.taps.length === 0) {
      this.phaseName = 'idle';
      for (const m of this.definition.members) {
        if (!built.failures.some((f) => f.memberId === m.id))
          this.status.set(m.id, { fill: 'grey', shape: 'ring', text: 'no db-sink downstream' });
      }
      this.listener.log('info', 'dataflow has no db-sink or tapped node that runs: nothing to compute');
      this.resolveLive();
      return;
    }
    this.databases = sinksByDatabase(built.sinks);
    for (const s of built.sinks) this.fingerprints.set(s.id, sinkFingerprint(s, built.byId));
    this.setPhase('starting');

    let levels: Level[];
    try {
      levels = await this.openSinks(built.sinks);
    } catch (e) {
      if (e instanceof Abandoned || this.stopping) return;
      const message = `opening the tables failed: ${errorText(e)}; the dataflow stopped`;
      const blamed = built.sinks.filter((s) => errorText(e).includes(`"${s.table.name}"`));
      for (const s of blamed.length > 0 ? blamed : built.sinks)
        this.listener.error(s.id, `db-sink ${s.label}: ${message}`);
      this.halt(message, blamed[0]?.id);
      return;
    }
    if (this.stopping) return;
    this.present = await this.retrying('source', () => this.source.presentOffsets());
    if (this.stopping) return;
    this.warnIfAhead(levels, built.sinks);
    // The stored watermark's cutoff: the replay rebuilds exactly the events the state held.
    const cutoff = retentionCutoff(this.watermark, this.settings.retentionMicros);
    this.cutoff = cutoff;
    const query = unionQuery(built.sources.map((s) => s.member.query));
    const effective: Level[] = levels.length > 0 ? [...levels] : [{ offsets: this.present, sinkIds: [] }];

    // Feed what every table already reflects, writing nothing: this only rebuilds operator state.
    const lowest = effective[0] as Level;
    if (Object.keys(lowest.offsets).length > 0) {
      await this.readBounded(query, {}, lowest.offsets, { name: 'replaying', writing: new Set(), cutoff, taps: false });
    }
    // Bring the sinks at each lower level up to the next level; the higher ones already have it.
    const writing = new Set<string>();
    for (let i = 0; i + 1 < effective.length && !this.stopping; i++) {
      for (const id of (effective[i] as Level).sinkIds) writing.add(id);
      await this.readBounded(query, (effective[i] as Level).offsets, (effective[i + 1] as Level).offsets, {
        name: 'catching up',
        writing: new Set(writing),
        cutoff,
        taps: false,
      });
    }
    if (this.stopping) return;
    for (const s of built.sinks) writing.add(s.id);
    await this.follow(query, { name: 'catching up', writing, cutoff: null, taps: true });
  }

  /**
   * Reads every sink's state, then drops the tables to rebuild and creates missing ones (in that
   * order, so a table whose columns changed is dropped before the new columns are created).
   */
  private async openSinks(sinks: readonly SinkMember[]): Promise<Level[]> {
    const states = new Map<string, SinkState>();
    await Promise.all(
      [...this.databases].map(([db, list]) =>
        this.dbWork(db, () =>
          db.transaction(async (tx) => {
            for (const s of list) states.set(s.id, await tx.readState(s.table));
          }),
        ),
      ),
    );
    const plan = planRestart(
      sinks.map((s) => ({
        id: s.id,
        state: states.get(s.id) as SinkState,
        fingerprint: this.fingerprints.get(s.id) as string,
      })),
    );
    this.watermark = plan.watermark;
    this.rebuilt = plan.rebuild.map((r) => ({ ...r }));
    const rebuild = new Map(plan.rebuild.map((r) => [r.id, r.reason]));
    const byId = new Map(sinks.map((s) => [s.id, s]));
    for (const [id, reason] of rebuild) {
      const s = byId.get(id) as SinkMember;
      this.rebuilding.add(id);
      this.listener.log(
        'warn',
        `db-sink ${s.label} (${id}): rebuilding table ${s.table.name} in ${s.database.label} from the events, because ${reason}`,
      );
    }
    // Rebuilt sinks are dropped and recreated empty; new ones get their fingerprint at once.
    await Promise.all(
      [...this.databases].map(([db, list]) =>
        this.dbWork(db, () =>
          db.transaction(async (tx) => {
            for (const s of list) {
              if (rebuild.has(s.id)) await tx.dropTable(s.table);
              await tx.ensureTable(s.table);
              if (rebuild.has(s.id) || (states.get(s.id) as SinkState).fingerprint === null) {
                await tx.writeState(s.table, {
                  offsets: {},
                  fingerprint: this.fingerprints.get(s.id) as string,
                  watermark: null,
                });
              }
            }
          }),
        ),
      ),
    );
    return plan.levels.map((l) => ({ offsets: l.offsets, sinkIds: [...l.sinkIds] }));
  }

  /** Tables that reflect events the source does not have: the log was replaced or reset. */
  private warnIfAhead(levels: readonly Level[], sinks: readonly SinkMember[]): void {
    for (const level of levels) {
      if (covers(this.present, level.offsets)) continue;
      const streams = Object.keys(level.offsets).filter(
        (s) => (level.offsets[s] as number) > (offsetOf(this.present, s) ?? -1),
      );
      for (const id of level.sinkIds) {
        const sink = sinks.find((s) => s.id === id);
        const message = `table ${sink?.table.name ?? id} reflects events the event source does not have (${streams.slice(0, 3).join(', ')}${streams.length > 3 ? ', …' : ''}): was the event log replaced or reset? Change the db-sink's version to rebuild the table from the current log.`;
        this.listener.log('warn', message);
        if (sink) this.listener.error(sink.id, message);
      }
    }
  }

  // ---- reading -------------------------------------------------------------------------------

  /** Stored events in (lower, upper], through the engine; sinks in `phase.writing` receive the changes. */
  private async readBounded(query: string, lower: OffsetMap, upper: OffsetMap, phase: Phase): Promise<void> {
    this.tracker = new OffsetTracker(lower);
    this.setPhase(phase.name, phase);
    const text =
      phase.cutoff === null
        ? query
        : `FROM (${printExpr(parseQuery(query).expr)}) & TIME > ${formatRfc3339Micros(phase.cutoff)}`;
    await this.retrying('source', async () => {
      const from = this.tracker.snapshot();
      const options = { signal: this.abort.signal, onDiagnostic: this.onDiagnostic };
      const chunks = this.source.queryBatches
        ? this.source.queryBatches(text, from, upper, options)
        : chunksOf(this.source.query(text, from, upper, options));
      // Stored events are all available: larger steps save engine work (a reduce recomputes a
      // touched group once per step) and commits.
      await readInBatches<ActyxEvent>(
        chunks,
        { batchSize: this.catchUpBatchSize, batchMs: this.settings.batchMs, signal: this.abort.signal },
        (events, end) => this.fatalOnError(this.processBatch(events, end ? upper : null, phase)),
      );
    });
  }

  /** Stored events after `lower`, then live ones, forever (until stopped). */
  private async follow(query: string, phase: Phase): Promise<void> {
    let current = phase;
    this.setPhase(current.name, current);
    await this.retrying('source', async () => {
      const from = this.tracker.snapshot();
      const options = { signal: this.abort.signal, onDiagnostic: this.onDiagnostic };
      const chunks = this.source.subscribeBatches
        ? this.source.subscribeBatches(query, from, options)
        : chunksOf(this.source.subscribe(query, from, options));
      await readInBatches<SubscriptionItem>(
        chunks,
        {
          // Large steps until caught up with the stored events, then small ones (latency).
          batchSize: () => (current.name === 'live' ? this.settings.batchSize : this.catchUpBatchSize),
          batchMs: this.settings.batchMs,
          signal: this.abort.signal,
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
          await this.fatalOnError(this.processBatch(events, caughtUp, current));
          if (caughtUp !== null) {
            // Also after a reconnect: "retrying" gives way to "live" even when no event follows.
            current = { ...current, name: 'live' };
            await this.whenCommitted();
            this.present = this.tracker.snapshot();
            this.setPhase('live', current);
            this.resolveLive();
          }
        },
      );
      if (!this.stopping) throw new Error('the event subscription ended unexpectedly');
    });
  }

  private readonly onDiagnostic = (d: {
    severity: 'info' | 'warning' | 'error';
    message: string;
    detail?: string;
  }): void => {
    const text = d.detail ? `${d.message} (${d.detail})` : d.message;
    this.listener.log(d.severity === 'info' ? 'info' : 'warn', `event source: ${text}`);
    if (d.severity === 'info') return;
    for (const s of this.built?.sources ?? []) {
      this.status.set(s.member.id, {
        fill: d.severity === 'error' ? 'red' : 'yellow',
        shape: 'ring',
        text: shorten(d.message),
      });
    }
  };

  // ---- processing ----------------------------------------------------------------------------

  /**
   * Runs one batch through the engine and queues its commit; waits while too many commits are
   * pending. With retention, the batch runs in one step per cutoff it reaches, the state compacted
   * to the cutoff before the step (see retentionSegments).
   */
  private async processBatch(events: readonly ActyxEvent[], endOffsets: OffsetMap | null, phase: Phase): Promise<void> {
    const segments = retentionSegments(events, this.watermark, this.cutoff, this.settings.retentionMicros);
    for (let s = 0; s < segments.length; s++) {
      if (this.stopping) return;
      const { from, to, compactTo } = segments[s] as (typeof segments)[number];
      if (compactTo !== null) {
        // The engine forgets times below its argument; events at the cutoff are outside the window
        // too (timestamps are integers: both sources reject others).
        (this.built as BuiltDataflow).graph.compact(compactTo + 1);
        this.cutoff = compactTo;
      }
      await this.processSegment(events, from, to, s === segments.length - 1 ? endOffsets : null, phase);
    }
  }

  /** Events [from, to) in one engine step, their changes joined to a commit. */
  private async processSegment(
    events: readonly ActyxEvent[],
    from: number,
    to: number,
    endOffsets: OffsetMap | null,
    phase: Phase,
  ): Promise<void> {
    if (this.stopping) return;
    const built = this.built as BuiltDataflow;
    const count = to - from;
    // Left out: events the window has passed (late ones; at start, the ones before the replayed window).
    const cut = this.cutoff;
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
    for (let i = from; i < to; i++) {
      const ev = events[i] as ActyxEvent;
      this.tracker.advance(ev);
      if (cut !== null && ev.timestamp <= cut) {
        if (phase.cutoff === null || ev.timestamp > phase.cutoff) this.eventsOutsideWindow++; // (the replay's query leaves the others out already)
        continue;
      }
      if (this.watermark === null || ev.timestamp > this.watermark) this.watermark = ev.timestamp;
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
    if (endOffsets !== null) this.tracker.include(endOffsets);
    this.eventsRead += count;
    this.batchesComputed++;
    if (phase.writing.size === 0 && !phase.taps) this.eventsReplayed += fed;

    let outputs: ReadonlyMap<string, Batch> = new Map();
    if (fed > 0) {
      try {
        // Turns of the event loop during long steps: a commit in flight sends its next statement.
        const result = await built.graph.step(inputs, { onError: this.settings.onError, pause: nextTurn });
        outputs = result.outputs;
        for (const s of result.skipped) this.reportSkipped(s, phase);
      } catch (e) {
        if (e instanceof OperatorError) {
          const member = this.memberFor(e.operator);
          const message = `${member ? describeMember(member) : `operator ${e.operator}`} failed on ${describeValue(e.value)}: ${errorText(e.cause)}; the dataflow stopped (on error: stop)`;
          if (member) this.listener.error(member.id, message, contextOf(e.value));
          this.halt(message, member?.id);
          throw new Abandoned();
        }
        throw e;
      }
    }
    if (this.stopping) return;
    const offsets = this.tracker.snapshot();
    const watermark = this.watermark;
    const perDb: [SinkDatabase, SinkWrite[]][] = [];
    for (const [db, sinks] of this.databases) {
      const writes: SinkWrite[] = [];
      for (const s of sinks) {
        if (!phase.writing.has(s.id)) continue;
        writes.push({
          sink: s,
          changes: outputs.get(sinkOutput(s.id)) ?? [],
          state: { offsets, fingerprint: this.fingerprints.get(s.id) as string, watermark },
        });
      }
      if (writes.length > 0) perDb.push([db, writes]);
    }
    const taps = phase.taps
      ? built.taps.map((t) => [t.id, outputs.get(tapOutput(t.id)) ?? []] as const).filter(([, b]) => b.length > 0)
      : [];
    if (perDb.length === 0 && taps.length === 0) return;
    const waiting = this.pending;
    if (waiting !== null && waiting.phase === phase && !waiting.started) waiting.join(perDb, taps, offsets, count);
    else {
      if (this.held !== null && this.held.commit.phase !== phase) this.queueHeld();
      if (this.held === null) {
        const timer = setTimeout(() => this.queueHeld(), HOLD_MS);
        timer.unref();
        this.held = { commit: new PendingCommit(phase, perDb, taps, offsets, count), timer };
      } else this.held.commit.join(perDb, taps, offsets, count);
      const full = this.held.commit.events >= this.settings.maxInFlight * this.catchUpBatchSize;
      if (phase.name === 'live' || endOffsets !== null || full) this.queueHeld();
    }
    // Live, one commit at a time: what arrives during a commit goes into the next batch (group
    // commit). Many small queued commits would add their times up in the latency. Catching up,
    // a commit gathers maxInFlight steps' worth (or the rest of the range, or what came within
    // HOLD_MS) before it is queued, and steps join a queued commit that waits (pending-commit.ts).
    const limit = phase.name === 'live' ? 1 : this.settings.maxInFlight;
    while (!this.stopping && (this.inFlight >= limit || (this.pending?.events ?? 0) >= limit * this.catchUpBatchSize)) {
      await new Promise<void>((resolve) => (this.wakeCapacity = resolve));
      this.wakeCapacity = null;
    }
  }

  /** Queues the held commit: it runs after the database work before it. */
  private queueHeld(): void {
    const held = this.held;
    if (held === null) return;
    clearTimeout(held.timer);
    this.held = null;
    if (this.failed !== null) return; // halted: nothing more is committed
    const { commit } = held;
    const phase = commit.phase;
    this.pending = commit;
    this.inFlight++;
    void this.dbWork(null, () => {
      commit.started = true;
      if (this.pending === commit) this.pending = null;
      this.wakeCapacity?.();
      return this.commit(commit.writes(), commit.taps(), commit.offsets, phase);
    })
      .catch((e: unknown) => this.failCommit(e, commit.writes()))
      .finally(() => {
        this.inFlight--;
        this.wakeCapacity?.();
      });
  }

  private async commit(
    perDb: readonly [SinkDatabase, SinkWrite[]][],
    taps: readonly (readonly [string, Batch])[],
    offsets: OffsetMap,
    phase: Phase,
  ): Promise<void> {
    // Every database's transaction settles before this commit counts as done (stop() waits for it).
    const settled = await Promise.allSettled(
      perDb.map(([db, writes]) => {
        const attempts: CommitAttempts = { rows: null };
        return this.retrying(db.label, (attempt) => commitToDatabase(db, writes, attempt > 0, attempts)).then(
          (r) => [writes, r] as const,
        );
      }),
    );
    const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
    const results = settled.map(
      (r) => (r as PromiseFulfilledResult<readonly [SinkWrite[], Awaited<ReturnType<typeof commitToDatabase>>]>).value,
    );
    if (this.retryingDb !== null) {
      this.listener.log('info', `database ${this.retryingDb} is reachable again; continuing`);
      this.retryingDb = null;
    }
    this.committedOffsets = offsets;
    this.batchesCommitted++;
    for (const [writes, r] of results) {
      if (r.rows === null) {
        this.listener.log(
          'warn',
          `a commit to ${writes[0]?.sink.database.label} had already succeeded before its acknowledgement was lost, and its row changes are unknown: no message is sent for it`,
        );
        continue;
      }
      for (const w of writes) {
        const rows = r.rows.get(w.sink.id) ?? [];
        if (rows.length > 0) this.listener.committed(w.sink.id, { rows, offsets });
      }
    }
    for (const [id, batch] of taps)
      this.listener.committed(id, { operators: batch.map(([v, d]) => [v, d] as const), offsets });
    this.setPhase(phase.name, phase);
  }

  /** A commit that cannot succeed (bad data or schema): name the sinks and halt; nothing was written. */
  private failCommit(e: unknown, perDb: readonly [SinkDatabase, SinkWrite[]][]): void {
    if (e instanceof Abandoned || this.stopping) return;
    const sinks = perDb.flatMap(([, writes]) => writes.map((w) => w.sink));
    const culprit =
      e instanceof SinkDataError || e instanceof SinkDatabaseError ? sinks.filter((s) => s.table.name === e.table) : [];
    const blamed = culprit.length > 0 ? culprit : sinks;
    const message = `commit failed and cannot succeed by retrying: ${errorText(e)}; the dataflow stopped (fix the logic or the table, then deploy again)`;
    for (const s of blamed) this.listener.error(s.id, `db-sink ${s.label}: ${message}`);
    this.halt(message, blamed[0]?.id);
  }

  /** Errors of processing (not of reading) are not retried: they would fail again the same way. */
  private async fatalOnError(work: Promise<void>): Promise<void> {
    try {
      await work;
    } catch (e) {
      if (!(e instanceof Abandoned)) this.halt(`dataflow stopped: ${errorText(e)}`);
      throw new Abandoned();
    }
  }

  private async whenCommitted(): Promise<void> {
    await this.dbTail;
  }

  // ---- errors, retries, status -----------------------------------------------------------------

  /** Runs database work in order with every other database work (stop() waits for the tail). */
  private dbWork<T>(db: SinkDatabase | null, fn: () => Promise<T>): Promise<T> {
    const run = this.dbTail.then(() => (db === null ? fn() : this.retrying(db.label, fn)));
    this.dbTail = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  private retrying<T>(what: string, fn: (attempt: number) => Promise<T>): Promise<T> {
    return retryWithBackoff(fn, {
      isFatal: (e) => what !== 'source' && isPermanentSinkError(e),
      stopped: () => this.stopping,
      stopSignal: this.abort.signal,
      onRetry: (error, attempt, delay) => {
        const message = `${what === 'source' ? 'event source' : `database ${what}`} failed (attempt ${attempt}): ${errorText(error)}; retrying in ${delay} ms`;
        this.listener.log('warn', message);
        if (what !== 'source') this.retryingDb = what;
        if (attempt === 1) {
          for (const m of this.affectedBy(what)) this.listener.error(m.id, message);
        }
        if (this.phaseName !== 'error') this.phaseName = 'retrying';
        for (const m of this.runningMembers())
          this.status.set(
            m.id,
            { fill: 'yellow', shape: 'ring', text: shorten(`retrying: ${errorText(error)}`) },
            attempt === 1,
          );
      },
    });
  }

  /** The members a database or source problem belongs to (its sinks, or the source nodes). */
  private affectedBy(what: string): DataflowMember[] {
    const built = this.built;
    if (built === null) return [];
    if (what === 'source') return built.sources.map((s) => s.member);
    return built.sinks.filter((s) => s.database.label === what);
  }

  private reportSkipped(skipped: SkippedInput, phase: Phase): void {
    const { operator, value, error, input } = skipped;
    const member = this.memberFor(operator);
    const id = member?.id ?? operator;
    this.skipped.set(id, (this.skipped.get(id) ?? 0) + 1);
    // Replayed inputs were reported by the run that first processed them.
    if (phase.writing.size === 0 && !phase.taps) return;
    // Per-group operators (reduce, scan) name the record left out and its group.
    const what =
      input === undefined
        ? describeValue(value)
        : `${describeValue(input)} in group ${abbreviate(JSON.stringify(value))}`;
    const message = `${member ? describeMember(member) : `operator ${operator}`} failed on ${what}: ${errorText(error)}; skipped`;
    if (member) this.listener.error(member.id, message, contextOf(input === undefined ? value : input));
    else this.listener.log('warn', message);
  }

  /** Maps an engine operator name back to a member (dd nodes name their operators by node id). */
  private memberFor(operator: string): DataflowMember | undefined {
    const byId = this.built?.byId;
    if (!byId) return undefined;
    const direct = byId.get(operator);
    if (direct) return direct;
    for (const [id, m] of byId) if (operator.startsWith(id)) return m;
    return undefined;
  }

  private halt(message: string, memberId?: string): void {
    this.phaseName = 'error';
    this.failed = new Error(message);
    this.listener.log('warn', message);
    for (const m of this.runningMembers()) {
      this.status.set(
        m.id,
        m.id === memberId
          ? { fill: 'red', shape: 'dot', text: 'error: stopped' }
          : { fill: 'red', shape: 'ring', text: 'stopped (error)' },
        true,
      );
    }
    this.stopping = true;
    this.abort.abort();
    this.wakeCapacity?.();
  }

  private runningMembers(): DataflowMember[] {
    const built = this.built;
    if (built === null) return [];
    const failed = new Set(built.failures.map((f) => f.memberId));
    return this.definition.members.filter((m) => !failed.has(m.id));
  }

  private setPhase(name: DataflowPhase, phase?: Phase): void {
    if (this.phaseName === 'error' || this.stopping) return;
    this.phaseName = name;
    const behind = eventsBetween(this.committedOffsets, this.present);
    for (const m of this.runningMembers()) {
      let status: MemberStatus;
      if (m.role === 'sink' && phase !== undefined && !phase.writing.has(m.id)) {
        status = { fill: 'blue', shape: 'ring', text: 'replaying' };
      } else if (name === 'live') {
        const n = this.skipped.get(m.id) ?? 0;
        status = { fill: 'green', shape: 'dot', text: n > 0 ? `live, ${n} skipped` : 'live' };
      } else if (name === 'replaying') {
        status = { fill: 'blue', shape: 'ring', text: 'replaying' };
      } else if (name === 'catching up') {
        const verb = m.role === 'sink' && this.rebuilding.has(m.id) ? 'rebuilding' : 'catching up';
        const n = this.skipped.get(m.id) ?? 0;
        status = {
          fill: 'yellow',
          shape: 'ring',
          text: `${verb} (${behind.toLocaleString('en-US')} events behind${n > 0 ? `, ${n} skipped` : ''})`,
        };
      } else {
        status = { fill: 'grey', shape: 'ring', text: name };
      }
      this.status.set(m.id, status);
    }
    if (name === 'live') this.rebuilding.clear();
  }
}

/** Sink errors a retry cannot fix. */
function isPermanentSinkError(e: unknown): boolean {
  return e instanceof SinkDataError || e instanceof SinkConfigError || (e instanceof SinkDatabaseError && !e.retryable);
}

/** A held catch-up commit is queued at the latest after this long (a source that stalls mid-range). */
const HOLD_MS = 1000;

/** A turn of the event loop, given to a long engine step (StepOptions.pause). */
const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * An event as the engine's input value (the contract in docs/architecture.md). Sources hand over fresh plain objects with exactly the
 * event's fields (parsed from the log's JSON or built by the Actyx client), and the engine never
 * changes a value: the event itself is the value, without a copy per event.
 */
export function eventValue(ev: ActyxEvent): Value {
  return ev as unknown as Value;
}

function describeMember(m: DataflowMember): string {
  return `${m.type} ${m.label} (${m.id})`;
}

function isEventValue(v: Value): v is { readonly [k: string]: Value } {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && 'stream' in v && 'offset' in v && 'lamport' in v;
}

function describeValue(v: Value): string {
  if (isEventValue(v)) {
    return `event ${String(v.stream)}/${String(v.offset)} (lamport ${String(v.lamport)}) ${abbreviate(JSON.stringify(v.payload))}`;
  }
  return `value ${abbreviate(JSON.stringify(v))}`;
}

function contextOf(v: Value): { event?: ActyxEvent; value?: Value } {
  return isEventValue(v) ? { event: v as unknown as ActyxEvent, value: v } : { value: v };
}

function abbreviate(s: string | undefined): string {
  if (s === undefined) return 'undefined';
  return s.length > 200 ? `${s.slice(0, 200)}…` : s;
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function shorten(s: string): string {
  return s.length > 32 ? `${s.slice(0, 31)}…` : s;
}
