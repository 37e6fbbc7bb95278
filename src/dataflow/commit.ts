/**
 * One commit: per database, every sink's row changes together with its offsets, fingerprint and
 * watermark in ONE transaction. A retried commit first checks whether an earlier attempt did
 * commit (a lost acknowledgement), so a batch is never applied twice.
 */
import type { Batch } from '../engine/types';
import type { RowChange, SinkDatabase, SinkState } from '../sinks/types';
import { offsetsEqual } from './offsets';
import type { SinkMember } from './types';

export interface SinkWrite {
  readonly sink: SinkMember;
  readonly changes: Batch;
  readonly state: SinkState;
}

export interface DatabaseCommitResult {
  /** Row changes per sink id; null when an earlier attempt had already committed this batch. */
  readonly rows: ReadonlyMap<string, readonly RowChange[]> | null;
}

export async function commitToDatabase(database: SinkDatabase, writes: readonly SinkWrite[], isRetry: boolean): Promise<DatabaseCommitResult> {
  return database.transaction(async (tx) => {
    if (isRetry && writes.length > 0) {
      const first = writes[0] as SinkWrite;
      const stored = await tx.readState(first.sink.table);
      if (stored.fingerprint === first.state.fingerprint && offsetsEqual(stored.offsets, first.state.offsets) && stored.watermark === first.state.watermark) {
        return { rows: null };
      }
    }
    const rows = new Map<string, readonly RowChange[]>();
    for (const w of writes) {
      rows.set(w.sink.id, w.changes.length > 0 ? await tx.apply(w.sink.table, w.changes, w.sink.reportChanges !== false) : []);
      await tx.writeState(w.sink.table, w.state);
    }
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
