/**
 * Checkpoints an SQLite file in WAL mode from a worker thread. SQLite's automatic checkpoint runs
 * inside the commit that takes the WAL past 1,000 pages and copies them into the database file:
 * for the embedded log that was a 15 ms stall every ~180 single-event appends, on the thread that
 * also computes and commits the dataflow. The writing connection turns automatic checkpoints off
 * and this worker runs passive checkpoints (they never wait for, or block, readers and the writer)
 * on its own connection every `intervalMs`. Asked to (`truncate`, wal-bound.ts), it runs a
 * truncating checkpoint between two of the writer's commits.
 *
 * The worker keeps the process alive until close(), although unref() is called: the 'message'
 * listener added after unref() refs the worker's port again (Node does that for a 'message'
 * listener; seen on Node 20). The fencing chaos test's workers depended on that until they kept
 * themselves alive; it is stated here, not changed in passing.
 */
import { Worker } from 'node:worker_threads';
import { LOWER_WORKER_PRIORITY_JS } from './background-thread';
import { sqliteDriverPath } from './driver-path';
import { READER_CACHE_PRAGMA } from './page-cache';
import { TRUNCATE_WAL_SOURCE, type WalTruncation } from './wal-bound';

export interface WalCheckpointerOptions {
  /** How often to checkpoint, ms (default 200). */
  readonly intervalMs?: number;
  /** The worker failed (the caller turns automatic checkpoints back on). */
  readonly onError: (message: string) => void;
}

/**
 * Plain CommonJS run with eval (no TypeScript loader needed); posts {error} when it fails. A
 * message {truncate: id} runs a truncating checkpoint (wal-bound.ts) and answers {id, outcome}.
 */
const WORKER_CODE = `
const { parentPort, workerData } = require('node:worker_threads');
${LOWER_WORKER_PRIORITY_JS}
${TRUNCATE_WAL_SOURCE}
const { driver, file, intervalMs } = workerData;
let db = null;
let timer = null;
function fail(err) {
  if (timer) clearInterval(timer);
  try { if (db) db.close(); } catch {}
  db = null;
  parentPort.postMessage({ error: String((err && err.message) || err) });
}
try {
  const Database = require(driver);
  db = new Database(file, { fileMustExist: true });
  db.pragma('busy_timeout = 1000');
  db.pragma('${READER_CACHE_PRAGMA}');
  timer = setInterval(() => {
    try { db.pragma('wal_checkpoint(PASSIVE)'); } catch (err) { fail(err); }
  }, intervalMs);
  parentPort.on('message', (m) => {
    if (m !== null && typeof m === 'object' && typeof m.truncate === 'number') {
      parentPort.postMessage({ id: m.truncate, outcome: db === null ? 'failed' : truncateWal(db) });
      return;
    }
    if (m !== 'stop') return;
    clearInterval(timer);
    try { db.pragma('wal_checkpoint(PASSIVE)'); db.close(); } catch {}
    parentPort.close();
  });
} catch (err) {
  fail(err);
}
`;

const live = new Set<Worker>();

/** Checkpoint workers started and not yet exited (a test hook: which files run one). */
export function liveWalCheckpointers(): number {
  return live.size;
}

export class WalCheckpointer {
  private readonly worker: Worker;
  private readonly exited: Promise<void>;
  /** Truncations asked for and not yet answered, by id. */
  private readonly truncations = new Map<number, (outcome: WalTruncation) => void>();
  private nextId = 1;
  private gone = false;

  constructor(file: string, options: WalCheckpointerOptions) {
    this.worker = new Worker(WORKER_CODE, {
      eval: true,
      execArgv: [],
      workerData: { driver: sqliteDriverPath(), file, intervalMs: options.intervalMs ?? 200 },
    });
    this.worker.unref();
    live.add(this.worker);
    this.worker.on('message', (m: unknown) => {
      if (m === null || typeof m !== 'object') return;
      if ('error' in m) options.onError(String((m as { error: unknown }).error));
      else if ('outcome' in m) {
        const { id, outcome } = m as { id: number; outcome: WalTruncation };
        this.truncations.get(id)?.(outcome);
        this.truncations.delete(id);
      }
    });
    this.worker.on('error', (err) => options.onError(err.message));
    this.exited = new Promise((resolve) =>
      this.worker.once('exit', () => {
        live.delete(this.worker);
        this.gone = true;
        for (const answer of this.truncations.values()) answer('failed');
        this.truncations.clear();
        resolve();
      }),
    );
  }

  /**
   * Runs a truncating checkpoint in the worker, between its passive ones (wal-bound.ts): the
   * caller's thread computes meanwhile. 'failed' once the worker has exited.
   */
  truncate(): Promise<WalTruncation> {
    if (this.gone) return Promise.resolve('failed');
    const id = this.nextId++;
    return new Promise((resolve) => {
      this.truncations.set(id, resolve);
      this.worker.postMessage({ truncate: id });
    });
  }

  /** Checkpoints once more and ends the worker. */
  async stop(): Promise<void> {
    this.worker.postMessage('stop');
    const timeout = setTimeout(() => void this.worker.terminate(), 2000);
    await this.exited;
    clearTimeout(timeout);
  }
}
