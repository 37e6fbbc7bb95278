/**
 * One commit: per database, every sink's row changes together with its offsets, fingerprint and
 * watermark in ONE transaction. A retried commit first checks whether an earlier attempt did
 * commit (a lost acknowledgement), so a batch is never applied twice. With a lease, the
 * transaction checks the fencing token before anything else (lease-sql.ts).
 */
import type { Batch } from '../engine/types';
import type {
  LeaseToken,
  RowChange,
  SinkDatabase,
  SinkState,
  StateChanges,
  StateScope,
  TableSpec,
} from '../sinks/types';
import { offsetsEqual } from '../core/offset-map';
import type { SinkMember } from './types';

export interface SinkWrite {
  readonly sink: SinkMember;
  /** The table written: the sink's, or the shadow table a rebuild fills aside (context.ts, shadows). */
  readonly table: TableSpec;
  readonly changes: Batch;
  readonly state: SinkState;
  /** See ApplyOptions.replaceStored: true with a retention window. */
  readonly replaceStored?: boolean;
}

export interface DatabaseCommitResult {
  /**
   * Row changes per sink id. When an earlier attempt had already committed this batch (its
   * acknowledgement was lost), that attempt's changes; null only if none of this process made them.
   */
  readonly rows: ReadonlyMap<string, readonly RowChange[]> | null;
}

/** The row changes the latest attempt had made when it asked the database to commit. */
export interface CommitAttempts {
  rows: ReadonlyMap<string, readonly RowChange[]> | null;
}

/** Durable operator state written in the commit (in the state database only). */
export interface ScopeWrite {
  readonly scope: string;
  readonly level: StateScope;
  readonly changes: StateChanges;
  /** The state cache's warm-up hint, written with the state (live, every STATE_HINT_MS); null: none. */
  readonly hint: string | null;
}

export async function commitToDatabase(
  database: SinkDatabase,
  writes: readonly SinkWrite[],
  isRetry: boolean,
  attempts: CommitAttempts = { rows: null },
  fence?: LeaseToken,
  state: ScopeWrite | null = null,
): Promise<DatabaseCommitResult> {
  return database.transaction(async (tx) => {
    // The fencing check first (issue 14): an instance whose lease was taken over writes nothing.
    if (fence !== undefined) await tx.fence(fence);
    if (state !== null && (tx.readScope === undefined || tx.writeScope === undefined))
      throw new Error(`${database.label} cannot hold operator state`);
    if (isRetry && writes.length === 0 && state !== null) {
      // A commit of state alone (replaying): the scope's level says whether it went through.
      const stored = await tx.readScope!(state.scope);
      if (stored !== null && offsetsEqual(stored.offsets, state.level.offsets)) return { rows: attempts.rows };
    }
    if (isRetry && writes.length > 0) {
      const first = writes[0] as SinkWrite;
      const stored = await tx.readState(first.table);
      if (
        stored.fingerprint === first.state.fingerprint &&
        offsetsEqual(stored.offsets, first.state.offsets) &&
        stored.watermark === first.state.watermark
      ) {
        // The commit of the last attempt that got this far is the one that succeeded: a later
        // attempt finds it here and goes no further.
        return { rows: attempts.rows };
      }
    }
    const rows = new Map<string, readonly RowChange[]>();
    for (const w of writes) {
      rows.set(
        w.sink.id,
        w.changes.length > 0
          ? await tx.apply(w.table, w.changes, w.sink.reportChanges !== false, {
              replaceStored: w.replaceStored === true,
            })
          : [],
      );
      await tx.writeState(w.table, w.state);
    }
    // NB: in the same transaction as the rows and offsets above (docs/durable-state.md, "Crash
    // consistency"); the crash test SIGKILLs inside commits and compares the state's restart.
    if (state !== null) await tx.writeScope!(state.scope, state.level, state.changes);
    // Only a cache, fenced and committed with the rest (docs/durable-state.md, "Warm-up after a restart").
    if (state !== null && state.hint !== null && tx.writeStateHint !== undefined)
      await tx.writeStateHint(state.scope, state.hint);
    attempts.rows = rows; // what the commit about to be sent makes, should its acknowledgement be lost
    return { rows };
  });
}

/** Groups sinks by the database object they write to (one transaction per database). */
export function sinksByDatabase(sinks: readonly SinkMember[]): Map<SinkDatabase, SinkMember[]> {
  const out = new Map<SinkDatabase, SinkMember[]>();
  for (const s of sinks) {
    const list = out.get(s.database) ?? [];
    list.push(s);
    out.set(s.database, list);
  }
  return out;
}
