/**
 * The Actyx v2 HTTP client: the documented Events API (`/api/v2/events/…`) over Node's own fetch.
 *
 * Subscriptions and bounded queries never give up: any drop (refused connection, reset, clean end
 * of the response, 503, an `error` diagnostic, silence longer than `idleTimeoutMs`) leads to a new
 * request after a capped, jittered exponential backoff, with `lowerBound` = the offsets of the last
 * event handed on — never "present" — so nothing is lost or repeated. A 401 (tokens die when the
 * node restarts) re-authenticates. Malformed lines are reported and skipped.
 */
import { parseQuery } from './aql';
import { ActyxHttpError, httpError, manifestProblem, TokenProvider, type AppManifest } from './actyx-auth';
import { Backoff, type BackoffOptions } from './backoff';
import { flattenBatches, sleep } from './batches';
import { ndjsonLineBatches } from './ndjson';
import {
  describeShortStreams,
  type OffsetMap,
  offsetOf,
  offsetTable,
  type OffsetTable,
  setOffset,
  shortStreams,
  toOffsetMap,
} from '../core/offset-map';
import type {
  ActyxEvent,
  EventSource,
  MatchContext,
  PublishedEvent,
  PublishRequest,
  SourceDiagnostic,
  SubscribeOptions,
  SubscriptionItem,
} from './types';

export interface ActyxClientOptions {
  /** Host name or address of the Actyx node (default `localhost`). */
  readonly host?: string;
  /** Port of its HTTP API (default 4454). */
  readonly port?: number;
  /** Full base URL, e.g. `http://localhost:4454/api/v2` (overrides host and port). */
  readonly baseUrl?: string;
  readonly manifest: AppManifest;
  /** A subscription silent for this long (ms) is dropped and re-opened (default 45,000 = 3 keep-alives). */
  readonly idleTimeoutMs?: number;
  /** Timeout (ms) for the short requests: auth, offsets, publish, and the start of a stream (default 15,000). */
  readonly requestTimeoutMs?: number;
  readonly backoff?: BackoffOptions;
}

/** What one line of an NDJSON response is. */
type Line =
  | { readonly kind: 'event'; readonly event: ActyxEvent }
  | { readonly kind: 'offsets'; readonly offsets: OffsetMap }
  | { readonly kind: 'diagnostic'; readonly severity: 'warning' | 'error'; readonly message: string }
  | { readonly kind: 'keepAlive' }
  | { readonly kind: 'ignored' }
  | { readonly kind: 'malformed'; readonly reason: string };

function isOffsetMap(value: unknown): value is OffsetMap {
  return (
    typeof value === 'object' &&
    value !== null &&
    !Array.isArray(value) &&
    Object.values(value).every((v) => Number.isSafeInteger(v))
  );
}

function isCount(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 0;
}

/** Classifies one response line; never throws. */
export function parseLine(line: string): Line {
  if (line.trim() === '') return { kind: 'keepAlive' };
  let obj: unknown;
  try {
    obj = JSON.parse(line);
  } catch {
    return { kind: 'malformed', reason: 'not JSON' };
  }
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj))
    return { kind: 'malformed', reason: 'not a JSON object' };
  const o = obj as Record<string, unknown>;
  switch (o.type) {
    case 'event': {
      const { lamport, stream, offset, timestamp, tags, appId, payload } = o;
      if (!isCount(lamport) || typeof stream !== 'string' || stream === '' || !isCount(offset) || !isCount(timestamp)) {
        return { kind: 'malformed', reason: 'event without valid lamport, stream, offset and timestamp' };
      }
      if (!Array.isArray(tags) || !tags.every((t) => typeof t === 'string') || typeof appId !== 'string') {
        return { kind: 'malformed', reason: 'event without valid tags and appId' };
      }
      return { kind: 'event', event: { lamport, stream, offset, timestamp, tags, appId, payload } };
    }
    case 'offsets':
      return isOffsetMap(o.offsets)
        ? { kind: 'offsets', offsets: o.offsets }
        : { kind: 'malformed', reason: 'offsets line without an offset map' };
    case 'diagnostic': {
      const severity = o.severity === 'error' ? 'error' : 'warning';
      return { kind: 'diagnostic', severity, message: typeof o.message === 'string' ? o.message : JSON.stringify(o) };
    }
    case undefined:
      // The documented final error object of a failing stream: {"code": "...", "message": "..."}.
      if (typeof o.code === 'string')
        return {
          kind: 'diagnostic',
          severity: 'error',
          message: `${o.code}: ${typeof o.message === 'string' ? o.message : ''}`,
        };
      return { kind: 'malformed', reason: 'no type' };
    default:
      return { kind: 'ignored' };
  }
}

/** How a stream attempt ended without an exception: done, or to be repeated (after a backoff) for the reason given. */
type AttemptEnd = 'complete' | { readonly retry: string };

/** Thrown inside an attempt to end it and reconnect (the reason was already reported). */
class Reconnect extends Error {}

export class ActyxClient implements EventSource {
  readonly baseUrl: string;
  private readonly tokens: TokenProvider;
  private readonly idleTimeoutMs: number;
  private readonly requestTimeoutMs: number;
  private readonly backoffOptions: BackoffOptions;
  private readonly appId: string;
  private localPrefix: Promise<string> | null = null;
  /** Set by `close()`. */
  private closed = false;
  /**
   * The abort controllers of requests and waits in progress, aborted by `close()`. (Not
   * `AbortSignal.any` with one long-lived signal: on Node 20 every call leaves an entry behind.)
   */
  private readonly inflight = new Set<AbortController>();

  constructor(options: ActyxClientOptions) {
    const problem = manifestProblem(options.manifest);
    if (problem) throw new TypeError(problem);
    const port = options.port ?? 4454;
    if (!options.baseUrl && (!Number.isInteger(port) || port <= 0 || port > 65535))
      throw new TypeError(`port must be 1–65535, got ${port}`);
    this.baseUrl = (options.baseUrl ?? `http://${options.host || 'localhost'}:${port}/api/v2`).replace(/\/+$/, '');
    this.idleTimeoutMs = options.idleTimeoutMs ?? 45_000;
    this.requestTimeoutMs = options.requestTimeoutMs ?? 15_000;
    this.backoffOptions = options.backoff ?? {};
    this.tokens = new TokenProvider(this.baseUrl, options.manifest, this.requestTimeoutMs);
    this.appId = options.manifest.appId;
  }

  /**
   * A signal for one request or wait: aborted by `signal`, after `timeoutMs`, by `close()`, or by
   * the returned `abort`. Call `release()` when done.
   */
  private scope(signal?: AbortSignal, timeoutMs?: number): { signal: AbortSignal; abort(): void; release(): void } {
    const controller = new AbortController();
    const onAbort = (): void => controller.abort(signal?.reason);
    if (signal?.aborted || this.closed) controller.abort(signal?.reason);
    signal?.addEventListener('abort', onAbort, { once: true });
    this.inflight.add(controller);
    const timer =
      timeoutMs === undefined
        ? undefined
        : setTimeout(() => controller.abort(new DOMException('request timed out', 'TimeoutError')), timeoutMs);
    return {
      signal: controller.signal,
      abort: () => controller.abort(),
      release: () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        this.inflight.delete(controller);
      },
    };
  }

  /** Waits `ms` unless `signal` aborts or the client closes first. */
  private async pause(ms: number, signal?: AbortSignal): Promise<void> {
    const scope = this.scope(signal);
    try {
      await sleep(ms, scope.signal);
    } finally {
      scope.release();
    }
  }

  /** One authorised request; a 401 re-authenticates once. Throws ActyxHttpError for other non-2xx answers. */
  private async request(
    path: string,
    init: { method: 'GET' | 'POST'; body?: unknown; accept?: string },
    signal: AbortSignal,
  ): Promise<Response> {
    for (let attempt = 0; ; attempt++) {
      const token = await this.tokens.token(signal);
      const res = await fetch(`${this.baseUrl}${path}`, {
        method: init.method,
        headers: {
          authorization: `Bearer ${token}`,
          accept: init.accept ?? 'application/json',
          ...(init.body !== undefined ? { 'content-type': 'application/json' } : {}),
        },
        body: init.body !== undefined ? JSON.stringify(init.body) : undefined,
        signal,
      });
      if (res.ok) return res;
      const err = await httpError(res, path);
      if (res.status === 401 && attempt === 0) {
        this.tokens.invalidate(token);
        continue;
      }
      throw err;
    }
  }

  /** A short request, retried on 503 (the node did not take it) a few times. */
  private async shortRequest<T>(path: string, init: { method: 'GET' | 'POST'; body?: unknown }): Promise<T> {
    const backoff = new Backoff(this.backoffOptions);
    for (let attempt = 0; ; attempt++) {
      const scope = this.scope(undefined, this.requestTimeoutMs);
      try {
        const res = await this.request(path, init, scope.signal);
        return (await res.json()) as T;
      } catch (err) {
        if (!(err instanceof ActyxHttpError && err.status === 503) || attempt >= 4 || this.closed)
          throw this.describe(err);
      } finally {
        scope.release();
      }
      await this.pause(backoff.next());
    }
  }

  /** Network errors from fetch say "fetch failed"; name the node and the cause instead. */
  private describe(err: unknown): Error {
    return this.explain(err).error;
  }

  /** A clear error and a short reason for status lines (`ECONNREFUSED`, `503 ERR_SERVICE_OVERLOADED`, `timeout`). */
  private explain(err: unknown): { error: Error; short: string } {
    if (err instanceof ActyxHttpError) return { error: err, short: `${err.status}${err.code ? ` ${err.code}` : ''}` };
    const e = err as Error & { cause?: { code?: string; message?: string } };
    if (e?.name === 'TimeoutError')
      return { error: new Error(`Actyx node at ${this.baseUrl} did not answer in time`), short: 'timeout' };
    if (e?.name === 'AbortError')
      return { error: new Error(`request to the Actyx node at ${this.baseUrl} was aborted`), short: 'aborted' };
    if (e instanceof TypeError && e.cause !== undefined) {
      const cause = e.cause.code ?? e.cause.message ?? e.message;
      return { error: new Error(`cannot reach the Actyx node at ${this.baseUrl}: ${cause}`), short: cause };
    }
    const error = err instanceof Error ? err : new Error(String(err));
    return { error, short: error.message };
  }

  async presentOffsets(): Promise<OffsetMap> {
    const body = await this.shortRequest<{ present?: unknown }>('/events/offsets', { method: 'GET' });
    if (!isOffsetMap(body.present)) throw new Error(`Actyx node at ${this.baseUrl} sent offsets without a present map`);
    return body.present;
  }

  /** The node's id (`GET /node/id`). */
  async nodeId(): Promise<string> {
    const scope = this.scope(undefined, this.requestTimeoutMs);
    try {
      const res = await this.request('/node/id', { method: 'GET', accept: 'text/plain' }, scope.signal);
      return (await res.text()).trim();
    } catch (err) {
      throw this.describe(err);
    } finally {
      scope.release();
    }
  }

  /** `isLocal` = streams of this node (`<nodeId>-n`, asked once), `appId(me)` = the manifest's app id. */
  async matchContext(): Promise<MatchContext> {
    this.localPrefix ??= this.nodeId().then(
      (id) => `${id}-`,
      (err: unknown) => {
        this.localPrefix = null;
        throw err;
      },
    );
    const prefix = await this.localPrefix;
    return { isLocalStream: (stream) => stream.startsWith(prefix), appId: this.appId };
  }

  async publish(events: readonly PublishRequest[]): Promise<readonly PublishedEvent[]> {
    const data = events.map((e, i) => {
      if (!Array.isArray(e.tags) || e.tags.some((t) => typeof t !== 'string' || t === ''))
        throw new TypeError(`event ${i}: tags must be an array of non-empty strings`);
      return { tags: e.tags, payload: e.payload };
    });
    if (data.length === 0) return [];
    try {
      JSON.stringify(data);
    } catch (err) {
      throw new TypeError(`payload cannot be sent as JSON: ${(err as Error).message}`);
    }
    const body = await this.shortRequest<{ data?: unknown }>('/events/publish', { method: 'POST', body: { data } });
    if (!Array.isArray(body.data) || body.data.length !== data.length)
      throw new Error(`Actyx node at ${this.baseUrl} answered the publish without one result per event`);
    return body.data as PublishedEvent[];
  }

  /**
   * One streaming request: yields line batches until the response ends; throws on HTTP errors,
   * network errors and silence longer than the idle timeout.
   */
  private async *streamLines(
    path: string,
    body: unknown,
    signal: AbortSignal,
  ): AsyncGenerator<string[], void, undefined> {
    const connection = this.scope(signal);
    let lastActivity = Date.now();
    let silent = false;
    // While the consumer holds a batch (back-pressure) the node is not silent: only waiting counts.
    let consumerBusy = false;
    const tick = Math.max(10, Math.floor(this.idleTimeoutMs / 4));
    let lastTick = Date.now();
    const watchdog = setInterval(() => {
      const now = Date.now();
      // After a stall of this process (GC, CPU starvation) timers run before pending input is
      // read: give the data that arrived meanwhile one more tick instead of calling the node silent.
      const stalled = now - lastTick > 2 * tick;
      lastTick = now;
      if (!stalled && !consumerBusy && now - lastActivity > this.idleTimeoutMs) {
        silent = true;
        connection.abort();
      }
    }, tick);
    try {
      const res = await this.request(path, { method: 'POST', body, accept: 'application/x-ndjson' }, connection.signal);
      lastActivity = Date.now();
      if (!res.body) return;
      for await (const lines of ndjsonLineBatches(res.body)) {
        consumerBusy = true;
        yield lines;
        consumerBusy = false;
        lastActivity = Date.now();
      }
    } catch (err) {
      if (silent) throw new Error(`no data from the Actyx node for more than ${this.idleTimeoutMs} ms`);
      throw err;
    } finally {
      clearInterval(watchdog);
      connection.abort();
      connection.release();
    }
  }

  /**
   * Runs `attempt` until it completes, reconnecting after anything else with backoff; reports
   * every failure to `onDiagnostic`. `progress` is called by the attempt when it handed something on.
   */
  private async *resilient<T>(
    what: string,
    options: SubscribeOptions,
    attempt: (progress: () => void) => AsyncGenerator<T, AttemptEnd, undefined>,
  ): AsyncGenerator<T, void, undefined> {
    const signal = options.signal;
    const report = reporter(options);
    const backoff = new Backoff(this.backoffOptions);
    let failures = 0;
    while (!signal?.aborted && !this.closed) {
      let end: AttemptEnd;
      try {
        end = yield* attempt(() => {
          backoff.reset();
          if (failures > 0) report({ severity: 'info', message: `${what}: connected again to ${this.baseUrl}` });
          failures = 0;
        });
        if (end === 'complete') return;
        report({ severity: 'warning', message: end.retry });
      } catch (err) {
        if (signal?.aborted || this.closed) return;
        if (!(err instanceof Reconnect)) {
          const { error, short } = this.explain(err);
          const http = err instanceof ActyxHttpError;
          report({
            severity: failures > 0 || http ? 'error' : 'warning',
            message: `${what}: ${error.message}; retrying`,
            detail: short,
          });
        }
      }
      failures++;
      await this.pause(backoff.next(), signal);
    }
  }

  subscribe(query: string, lowerBound: OffsetMap, options: SubscribeOptions = {}): AsyncIterable<SubscriptionItem> {
    return flattenBatches(this.subscribeBatches(query, lowerBound, options));
  }

  subscribeBatches(
    query: string,
    lowerBound: OffsetMap,
    options: SubscribeOptions = {},
  ): AsyncGenerator<readonly SubscriptionItem[], void, undefined> {
    const aql = parseQuery(query).aql;
    const lower = offsetTable(lowerBound);
    const signal = options.signal ?? new AbortController().signal;
    let caughtUp = false;
    const handle = this.handleLines.bind(this);
    return this.resilient<readonly SubscriptionItem[]>('subscription', options, async function* (progress) {
      for await (const lines of handle(
        lower,
        options,
        '/events/subscribe',
        { query: aql, lowerBound: toOffsetMap(lower) },
        signal,
      )) {
        const items: SubscriptionItem[] = [];
        for (const line of lines) {
          if (line.kind === 'event') items.push({ type: 'event', event: line.event });
          else if (line.kind === 'offsets' && !caughtUp) {
            caughtUp = true;
            items.push({ type: 'caughtUp', offsets: line.offsets });
          }
        }
        if (lines.length > 0) progress();
        if (items.length > 0) yield items;
      }
      return { retry: 'subscription: the Actyx node ended the response; reconnecting' };
    });
  }

  /**
   * One request's lines, parsed, with events at or below `lower` dropped and `lower` advanced past
   * each event handed on; diagnostics reported; an `error` diagnostic ends the attempt. With
   * `upper` (a bounded query), events of other streams or beyond it are reported and dropped.
   */
  private async *handleLines(
    lower: OffsetTable,
    options: SubscribeOptions,
    path: string,
    body: unknown,
    signal: AbortSignal,
    upper?: OffsetMap,
  ): AsyncGenerator<Line[], void, undefined> {
    const report = reporter(options);
    for await (const raw of this.streamLines(path, body, signal)) {
      const lines: Line[] = [];
      let failed: string | null = null;
      for (const text of raw) {
        const line = parseLine(text);
        switch (line.kind) {
          case 'event': {
            const seen = lower[line.event.stream];
            if (seen !== undefined && line.event.offset <= seen) {
              report({
                severity: 'warning',
                message: `skipped event ${line.event.stream}/${line.event.offset} delivered twice`,
              });
              continue;
            }
            if (upper !== undefined && !(line.event.offset <= (offsetOf(upper, line.event.stream) ?? -1))) {
              report({
                severity: 'warning',
                message: `skipped event ${line.event.stream}/${line.event.offset}: beyond the upper bound of the query`,
              });
              continue;
            }
            lower[line.event.stream] = line.event.offset;
            lines.push(line);
            break;
          }
          case 'offsets':
            lines.push(line);
            break;
          case 'diagnostic':
            report({ severity: line.severity, message: `Actyx node: ${line.message}` });
            if (line.severity === 'error') failed = line.message;
            break;
          case 'malformed':
            report({
              severity: 'warning',
              message: `skipped a malformed line from the Actyx node (${line.reason})`,
              detail: text.slice(0, 2000),
            });
            break;
          case 'keepAlive':
          case 'ignored':
            break;
        }
        if (failed !== null) break;
      }
      // Lines before an error diagnostic are still handed on; then the attempt ends.
      yield lines;
      if (failed !== null) throw new Reconnect(failed);
    }
  }

  query(
    query: string,
    lowerBound: OffsetMap,
    upperBound: OffsetMap,
    options: SubscribeOptions = {},
  ): AsyncIterable<ActyxEvent> {
    return flattenBatches(this.queryBatches(query, lowerBound, upperBound, options));
  }

  /**
   * The stored events matching `query` in (lowerBound, upperBound], exactly once each. Complete only
   * when the node's closing offsets line covers the bound, or every stream has been delivered up to
   * its bound: a response that ends otherwise (empty, cut mid-stream or mid-line, no offsets line)
   * is asked again after a backoff from the last event handed on, and reported as incomplete.
   */
  async *queryBatches(
    query: string,
    lowerBound: OffsetMap,
    upperBound: OffsetMap,
    options: SubscribeOptions = {},
  ): AsyncGenerator<readonly ActyxEvent[], void, undefined> {
    const aql = parseQuery(query).aql;
    const signal = options.signal ?? new AbortController().signal;
    const lower = offsetTable(lowerBound);
    let upper: Record<string, number> | null = null;
    const client = this;
    const handle = this.handleLines.bind(this);
    yield* this.resilient<readonly ActyxEvent[]>('query', options, async function* (progress) {
      // An upper bound beyond the node's present is a 400: clamp it (the contract: a bounded query
      // reads what is stored; a caller that must have every event up to its bound checks the present).
      upper ??= clampToPresent(upperBound, await client.presentOffsets());
      // Streams whose upper bound was reached need not be asked again.
      const open: Record<string, number> = {};
      for (const [s, hi] of Object.entries(upper)) if ((lower[s] ?? -1) < hi) setOffset(open, s, hi);
      if (Object.keys(open).length === 0) return 'complete';
      const request = { query: aql, order: 'asc', lowerBound: pick(lower, open), upperBound: open };
      let closing: OffsetMap | null = null;
      for await (const lines of handle(lower, options, '/events/query', request, signal, open)) {
        const events: ActyxEvent[] = [];
        for (const line of lines) {
          if (line.kind === 'event') events.push(line.event);
          else if (line.kind === 'offsets') closing = line.offsets;
        }
        if (lines.length > 0) progress();
        if (events.length > 0) yield events;
        if (closing !== null) break;
      }
      if (closing !== null && shortStreams(open, closing).length === 0) return 'complete';
      // NB: the response ended without the node saying it is complete. Only when every stream was
      // delivered up to its bound is nothing missing (a query filters, so that is rare).
      const short = shortStreams(open, toOffsetMap(lower));
      if (short.length === 0) return 'complete';
      const why =
        closing === null
          ? 'the response ended without the closing offsets line'
          : `the closing offsets line ${JSON.stringify(closing)} does not cover the upper bound`;
      return {
        retry: `query incomplete, retrying: ${why}; read so far: ${describeShortStreams(short)}; asking again after the last event received`,
      };
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const controller of this.inflight) controller.abort();
    this.inflight.clear();
  }
}

/** Calls the subscriber's diagnostic listener; a throwing listener must not break the subscription. */
function reporter(options: SubscribeOptions): (d: SourceDiagnostic) => void {
  return (d) => {
    try {
      options.onDiagnostic?.(d);
    } catch {
      // ignored: diagnostics are advisory
    }
  };
}

/** `upper` limited to what the node has now; streams it does not have are left out. */
function clampToPresent(upper: OffsetMap, present: OffsetMap): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [stream, hi] of Object.entries(upper)) {
    const p = offsetOf(present, stream);
    if (p !== undefined) setOffset(out, stream, Math.min(hi, p));
  }
  return out;
}

function pick(offsets: OffsetTable, streams: OffsetMap): Record<string, number> {
  const out: Record<string, number> = {};
  for (const s of Object.keys(streams)) {
    const o = offsets[s];
    if (o !== undefined) setOffset(out, s, o);
  }
  return out;
}
