/**
 * The contract between the Node-RED nodes of one dataflow and its coordinator
 * (`coordinator.ts`). The coordinator knows nothing of Node-RED: the dd-dataflow config node
 * turns the deployed nodes and their wires into `DataflowMember`s and hands them over.
 */
import type { Collection, Grouped, Value } from '../engine/types';
import type { OffsetMap } from '../core/offset-map';
import type { ActyxEvent, EventSource } from '../sources/types';
import type { RowChange, SinkDatabase, TableSpec } from '../sinks/types';

/** What flows along a wire inside the engine: an ungrouped collection or a grouped one. */
export type Stage =
  | { readonly kind: 'collection'; readonly collection: Collection }
  | { readonly kind: 'grouped'; readonly grouped: Grouped };

interface MemberBase {
  /** The Node-RED node id. */
  readonly id: string;
  readonly type: string;
  /** Name for messages: the node's name, or its type and id. */
  readonly label: string;
  /** Ids of the members wired into this one (several inputs are concatenated). */
  readonly inputs: readonly string[];
  /** Everything that defines what this member computes (config, function text, schema), for fingerprints. */
  readonly definition: Value;
}

/** actyx-subscribe: events matching `query` enter the dataflow here. */
export interface SourceMember extends MemberBase {
  readonly role: 'source';
  readonly query: string;
  /** The event source of its actyx-config; all sources of one dataflow must share one. */
  readonly source: EventSource;
  /** Id of that actyx-config node (to check that they share one). */
  readonly sourceId: string;
}

/** dd-filter, dd-map, dd-groupby, dd-maxby, …: builds its part of the engine graph. */
export interface OperatorMember extends MemberBase {
  readonly role: 'operator';
  /**
   * Builds this node's operators on its inputs (`inputIds[i]` is the member `inputs[i]` comes from,
   * so a node with two roles of input, dd-join, can tell them apart); throws an Error with a clear
   * message for a wrong input kind.
   */
  build(inputs: readonly Stage[], inputIds: readonly string[]): Stage;
  /** Send the changes this node produced after each commit (it has wires to non-dataflow nodes). */
  readonly tap: boolean;
}

/** db-sink: writes the consolidated output wired into it to one table. */
export interface SinkMember extends MemberBase {
  readonly role: 'sink';
  readonly database: SinkDatabase;
  readonly table: TableSpec;
  /** Manual version: changing it forces a rebuild like a logic change. */
  readonly version: string;
  /**
   * Whether anyone takes the committed row changes (a db-sink with its output wired); default
   * true. Without, the sink does not build them, and a keyed sink does not read the old rows.
   */
  readonly reportChanges?: boolean;
}

export type DataflowMember = SourceMember | OperatorMember | SinkMember;

export interface MemberStatus {
  readonly fill: 'green' | 'yellow' | 'red' | 'blue' | 'grey';
  readonly shape: 'dot' | 'ring';
  readonly text: string;
}

/** How the coordinator talks back to the nodes. */
export interface DataflowListener {
  status(memberId: string, status: MemberStatus): void;
  /**
   * A problem attributable to one member (and maybe one event); the node calls `node.error`, so
   * Catch nodes see it. `repeat`: one more of a kind already reported in full and summarised in
   * the log (`log`): it goes to the Catch nodes only, without a log line of its own.
   * `message` does not name the member: the node's log line is prefixed with its type and name.
   */
  error(
    memberId: string,
    message: string,
    context?: { event?: ActyxEvent; value?: Value },
    options?: { readonly repeat?: boolean },
  ): void;
  /** After each commit: the changes a member produced in it (operators: engine updates; sinks: row changes). */
  committed(
    memberId: string,
    changes: {
      operators?: readonly (readonly [Value, number])[];
      rows?: readonly RowChange[];
      /** The offset map committed with these changes (what db-sink sends as `msg.offsets`). */
      offsets?: OffsetMap;
    },
  ): void;
  log(level: 'info' | 'warn', message: string): void;
}

export interface DataflowSettings {
  /** Largest batch of events per engine step and commit. */
  readonly batchSize: number;
  /**
   * Largest engine step while catching up on (or replaying) stored events, which are all available
   * at once. Default: `catchUpBatchSize(batchSize)` (10× `batchSize`, at most 2,500): small steps
   * keep garbage collection cheap, and steps that wait for a commit join it, so transactions stay
   * large when the database is the slower part. A `reduce` recomputes a touched group once per
   * step: larger steps suit it. Live batches always use `batchSize`.
   */
  readonly catchUpBatchSize?: number;
  /** Longest wait (ms) for a batch to fill once its first event arrived. */
  readonly batchMs: number;
  /**
   * Catching up or replaying, the events computed but not yet committed are at most this many
   * catch-up steps' worth (steps join the waiting commit). Live, one batch: the events that arrive
   * during a commit form the next batch.
   */
  readonly maxInFlight: number;
  /** Retention window in µs, or null for none. */
  readonly retentionMicros: number | null;
  /**
   * With a retention window: an event more than this many µs ahead of the wall clock when it is
   * first processed does not move the watermark (it is processed as data, counted and logged), and
   * a stored watermark beyond the wall clock plus this much is corrected at start by rebuilding the
   * table. Default DEFAULT_CLOCK_AHEAD_MICROS (10 minutes). See retention.ts.
   */
  readonly clockAheadMicros?: number;
  /** A throwing user function: skip the event (default) or stop the dataflow. */
  readonly onError: 'skip' | 'stop';
  /**
   * Operator state in the database (docs/durable-state.md): committed with the rows and offsets, so
   * a restart reads no history older than the state, and memory holds at most `stateCacheBytes`
   * of it. Default false: state in memory, rebuilt by replaying the history at every start.
   */
  readonly durableState?: boolean;
  /** Durable state: bytes of entry text kept in memory (default DEFAULT_STATE_CACHE_BYTES, 64 MB). */
  readonly stateCacheBytes?: number;
  /**
   * Durable state: how long (ms) a start reads back the groups of the stored warm-up hint at most
   * before it goes live (default WARM_UP_MS, 400; 0: no warm-up, every group loads on first touch).
   */
  readonly warmUpMs?: number;
  /**
   * Durable state, catching up: a commit is queued once the state texts it holds reach this many
   * characters, before it has maxInFlight steps (default COMMIT_STATE_CHARS, 4 Mi; a quarter of it
   * while V8's heap is near its limit: commitStateBound). Not a node setting (tests set it small).
   */
  readonly commitStateChars?: number;
  /**
   * Durable state, live: a commit also writes the state cache's warm-up hint when this many ms have
   * passed since the dataflow went live or since its last hint (default STATE_HINT_MS, 60 s; 0:
   * every live commit). Not a node setting (tests set it to 0).
   */
  readonly stateHintMs?: number;
}

/**
 * One writer per dataflow (issue 14): the dataflow runs only while this instance holds its lease
 * in every database its sinks write; otherwise it waits as a hot standby (leased-dataflow.ts).
 */
export interface DataflowLease {
  /** The lease's name in the databases: instances running the same dataflow use the same name. */
  readonly name: string;
  /** This instance's name, shown by the others as `standby (held by …)`. */
  readonly instance: string;
  /** How long a lease lasts without renewal (renewed every third of it), ms. */
  readonly leaseMs: number;
}

export interface DataflowDefinition {
  /** The dd-dataflow node's id: the scope of its durable state (default: a hash of its sink ids). */
  readonly id?: string;
  readonly source: EventSource;
  readonly members: readonly DataflowMember[];
  readonly settings: DataflowSettings;
  /** One writer per dataflow among instances (issue 14); undefined: no lease (a single instance). */
  readonly lease?: DataflowLease;
  /** How often repeated problems (skipped inputs, retries, …) are summarised in the log, ms (default 30,000). */
  readonly reportIntervalMs?: number;
  /** The wall clock in ms (default Date.now), for the retention's clock bound; tests set it. */
  readonly now?: () => number;
}

/** What the running dataflow is doing (shown in every member's status). */
export type DataflowPhase =
  'starting' | 'replaying' | 'catching up' | 'live' | 'retrying' | 'error' | 'stopped' | 'idle' | 'standby';

/** Counters for tests, benchmarks and the status line. */
export interface DataflowStats {
  readonly phase: DataflowPhase;
  /** Events read from the source and fed to the engine (including replayed ones). */
  readonly eventsRead: number;
  /** Events fed during replay whose outputs were discarded (already in every table). */
  readonly eventsReplayed: number;
  /** Events left out because they arrived after the retention window had passed their timestamp. */
  readonly eventsOutsideWindow: number;
  /** Events first processed with a timestamp beyond the clock bound (retention only): they moved no watermark. */
  readonly eventsAheadOfClock: number;
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
  /** With a lease: the instance that holds it as far as this one knows (itself while running; null: unknown). */
  readonly leaseHolder?: string | null;
  /** With a lease: how often this instance took it over (acquisitions). */
  readonly takeovers?: number;
  /** Durable state: whether it is on, its bytes in memory, entries read from the database. */
  readonly durableState: boolean;
  readonly stateBytes: number;
  readonly stateLoads: number;
}

/** See RunningDataflow.lag. */
export interface DataflowLag {
  readonly events: number;
  readonly seconds: number;
}

/** A running dataflow (`startDataflow` in coordinator.ts). */
export interface RunningDataflow {
  /**
   * Stops reading and computing: no new engine step starts, and a step in progress finishes with
   * its result dropped. The commits of the work computed before the stop (held or queued) are each
   * attempted once, in order; a commit that fails (or one that was already retrying) is given up
   * with a log line, and so are the ones after it: their events are read again at the next start,
   * as the offsets in the tables say. Resolves when no step and no commit runs any more.
   */
  stop(): Promise<void>;
  /** Resolves when the dataflow has ended (stopped, halted on an error, or nothing to run). */
  readonly finished: Promise<void>;
  stats(): DataflowStats;
  /**
   * How far the tables are behind, while this instance runs the dataflow (null: standby, stopped):
   * `events` the source holds (as far as known: at start, then as read) that are not committed yet;
   * `seconds` the age (by the wall clock, from its timestamp) of the oldest event read and not
   * committed yet, 0 when there is none. Costs O(streams): for metrics, not per event.
   */
  lag(): DataflowLag | null;
  /**
   * Resolves once every sink has caught up with the source and the dataflow follows it live (at
   * once when there is nothing to run); stays pending when the dataflow ends before that.
   */
  readonly live: Promise<void>;
}
