/**
 * The event-source interface the rest of the product uses. Two implementations: the Actyx v2
 * HTTP client (`actyx-client.ts`) and the embedded SQLite log (`embedded-log.ts`).
 */
import type { OffsetMap } from '../core/offset-map';

/** The offsets of the source interface; defined in core (sinks and the dataflow use them too). */
export type { OffsetMap };

/** An event as Actyx v2 delivers it. `timestamp` is an integer, microseconds since the Unix epoch. */
export interface ActyxEvent {
  readonly lamport: number;
  readonly stream: string;
  readonly offset: number;
  readonly timestamp: number;
  readonly tags: readonly string[];
  readonly appId: string;
  readonly payload: unknown;
}

/** What a subscription yields: events, and "caught up" once the stored part has been delivered. */
export type SubscriptionItem =
  { readonly type: 'event'; readonly event: ActyxEvent } | { readonly type: 'caughtUp'; readonly offsets: OffsetMap };

export interface PublishRequest {
  readonly tags: readonly string[];
  readonly payload: unknown;
}

export interface PublishedEvent {
  readonly lamport: number;
  readonly stream: string;
  readonly offset: number;
  readonly timestamp: number;
}

/** Progress and trouble a source reports while it keeps going (logged, shown in node status). */
export interface SourceDiagnostic {
  readonly severity: 'info' | 'warning' | 'error';
  readonly message: string;
  /** A malformed line's text, or for connection problems a short reason (`ECONNREFUSED`, `401 ERR_TOKEN_EXPIRED`, `timeout`). */
  readonly detail?: string;
}

export interface SubscribeOptions {
  readonly signal?: AbortSignal;
  readonly onDiagnostic?: (d: SourceDiagnostic) => void;
}

/** What `isLocal` and `appId(me)` in a query refer to; without it both select nothing. */
export interface MatchContext {
  /** True for streams emitted by the local node (the node the query runs against). */
  readonly isLocalStream?: (stream: string) => boolean;
  /** The app id of the current app, for `appId(me)`. */
  readonly appId?: string;
}

export interface EventSource {
  /**
   * Events matching `query` (AQL `FROM …` or a plain tag expression) after `lowerBound` (exclusive),
   * first the stored ones, then one `caughtUp`, then live ones, forever, until `signal` aborts or the
   * consumer stops iterating. Within a stream events come in offset order (the dataflow stops on an
   * event that repeats or breaks it). Reconnects by itself, resuming after the last event handed
   * on; never loses or repeats an event. Pulling drives reading (back-pressure).
   */
  subscribe(query: string, lowerBound: OffsetMap, options?: SubscribeOptions): AsyncIterable<SubscriptionItem>;
  /**
   * Stored events matching `query` with lowerBound < offset ≤ upperBound per stream (a stream
   * missing from upperBound yields nothing), in event-key order (lamport, stream, offset).
   */
  query(
    query: string,
    lowerBound: OffsetMap,
    upperBound: OffsetMap,
    options?: SubscribeOptions,
  ): AsyncIterable<ActyxEvent>;
  /**
   * Optional batched form of `subscribe`: exactly the same items, several at a time (an array per
   * page read or chunk received). Bulk consumers (the dataflow coordinator) prefer it when present.
   */
  subscribeBatches?(
    query: string,
    lowerBound: OffsetMap,
    options?: SubscribeOptions,
  ): AsyncIterable<readonly SubscriptionItem[]>;
  /** Optional batched form of `query`: exactly the same events, several at a time. */
  queryBatches?(
    query: string,
    lowerBound: OffsetMap,
    upperBound: OffsetMap,
    options?: SubscribeOptions,
  ): AsyncIterable<readonly ActyxEvent[]>;
  /**
   * Optional: the context in which this source evaluates `isLocal` and `appId(me)`, so that
   * `matchesEvent(parsed, event, context)` routes events exactly as the source selected them.
   */
  matchContext?(): Promise<MatchContext>;
  /** The offsets of everything stored and queryable now. */
  presentOffsets(): Promise<OffsetMap>;
  publish(events: readonly PublishRequest[]): Promise<readonly PublishedEvent[]>;
  close(): Promise<void>;
}
