/**
 * The rebuild tests' dataflow (the rebuild crash test, rebuild-aside, swap-keeps-table): one keyed
 * table, a row per event (stream, offset) whose `v` is the variant, so a changed variant rebuilds the
 * table and old and new contents differ in every row.
 */
import type { Collection } from '../../src/engine/types';
import type { DataflowMember, DataflowSettings } from '../../src/dataflow/types';
import type { SinkDatabase, TableSpec } from '../../src/sinks/types';
import type { EventSource } from '../../src/sources/types';
import { operatorMember, sinkMember, sourceMember } from './support';

/** The table; `wide` adds a column (a schema change). */
export const rebuildTable = (name: string, wide = false): TableSpec => ({
  name,
  mode: 'keyed',
  columns: [
    { name: 'stream', type: 'text', value: { path: 'stream' }, key: true },
    { name: 'off', type: 'bigint', value: { path: 'off' }, key: true },
    { name: 'v', type: 'text', value: { path: 'v' }, index: true },
    ...(wide ? [{ name: 'w', type: 'text' as const, value: { path: 'v' } }] : []),
  ],
});

/** Settings of the rebuild tests: small batches, two commits in flight. */
export const REBUILD_SETTINGS: DataflowSettings = {
  batchSize: 500,
  batchMs: 1,
  maxInFlight: 2,
  retentionMicros: null,
  onError: 'skip',
};

/** The dataflow into `table` (a name, or a spec such as `rebuildTable(name, true)`). */
export function rebuildMembers(
  log: EventSource,
  db: SinkDatabase,
  table: string | TableSpec,
  variant: string,
): DataflowMember[] {
  return [
    sourceMember('src', "'machine'", log),
    operatorMember('row', ['src'], { fn: 'row', variant }, ([s]) => ({
      kind: 'collection',
      collection: (s as { collection: Collection }).collection.map(
        (e) => {
          const ev = e as { stream: string; offset: number };
          return { stream: ev.stream, off: ev.offset, v: variant };
        },
        { name: 'row' },
      ),
    })),
    sinkMember('sink', ['row'], db, typeof table === 'string' ? rebuildTable(table) : table),
  ];
}
