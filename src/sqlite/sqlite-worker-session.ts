/**
 * An SQLite session whose connection lives in a worker thread: this thread only posts statements
 * (one message per call, parameters as they are) and their SQLite work overlaps with whatever it
 * computes meanwhile. The worker is unref'd while no request is pending (an idle sink never keeps
 * the process alive). Errors come back with their message and SQLite code; if the worker dies,
 * pending and later calls fail with a SqliteWorkerGone error and the owner opens a new session.
 */
import { Worker } from 'node:worker_threads';
import { sqliteDriverPath } from './driver-path';
import {
  SESSION_SOURCE,
  type SessionOp,
  type SqliteParams,
  type SqliteRow,
  type SqliteSession,
  type SqliteSessionOptions,
} from './sqlite-session';

/** The session's worker exited or failed: what it was doing is lost (SQLite rolled it back). */
export class SqliteWorkerGone extends Error {
  override readonly name = 'SqliteWorkerGone';
}

/** An error as the worker reports it: enough to rebuild one that isRetryable and messages treat alike. */
interface ErrorData {
  readonly message: string;
  readonly name: string;
  readonly code?: string;
  /** better-sqlite3 throws TypeErrors for misuse and for a missing directory. */
  readonly typeError: boolean;
  /** The table of a 'later' statement that failed. */
  readonly tag?: string;
}

type Reply =
  | { readonly id: number; readonly result: number | SqliteRow[] | null }
  | { readonly id: number; readonly error: ErrorData };

/**
 * Message 0 answers the opening ({id: 0} or {id: 0, error}); then each request {id, op, sql, params}
 * gets one reply. After `close` (or a failed opening) the worker closes its port and exits.
 */
const WORKER_CODE = `
const { parentPort, workerData } = require('node:worker_threads');
${SESSION_SOURCE}
function errorData(err) {
  return {
    message: String((err && err.message) || err),
    name: String((err && err.name) || 'Error'),
    code: err && typeof err.code === 'string' ? err.code : undefined,
    typeError: err instanceof TypeError,
    tag: err && typeof err.tag === 'string' ? err.tag : undefined,
  };
}
let handle = null;
try {
  handle = openSqliteSession(require(workerData.driver), workerData.file, workerData.options);
  parentPort.postMessage({ id: 0, result: null });
} catch (err) {
  parentPort.postMessage({ id: 0, error: errorData(err) });
  parentPort.close();
}
if (handle) {
  parentPort.on('message', ({ id, op, sql, params, tag }) => {
    // A 'later' statement gets no reply: its failure is thrown by the next request.
    if (op === 'later') return void handle(op, sql, params, tag);
    let reply;
    try {
      reply = { id, result: handle(op, sql, params) };
    } catch (err) {
      reply = { id, error: errorData(err) };
    }
    parentPort.postMessage(reply);
    if (op === 'close') parentPort.close();
  });
}
`;

const live = new Set<Worker>();

/** Session workers started and not yet exited (a test hook: none may be left behind, and tests end one to see a death handled). */
export function liveSqliteWorkers(): readonly Worker[] {
  return [...live];
}

interface Pending {
  resolve(result: number | SqliteRow[] | null): void;
  reject(err: Error): void;
}

/** Opens the connection in a new worker; rejects (with the driver's message and code) when that fails. */
export async function openWorkerSession(file: string, options: SqliteSessionOptions): Promise<SqliteSession> {
  const session = new WorkerSession(file, options);
  try {
    await session.opened;
  } catch (err) {
    await session.close();
    throw err;
  }
  return session;
}

class WorkerSession implements SqliteSession {
  private readonly worker: Worker;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  /** Why calls fail (closed, or the worker died); null while usable. */
  private gone: Error | null = null;
  private readonly exited: Promise<void>;
  readonly opened: Promise<void>;

  constructor(
    private readonly file: string,
    options: SqliteSessionOptions,
  ) {
    this.worker = new Worker(WORKER_CODE, {
      eval: true,
      // The worker is plain JS: no need to start a TypeScript loader (tsx) in it.
      execArgv: [],
      workerData: { driver: sqliteDriverPath(), file, options },
    });
    live.add(this.worker);
    this.opened = this.expect(0).then(() => undefined);
    this.worker.on('message', (m: Reply) => this.receive(m));
    this.worker.on('error', (err) => this.fail(`failed: ${err.message}`));
    this.worker.on('messageerror', (err) => this.fail(`sent an unreadable message: ${err.message}`));
    this.exited = new Promise((resolve) =>
      this.worker.once('exit', (code) => {
        live.delete(this.worker);
        this.fail(`exited (code ${code})`);
        resolve();
      }),
    );
  }

  get usable(): boolean {
    return this.gone === null;
  }

  run(sql: string, params: SqliteParams): Promise<number> {
    return this.request('run', sql, params) as Promise<number>;
  }

  runLater(sql: string, params: SqliteParams, tag: string): void {
    // Once the worker is gone the next waiting call reports it.
    if (this.gone === null) this.worker.postMessage({ id: 0, op: 'later', sql, params, tag });
  }

  all(sql: string, params: SqliteParams): Promise<SqliteRow[]> {
    return this.request('all', sql, params) as Promise<SqliteRow[]>;
  }

  async exec(sql: string): Promise<void> {
    await this.request('exec', sql, []);
  }

  async rollback(): Promise<void> {
    await this.request('rollback', '', []);
  }

  /** Closes the connection after the requests already posted, then ends the worker. */
  async close(): Promise<void> {
    if (this.gone === null) {
      const closing = this.request('close', '', []);
      this.gone = new SqliteWorkerGone(`the SQLite connection to ${this.file} is closed`);
      await closing.catch(() => undefined);
    }
    await this.worker.terminate();
    await this.exited;
  }

  private request(op: SessionOp, sql: string, params: SqliteParams): Promise<number | SqliteRow[] | null> {
    if (this.gone) return Promise.reject(this.gone);
    const id = this.nextId++;
    const reply = this.expect(id);
    this.worker.postMessage({ id, op, sql, params });
    return reply;
  }

  private expect(id: number): Promise<number | SqliteRow[] | null> {
    return new Promise((resolve, reject) => {
      // Someone waits for the worker: keep the process alive until it answers.
      if (this.pending.size === 0) this.worker.ref();
      this.pending.set(id, { resolve, reject });
    });
  }

  private take(id: number): Pending | undefined {
    const p = this.pending.get(id);
    this.pending.delete(id);
    if (p && this.pending.size === 0) this.worker.unref();
    return p;
  }

  private receive(m: Reply): void {
    const p = this.take(m.id);
    if (!p) return;
    if ('error' in m) p.reject(rebuild(m.error));
    else p.resolve(m.result);
  }

  /** The worker is unusable: every pending and later call fails with a retryable error. */
  private fail(what: string): void {
    const err = new SqliteWorkerGone(`the SQLite worker for ${this.file} ${what}`);
    this.gone ??= err;
    for (const id of [...this.pending.keys()]) this.take(id)?.reject(err);
  }
}

/** The worker's error as an Error of this thread: a TypeError or an Error with the same name, message and code. */
function rebuild(data: ErrorData): Error {
  const err = data.typeError ? new TypeError(data.message) : new Error(data.message);
  err.name = data.name;
  if (data.code !== undefined) Object.assign(err, { code: data.code });
  if (data.tag !== undefined) Object.assign(err, { tag: data.tag });
  return err;
}
