/** The crash test's dataflow: dashboard (keyed) and usage (multiset) over one source. */
import type { DataflowMember } from '../../src/dataflow/types';
import type { SinkDatabase } from '../../src/sinks/types';
import type { EventSource } from '../../src/sources/types';
import { dashboardMembers, sourceMember, usageMembers } from '../dataflow/support';

export function crashMembers(log: EventSource, db: SinkDatabase, prefix: string): DataflowMember[] {
  return [
    sourceMember('src', "'machine'", log),
    ...dashboardMembers('src', db, `${prefix}dashboard`),
    ...usageMembers('src', db, `${prefix}usage`),
  ];
}
