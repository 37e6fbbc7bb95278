/**
 * Reads the pages of a stored range of events in a worker thread, ahead of the consumer, so the
 * SQLite part of a long scan, and most of turning rows into events, overlaps with what the main
 * thread does with the pages. The worker opens its own read-only connection (WAL lets readers run
 * beside the writer) and posts each page in columns (event-columns.ts), which the main thread
 * turns into events at about half the cost of parsing the page as JSON. Posting parsed objects is
 * no alternative: structured-cloning them costs as much as parsing them.
 *
 * Flow control is by credit, in the size of pages (bytes of their arrays plus characters of their
 * texts): the consumer grants `aheadBytes` at the start and gives back the size of every page it
 * takes; the worker reads while it has credit left, so at most `aheadBytes` plus one page are
 * buffered. The worker is unref'd while nobody waits for a page (an abandoned iterator does not
 * keep the process alive) and terminated on return(), on abort, on error and at the end.
 */
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
  /** The size of pages read ahead of the consumer (default 8 Mi, about 100,000 small events). */
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
 * under tsx and from `dist/`. better-sqlite3 comes by absolute path (any cwd works).
 * Messages to the main thread: an EventColumnsPage, null = the end, {error} = a failure.
 */
const WORKER_CODE = `
const { parentPort, workerData } = require('node:worker_threads');
${LOWER_WORKER_PRIORITY_JS}
${EVENT_COLUMNS_ENCODER_JS}
const { driver, file, pageSql, cursorSql, bounds, pageSize, pageBytes, maxStrings } = workerData;
const encode = createEventColumnsEncoder(maxStrings);
let cursor = workerData.cursor;
let rows = Math.min(pageSize, 256);
let credit = 0;
let finished = false;
let read = null;
let db = null;
function finish(message) {
  finished = true;
  try { if (db) db.close(); } catch {}
  parentPort.postMessage(message);
  parentPort.close();
}
function pump() {
  try {
    while (credit > 0 && !finished) {
      const { texts, next } = read();
      if (texts.length === 0) { finish(null); break; }
      const columns = encode(texts);
      credit -= columns.size;
      parentPort.postMessage(columns, [columns.numbers.buffer, columns.refs.buffer]);
      if (next === undefined) finish(null);
      else cursor = next;
      // The next page: as many rows as keep its payload text within pageBytes at this page's
      // characters per row (the typed arrays are transferred, not copied: they do not count).
      rows = Math.max(1, Math.min(pageSize, Math.floor(rows * pageBytes / Math.max(1, columns.payloads.length))));
    }
  } catch (err) {
    finish({ error: String(err && err.message || err) });
  }
}
try {
  const Database = require(driver);
  db = new Database(file, { readonly: true, fileMustExist: true });
  db.pragma('busy_timeout = 5000');
  // A scan reads each page once: no 16 MB cache (page-cache.ts).
  db.pragma('${READER_CACHE_PRAGMA}');
  const page = db.prepare(pageSql).pluck();
  const after = db.prepare(cursorSql).raw();
  // One snapshot per page, so the cursor is that of the page just read.
  read = db.transaction(() => {
    const texts = page.all(...cursor, ...bounds, rows);
    return { texts, next: texts.length < rows ? undefined : after.get(...cursor, ...bounds, rows - 1) };
  });
  parentPort.on('message', (n) => { credit += n; pump(); });
} catch (err) {
  finish({ error: String(err && err.message || err) });
}
`;

/**
 * The young generation of the worker's heap (MB). A worker gets 48 MB by default, whatever
 * `--max-old-space-size` says (the flag bounds the main thread only); the read-ahead worker let
 * about 20 MB of garbage accumulate there, two workers in a catch-up of the example flows. What
 * dies young in it is a page's texts, well below this. Reading 1M events was as fast (BENCHMARKS.md).
 */
const READ_AHEAD_YOUNG_MB = 4;

const live = new Set<Worker>();
let started = 0;

/** Workers started and not yet exited (a test hook: none may be left behind). */
export function liveReadAheadWorkers(): number {
  return live.size;
}

/** The heap limits of the workers not yet exited (a test hook: the young generation is bounded). */
export function readAheadResourceLimits(): ResourceLimits[] {
  return [...live].map((w) => w.resourceLimits ?? {});
}

/** Workers started so far (a test hook: whether a read used one, whatever its worker's timing). */
export function readAheadWorkersStarted(): number {
  return started;
}

interface Waiter {
  resolve(result: IteratorResult<EventColumnsPage, undefined>): void;
  reject(err: Error): void;
}

/** The pages of one range, read ahead in a worker thread. */
export class PagePrefetcher implements AsyncIterableIterator<EventColumnsPage, undefined> {
  private readonly worker: Worker;
  private readonly queue: EventColumnsPage[] = [];
  private waiter: Waiter | null = null;
  /** The worker sent its last page, or reading stopped. */
  private ended = false;
  private failure: Error | null = null;
  private readonly exited: Promise<void>;
  private readonly onAbort = (): void => void this.stop();

  constructor(private readonly options: PagePrefetchOptions) {
    const { file, pageSql, cursorSql, cursor, bounds, pageSize } = options;
    const pageBytes = options.pageBytes ?? 64 * 1024;
    const maxStrings = options.maxStrings ?? 16 * 1024;
    this.worker = new Worker(WORKER_CODE, {
      eval: true,
      // The worker is plain JS: no need to start a TypeScript loader (tsx) in it.
      execArgv: [],
      // Its garbage is a page's texts: a small young generation (READ_AHEAD_YOUNG_MB).
      resourceLimits: { maxYoungGenerationSizeMb: READ_AHEAD_YOUNG_MB },
      workerData: {
        driver: sqliteDriverPath(),
        file,
        pageSql,
        cursorSql,
        cursor,
        bounds,
        pageSize,
        pageBytes,
        maxStrings,
      },
    });
    live.add(this.worker);
    started++;
    this.exited = new Promise((resolve) =>
      this.worker.once('exit', (code) => {
        live.delete(this.worker);
        if (!this.ended) this.fail(`the worker exited (code ${code}) before the end of the range`);
        resolve();
      }),
    );
    this.worker.on('message', (m: EventColumnsPage | null | { error: string }) => this.receive(m));
    this.worker.on('error', (err) => this.fail(err.message));
    this.worker.on('messageerror', (err) => this.fail(err.message));
    this.worker.unref();
    this.worker.postMessage(Math.max(1, options.aheadBytes ?? 8 * 1024 * 1024));
    if (options.signal?.aborted) void this.stop();
    else options.signal?.addEventListener('abort', this.onAbort, { once: true });
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  next(): Promise<IteratorResult<EventColumnsPage, undefined>> {
    const page = this.queue.shift();
    if (page !== undefined) {
      if (!this.ended) this.worker.postMessage(page.size);
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
      this.worker.ref(); // someone waits: keep the process alive until the page comes
    });
  }

  /** Stops reading; resolves when the worker has exited. */
  async return(): Promise<IteratorResult<EventColumnsPage, undefined>> {
    await this.stop();
    return { value: undefined, done: true };
  }

  /** Stops reading (a pending next() ends as done); resolves when the worker has exited. */
  async stop(): Promise<void> {
    this.end();
    this.queue.length = 0;
    await this.worker.terminate();
    await this.exited;
  }

  private receive(m: EventColumnsPage | null | { error: string }): void {
    if (m === null) {
      this.end();
    } else if ('error' in m) {
      this.fail(m.error);
    } else {
      if (this.ended) return;
      const waiter = this.takeWaiter();
      if (waiter) {
        this.worker.postMessage(m.size);
        waiter.resolve({ value: m, done: false });
      } else {
        this.queue.push(m);
      }
    }
  }

  private fail(message: string): void {
    if (this.ended) return;
    const err = new Error(`reading ahead in ${this.options.file} failed: ${message}`);
    const waiter = this.takeWaiter();
    if (waiter) waiter.reject(err);
    else this.failure = err;
    this.end();
    void this.worker.terminate();
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
    if (waiter) this.worker.unref();
    return waiter;
  }
}
