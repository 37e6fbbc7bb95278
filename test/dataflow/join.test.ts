/**
 * Property: dd-join (the node's own logic, compileJoin) in a running dataflow — inner and left outer,
 * the left input chosen by node id whatever the order of the wires — keeps its table equal to the
 * join computed from scratch in plain JavaScript over all events, whatever the batch sizes, the
 * order in which streams were stored or arrived live (late events), and where the dataflow is
 * stopped and restarted. The right side is a fold numbering the stop events in causal order, so
 * a late event renumbers (retracts and re-inserts) right records already joined, and a stop joins
 * a start that had been unmatched (the left outer row is replaced).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { startDataflow } from '../../src/dataflow/coordinator';
import type { DataflowMember, Stage } from '../../src/dataflow/types';
import type { Value } from '../../src/engine/types';
import { compileJoin } from '../../src/nodes/dd-join';
import type { Node, NodeAPI, NodeDef } from '../../src/nodes/red';
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
  name: 'joined',
  mode: 'multiset',
  columns: [
    { name: 'key', type: 'text', value: { path: 'key' } },
    { name: 'machine', type: 'text', value: { path: 'machine' } },
    { name: 'type', type: 'text', value: { path: 'type' } },
    { name: 'n', type: 'integer', value: { path: 'n' } },
  ],
};

type Rec = { readonly [k: string]: Value };
const col = (s: Stage | undefined) => (s as Extract<Stage, { kind: 'collection' }>).collection;
const machineOf = (e: Rec): string => ((e.tags as string[]).find((t) => t.startsWith('machine:')) as string).slice(8);

/** The join node's logic for `kind`, with `events` as its left input. */
function joinMember(kind: 'inner' | 'left'): DataflowMember {
  const config = {
    id: 'join',
    type: 'dd-join',
    kind,
    left: 'events',
    leftKeyType: 'js',
    leftKey: 'return record.order;',
    rightKeyType: 'js',
    rightKey: 'return record.order;',
  } as unknown as NodeDef;
  // JavaScript keys need nothing of the Node-RED runtime.
  const logic = compileJoin({} as NodeAPI, {} as Node, config, 'join');
  // The wires list the right input first: the node must go by the id it names, not by position.
  return operatorMember('join', ['numbered', 'events'], logic.definition, (inputs, ids) => logic.build(inputs, ids));
}

function members(log: EmbeddedLog, db: SqliteDatabase, kind: 'inner' | 'left'): DataflowMember[] {
  return [
    sourceMember('src', "'machine'", log),
    operatorMember('events', ['src'], { fn: 'events' }, ([s]) => ({
      kind: 'collection',
      collection: col(s).map((v) => {
        const e = v as Rec;
        return { order: (e.payload as Rec).order as string, machine: machineOf(e), type: (e.payload as Rec).type };
      }),
    })),
    operatorMember('numbered', ['src'], { fn: 'numbered' }, ([s]) => ({
      kind: 'collection',
      collection: col(s)
        .filter((v) => ((v as Rec).payload as Rec).type === 'stopped')
        .groupBy(() => 'all')
        .scan(0, (n: number, v: Value, emit) => {
          emit({ order: ((v as Rec).payload as Rec).order as string, n });
          return n + 1;
        })
        .ungroup(),
    })),
    joinMember(kind),
    operatorMember('flat', ['join'], { fn: 'flat' }, ([s]) => ({
      kind: 'collection',
      collection: col(s).map((v) => {
        const r = v as Rec;
        const left = r.left as Rec;
        return { key: r.key, machine: left.machine, type: left.type, n: r.right === null ? null : (r.right as Rec).n };
      }),
    })),
    sinkMember('sink', ['flat'], db, table),
  ];
}

test('dd-join in a dataflow equals the join from scratch (inner and left outer; batches, late events, restarts)', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.constantFrom('inner' as const, 'left' as const),
      fc.integer({ min: 1, max: 30 }),
      fc.array(fc.integer({ min: 1, max: 99 }), { minLength: 0, maxLength: 3 }),
      fc.array(fc.boolean(), { minLength: 4, maxLength: 4 }),
      fc.integer({ min: 1, max: 100_000 }),
      async (kind, batchSize, cuts, flags, seed) => {
        const dir = tempDir('deltaflow-join-');
        const log = new EmbeddedLog(join(dir, 'log.sqlite'));
        const file = join(dir, 'views.sqlite');
        const db = new SqliteDatabase({ filename: file });
        try {
          const events = drillEvents({ machines: 3, events: 40, seed });
          const points = [...new Set(cuts.map((c) => Math.floor((c / 100) * events.length)))].sort((a, b) => a - b);
          const dataflow = members(log, db, kind);
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
            assert.equal(run.stats().error, null);
          }
          // From scratch: number the stops in causal order, then join every event with its order's stops.
          const causal = (await allEvents(log)).sort(
            (a, b) =>
              a.lamport - b.lamport || (a.stream < b.stream ? -1 : a.stream > b.stream ? 1 : 0) || a.offset - b.offset,
          );
          const stops = new Map<string, number[]>();
          causal
            .filter((e) => (e.payload as Rec).type === 'stopped')
            .forEach((e, n) => {
              const order = (e.payload as Rec).order as string;
              stops.set(order, [...(stops.get(order) ?? []), n]);
            });
          const expected: string[] = [];
          for (const e of causal) {
            const order = (e.payload as Rec).order as string;
            const row = { key: order, machine: machineOf(e as unknown as Rec), type: (e.payload as Rec).type };
            const matches = stops.get(order) ?? [];
            for (const n of matches) expected.push(rowText({ ...row, n }));
            if (matches.length === 0 && kind === 'left') expected.push(rowText({ ...row, n: null }));
          }
          assert.deepEqual(sqliteRows(file, table), expected.sort());
        } finally {
          await db.close();
          await log.close();
          rmSync(dir, { recursive: true, force: true });
        }
      },
    ),
    { numRuns: 200 },
  );
});

test('dd-join names what is missing: no left input chosen, the chosen one not wired in, no right input', () => {
  const logic = (left: string) =>
    compileJoin(
      {} as NodeAPI,
      {} as Node,
      {
        id: 'j',
        type: 'dd-join',
        left,
        leftKeyType: 'js',
        leftKey: 'return 1;',
        rightKeyType: 'js',
        rightKey: 'return 1;',
      } as unknown as NodeDef,
      'my join',
    );
  const stage = {} as Stage;
  assert.throws(
    () => logic('').build([stage, stage], ['a', 'b']),
    /^Error: my join: no left input chosen; open the node/,
  );
  assert.throws(() => logic('c').build([stage, stage], ['a', 'b']), /my join: its left input \(node c\) is not wired/);
  assert.throws(() => logic('a').build([stage], ['a']), /my join: no right input; wire a second node into it/);
  assert.throws(
    () =>
      compileJoin({} as NodeAPI, {} as Node, { id: 'j', type: 'dd-join', kind: 'outer' } as unknown as NodeDef, 'x'),
    /join: unknown kind "outer" \(expected inner or left\)/,
  );
});
