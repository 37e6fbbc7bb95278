/**
 * The crash test's dataflow: dashboard (keyed) and usage (multiset) over one source; with `paged`
 * (the durable-state cases) also a `scan` pairing each machine's started/stopped events (a
 * checkpoint every 4 inputs, so its groups span many stored pages) and the first timespan per
 * machine by a multiset `minBy` over the scan's output (one stored entry per timespan).
 */
import type { Collection, Grouped, Value } from '../../src/engine';
import type { DataflowMember, Stage } from '../../src/dataflow/types';
import type { SinkDatabase } from '../../src/sinks/types';
import type { EventSource } from '../../src/sources/types';
import {
  dashboardMembers,
  operatorMember,
  sinkMember,
  sourceMember,
  usageMembers,
  usageTable,
} from '../dataflow/support';

type Rec = { readonly [k: string]: Value };

function machineOf(ev: Rec): string {
  const tag = (ev.tags as readonly string[]).find((t) => t.startsWith('machine:'));
  return tag === undefined ? '?' : tag.slice('machine:'.length);
}

export function pagedMembers(sourceId: string, db: SinkDatabase, prefix: string): DataflowMember[] {
  const col = (s: Stage): Collection => (s as { collection: Collection }).collection;
  const grp = (s: Stage): Grouped => (s as { grouped: Grouped }).grouped;
  return [
    operatorMember('spans-group', [sourceId], { by: 'machine' }, ([s]) => ({
      kind: 'grouped',
      grouped: col(s as Stage).groupBy((v) => machineOf(v as Rec), { name: 'spans-group' }),
    })),
    operatorMember('spans-scan', ['spans-group'], { fn: 'pair started/stopped' }, ([s]) => ({
      kind: 'grouped',
      grouped: grp(s as Stage).scan(
        {},
        (state, value, emit, key) => {
          const open = state as Record<string, number>;
          const ev = value as Rec;
          const payload = ev.payload as Rec;
          const order = 'order ' + String(payload.order);
          if (payload.type === 'started') open[order] = ev.timestamp as number;
          else if (Object.hasOwn(open, order)) {
            const started = open[order]!;
            delete open[order];
            emit({ machine: key, order: payload.order, started, durationMicros: (ev.timestamp as number) - started });
          }
          return open;
        },
        { name: 'spans-scan', checkpointEvery: 4 },
      ),
    })),
    operatorMember('spans', ['spans-scan'], {}, ([s]) => ({
      kind: 'collection',
      collection: grp(s as Stage).ungroup({ name: 'spans' }),
    })),
    sinkMember('spans-sink', ['spans'], db, usageTable(`${prefix}spans`)),
    operatorMember('first-span', ['spans-scan'], { by: 'started' }, ([s]) => ({
      kind: 'collection',
      collection: grp(s as Stage)
        .minBy((v) => (v as Rec).started as number, { name: 'first-span' })
        .ungroup({ name: 'first-span' }),
    })),
    sinkMember('first-span-sink', ['first-span'], db, usageTable(`${prefix}first_span`)),
  ];
}

export function crashMembers(log: EventSource, db: SinkDatabase, prefix: string, paged = false): DataflowMember[] {
  return [
    sourceMember('src', "'machine'", log),
    ...dashboardMembers('src', db, `${prefix}dashboard`),
    ...usageMembers('src', db, `${prefix}usage`),
    ...(paged ? pagedMembers('src', db, prefix) : []),
  ];
}
