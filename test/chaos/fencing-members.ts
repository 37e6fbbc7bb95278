/**
 * The fencing test's dataflow: the crash test's dashboard (keyed) and usage (multiset) tables, and
 * `applied`, one row per event (stream, offset) inserted by the sink: a trigger on it logs every
 * insert that commits, so an event applied twice shows as two log rows.
 */
import type { DataflowMember } from '../../src/dataflow/types';
import type { SinkDatabase, TableSpec } from '../../src/sinks/types';
import type { EventSource } from '../../src/sources/types';
import { crashMembers } from '../crash/members';
import { sinkMember } from '../dataflow/support';

export function appliedTable(name: string): TableSpec {
  return {
    name,
    mode: 'multiset',
    columns: [
      { name: 'stream', type: 'text not null', value: { path: 'stream' } },
      { name: 'event_offset', type: 'bigint not null', value: { path: 'offset' } },
    ],
  };
}

export function fencingMembers(log: EventSource, db: SinkDatabase, prefix: string): DataflowMember[] {
  return [...crashMembers(log, db, prefix), sinkMember('applied-sink', ['src'], db, appliedTable(`${prefix}applied`))];
}
