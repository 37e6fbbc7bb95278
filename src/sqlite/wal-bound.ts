/**
 * Keeps the WAL of a file that a WalCheckpointer checkpoints (wal-checkpointer.ts) bounded: after
 * each commit the writer looks at the WAL file's size, and past `limitBytes` it has
 * `wal_checkpoint(TRUNCATE)` run before its next transaction.
 *
 * Why the background checkpoints alone let it grow: a checkpoint copies WAL frames into the
 * database file, but the WAL only starts over from its beginning when a writer begins a
 * transaction after a checkpoint copied *every* frame (and no reader still uses the WAL). The
 * worker's passive checkpoints run while the writer keeps committing: each copies the frames up to
 * the commit it saw, and by the time it is done the writer has appended more. In a catch-up,
 * commits follow each other within milliseconds, so the WAL never started over: 2.6 GB over the
 * example flows' 10M events, 300 MB–1 GB at 1M, and 1.7 GB while bench:e2e generated a 1M log
 * (BENCHMARKS.md). SQLite's own automatic checkpoint does not have the problem because it runs in
 * the committing connection after its commit, when nobody appends. The truncation here runs at
 * such a point too: between two commits, once per `limitBytes` of WAL.
 *
 * Where it runs: the SQLite sink hands it to its checkpoint worker and its commit waits for the
 * answer (asynchronously: the dataflow keeps computing, its next commit waits; the 1M catch-up
 * 1.04× main's time, median of 5 pairs). On the writing thread each truncation of the 1M
 * catch-up took ≈ 45 ms (median; ≈ 55 of them: ≈ 2.5 s of a 40 s catch-up, 1.08× main's time),
 * mostly the syncs a complete checkpoint needs before the WAL may start over (the WAL, then the
 * database file, then the truncated WAL) — not copying: waiting until the worker had copied all
 * but 4 MiB did not make it cheaper. A larger limit means fewer truncations. The embedded
 * log truncates on its own connection between two appends (appendSync cannot wait for a worker;
 * generating a 1M log in 5,000 appends took 1.15× as long), as does the sink without a
 * checkpoint worker.
 *
 * The file's size is the measure (one `stat` per commit, a few microseconds): it is the disk use a
 * plant's integrator sees, and TRUNCATE brings it back to zero, so "past the limit" means "grew by
 * the limit since the last truncation". `journal_size_limit` is set to the same limit on the
 * writing connection: when the WAL starts over by itself (the worker caught up, as it does between
 * live commits), SQLite cuts a file left larger by a burst back to the limit at the first commit.
 * RESTART instead of TRUNCATE would save the truncation itself (≈ 10 ms on the writing thread) but
 * leaves the file at its largest size and the size no longer tells how much was written since.
 *
 * NB: SQLite behaviours this depends on (sqlite3WalCheckpoint and walCheckpoint in wal.c, 3.53):
 * - A connection cannot checkpoint while it has a transaction open (SQLITE_LOCKED). The writer's
 *   next transaction begins after the truncation has answered, so no frame is appended meanwhile.
 * - TRUNCATE takes the write lock and, after copying every frame, exclusive locks on the read
 *   slots, waiting for both through the connection's busy handler. With `busy_timeout = 0` (set
 *   for the call) there is no busy handler: a reader holding a snapshot (a dashboard, a backup)
 *   or another process's writer makes it return at once, busy, having copied what it could. The
 *   pragma reports busy in its first column (1), not as an error. It is tried again at the first
 *   commit WAL_RETRY_MS later; meanwhile the WAL grows, as it must while a reader uses it. A
 *   commit never fails or waits for a reader because of it.
 * - Only one checkpoint runs at a time: while another connection's checkpoint holds the
 *   checkpoint lock, TRUNCATE returns busy at once, with the log's size as -1 ('locked': nothing
 *   copied, nothing waited for); it is tried again at the next commit.
 * - On success the WAL file is truncated to zero bytes and the next commit starts it over.
 * - `journal_size_limit` truncates the WAL (to the limit, or to the end of that transaction's
 *   frames if larger) at the end of the first transaction after the WAL started over.
 *
 * A failure other than busy (an I/O error, a full disk while the database file grows) leaves
 * every commit in place — they are in the WAL — and the truncation is tried again
 * WAL_FAILURE_RETRY_MS later; such a fault meets the next commit's writes too, which fail, are
 * reported and retried. The commit (or append) is never failed by the checkpoint: it has already
 * succeeded.
 */
import { statSync } from 'node:fs';
import { resolve } from 'node:path';

/**
 * The bound of a WAL file, bytes: 32 MiB. The file passes it by the commits until a truncation
 * succeeds: one commit's frames (the 1M catch-up peaked at 40–45 MB), a few more when another
 * checkpoint was running, all of them while a reader holds a snapshot.
 */
export const WAL_LIMIT_BYTES = 32 * 1048576;

/** How soon a truncation that readers kept from completing is tried again, ms. */
export const WAL_RETRY_MS = 100;

/** How soon one that failed (not busy) is tried again, ms. */
export const WAL_FAILURE_RETRY_MS = 5000;

/**
 * What a truncating checkpoint did: truncated the WAL; found readers (or another writer) in the
 * way, after copying what it could; found another checkpoint running (nothing done); failed.
 */
export type WalTruncation = 'truncated' | 'busy' | 'locked' | 'failed';

/**
 * Defines `truncateWal(db)`: runs `wal_checkpoint(TRUNCATE)` on `db` (a better-sqlite3 connection
 * not in a transaction) without a busy handler, and says what it did (WalTruncation), and
 * `truncationOutcome(row)`: that answer from the pragma's row. Plain CommonJS text, so that the
 * checkpoint worker runs the same code as this thread.
 */
export const TRUNCATE_WAL_SOURCE = `
function truncationOutcome(row) {
  if (row.busy === 0) return 'truncated';
  return Number(row.log) < 0 ? 'locked' : 'busy';
}
function truncateWal(db) {
  let timeout = 0;
  try {
    timeout = db.pragma('busy_timeout', { simple: true });
    if (timeout !== 0) db.pragma('busy_timeout = 0');
    return truncationOutcome(db.pragma('wal_checkpoint(TRUNCATE)')[0]);
  } catch {
    return 'failed';
  } finally {
    try {
      if (timeout !== 0) db.pragma('busy_timeout = ' + timeout);
    } catch {}
  }
}
`;

const defined = new Function(`${TRUNCATE_WAL_SOURCE}\nreturn { truncateWal, truncationOutcome };`)() as {
  truncateWal: (db: unknown) => WalTruncation;
  truncationOutcome: (row: { busy?: unknown; log?: unknown }) => WalTruncation;
};

/** `truncateWal` in this thread (the embedded log's connection). */
export const truncateWal = defined.truncateWal;

/** What a `wal_checkpoint(TRUNCATE)` row says it did (the sink's session without a worker runs the pragma itself). */
export const truncationOutcome = defined.truncationOutcome;

/** The pragma that makes SQLite cut a WAL that started over by itself back to the limit. */
export const journalSizeLimitPragma = (limitBytes: number): string =>
  `journal_size_limit = ${Math.max(0, Math.floor(limitBytes))}`;

/**
 * When the WAL of `file` wants truncating: `due()` after each commit (a `stat` of the WAL file,
 * and whether the last attempt asked to wait), `settle(outcome)` with what the truncation did.
 */
export class WalBound {
  private readonly walFile: string;
  private retryAt = 0;

  constructor(
    file: string,
    private readonly limitBytes: number = WAL_LIMIT_BYTES,
  ) {
    this.walFile = `${resolve(file)}-wal`;
  }

  due(): boolean {
    if (Date.now() < this.retryAt) return false;
    try {
      return (statSync(this.walFile, { throwIfNoEntry: false })?.size ?? 0) > this.limitBytes;
    } catch {
      this.retryAt = Date.now() + WAL_FAILURE_RETRY_MS;
      return false;
    }
  }

  settle(outcome: WalTruncation): void {
    // 'locked': another checkpoint was running, nothing was waited for: again at the next commit.
    if (outcome === 'busy') this.retryAt = Date.now() + WAL_RETRY_MS;
    else if (outcome === 'failed') this.retryAt = Date.now() + WAL_FAILURE_RETRY_MS;
  }
}
