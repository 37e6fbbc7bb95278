/**
 * Reads the pages of a stored range of events in a worker thread, ahead of the consumer, so the
 * SQLite part of a long scan, and most of turning rows into events, overlaps with what the main
 * thread does with the pages. One worker serves every range the process reads at a time (several
 * dataflows catching up), each range on a read-only connection of its own (WAL lets readers run
 * beside the writer); it posts each page in columns (event-columns.ts), which the main thread
 * turns into events at about half the cost of parsing the page as JSON. Posting parsed objects is
 * no alternative: structured-cloning them costs as much as parsing them.
 *
 * Flow control is by credit per range, in the size of pages (bytes of their arrays plus
 * characters of their texts): the consumer grants `aheadBytes` at the start and gives back the
 * size of every page it takes; the worker reads a range while it has credit left, so at most
 * `aheadBytes` plus one page are buffered. The worker is unref'd while nobody waits for a page (an
 * abandoned iterator does not keep the process alive); a range's connection is closed on
 * return(), on abort, on error and at its end, and the worker is terminated with its last range. */
import { Worker, type ResourceLimits } from 'node:worker_threads';
import { LOWER_WORKER_PRIORITY_JS } from '../sqlite/background-thread';
import { sqliteDriverPath } from '../sqlite/driver-path';
import { READER_CACHE_PRAGMA } from '../sqlite/page-cache';
import { EVENT_COLUMNS_ENCODER_JS, type EventColumnsPage } from './event-columns';

/** A value bound to a statement parameter. */
export type SqlValue = number | string;

export interface PagePrefetchOptions {
  /** Absolute path of the SQLite file. */
  readonly file: string;
  /** Parameters `...cursor, ...bounds, limit`; returns the stored event texts of the next page, in the range's order. */
  readonly pageSql: string;
  /**
   * Parameters `...cursor, ...bounds, offset`; returns the cursor columns of the row at `offset` in
   * page order — with `offset = rows - 1`, the cursor after a page of `rows` (no row: it was the last page).
   */
  readonly cursorSql: string;
  /** Where reading starts (exclusive), in the columns `cursorSql` returns. */
  readonly cursor: readonly SqlValue[];
  /** Parameters fixing the end of the range, the same for every page. */
  readonly bounds: readonly SqlValue[];
  /** The most rows a page may have; pages are made smaller to stay below `pageBytes`. */
  readonly pageSize: number;
  /**
   * The characters a page's payload text should stay below (default 64 Ki). A string above V8's
   * largest regular object (128 KiB) is allocated in the large-object space: receiving a 400 KB
   * page text (2000 bench events as whole JSON) cost ~2 ms, a 100 KB one ~15 µs. The worker sizes
   * each page from the previous one; the typed arrays do not count (they are transferred).
   */
  readonly pageBytes?: number;
  /** The size of pages read ahead of the consumer (default READ_AHEAD_BYTES). */
  readonly aheadBytes?: number;
  /**
   * Entries (distinct streams, tag sets, app ids) the pages' shared dictionary may hold before it
   * starts over (default 16 Ki): it must stay bounded however many streams a long range has.
   */
  readonly maxStrings?: number;
  readonly signal?: AbortSignal;
}

/**
 * The worker: plain CommonJS that needs no TypeScript loader, so it runs the same from `src/`
 * under tsx and from `dist/`. better-sqlite3 comes by absolute path (any cwd works). One worker
 * reads every range of the process (READ_AHEAD_THREAD below), each on a connection of its own.
 * Messages from the main thread: {open: id, file, pageSql, cursorSql, cursor, bounds, pageSize,
 * pageBytes, maxStrings}, {credit: id, n}, {close: id}. To the main thread, each with the range's
 * `id`: {page} (an EventColumnsPage), {end}, {error}, {closed} (the answer to close).
 */
const WORKER_CODE = `
const { parentPort, workerData } = require('node:worker_threads');
${LOWER_WORKER_PRIORITY_JS}
${EVENT_COLUMNS_ENCODER_JS}
const Database = require(workerData.driver);
const ranges = new Map();
function finish(r, message) {
  ranges.delete(r.id);
  try { if (r.db) r.db.close(); } catch {}
  if (message) parentPort.postMessage(message);
}
function open(m) {
  const r = { id: m.open, db: null, read: null, credit: 0, encode: createEventColumnsEncoder(m.maxStrings),
    cursor: m.cursor, rows: Math.min(m.pageSize, 256), pageSize: m.pageSize, pageBytes: m.pageBytes };
  ranges.set(r.id, r);
  try {
    r.db = new Database(m.file, { readonly: true, fileMustExist: true });
    r.db.pragma('busy_timeout = 5000');
    // A scan reads each page once: no 16 MB cache (page-cache.ts).
    r.db.pragma('${READER_CACHE_PRAGMA}');
    const page = r.db.prepare(m.pageSql).pluck();
    const after = r.db.prepare(m.cursorSql).raw();
    const bounds = m.bounds;
    // One snapshot per page, so the cursor is that of the page just read.
    r.read = r.db.transaction(() => {
      const texts = page.all(...r.cursor, ...bounds, r.rows);
      return { texts, next: texts.length < r.rows ? undefined : after.get(...r.cursor, ...bounds, r.rows - 1) };
    });
  } catch (err) {
    finish(r, { id: r.id, error: String(err && err.message || err) });
  }
}
// Reads one page of r and posts it.
function readPage(r) {
  try {
    const { texts, next } = r.read();
    if (texts.length === 0) { finish(r, { id: r.id, end: true }); return; }
    const columns = r.encode(texts);
    r.credit -= columns.size;
    parentPort.postMessage({ id: r.id, page: columns }, [columns.numbers.buffer, columns.refs.buffer]);
    if (next === undefined) { finish(r, { id: r.id, end: true }); return; }
    r.cursor = next;
    // The next page: as many rows as keep its payload text within pageBytes at this page's
    // characters per row (the typed arrays are transferred, not copied: they do not count).
    r.rows = Math.max(1, Math.min(r.pageSize, Math.floor(r.rows * r.pageBytes / Math.max(1, columns.payloads.length))));
  } catch (err) {
    finish(r, { id: r.id, error: String(err && err.message || err) });
  }
}
// A page of each range that has credit in turn, until none has.
function pump() {
  for (let more = true; more; ) {
    more = false;
    for (const r of [...ranges.values()]) {
      if (r.credit <= 0 || !ranges.has(r.id)) continue;
      readPage(r);
      more = true;
    }
  }
}
parentPort.on('message', (m) => {
  if (m.open !== undefined) open(m);
  else if (m.credit !== undefined) {
    const r = ranges.get(m.credit);
    if (r) r.credit += m.n;
  } else if (m.close !== undefined) {
    const r = ranges.get(m.close);
    if (r) finish(r, null);
    parentPort.postMessage({ id: m.close, closed: true });
  }
  pump();
});
`;

/**
 * The young generation of the worker's heap (MB). A worker gets 48 MB by default, whatever
 * `--max-old-space-size` says (the flag bounds the main thread only); the read-ahead worker let
 * about 20 MB of garbage accumulate there, two workers in a catch-up of the example flows. What
 * dies young in it is a page's texts, well below this. Reading 1M events was as fast (BENCHMARKS.md).
 */
const READ_AHEAD_YOUNG_MB = 4;

/**
 * How much the worker reads ahead of the consumer (bytes of the pages' arrays plus characters of
 * their texts): 1 Mi, about 15,000 small events. A consumer that computes (a catch-up) takes
 * events far slower than the worker reads them, so the whole credit sits in the consumer's queue
 * for the whole range: its payload texts in the main thread's old generation, its arrays outside
 * the heap. 8 Mi before: up to 8 MB per dataflow catching up (the example flows' events count
 * about 70 bytes each: ~118,000 events, several seconds of a catch-up with durable state, where
 * 1 Mi is still tens of milliseconds of reading at the worker's pace).
 */
export const READ_AHEAD_BYTES = 1024 * 1024;

type FromWorker =
  | { readonly id: number; readonly page: EventColumnsPage }
  | { readonly id: number; readonly end: true }
  | { readonly id: number; readonly error: string }
  | { readonly id: number; readonly closed: true };

/** What the read-ahead thread asks of a range it serves. */
interface RangeReader {
  receive(m: FromWorker): void;
  /** The thread is gone (exited or failed): the range cannot continue. */
  lost(reason: string): void;
}

const live = new Set<Worker>();
let rangesStarted = 0;

/** Read-ahead workers started and not yet exited (a test hook: none may be left behind). */
export function liveReadAheadWorkers(): number {
  return live.size;
}

/** The heap limits of the workers not yet exited (a test hook: the young generation is bounded). */
export function readAheadResourceLimits(): ResourceLimits[] {
  return [...live].map((w) => w.resourceLimits ?? {});
}

/** Ranges read ahead so far (a test hook: whether a read used the worker, whatever its timing). */
export function readAheadRangesStarted(): number {
  return rangesStarted;
}

/**
 * The one worker thread that reads ahead for every range of the process, started with the first
 * range and ended when the last one stops. Each worker thread is a V8 isolate of its own, about
 * 9 MB of RSS before it reads anything (its heap alone: 9 MB committed, 5 MB used, Node 20), so a
 * worker per range cost that once per dataflow catching up: two for the example flows, one per
 * dataflow after an upgrade that rebuilds several. The worker reads a page of each range with
 * credit in turn; it reads several times faster than a catch-up takes events (BENCHMARKS.md).
 */
class ReadAheadThread {
  readonly worker: Worker;
  private readonly ranges = new Map<number, RangeReader>();
  private nextId = 1;
  /** Ranges with a consumer waiting for a page: the worker keeps the process alive meanwhile. */
  private waiting = 0;
  private readonly closing = new Map<number, () => void>();
  readonly exited: Promise<void>;

  constructor() {
    this.worker = new Worker(WORKER_CODE, {
      eval: true,
      // The worker is plain JS: no need to start a TypeScript loader (tsx) in it.
      execArgv: [],
      // Its garbage is a page's texts: a small young generation (READ_AHEAD_YOUNG_MB).
      resourceLimits: { maxYoungGenerationSizeMb: READ_AHEAD_YOUNG_MB },
      workerData: { driver: sqliteDriverPath() },
    });
    live.add(this.worker);
    this.exited = new Promise((resolve) =>
      this.worker.once('exit', (code) => {
        live.delete(this.worker);
        if (thread === this) thread = null;
        this.loseAll(`the worker exited (code ${code}) before the end of the range`);
        resolve();
      }),
    );
    this.worker.on('message', (m: FromWorker) => {
      if ('closed' in m) {
        this.closing.get(m.id)?.();
        this.closing.delete(m.id);
      } else this.ranges.get(m.id)?.receive(m);
    });
    this.worker.on('error', (err) => this.loseAll(err.message));
    this.worker.on('messageerror', (err) => this.loseAll(err.message));
    this.worker.unref();
  }

  open(reader: RangeReader, options: PagePrefetchOptions, credit: number): number {
    const id = this.nextId++;
    this.ranges.set(id, reader);
    const { file, pageSql, cursorSql, cursor, bounds, pageSize } = options;
    this.worker.postMessage({
      open: id,
      file,
      pageSql,
      cursorSql,
      cursor,
      bounds,
      pageSize,
      pageBytes: options.pageBytes ?? 64 * 1024,
      maxStrings: options.maxStrings ?? 16 * 1024,
    });
    this.worker.postMessage({ credit: id, n: credit });
    return id;
  }

  credit(id: number, n: number): void {
    if (this.ranges.has(id)) this.worker.postMessage({ credit: id, n });
  }

  /** A consumer of some range starts (true) or stops (false) waiting for a page. */
  wait(on: boolean): void {
    if (on && this.waiting++ === 0) this.worker.ref();
    if (!on && --this.waiting === 0) this.worker.unref();
  }

  /**
   * The range is done (ended, failed, or stopped by its consumer): the worker closes its
   * connection; the last range ends the worker. Resolves when the connection is closed (the
   * worker has answered, or exited).
   */
  async close(id: number): Promise<void> {
    if (!this.ranges.delete(id)) return;
    if (this.ranges.size === 0) {
      if (thread === this) thread = null; // a range opened from now on starts a new worker
      await this.worker.terminate();
      await this.exited;
      return;
    }
    const closed = new Promise<void>((resolve) => this.closing.set(id, resolve));
    this.worker.postMessage({ close: id });
    this.wait(true); // the answer keeps the process alive
    try {
      await Promise.race([closed, this.exited]);
    } finally {
      this.wait(false);
    }
  }

  private loseAll(reason: string): void {
    const readers = [...this.ranges.values()];
    this.ranges.clear();
    for (const r of readers) r.lost(reason);
    for (const resolve of this.closing.values()) resolve();
    this.closing.clear();
    if (thread === this) thread = null;
    void this.worker.terminate();
  }
}

let thread: ReadAheadThread | null = null;

interface Waiter {
  resolve(result: IteratorResult<EventColumnsPage, undefined>): void;
  reject(err: Error): void;
}

/** The pages of one range, read ahead by the process's read-ahead worker. */
export class PagePrefetcher implements AsyncIterableIterator<EventColumnsPage, undefined>, RangeReader {
  private readonly thread: ReadAheadThread;
  private readonly id: number;
  private readonly queue: EventColumnsPage[] = [];
  private waiter: Waiter | null = null;
  /** The worker sent the range's last page, or reading stopped. */
  private ended = false;
  private failure: Error | null = null;
  private closed: Promise<void> | null = null;
  private readonly onAbort = (): void => void this.stop();

  constructor(private readonly options: PagePrefetchOptions) {
    this.thread = thread ??= new ReadAheadThread();
    rangesStarted++;
    this.id = this.thread.open(this, options, Math.max(1, options.aheadBytes ?? READ_AHEAD_BYTES));
    if (options.signal?.aborted) void this.stop();
    else options.signal?.addEventListener('abort', this.onAbort, { once: true });
  }

  /** Size of the pages received and not taken yet (a test hook: what the read-ahead holds). */
  get buffered(): number {
    let n = 0;
    for (const page of this.queue) n += page.size;
    return n;
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  next(): Promise<IteratorResult<EventColumnsPage, undefined>> {
    const page = this.queue.shift();
    if (page !== undefined) {
      if (!this.ended) this.thread.credit(this.id, page.size);
      return Promise.resolve({ value: page, done: false });
    }
    if (this.failure) {
      const err = this.failure;
      this.failure = null; // reported once; afterwards the iterator is done
      return Promise.reject(err);
    }
    if (this.ended) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
      this.thread.wait(true); // someone waits: keep the process alive until the page comes
    });
  }

  /** Stops reading; resolves when the range's connection is closed (and a worker left without ranges has exited). */
  async return(): Promise<IteratorResult<EventColumnsPage, undefined>> {
    await this.stop();
    return { value: undefined, done: true };
  }

  /** Stops reading (a pending next() ends as done); resolves when the range's connection is closed. */
  async stop(): Promise<void> {
    this.end();
    this.queue.length = 0;
    await this.close();
  }

  /** @internal (RangeReader) */
  receive(m: FromWorker): void {
    if ('end' in m) {
      this.end();
      void this.close();
    } else if ('error' in m) {
      this.fail(m.error);
    } else if ('page' in m) {
      if (this.ended) return;
      const waiter = this.takeWaiter();
      if (waiter) {
        this.thread.credit(this.id, m.page.size);
        waiter.resolve({ value: m.page, done: false });
      } else {
        this.queue.push(m.page);
      }
    }
  }

  /** @internal (RangeReader) */
  lost(reason: string): void {
    this.fail(reason);
  }

  private close(): Promise<void> {
    return (this.closed ??= this.thread.close(this.id));
  }

  private fail(message: string): void {
    if (this.ended) return;
    const err = new Error(`reading ahead in ${this.options.file} failed: ${message}`);
    const waiter = this.takeWaiter();
    if (waiter) waiter.reject(err);
    else this.failure = err;
    this.end();
    void this.close();
  }

  /** No more pages will come; a waiting next() ends as done. */
  private end(): void {
    if (this.ended) return;
    this.ended = true;
    this.options.signal?.removeEventListener('abort', this.onAbort);
    this.takeWaiter()?.resolve({ value: undefined, done: true });
  }

  private takeWaiter(): Waiter | null {
    const waiter = this.waiter;
    this.waiter = null;
    if (waiter) this.thread.wait(false);
    return waiter;
  }
}
