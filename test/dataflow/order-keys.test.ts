/**
 * Property: records derived from events carry the events' causal order through a dataflow, so a
 * fold over records that keep no Lamport field sees them in causal order — whatever the batch
 * sizes, the order in which streams were stored or arrived live (late events), and where the
 * dataflow is stopped and restarted. The table is compared with plain JavaScript over the events
 * sorted by (lamport, stream, offset), not with the engine.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { startDataflow } from '../../src/dataflow/coordinator';
import type { DataflowMember, Stage } from '../../src/dataflow/types';
import type { Value } from '../../src/engine/types';
import { SqliteDatabase } from '../../src/sinks/sqlite-database';
import type { TableSpec } from '../../src/sinks/types';
import { EmbeddedLog } from '../../src/sources/embedded-log';
import {
  allEvents,
  appendEvents,
  appendInOrder,
  drillEvents,
  operatorMember,
  recordingListener,
  rowText,
  sinkMember,
  sourceMember,
  sqliteRows,
  tempDir,
  waitCommitted,
} from './support';

const table: TableSpec = {
  name: 'sequence',
  mode: 'multiset',
  columns: [
    { name: 'n', type: 'integer', value: { path: 'n' } },
    { name: 'machine', type: 'text', value: { path: 'machine' } },
    { name: 'kind', type: 'text', value: { path: 'kind' } },
  ],
};

type Rec = { readonly [k: string]: Value };

/** events → {machine, kind} (no Lamport, no time) → one group → a fold numbering the records. */
function members(log: EmbeddedLog, db: SqliteDatabase): DataflowMember[] {
  return [
    sourceMember('src', "'machine'", log),
    operatorMember('strip', ['src'], { fn: 'strip' }, ([s]) => ({
      kind: 'collection',
      collection: (s as Extract<Stage, { kind: 'collection' }>).collection.map((v) => {
        const e = v as Rec;
        const tag = (e.tags as string[]).find((t) => t.startsWith('machine:')) as string;
        return { machine: tag.slice(8), kind: (e.payload as Rec).type as string };
      }),
    })),
    operatorMember('number', ['strip'], { fn: 'number' }, ([s]) => ({
      kind: 'collection',
      collection: (s as Extract<Stage, { kind: 'collection' }>).collection
        .groupBy(() => 'all')
        .scan(0, (n: number, r: Value, emit) => {
          emit({ n, ...(r as Rec) });
          return n + 1;
        })
        .ungroup(),
    })),
    sinkMember('sink', ['number'], db, table),
  ];
}

test('a fold over records without a Lamport field sees them in causal order (batches, late events, restarts)', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 1, max: 40 }),
      fc.array(fc.integer({ min: 1, max: 99 }), { minLength: 1, maxLength: 3 }),
      fc.array(fc.boolean(), { minLength: 4, maxLength: 4 }),
      fc.integer({ min: 1, max: 1000 }),
      async (batchSize, cuts, flags, seed) => {
        const dir = tempDir('deltaflow-order-');
        const log = new EmbeddedLog(join(dir, 'log.sqlite'));
        const file = join(dir, 'views.sqlite');
        const db = new SqliteDatabase({ filename: file });
        try {
          const events = drillEvents({ machines: 3, events: 120, seed });
          const points = [...new Set(cuts.map((c) => Math.floor((c / 100) * events.length)))].sort((a, b) => a - b);
          const dataflow = members(log, db);
          const settings = { batchSize, batchMs: 1, maxInFlight: 2, retentionMicros: null, onError: 'stop' as const };
          let from = 0;
          for (const [i, p] of [...points, events.length].entries()) {
            const chunk = events.slice(from, p);
            from = p;
            // Stream by stream (a stream's later events before another's earlier ones: late events) or in Lamport order.
            const append = (): void => (flags[(i + 1) % 4] ? appendEvents(log, chunk) : appendInOrder(log, chunk));
            const live = flags[i % 4];
            if (!live) append();
            const run = startDataflow({ source: log, members: dataflow, settings }, recordingListener());
            await run.live;
            if (live) append();
            await waitCommitted(run, await log.presentOffsets());
            await run.stop();
          }
          const causal = (await allEvents(log)).sort(
            (a, b) =>
              a.lamport - b.lamport || (a.stream < b.stream ? -1 : a.stream > b.stream ? 1 : 0) || a.offset - b.offset,
          );
          const expected = causal
            .map((e, n) => {
              const machine = (e.tags.find((t) => t.startsWith('machine:')) as string).slice(8);
              return rowText({ kind: (e.payload as Rec).type, machine, n });
            })
            .sort();
          assert.deepEqual(sqliteRows(file, table), expected);
        } finally {
          await db.close();
          await log.close();
          rmSync(dir, { recursive: true, force: true });
        }
      },
    ),
    { numRuns: 20 },
  );
});
