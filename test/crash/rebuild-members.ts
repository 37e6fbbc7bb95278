/**
 * The rebuild crash test's dataflow: one keyed table, a row per event (stream, offset) whose `v`
 * is the variant, so a changed variant rebuilds the table and old and new contents differ in every row.
 */
import type { Collection } from '../../src/engine/types';
import type { DataflowMember } from '../../src/dataflow/types';
import type { SinkDatabase, TableSpec } from '../../src/sinks/types';
import type { EventSource } from '../../src/sources/types';
import { operatorMember, sinkMember, sourceMember } from '../dataflow/support';

export const rebuildTable = (name: string): TableSpec => ({
  name,
  mode: 'keyed',
  columns: [
    { name: 'stream', type: 'text', value: { path: 'stream' }, key: true },
    { name: 'off', type: 'bigint', value: { path: 'off' }, key: true },
    { name: 'v', type: 'text', value: { path: 'v' }, index: true },
  ],
});

export function rebuildMembers(log: EventSource, db: SinkDatabase, name: string, variant: string): DataflowMember[] {
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
    sinkMember('sink', ['row'], db, rebuildTable(name)),
  ];
}
