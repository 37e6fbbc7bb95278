/**
 * The state one running dataflow shares between its parts: start-up (start-up.ts), reading
 * (reader.ts), processing (processor.ts), the commit pipeline (commit-pipeline.ts) and the status
 * (dataflow-status.ts). Each part changes only the fields its comment names; the coordinator
 * (coordinator.ts) creates the context and the parts and runs them.
 */
import type { OffsetMap } from '../core/offset-map';
import type { EventSource } from '../sources/types';
import type { LeaseLostError } from '../sinks/lease-sql';
import type { LeaseToken, SinkDatabase, TableSpec } from '../sinks/types';
import { catchUpBatchSize } from './batcher';
import { DEFAULT_CLOCK_AHEAD_MICROS } from './retention';
import type { BuiltDataflow } from './build-graph';
import { OffsetTracker } from './offset-tracker';
import type { DurableHost } from './durable-state';
import type { DataflowDefinition, DataflowListener, DataflowPhase, DataflowSettings, SinkMember } from './types';

/** Which sinks a batch is written to, and whether taps send. Compared by identity: one object per read. */
export interface Phase {
  readonly name: 'replaying' | 'catching up' | 'live';
  /** Sinks whose tables receive this phase's changes; the others already reflect these events. */
  readonly writing: ReadonlySet<string>;
  /** The retention cutoff at start: the phase reads only events after it (`TIME >`); null = all. While running, `DataflowContext.cutoff` decides what is fed. */
  readonly cutoff: number | null;
  /** Tapped operators send their changes (only for events no earlier run has processed). */
  readonly taps: boolean;
  /**
   * The events are at or below the greatest stored offsets: an earlier run processed them, and the
   * stored watermark holds its decision on each (retention.ts, the clock bound). They never move
   * the watermark, whatever the wall clock says now.
   */
  readonly decided: boolean;
}

/** The leases a dataflow runs under (leased-dataflow.ts): its tokens, and what to do when one is lost. */
export interface Fencing {
  /** The fencing token of a database, checked first in every transaction that writes it. */
  token(db: SinkDatabase): LeaseToken | undefined;
  /** A transaction found the lease taken over: the dataflow ends (leaseLost) and goes to standby. */
  lost(e: LeaseLostError): void;
  /** A commit that checked the lease in `db` succeeded: it extended the lease as a renewal does (started at `startedMs`). */
  confirmed?(db: SinkDatabase, startedMs: number): void;
}

export class DataflowContext {
  readonly settings: DataflowSettings;
  /** Largest step over stored events (catch-up, replay); live steps use `settings.batchSize`. */
  readonly catchUpBatchSize: number;
  readonly source: EventSource;
  /** Aborted when the dataflow stops or halts: reads end, retries stop waiting, waiting steps wake. */
  readonly abort = new AbortController();
  /** Set with `abort` (see `end`): nothing more is read, computed or queued. */
  stopping = false;
  /** The engine graph and the members that run (set once at start). */
  built: BuiltDataflow | null = null;
  /** Sinks per database (one transaction per database and commit); set at start. */
  databases = new Map<SinkDatabase, SinkMember[]>();
  /** Each sink's fingerprint (its upstream definition), stored with its offsets. */
  fingerprints = new Map<string, string>();
  /** Offsets of the events read so far (reader and processor). */
  tracker = new OffsetTracker({});
  /** Greatest event timestamp processed (restored at start; advanced by the processor). */
  watermark: number | null = null;
  /** Retention: the cutoff the engine state was compacted to (events at or below it are left out); null = none yet. */
  cutoff: number | null = null;
  /** Durable operator state: where it is stored (set at start); null: in memory, rebuilt by replay. */
  durable: DurableHost | null = null;
  /** Durable state: the retention cutoff of the state last committed or loaded (StepState.cutoff). */
  stateCutoff: number | null = null;
  /** The offsets of the last commit (commit pipeline). */
  committedOffsets: OffsetMap = {};
  /** The source's offsets at start, then when live was reached (for "n events behind"). */
  present: OffsetMap = {};
  phaseName: DataflowPhase = 'starting';
  /** Sinks rebuilt at this start, until live (their status says "rebuilding"). */
  rebuilding = new Set<string>();
  rebuilt: { id: string; reason: string }[] = [];
  /**
   * Sinks being rebuilt aside: the shadow table their commits write to until the catch-up ends
   * and it is swapped in (start-up.ts, reader.ts). Readers keep seeing the old table meanwhile.
   */
  shadows = new Map<string, TableSpec>();
  eventsRead = 0;
  eventsOutsideWindow = 0;
  eventsAheadOfClock = 0;
  eventsReplayed = 0;
  batchesComputed = 0;
  batchesCommitted = 0;
  /** Inputs skipped per member id. */
  readonly skipped = new Map<string, number>();
  /** The database whose commit is being retried (to log when it is reachable again). */
  retryingDb: string | null = null;
  /** Why the dataflow halted; null while fine. */
  failed: Error | null = null;
  /** The engine step running now (processor), settled or null: stop() waits for it. */
  stepping: Promise<void> | null = null;

  constructor(
    readonly definition: DataflowDefinition,
    readonly listener: DataflowListener,
    readonly fencing: Fencing | null = null,
  ) {
    this.settings = definition.settings;
    this.catchUpBatchSize = this.settings.catchUpBatchSize ?? catchUpBatchSize(this.settings.batchSize);
    this.source = definition.source;
    this.now = definition.now ?? Date.now;
    this.clockAheadMicros = this.settings.clockAheadMicros ?? DEFAULT_CLOCK_AHEAD_MICROS;
  }

  /** The wall clock (ms) and how far ahead of it a timestamp may move the watermark (µs). */
  readonly now: () => number;
  readonly clockAheadMicros: number;

  /**
   * The lease was lost: nothing more is committed (queued commits are abandoned: their events are
   * the new holder's), reading and computing stop, and the fencing owner is told (once).
   */
  leaseLost(e: LeaseLostError): void {
    if (this.failed !== null) return;
    this.failed = e;
    this.phaseName = 'standby';
    this.end();
    this.fencing?.lost(e);
  }

  /** Stops reading and computing (stop() and halt); listeners on `abort.signal` run at once. */
  end(): void {
    this.stopping = true;
    this.abort.abort();
  }
}
