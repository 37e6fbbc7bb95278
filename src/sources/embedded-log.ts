/**
 * The embedded event log: an Actyx-like event store in one SQLite file (better-sqlite3, WAL), so
 * that a fresh install works without an Actyx node.
 *
 * Semantics as in Actyx v2: several streams (`<nodeId>-<n>`; `publishAs` takes any name, so bounds
 * are read as offset-map.ts says), gapless offsets per stream starting
 * at 0, a Lamport clock (the next local event gets a stamp above every stamp seen), microsecond
 * timestamps, tags as a sorted set, an app id. `publishAs` appends to any stream with given
 * stamps, so tests and examples can play a device that was offline and delivers old-Lamport
 * events late.
 *
 * Every stored event has a sequence number `seq` (arrival order). A subscription reads pages by
 * `seq` with prepared statements — memory stays bounded however slow the consumer is — and is
 * woken by in-process publishes (no polling); writes from other connections to the same file are
 * noticed through `PRAGMA data_version`, checked only while a subscriber waits.
 */
import { randomUUID } from 'node:crypto';
import { resolve as resolvePath } from 'node:path';
import Database from 'better-sqlite3';
import { earliestTimestamp, matchesEvent, parseQuery, type ParsedQuery } from './aql';
import { flattenBatches, yieldToEventLoop } from './batches';
import { READER_CACHE_PRAGMA } from '../sqlite/page-cache';
import { WalCheckpointer } from '../sqlite/wal-checkpointer';
import { journalSizeLimitPragma, truncateWal, WalBound, WAL_LIMIT_BYTES } from '../sqlite/wal-bound';
import { EventColumnsDecoder } from './event-columns';
import { type OffsetMap, offsetOf, offsetTable, type OffsetTable, setOffset } from '../core/offset-map';
import { PagePrefetcher } from './page-prefetcher';
import type {
  ActyxEvent,
  EventSource,
  MatchContext,
  PublishedEvent,
  PublishRequest,
  SubscribeOptions,
  SubscriptionItem,
} from './types';

export interface EmbeddedLogOptions {
  /** App id stamped on events published through `publish` (default `com.example.deltaflow`). */
  readonly appId?: string;
  /** Rows read per page (default 2000). */
  readonly pageSize?: number;
  /** How often (ms) a waiting subscriber checks for commits by other connections to the file; 0 = never (default 500). */
  readonly foreignWritePollMs?: number;
  /**
   * Read long stored ranges (catch-up, bounded queries) in a worker thread, ahead of the consumer,
   * so SQLite works while the main thread handles the previous pages (default true; not for `:memory:`).
   */
  readonly readAhead?: boolean;
  /**
   * Checkpoint the WAL in a worker thread instead of inside an append that crosses 1,000 pages
   * (a stall of ~15 ms on the publishing thread); default true; not for `:memory:`.
   */
  readonly backgroundCheckpoints?: boolean;
  /** How often that worker checkpoints, ms (default 200; tests make it slow). */
  readonly checkpointIntervalMs?: number;
  /**
   * Past this size of the WAL file (bytes), an append is followed by a truncating checkpoint on the
   * log's connection (wal-bound.ts; default WAL_LIMIT_BYTES, 32 MiB; 0: never).
   */
  readonly walLimitBytes?: number;
}

/** An event for `publishAs`: per-event stamps override the batch-wide ones. */
export interface PublishAsRequest extends PublishRequest {
  readonly lamport?: number;
  readonly timestamp?: number;
  readonly appId?: string;
}

export interface PublishAsOptions {
  /** Lamport stamp of the first event; the following ones get +1 each (default: the log's clock + 1). */
  readonly lamport?: number;
  /** Timestamp (µs) of all events of the batch (default: now). */
  readonly timestamp?: number;
  /** App id of all events of the batch (default: the log's app id). */
  readonly appId?: string;
}

/**
 * A page of events read in-thread is one JSON text `[seq, event, seq, event, …]` (group_concat of
 * the stored event JSON): one JSON.parse per page is the fastest way from SQLite to JS objects on
 * one thread. (The read-ahead worker sends columns instead, see event-columns.ts.)
 */
const PAGE_JSON = `'[' || group_concat(seq || ',' || event, ',') || ']'`;

/** The stored events after a seq, up to an end seq (parameters: after, end). */
const SEQ_RANGE = `FROM deltaflow_log_events WHERE seq > ? AND seq <= ? ORDER BY seq`;
/** The stored events after an event key, up to a Lamport stamp (parameters: lamport, stream, offset, max lamport). */
const KEY_RANGE = `FROM deltaflow_log_events WHERE (lamport, stream, "offset") > (?, ?, ?) AND lamport <= ? ORDER BY lamport, stream, "offset"`;
/** A page (parameters: the range's, then the page size). */
const SEQ_PAGE = `SELECT ${PAGE_JSON} FROM (SELECT seq, event ${SEQ_RANGE} LIMIT ?)`;
const KEY_PAGE = `SELECT ${PAGE_JSON} FROM (SELECT seq, event ${KEY_RANGE} LIMIT ?)`;
/** The event texts of a page, one row each, as the read-ahead worker reads them (it encodes them in columns). */
const SEQ_PAGE_ROWS = `SELECT event ${SEQ_RANGE} LIMIT ?`;
const KEY_PAGE_ROWS = `SELECT event ${KEY_RANGE} LIMIT ?`;
/** The cursor of the row at an offset of the range (the read-ahead worker's next page starts after it). */
const SEQ_CURSOR = `SELECT seq ${SEQ_RANGE} LIMIT 1 OFFSET ?`;
const KEY_CURSOR = `SELECT lamport, stream, "offset" ${KEY_RANGE} LIMIT 1 OFFSET ?`;

/**
 * A range reads ahead in a worker only above this many pages: starting a worker costs ~30 ms,
 * about what reading four pages of 2000 events costs.
 */
const READ_AHEAD_MIN_PAGES = 4;

/** Where a stored scan starts (exclusive) and ends, in seq order or in event-key order. */
type StoredRange =
  | { readonly order: 'seq'; readonly after: number; readonly end: number }
  | { readonly order: 'key'; readonly after: readonly [number, string, number]; readonly maxLamport: number };

/** Event-key order: lamport, then stream, then offset. */
function compareKeys(a: ActyxEvent, b: ActyxEvent): number {
  return a.lamport - b.lamport || (a.stream < b.stream ? -1 : a.stream > b.stream ? 1 : 0) || a.offset - b.offset;
}

/**
 * The events of a page text in the order the query asked for. SQLite does not promise that
 * group_concat keeps the sub-query's order (it does in practice); if it ever does not, sort.
 */
export function decodePage(text: string, order: 'seq' | 'key'): { events: ActyxEvent[]; lastSeq: number } {
  const flat = JSON.parse(text) as Array<number | ActyxEvent>;
  const n = flat.length / 2;
  const seqs: number[] = new Array<number>(n);
  const events: ActyxEvent[] = new Array<ActyxEvent>(n);
  let ordered = true;
  for (let i = 0; i < n; i++) {
    seqs[i] = flat[2 * i] as number;
    events[i] = flat[2 * i + 1] as ActyxEvent;
    if (i > 0 && (order === 'seq' ? seqs[i]! <= seqs[i - 1]! : compareKeys(events[i]!, events[i - 1]!) <= 0))
      ordered = false;
  }
  if (!ordered) {
    const idx = [...events.keys()].sort((a, b) =>
      order === 'seq' ? seqs[a]! - seqs[b]! : compareKeys(events[a]!, events[b]!),
    );
    return { events: idx.map((i) => events[i]!), lastSeq: Math.max(...seqs) };
  }
  return { events, lastSeq: seqs[n - 1]! };
}

/**
 * An event's timestamp as SQL (NULL for a row that is not JSON, so that indexing never fails).
 * Indexed with the Lamport stamp: a query with a `TIME >` condition (a replay of the retention
 * window) starts at the least Lamport stamp of the events recent enough, found in the index,
 * instead of reading the whole history to filter it. Queries must use this exact text.
 */
const EVENT_TIMESTAMP = `(CASE WHEN json_valid(event) THEN json_extract(event, '$.timestamp') END)`;

/** Added by a later version: a log it cannot be written to (read-only file) works without it. */
const TIME_INDEX = `CREATE INDEX IF NOT EXISTS deltaflow_log_events_time ON deltaflow_log_events (${EVENT_TIMESTAMP}, lamport)`;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS deltaflow_log_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS deltaflow_log_streams (
  stream TEXT PRIMARY KEY,
  last_offset INTEGER NOT NULL,
  last_lamport INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS deltaflow_log_events (
  seq INTEGER PRIMARY KEY,
  stream TEXT NOT NULL,
  "offset" INTEGER NOT NULL,
  lamport INTEGER NOT NULL,
  event TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS deltaflow_log_events_stream_offset ON deltaflow_log_events (stream, "offset");
CREATE INDEX IF NOT EXISTS deltaflow_log_events_key ON deltaflow_log_events (lamport, stream, "offset");
`;

/** Rows per multi-row INSERT when appending a batch. */
const INSERT_ROWS = 64;

/** Microseconds since the epoch, from the high-resolution clock. */
export function nowMicros(): number {
  return Math.floor((performance.timeOrigin + performance.now()) * 1000);
}

function checkTags(tags: unknown, index: number): string[] {
  if (!Array.isArray(tags) || tags.some((t) => typeof t !== 'string' || t === '')) {
    throw new TypeError(`event ${index}: tags must be an array of non-empty strings`);
  }
  return [...new Set(tags as string[])].sort();
}

function payloadJson(payload: unknown, index: number): string {
  let json: string | undefined;
  try {
    json = JSON.stringify(payload);
  } catch (err) {
    throw new TypeError(`event ${index}: payload cannot be stored as JSON (${(err as Error).message})`);
  }
  if (json === undefined)
    throw new TypeError(`event ${index}: payload cannot be stored as JSON (it is ${typeof payload})`);
  return json;
}

function checkStamp(value: number | undefined, what: string): void {
  if (value !== undefined && (!Number.isSafeInteger(value) || value < 0))
    throw new TypeError(`${what} must be a non-negative integer, got ${value}`);
}

export class EmbeddedLog implements EventSource {
  readonly nodeId: string;
  readonly appId: string;
  private readonly db: Database.Database;
  private readonly pageSize: number;
  private readonly pollMs: number;
  private readonly readAhead: boolean;
  /** Read-ahead workers of scans in progress (close() stops them). */
  private readonly prefetchers = new Set<PagePrefetcher>();
  private readonly context: MatchContext;
  private maxSeq: number;
  private closed = false;
  private dataVersion: number;
  private pollTimer: NodeJS.Timeout | null = null;
  /**
   * Checkpoints the WAL of this connection's appends, from the first append on (a log that is only
   * read, as in a catch-up, needs no worker: one fewer isolate, ~10 MB of RSS). Null: not yet, or
   * checkpoints stay with SQLite (`backgroundCheckpoints: false`, `:memory:`).
   */
  private checkpointer: WalCheckpointer | null = null;
  private readonly backgroundCheckpoints: boolean;
  private readonly checkpointIntervalMs: number | undefined;
  /** When the WAL wants truncating after an append (wal-bound.ts); null: no bound (`:memory:`). */
  private readonly walBound: WalBound | null;
  /** Subscribers waiting for `maxSeq` to grow. */
  private readonly waiters = new Set<() => void>();

  private readonly stmts: {
    page: Database.Statement<[number, number, number], string | null>;
    keyPage: Database.Statement<[number, string, number, number, number], string | null>;
    lamportOf: Database.Statement<[string, number], { lamport: number }>;
    /** Null when the log has no time index (it could not be created). */
    firstLamportSince: Database.Statement<[number], { m: number | null }> | null;
    seqOf: Database.Statement<[string, number], { seq: number }>;
    maxSeq: Database.Statement<[], { m: number | null }>;
    streams: Database.Statement<[], { stream: string; last_offset: number }>;
    stream: Database.Statement<[string], { last_offset: number; last_lamport: number }>;
    upsertStream: Database.Statement<[string, number, number]>;
    insert: Database.Statement<[string, number, number, string]>;
    insertMany: Database.Statement<unknown[]>;
    getMeta: Database.Statement<[string], { value: string }>;
    setMeta: Database.Statement<[string, string]>;
  };

  /** Opens (creating if needed) the log in `file`; `:memory:` works for tests. */
  constructor(
    readonly file: string,
    options: EmbeddedLogOptions = {},
  ) {
    this.pageSize = options.pageSize ?? 2000;
    this.pollMs = options.foreignWritePollMs ?? 500;
    this.readAhead = (options.readAhead ?? true) && file !== ':memory:' && file !== '';
    this.appId = options.appId ?? 'com.example.deltaflow';
    this.db = new Database(file);
    try {
      this.db.pragma('journal_mode = WAL');
      this.db.pragma('synchronous = NORMAL');
      this.db.pragma('busy_timeout = 5000');
      // It appends at the tail and reads short ranges (long ones are read ahead): page-cache.ts.
      this.db.pragma(READER_CACHE_PRAGMA);
      this.db.exec(SCHEMA);
      const db = this.db;
      let timeIndex = true;
      try {
        db.exec(TIME_INDEX);
      } catch {
        timeIndex = false; // e.g. a read-only file of an older version: TIME queries read the whole range
      }
      this.stmts = {
        page: db.prepare<[number, number, number], string | null>(SEQ_PAGE).pluck(),
        keyPage: db.prepare<[number, string, number, number, number], string | null>(KEY_PAGE).pluck(),
        lamportOf: db.prepare(`SELECT lamport FROM deltaflow_log_events WHERE stream = ? AND "offset" = ?`),
        // INDEXED BY: left to itself the planner walks the key index and parses every event.
        firstLamportSince: timeIndex
          ? db.prepare(
              `SELECT min(lamport) AS m FROM deltaflow_log_events INDEXED BY deltaflow_log_events_time WHERE ${EVENT_TIMESTAMP} >= ?`,
            )
          : null,
        seqOf: db.prepare(`SELECT seq FROM deltaflow_log_events WHERE stream = ? AND "offset" = ?`),
        maxSeq: db.prepare('SELECT max(seq) AS m FROM deltaflow_log_events'),
        streams: db.prepare('SELECT stream, last_offset FROM deltaflow_log_streams'),
        stream: db.prepare('SELECT last_offset, last_lamport FROM deltaflow_log_streams WHERE stream = ?'),
        upsertStream: db.prepare(
          'INSERT INTO deltaflow_log_streams (stream, last_offset, last_lamport) VALUES (?, ?, ?) ON CONFLICT (stream) DO UPDATE SET last_offset = excluded.last_offset, last_lamport = excluded.last_lamport',
        ),
        insert: db.prepare(`INSERT INTO deltaflow_log_events (stream, "offset", lamport, event) VALUES (?, ?, ?, ?)`),
        insertMany: db.prepare(
          `INSERT INTO deltaflow_log_events (stream, "offset", lamport, event) VALUES ${Array(INSERT_ROWS).fill('(?, ?, ?, ?)').join(', ')}`,
        ),
        getMeta: db.prepare('SELECT value FROM deltaflow_log_meta WHERE key = ?'),
        setMeta: db.prepare(
          'INSERT INTO deltaflow_log_meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value',
        ),
      };
      this.nodeId = this.db
        .transaction(() => {
          const existing = this.stmts.getMeta.get('node_id')?.value;
          if (existing) return existing;
          const id = randomUUID().replace(/-/g, '');
          this.stmts.setMeta.run('node_id', id);
          return id;
        })
        .immediate();
    } catch (err) {
      this.db.close();
      throw err;
    }
    const inFile = file !== ':memory:' && file !== '';
    this.backgroundCheckpoints = (options.backgroundCheckpoints ?? true) && inFile;
    this.checkpointIntervalMs = options.checkpointIntervalMs;
    if (this.backgroundCheckpoints) this.db.pragma('wal_autocheckpoint = 0');
    const walLimitBytes = Math.max(0, options.walLimitBytes ?? WAL_LIMIT_BYTES);
    this.walBound = inFile && walLimitBytes > 0 ? new WalBound(file, walLimitBytes) : null;
    if (this.walBound !== null) this.db.pragma(journalSizeLimitPragma(walLimitBytes));
    const prefix = `${this.nodeId}-`;
    this.context = { isLocalStream: (stream) => stream.startsWith(prefix), appId: this.appId };
    this.maxSeq = this.stmts.maxSeq.get()?.m ?? 0;
    this.dataVersion = this.readDataVersion();
  }

  /** The stream this log's own `publish` appends to. */
  get localStream(): string {
    return `${this.nodeId}-0`;
  }

  private readDataVersion(): number {
    return this.db.pragma('data_version', { simple: true }) as number;
  }

  private checkOpen(): void {
    if (this.closed) throw new Error(`embedded event log ${this.file} is closed`);
  }

  // ---- writing -------------------------------------------------------------------------------

  async publish(events: readonly PublishRequest[]): Promise<readonly PublishedEvent[]> {
    return this.append(this.localStream, events, {});
  }

  /**
   * Appends `events` to `stream` (e.g. `drill1-0`, a simulated device) with the given Lamport
   * stamps and timestamps. Offsets stay gapless per stream; Lamport stamps must increase within a
   * stream; the log's clock moves to at least the highest stamp seen, so later local events sort after.
   */
  async publishAs(
    stream: string,
    events: readonly PublishAsRequest[],
    options: PublishAsOptions = {},
  ): Promise<readonly PublishedEvent[]> {
    if (typeof stream !== 'string' || stream === '') throw new TypeError('publishAs needs a stream id');
    return this.append(stream, events, options);
  }

  /** Synchronous core of `publish`/`publishAs`: one immediate transaction for the batch. */
  appendSync(stream: string, events: readonly PublishAsRequest[], options: PublishAsOptions = {}): PublishedEvent[] {
    this.checkOpen();
    this.startCheckpointer();
    checkStamp(options.lamport, 'lamport');
    checkStamp(options.timestamp, 'timestamp');
    const prepared = events.map((e, i) => {
      if (e === null || typeof e !== 'object') throw new TypeError(`event ${i}: expected {tags, payload}`);
      checkStamp(e.lamport, `event ${i}: lamport`);
      checkStamp(e.timestamp, `event ${i}: timestamp`);
      const appId = e.appId ?? options.appId ?? this.appId;
      if (typeof appId !== 'string' || appId === '')
        throw new TypeError(`event ${i}: appId must be a non-empty string`);
      // The JSON text after the stamps, built once here, outside the write transaction.
      const rest = `,"tags":${JSON.stringify(checkTags(e.tags, i))},"appId":${JSON.stringify(appId)},"payload":${payloadJson(e.payload, i)}}`;
      return { rest, lamport: e.lamport, timestamp: e.timestamp };
    });
    if (prepared.length === 0) return [];
    const now = nowMicros();
    const result = this.db
      .transaction((): PublishedEvent[] => {
        let clock = Number(this.stmts.getMeta.get('lamport')?.value ?? '0');
        const last = this.stmts.stream.get(stream);
        let offset = last?.last_offset ?? -1;
        let streamLamport = last?.last_lamport ?? -1;
        const streamJson = JSON.stringify(stream);
        const out: PublishedEvent[] = [];
        // Rows go in INSERT_ROWS at a time (fewer statement calls), the rest one by one.
        const pending: Array<string | number> = [];
        prepared.forEach((e, i) => {
          const lamport =
            e.lamport ?? (options.lamport !== undefined ? options.lamport + i : Math.max(clock, streamLamport) + 1);
          if (lamport <= streamLamport) {
            throw new RangeError(
              `lamport ${lamport} of event ${i} is not above ${streamLamport}, the last lamport of stream ${stream}`,
            );
          }
          const timestamp = e.timestamp ?? options.timestamp ?? now;
          offset += 1;
          pending.push(
            stream,
            offset,
            lamport,
            `{"lamport":${lamport},"stream":${streamJson},"offset":${offset},"timestamp":${timestamp}${e.rest}`,
          );
          if (pending.length === 4 * INSERT_ROWS) this.stmts.insertMany.run(...pending.splice(0));
          streamLamport = lamport;
          clock = Math.max(clock, lamport);
          out.push({ lamport, stream, offset, timestamp });
        });
        for (let j = 0; j < pending.length; j += 4) {
          this.stmts.insert.run(
            pending[j] as string,
            pending[j + 1] as number,
            pending[j + 2] as number,
            pending[j + 3] as string,
          );
        }
        this.stmts.upsertStream.run(stream, offset, streamLamport);
        this.stmts.setMeta.run('lamport', String(clock));
        return out;
      })
      .immediate();
    // On this thread, between two appends: appendSync cannot wait for the worker (wal-bound.ts).
    if (this.walBound?.due()) this.walBound.settle(truncateWal(this.db));
    this.maxSeq = this.stmts.maxSeq.get()?.m ?? this.maxSeq;
    this.wake();
    return result;
  }

  private append(
    stream: string,
    events: readonly PublishAsRequest[],
    options: PublishAsOptions,
  ): Promise<readonly PublishedEvent[]> {
    try {
      return Promise.resolve(this.appendSync(stream, events, options));
    } catch (err) {
      return Promise.reject(err);
    }
  }

  // ---- reading -------------------------------------------------------------------------------

  async matchContext(): Promise<MatchContext> {
    return this.context;
  }

  async presentOffsets(): Promise<OffsetMap> {
    this.checkOpen();
    return this.readPresent();
  }

  private readPresent(): Record<string, number> {
    const present: Record<string, number> = {};
    for (const r of this.stmts.streams.all()) setOffset(present, r.stream, r.last_offset);
    return present;
  }

  /** The events of a page that match and lie above `lower` (and, if given, at most `upper`). */
  private select(
    events: readonly ActyxEvent[],
    parsed: ParsedQuery,
    lower: OffsetTable,
    upper?: OffsetTable,
  ): ActyxEvent[] {
    const all = parsed.expr.kind === 'allEvents';
    const out: ActyxEvent[] = [];
    for (const event of events) {
      const lo = lower[event.stream];
      if (lo !== undefined && event.offset <= lo) continue;
      if (upper) {
        const hi = upper[event.stream];
        if (hi === undefined || event.offset > hi) continue;
      }
      if (all || matchesEvent(parsed, event, this.context)) out.push(event);
    }
    return out;
  }

  /** The seq just before the first event any stream has above `lower`. */
  private startSeq(lower: OffsetTable): number {
    let start = this.maxSeq;
    for (const { stream } of this.stmts.streams.all()) {
      const lo = lower[stream];
      const first = this.stmts.seqOf.get(stream, lo === undefined ? 0 : lo + 1);
      if (first && first.seq - 1 < start) start = first.seq - 1;
    }
    return start;
  }

  /**
   * The Lamport stamps between which the events lower < offset ≤ upper lie (stamps increase within
   * a stream, so the first and last such event of each stream bound them), and how many such
   * events there are; null if there are none.
   */
  private lamportRange(lower: OffsetTable, upper: OffsetTable): { lo: number; hi: number; events: number } | null {
    const present = this.readPresent();
    let lo = Infinity;
    let hi = -Infinity;
    let events = 0;
    for (const stream of Object.keys(upper)) {
      const up = upper[stream] as number;
      const first = (lower[stream] ?? -1) + 1;
      const last = Math.min(up, offsetOf(present, stream) ?? -1);
      if (first > last) continue;
      const a = this.stmts.lamportOf.get(stream, first);
      const b = this.stmts.lamportOf.get(stream, last);
      if (!a || !b) continue;
      lo = Math.min(lo, a.lamport);
      hi = Math.max(hi, b.lamport);
      events += last - first + 1;
    }
    return lo === Infinity ? null : { lo, hi, events };
  }

  /**
   * The stored events of `range`, page by page, in the range's order. A range of more than
   * READ_AHEAD_MIN_PAGES pages (`rows` estimates its size) is read ahead in a worker thread.
   * Ends early (without error) when `signal` aborts; throws if the log is closed meanwhile.
   */
  private async *storedPages(
    range: StoredRange,
    rows: number,
    signal: AbortSignal | undefined,
  ): AsyncGenerator<ActyxEvent[], void, undefined> {
    if (this.readAhead && rows > READ_AHEAD_MIN_PAGES * this.pageSize) {
      yield* this.prefetchedPages(range, signal);
      return;
    }
    for (let rest = range; ;) {
      if (signal?.aborted) return;
      this.checkOpen();
      if (rest.order === 'seq' && rest.after >= rest.end) return;
      const text =
        rest.order === 'seq'
          ? this.stmts.page.get(rest.after, rest.end, this.pageSize)
          : this.stmts.keyPage.get(...rest.after, rest.maxLamport, this.pageSize);
      if (!text) return;
      const page = decodePage(text, rest.order);
      const last = page.events[page.events.length - 1]!;
      rest =
        rest.order === 'seq'
          ? { ...rest, after: page.lastSeq }
          : { ...rest, after: [last.lamport, last.stream, last.offset] };
      yield page.events;
    }
  }

  /** `storedPages` with the pages read and encoded in columns by a worker thread, on its own connection to the file. */
  private async *prefetchedPages(
    range: StoredRange,
    signal: AbortSignal | undefined,
  ): AsyncGenerator<ActyxEvent[], void, undefined> {
    const prefetcher = new PagePrefetcher({
      file: resolvePath(this.file),
      pageSql: range.order === 'seq' ? SEQ_PAGE_ROWS : KEY_PAGE_ROWS,
      cursorSql: range.order === 'seq' ? SEQ_CURSOR : KEY_CURSOR,
      cursor: range.order === 'seq' ? [range.after] : range.after,
      bounds: [range.order === 'seq' ? range.end : range.maxLamport],
      pageSize: this.pageSize,
      ...(signal ? { signal } : {}),
    });
    this.prefetchers.add(prefetcher);
    const decoder = new EventColumnsDecoder();
    try {
      for await (const page of prefetcher) {
        if (signal?.aborted) return;
        this.checkOpen();
        yield decoder.decode(page);
      }
    } finally {
      this.prefetchers.delete(prefetcher);
      await prefetcher.stop();
    }
    if (signal?.aborted) return;
    this.checkOpen();
  }

  /** Resolves when an event beyond `seq` is stored (or the log closes / `signal` aborts). */
  private waitBeyond(seq: number, signal?: AbortSignal): Promise<void> {
    if (this.maxSeq > seq || this.closed || signal?.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        this.waiters.delete(done);
        signal?.removeEventListener('abort', done);
        resolve();
      };
      this.waiters.add(done);
      signal?.addEventListener('abort', done, { once: true });
      this.startPolling();
    });
  }

  private wake(): void {
    for (const w of [...this.waiters]) w();
  }

  /** Notices commits by other connections (another process, another EmbeddedLog on the same file). */
  private startPolling(): void {
    if (this.pollMs <= 0 || this.pollTimer) return;
    this.pollTimer = setInterval(() => {
      if (this.closed || this.waiters.size === 0) {
        if (this.pollTimer) clearInterval(this.pollTimer);
        this.pollTimer = null;
        return;
      }
      const version = this.readDataVersion();
      if (version === this.dataVersion) return;
      this.dataVersion = version;
      const max = this.stmts.maxSeq.get()?.m ?? 0;
      if (max > this.maxSeq) {
        this.maxSeq = max;
        this.wake();
      }
    }, this.pollMs);
    this.pollTimer.unref();
  }

  subscribe(query: string, lowerBound: OffsetMap, options: SubscribeOptions = {}): AsyncIterable<SubscriptionItem> {
    return flattenBatches(this.subscribeBatches(query, lowerBound, options));
  }

  async *subscribeBatches(
    query: string,
    lowerBound: OffsetMap,
    options: SubscribeOptions = {},
  ): AsyncGenerator<readonly SubscriptionItem[], void, undefined> {
    const parsed = parseQuery(query);
    const { signal } = options;
    this.checkOpen();
    const lower = offsetTable(lowerBound);
    // One read snapshot: the stored part ends at `caughtUpSeq`, whose offsets the caughtUp reports.
    const { caughtUpSeq, present, start } = this.db.transaction(() => ({
      caughtUpSeq: this.stmts.maxSeq.get()?.m ?? 0,
      present: this.readPresent(),
      start: this.startSeq(lower),
    }))();
    let cursor = start;
    let end = caughtUpSeq;
    let live = false;
    for (;;) {
      if (cursor < end) {
        // Only the stored part may read ahead: live ranges are short.
        const rows = live ? 0 : end - cursor;
        for await (const page of this.storedPages({ order: 'seq', after: cursor, end }, rows, signal)) {
          const events = this.select(page, parsed, lower);
          if (events.length > 0) {
            yield events.map((event): SubscriptionItem => ({ type: 'event', event }));
          } else {
            await yieldToEventLoop();
          }
        }
        if (signal?.aborted) return;
      }
      cursor = Math.max(cursor, end);
      if (!live) {
        live = true;
        yield [{ type: 'caughtUp', offsets: present }];
      }
      await this.waitBeyond(cursor, signal);
      if (signal?.aborted) return;
      this.checkOpen();
      end = this.maxSeq;
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

  async *queryBatches(
    query: string,
    lowerBound: OffsetMap,
    upperBound: OffsetMap,
    options: SubscribeOptions = {},
  ): AsyncGenerator<readonly ActyxEvent[], void, undefined> {
    const parsed = parseQuery(query);
    this.checkOpen();
    const lower = offsetTable(lowerBound);
    const upper = offsetTable(upperBound);
    const range = this.lamportRange(lower, upper);
    if (!range) return;
    let lo = range.lo;
    const since = earliestTimestamp(parsed.expr);
    if (since !== null && this.stmts.firstLamportSince !== null) {
      // Events older than the query's TIME bound cannot match: start at the least Lamport stamp
      // of those that are not (late events with old timestamps do not lower it; the query's
      // condition still decides each event).
      const first = this.stmts.firstLamportSince.get(since)?.m ?? null;
      if (first === null || first > range.hi) return;
      if (first > lo) lo = first;
    }
    // Stream ids are non-empty, so (lamport, '', -1) is below every event with that lamport.
    const stored: StoredRange = { order: 'key', after: [lo, '', -1], maxLamport: range.hi };
    for await (const page of this.storedPages(stored, range.events, options.signal)) {
      const events = this.select(page, parsed, lower, upper);
      if (events.length > 0) yield events;
      else await yieldToEventLoop();
    }
  }

  /** Starts checkpointing the WAL in a worker, once (before the first append). */
  private startCheckpointer(): void {
    if (!this.backgroundCheckpoints || this.checkpointer !== null) return;
    // If the worker fails, appends checkpoint again as SQLite does by default.
    this.checkpointer = new WalCheckpointer(this.file, {
      intervalMs: this.checkpointIntervalMs,
      onError: () => !this.closed && this.db.pragma('wal_autocheckpoint = 1000'),
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.pollTimer) clearInterval(this.pollTimer);
    this.pollTimer = null;
    this.wake();
    // Readers of stopped scans resume (and find the log closed) once their worker has exited.
    await Promise.all([...this.prefetchers].map((p) => p.stop()));
    await this.checkpointer?.stop();
    this.db.close();
  }
}
