/**
 * Property: dd-scan and dd-reduce with an *Order by* (the nodes' own logic, compileScan and
 * compileReduce, with the order by written as a property path, JavaScript or JSONata) in a running
 * dataflow keep their tables equal to the same fold computed from scratch in plain JavaScript over
 * all events sorted by (order-by value, record) — whatever the batch sizes, the order in which
 * streams were stored or arrived live (late events), and where the dataflow is stopped and
 * restarted. The order-by value (a slot derived from the timestamp) disagrees with the causal
 * order and has many ties, and records repeat (the same record from several events), so the value
 * tie-break and multiplicities are exercised. It fails when the node ignores its Order by (the
 * records then come in causal order).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { startDataflow } from '../../src/dataflow/coordinator';
import type { DataflowMember, Stage } from '../../src/dataflow/types';
import { compareValues } from '../../src/engine/index';
import type { Value } from '../../src/engine/types';
import { compileReduce } from '../../src/nodes/dd-reduce';
import { compileScan } from '../../src/nodes/dd-scan';
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

// eslint-disable-next-line @typescript-eslint/no-require-imports
const RED = { util: require('@node-red/util').util } as NodeAPI;
const node = { id: 'n', type: 'dd-scan' } as unknown as Node;

type Rec = { readonly [k: string]: Value };
type Language = 'path' | 'js' | 'jsonata';
const ORDER_BY: Record<Language, string> = { path: 'slot', js: 'return record.slot;', jsonata: 'slot' };

const scanTable: TableSpec = {
  name: 'folded',
  mode: 'multiset',
  columns: [
    { name: 'machine', type: 'text', value: { path: 'machine' } },
    { name: 'n', type: 'integer', value: { path: 'n' } },
    { name: 'kind', type: 'text', value: { path: 'kind' } },
    { name: 'slot', type: 'integer', value: { path: 'slot' } },
  ],
};
const reduceTable: TableSpec = {
  name: 'sequences',
  mode: 'multiset',
  columns: [
    { name: 'machine', type: 'text', value: { path: 'machine' } },
    { name: 'seq', type: 'text', value: { path: 'seq' } },
  ],
};

const machineOf = (tags: readonly string[]): string => (tags.find((t) => t.startsWith('machine:')) as string).slice(8);
/** The record an event becomes: no Lamport, no order, so different events often give the same record. */
const recordOf = (machine: string, timestamp: number, type: string): Rec => ({
  machine,
  kind: type === 'started' ? 'a-start' : 'b-stop',
  slot: Math.floor(timestamp / 1000) % 5,
});

const SCAN_STEP = 'emit({ machine: key, n: state, kind: record.kind, slot: record.slot });\nreturn state + 1;';
const REDUCE_FN =
  "outputs.push([{ machine: key, seq: inputs.map(([r, m]) => (r.kind[0] + r.slot).repeat(m)).join(' ') }, 1]);";

function members(log: EmbeddedLog, db: SqliteDatabase, scanLanguage: Language, reduceLanguage: Language) {
  const config = (type: string, language: Language, rest: object) =>
    ({ id: type, type, orderByType: language, orderBy: ORDER_BY[language], ...rest }) as unknown as NodeDef;
  const scan = compileScan(RED, node, config('scan', scanLanguage, { initial: '0', func: SCAN_STEP }), 'scan');
  const reduce = compileReduce(RED, node, config('reduce', reduceLanguage, { func: REDUCE_FN }), 'reduce');
  const dataflow: DataflowMember[] = [
    sourceMember('src', "'machine'", log),
    operatorMember('group', ['src'], { fn: 'group' }, ([s]) => ({
      kind: 'grouped',
      grouped: (s as Extract<Stage, { kind: 'collection' }>).collection
        .map((v) => {
          const e = v as Rec;
          return recordOf(machineOf(e.tags as string[]), e.timestamp as number, (e.payload as Rec).type as string);
        })
        .groupBy((r) => (r as Rec).machine as string),
    })),
    operatorMember('scan', ['group'], scan.definition, (inputs, ids) => scan.build(inputs, ids)),
    operatorMember('reduce', ['group'], reduce.definition, (inputs, ids) => reduce.build(inputs, ids)),
    sinkMember('scanSink', ['scan'], db, scanTable),
    sinkMember('reduceSink', ['reduce'], db, reduceTable),
  ];
  return dataflow;
}

test('dd-scan and dd-reduce with an order by equal the fold from scratch (path, JavaScript, JSONata; batches, late events, restarts)', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.constantFrom<Language>('path', 'js', 'jsonata'),
      fc.constantFrom<Language>('path', 'js', 'jsonata'),
      fc.integer({ min: 1, max: 30 }),
      fc.array(fc.integer({ min: 1, max: 99 }), { minLength: 0, maxLength: 3 }),
      fc.array(fc.boolean(), { minLength: 4, maxLength: 4 }),
      fc.integer({ min: 1, max: 100_000 }),
      async (scanLanguage, reduceLanguage, batchSize, cuts, flags, seed) => {
        const dir = tempDir('deltaflow-order-by-');
        const log = new EmbeddedLog(join(dir, 'log.sqlite'));
        const file = join(dir, 'views.sqlite');
        const db = new SqliteDatabase({ filename: file });
        try {
          const events = drillEvents({ machines: 2, events: 30, seed, gapMicros: 3000 });
          const points = [...new Set(cuts.map((c) => Math.floor((c / 100) * events.length)))].sort((a, b) => a - b);
          const dataflow = members(log, db, scanLanguage, reduceLanguage);
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
          // From scratch: each machine's records sorted by (slot, record), folded in plain JavaScript.
          const byMachine = new Map<string, Rec[]>();
          for (const e of await allEvents(log)) {
            const m = machineOf(e.tags);
            byMachine.set(m, [
              ...(byMachine.get(m) ?? []),
              recordOf(m, e.timestamp, (e.payload as Rec).type as string),
            ]);
          }
          const folded: string[] = [];
          const sequences: string[] = [];
          for (const [machine, records] of byMachine) {
            const sorted = records.sort((a, b) => (a.slot as number) - (b.slot as number) || compareValues(a, b));
            sorted.forEach((r, n) => folded.push(rowText({ machine, n, kind: r.kind, slot: r.slot })));
            const seq: string[] = [];
            for (let i = 0; i < sorted.length;) {
              let j = i;
              while (j < sorted.length && compareValues(sorted[j]!, sorted[i]!) === 0) j++;
              seq.push(((sorted[i]!.kind as string)[0]! + String(sorted[i]!.slot)).repeat(j - i));
              i = j;
            }
            sequences.push(rowText({ machine, seq: seq.join(' ') }));
          }
          assert.deepEqual(sqliteRows(file, scanTable), folded.sort());
          assert.deepEqual(sqliteRows(file, reduceTable), sequences.sort());
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

test('the fingerprint definition: no order by is the one of before the field (no table rebuilt), an order by its own', () => {
  const config = (rest: object) => ({ id: 'r', type: 'dd-reduce', func: 'return [];', ...rest }) as unknown as NodeDef;
  // NB for src/nodes/order-by.ts: {func, order: 'causal'} is what dd-reduce defined before the field.
  assert.deepEqual(compileReduce(RED, node, config({}), 'r').definition, { func: 'return [];', order: 'causal' });
  assert.deepEqual(compileReduce(RED, node, config({ orderByType: 'js', orderBy: ' ' }), 'r').definition, {
    func: 'return [];',
    order: 'causal',
  });
  const scan = (rest: object) =>
    compileScan(RED, node, { id: 's', type: 'dd-scan', initial: '{}', func: 'return state;', ...rest } as NodeDef, 's');
  assert.deepEqual(scan({}).definition, { initial: {}, func: 'return state;', order: 'causal' });
  const a = compileReduce(RED, node, config({ orderByType: 'path', orderBy: 'at' }), 'r').definition;
  const b = compileReduce(RED, node, config({ orderByType: 'jsonata', orderBy: 'at' }), 'r').definition;
  assert.deepEqual(a, { func: 'return [];', order: { type: 'path', by: 'at' } });
  assert.notDeepEqual(a, b);
  assert.notDeepEqual(scan({ orderByType: 'path', orderBy: 'at' }).definition, scan({}).definition);
  assert.throws(
    () =>
      compileScan(
        RED,
        node,
        {
          id: 's',
          type: 'dd-scan',
          func: 'return state;',
          orderByType: 'js',
          orderBy: 'return (',
        } as unknown as NodeDef,
        's',
      ),
    /order by: JavaScript syntax error/,
  );
});
