/**
 * The commit pipeline of a running dataflow: every database operation runs in order (`dbWork`, the
 * tail stop() waits for); computed changes are held, then queued as commits; a commit writes every
 * sink's changes with its offsets in one transaction per database, retried until it succeeds, and
 * then the db-sinks and taps send. Live, one commit at a time; catching up, a commit gathers
 * maxInFlight steps' worth, and steps computed while a queued commit waits join it
 * (pending-commit.ts). Back-pressure: `add` waits while too much is in flight.
 */
import { errorText } from '../core/message-text';
import type { Batch, StepState } from '../engine/types';
import type { OffsetDelta, OffsetMap } from '../core/offset-map';
import { SinkDatabaseError, SinkDataError } from '../sinks/errors';
import { LeaseLostError } from '../sinks/lease-sql';
import type { LeaseToken, SinkDatabase, SinkTransaction } from '../sinks/types';
import { commitToDatabase, type CommitAttempts, type SinkWrite } from './commit';
import type { DataflowContext, Phase } from './context';
import type { DataflowStatus } from './dataflow-status';
import { PendingCommit, type StepWrite } from './pending-commit';
import type { StepOffsets } from './offset-tracker';
import type { SinkMember } from './types';
import {
  commitStateBound,
  DEFAULT_STATE_CACHE_BYTES,
  STATE_FORMAT,
  STATE_HINT_MS,
  StateWrite,
  warmUpHint,
} from './durable-state';
import { Abandoned } from './retry';

/** A held catch-up commit is queued at the latest after this long (a source that stalls mid-range). */
const HOLD_MS = 1000;

export type DatabaseWrites = [SinkDatabase, SinkWrite[]];
/** A step's writes per database (their offsets are the commit's: PendingCommit.writes). */
export type DatabaseStepWrites = [SinkDatabase, StepWrite[]];
export type TapChanges = readonly [string, Batch];

export class CommitPipeline {
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
  /**
   * A commit failed or was abandoned: the commits queued after it are not attempted (they would
   * write later changes without its changes; their events are read again at the next start).
   */
  private gaveUp = false;
  /** Commits held, queued or running, oldest first (for the lag in seconds). */
  private readonly open: PendingCommit<Phase>[] = [];
  /**
   * Durable state, live: from when (performance.now()) a live commit builds the warm-up hint; null
   * until the first live commit (liveHint).
   */
  private hintDue: number | null = null;
  /** Which units the last hint written named (WarmUpHint.names); null: none yet. */
  private hintNames: string | null = null;

  constructor(
    private readonly ctx: DataflowContext,
    private readonly status: DataflowStatus,
  ) {
    // A stop or halt wakes a step waiting for capacity (it then sees `stopping`).
    ctx.abort.signal.addEventListener('abort', () => this.wakeCapacity?.(), { once: true });
  }

  /**
   * Joins one step's changes to a commit: the queued one of its phase that has not started, else
   * the held one, which is queued when live, at the end of a range (`rangeEnd`) or when full. Then
   * waits while too many commits are pending.
   */
  async add(
    phase: Phase,
    perDb: readonly DatabaseStepWrites[],
    taps: readonly TapChanges[],
    offsets: OffsetMap | StepOffsets,
    count: number,
    rangeEnd: boolean,
    state: StepState | undefined = undefined,
    oldestMicros = Infinity,
  ): Promise<void> {
    const ctx = this.ctx;
    // With durable state: the commit holds enough state text to be committed (commitStateBound:
    // COMMIT_STATE_CHARS, less while the heap is near its limit).
    const stateBound = ctx.durable === null ? Infinity : commitStateBound(ctx.settings.commitStateChars);
    const stateFull = (c: PendingCommit<Phase>): boolean => (c.state?.chars ?? 0) >= stateBound;
    const waiting = this.pending;
    if (waiting !== null && waiting.phase === phase && !waiting.started) {
      waiting.join(perDb, taps, offsets, count);
      waiting.spans(oldestMicros);
      waiting.state?.add(state, ctx.watermark);
    } else {
      if (this.held !== null && this.held.commit.phase !== phase) this.queueHeld();
      if (this.held === null) {
        const timer = setTimeout(() => this.queueHeld(), HOLD_MS);
        timer.unref();
        const write = ctx.durable === null ? null : new StateWrite(ctx.durable.scope, ctx.stateCutoff, ctx.watermark);
        write?.add(state, ctx.watermark);
        this.held = { commit: new PendingCommit(phase, perDb, taps, offsets, count, write), timer };
        this.open.push(this.held.commit);
      } else {
        this.held.commit.join(perDb, taps, offsets, count);
        this.held.commit.state?.add(state, ctx.watermark);
      }
      this.held.commit.spans(oldestMicros);
      const full =
        this.held.commit.events >= ctx.settings.maxInFlight * ctx.catchUpBatchSize || stateFull(this.held.commit);
      if (phase.name === 'live' || rangeEnd || full) this.queueHeld();
    }
    // Live, one commit at a time: what arrives during a commit goes into the next batch (group
    // commit). Many small queued commits would add their times up in the latency. Catching up,
    // a commit gathers maxInFlight steps' worth (with durable state, at most commitStateBound()
    // characters of state text; or the rest of the range, or what came within HOLD_MS) before it is queued, and
    // steps join a queued commit that waits (pending-commit.ts).
    const limit = phase.name === 'live' ? 1 : ctx.settings.maxInFlight;
    while (
      !ctx.stopping &&
      (this.inFlight >= limit ||
        (this.pending !== null && (this.pending.events >= limit * ctx.catchUpBatchSize || stateFull(this.pending))))
    ) {
      await new Promise<void>((resolve) => (this.wakeCapacity = resolve));
      this.wakeCapacity = null;
    }
  }

  /** Queues the held commit: it runs after the database work before it. */
  queueHeld(): void {
    const held = this.held;
    if (held === null) return;
    clearTimeout(held.timer);
    this.held = null;
    const { commit } = held;
    if (this.ctx.failed !== null) {
      this.open.splice(this.open.indexOf(commit), 1);
      return; // halted: nothing more is committed
    }
    const phase = commit.phase;
    this.pending = commit;
    this.inFlight++;
    void this.dbWork(null, () => {
      commit.started = true;
      if (this.pending === commit) this.pending = null;
      this.wakeCapacity?.();
      if (this.gaveUp || this.ctx.failed !== null) throw new Abandoned();
      return this.commit(commit.writes(), commit.taps(), commit.offsets, phase, commit.state, commit.offsetsDelta);
    })
      .catch((e: unknown) => {
        this.gaveUp = true;
        this.failCommit(e, commit.sinkWrites(), commit.events);
      })
      .finally(() => {
        this.open.splice(this.open.indexOf(commit), 1);
        this.inFlight--;
        this.wakeCapacity?.();
      });
  }

  /**
   * The least event timestamp (µs) of the work computed and not committed yet (held, queued or
   * running commits); null when there is none.
   */
  oldestUncommittedMicros(): number | null {
    let oldest = Infinity;
    for (const c of this.open) if (c.oldestMicros < oldest) oldest = c.oldestMicros;
    return oldest === Infinity ? null : oldest;
  }

  /** Runs database work in order with every other database work (stop() waits for the tail). */
  dbWork<T>(db: SinkDatabase | null, fn: () => Promise<T>): Promise<T> {
    const run = this.dbTail.then(() => (db === null ? fn() : this.status.retrying(db.label, fn)));
    this.dbTail = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  /** Resolves when the database work queued so far has settled. */
  async whenCommitted(): Promise<void> {
    await this.dbTail;
  }

  private async commit(
    perDb: readonly DatabaseWrites[],
    taps: readonly TapChanges[],
    offsets: OffsetMap,
    phase: Phase,
    state: StateWrite | null,
    delta: OffsetDelta | null,
  ): Promise<void> {
    const ctx = this.ctx;
    const durable = ctx.durable;
    // Durable state: the level this commit brings the scope to, written in H's transaction.
    const stateWrite =
      durable === null || state === null
        ? null
        : {
            scope: durable.scope,
            level: {
              format: STATE_FORMAT,
              fingerprint: durable.fingerprint,
              offsets,
              watermark: state.watermark,
              cutoff: state.cutoff,
              ...(delta !== null ? { delta } : {}),
            },
            changes: state.changes(),
            hint: phase.name === 'live' ? this.liveHint() : null,
          };
    // Started before any transaction's fencing check: a successful commit extended the lease from then on.
    const startedMs = Date.now();
    // Every database's transaction settles before this commit counts as done (stop() waits for it).
    const settled = await Promise.allSettled(
      perDb.map(([db, writes]) => {
        const attempts: CommitAttempts = { rows: null };
        const own = durable !== null && db === durable.db ? stateWrite : null;
        // Work computed before a stop is committed: the first attempt runs even while stopping.
        return this.status
          .retrying(
            db.label,
            (attempt) => commitToDatabase(db, writes, attempt > 0, attempts, this.fenceFor(db), own),
            {
              attemptWhenStopped: true,
            },
          )
          .then((r) => [writes, r] as const);
      }),
    );
    const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
    const results = settled.map(
      (r) => (r as PromiseFulfilledResult<readonly [SinkWrite[], Awaited<ReturnType<typeof commitToDatabase>>]>).value,
    );
    if (ctx.retryingDb !== null) {
      ctx.listener.log('info', `database ${ctx.retryingDb} is reachable again; continuing`);
      ctx.retryingDb = null;
    }
    for (const [db] of perDb) ctx.fencing?.confirmed?.(db, startedMs);
    ctx.committedOffsets = offsets;
    ctx.batchesCommitted++;
    if (stateWrite !== null && state !== null) {
      ctx.stateCutoff = state.cutoff;
      // The entries of the steps in this commit are durable: they may be evicted now.
      if (state.step > 0) ctx.built?.graph.release(state.step);
    }
    for (const [writes, r] of results) {
      if (r.rows === null) {
        ctx.listener.log(
          'warn',
          `a commit to ${writes[0]?.sink.database.label} had already succeeded before its acknowledgement was lost, and its row changes are unknown: no message is sent for it`,
        );
        continue;
      }
      for (const w of writes) {
        const rows = r.rows.get(w.sink.id) ?? [];
        if (rows.length > 0) ctx.listener.committed(w.sink.id, { rows, offsets });
      }
    }
    for (const [id, batch] of taps)
      ctx.listener.committed(id, { operators: batch.map(([v, d]) => [v, d] as const), offsets });
    this.status.setPhase(phase.name, phase, delta);
  }

  /**
   * Durable state, live: the warm-up hint this commit writes with its state (the units the state
   * cache holds now), once `stateHintMs` (default STATE_HINT_MS) has passed since the first live
   * commit or the last hint built, unless it names the units the last one written named; else
   * null. A crash then leaves a hint at most that old. (A commit that fails is retried with it, or
   * the dataflow halts.)
   */
  private liveHint(): string | null {
    const ctx = this.ctx;
    const now = performance.now();
    const interval = ctx.settings.stateHintMs ?? STATE_HINT_MS;
    this.hintDue ??= now + interval;
    const graph = ctx.built?.graph;
    if (now < this.hintDue || graph === undefined) return null;
    this.hintDue = now + interval;
    const units = graph.hotUnits();
    if (units.length === 0) return null;
    const hint = warmUpHint(units, ctx.settings.stateCacheBytes ?? DEFAULT_STATE_CACHE_BYTES);
    if (hint.names === this.hintNames) return null;
    this.hintNames = hint.names;
    return hint.text;
  }

  /** The fencing token a transaction on `db` checks (none without a lease). */
  fenceFor(db: SinkDatabase): LeaseToken | undefined {
    const fencing = this.ctx.fencing;
    if (fencing === null) return undefined;
    const token = fencing.token(db);
    // NB: with a lease, no transaction runs without its token (LeasedDataflow acquires every
    // database's lease before it starts the coordinator).
    if (token === undefined) throw new Error(`no lease held in ${db.label}: nothing is written there`);
    return token;
  }

  /** Checks the lease first in a transaction on `db` (nothing without a lease). */
  async fenceIn(db: SinkDatabase, tx: SinkTransaction): Promise<void> {
    const fence = this.fenceFor(db);
    if (fence !== undefined) await tx.fence(fence);
  }

  /** For rows the table cannot hold: which nodes produced them (the sink's inputs). */
  private producers(sink: SinkMember, e: unknown): string {
    if (!(e instanceof SinkDataError)) return '';
    const byId = this.ctx.built?.byId;
    const names = sink.inputs.map((id) => {
      const m = byId?.get(id);
      return m ? `${m.label} (${m.type})` : id;
    });
    return names.length > 0 ? `; the rows came from ${names.join(', ')}` : '';
  }

  /**
   * A commit that cannot succeed (bad data or schema): name the sinks and halt; nothing was written.
   * While stopping, a commit that failed its one attempt is logged: its events are read again at
   * the next start.
   */
  private failCommit(e: unknown, perDb: readonly DatabaseStepWrites[], events: number): void {
    if (e instanceof Abandoned) return;
    // Taken over: the new holder continues from the committed offsets (standby, no halt).
    if (e instanceof LeaseLostError) return this.ctx.leaseLost(e);
    if (this.ctx.stopping) {
      const where = [...new Set(perDb.map(([db]) => db.label))].join(', ');
      this.ctx.listener.log(
        'warn',
        `stopping: a commit of ${events.toLocaleString('en-US')} events to ${where} failed: ${errorText(e)}; the tables it did not reach read those events again at the next start`,
      );
      return;
    }
    const sinks = perDb.flatMap(([, writes]) => writes.map((w) => w.sink));
    const culprit =
      e instanceof SinkDataError || e instanceof SinkDatabaseError
        ? sinks.filter((s) => s.table.name === e.table || this.ctx.shadows.get(s.id)?.name === e.table)
        : [];
    const blamed = culprit.length > 0 ? culprit : sinks;
    const message = `commit failed and cannot succeed by retrying: ${errorText(e)}; the dataflow stopped (fix the logic or the table, then deploy again)`;
    for (const s of blamed) this.ctx.listener.error(s.id, `${message}${this.producers(s, e)}`);
    this.status.halt(message, blamed[0]?.id);
  }
}
