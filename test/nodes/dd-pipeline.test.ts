/**
 * The dd-* nodes in a running dataflow (node-red-node-test-helper with the real actyx-config,
 * actyx-subscribe, dd-dataflow, db-config and db-sink nodes, an embedded log and a SQLite file):
 * what they compute, their statuses, their after-commit messages, a wrong input kind, and a user
 * function that throws on one event.
 */
import { after, afterEach, test } from 'node:test';
import assert from 'node:assert/strict';
import actyxConfig from '../../src/nodes/actyx-config';
import actyxSubscribe from '../../src/nodes/actyx-subscribe';
import dbConfig from '../../src/nodes/db-config';
import dbSink from '../../src/nodes/db-sink';
import ddDataflow from '../../src/nodes/dd-dataflow';
import ddFilter from '../../src/nodes/dd-filter';
import ddMap from '../../src/nodes/dd-map';
import ddGroupby from '../../src/nodes/dd-groupby';
import ddMaxby from '../../src/nodes/dd-maxby';
import ddMinby from '../../src/nodes/dd-minby';
import ddReduce from '../../src/nodes/dd-reduce';
import ddAggregate from '../../src/nodes/dd-aggregate';
import ddFlatmap from '../../src/nodes/dd-flatmap';
import ddDistinct from '../../src/nodes/dd-distinct';
import { openSharedEmbeddedLog } from '../../src/sources/shared-embedded-log';
import { machineTags } from '../../src/simulator/event-model';
import { errorsOf, eventually, helper, statusesOf, table, testFolder, type FlowNode } from './dd-helper';

const NODES = [
  actyxConfig,
  actyxSubscribe,
  dbConfig,
  dbSink,
  ddDataflow,
  ddFilter,
  ddMap,
  ddGroupby,
  ddMaxby,
  ddMinby,
  ddReduce,
  ddAggregate,
  ddFlatmap,
  ddDistinct,
];
const folder = testFolder('deltaflow-dd-pipeline-');
const files = folder.files;

afterEach(async () => {
  await helper.unload();
});
after(() => folder.remove());

const col = (name: string, type: string, value: string, key = false) => ({
  name,
  type,
  source: 'path',
  value,
  key,
  index: false,
  exclude: false,
});

/** A flow with the common config nodes; `nodes` get z/x/y and the dataflow filled in. */
function flow(logFile: string, dbFile: string, nodes: FlowNode[]): FlowNode[] {
  return [
    { id: 'tab', type: 'tab' },
    { id: 'log', type: 'actyx-config', kind: 'embedded', file: logFile },
    { id: 'df', type: 'dd-dataflow', name: 'test dataflow', batchSize: '1000', batchMs: '5', maxInFlight: '2' },
    { id: 'db', type: 'db-config', kind: 'sqlite', filename: dbFile },
    {
      id: 'sub',
      type: 'actyx-subscribe',
      z: 'tab',
      x: 0,
      y: 0,
      actyx: 'log',
      query: "'machine'",
      dataflow: 'df',
      wires: [nodes.filter((n) => n.input === 'sub').map((n) => n.id)],
    },
    ...nodes.map(({ input: _input, ...n }) => ({ z: 'tab', x: 0, y: 0, dataflow: 'df', wires: [[]], ...n })),
  ];
}

async function publish(
  logFile: string,
  events: { machine: string; type: 'started' | 'stopped'; order: string; at: number }[],
): Promise<void> {
  const handle = openSharedEmbeddedLog(logFile);
  try {
    for (const e of events)
      await handle.log.publishAs(`${e.machine.toLowerCase()}-0`, [
        { tags: machineTags(e.machine), payload: { type: e.type, order: e.order }, timestamp: e.at },
      ]);
  } finally {
    await handle.release();
  }
}

const MAP_JS =
  "const m = record.tags.find((t) => t.startsWith('machine:')).slice(8); return { machine: m, type: record.payload.type, order: record.payload.order, at: record.timestamp };";

test('a dashboard pipeline of dd nodes computes the latest state per machine, shows live status and sends its changes after commits', async () => {
  const { logFile, dbFile } = files();
  await publish(logFile, [
    { machine: 'Drill1', type: 'started', order: '1', at: 1_000_000 },
    { machine: 'Drill2', type: 'started', order: '2', at: 2_000_000 },
  ]);
  await helper.load(
    NODES,
    flow(logFile, dbFile, [
      {
        id: 'filter',
        type: 'dd-filter',
        input: 'sub',
        language: 'jsonata',
        condition: 'payload.type in ["started", "stopped"]',
        wires: [['map']],
      },
      { id: 'map', type: 'dd-map', language: 'js', func: MAP_JS, wires: [['group']] },
      { id: 'group', type: 'dd-groupby', keyType: 'path', key: 'machine', wires: [['latest']] },
      { id: 'latest', type: 'dd-maxby', byType: 'js', by: 'return record.at;', wires: [['sink', 'tap']] },
      { id: 'tap', type: 'helper' },
      { id: 'stray', type: 'helper', wires: [['extra']] },
      { id: 'extra', type: 'dd-filter', input: 'sub', name: 'extra filter', language: 'js', condition: 'return true;' },
      {
        id: 'sink',
        type: 'db-sink',
        database: 'db',
        table: 'dashboard',
        mode: 'keyed',
        columns: [
          col('machine', 'text not null', 'machine', true),
          col('type', 'text', 'type'),
          col('order_no', 'text', 'order'),
        ],
      },
    ]),
  );
  const taps: { payload: { value: { machine: string; type: string }; diff: number }[]; _deltaflow?: unknown }[] = [];
  helper.getNode('tap').on('input', (msg) => taps.push(msg as (typeof taps)[number]));

  await eventually(() => table(dbFile, 'SELECT * FROM dashboard').length === 2, 'the stored events in the table');
  await publish(logFile, [{ machine: 'Drill1', type: 'stopped', order: '1', at: 3_000_000 }]);
  await eventually(
    () => table(dbFile, "SELECT * FROM dashboard WHERE machine = 'Drill1'")[0]?.type === 'stopped',
    'the live event in the table',
  );
  assert.deepEqual(table(dbFile, 'SELECT * FROM dashboard ORDER BY machine'), [
    { machine: 'Drill1', type: 'stopped', order_no: '1' },
    { machine: 'Drill2', type: 'started', order_no: '2' },
  ]);

  // After-commit messages of the tapped dd-maxby: the live change is a retraction plus an insertion.
  await eventually(
    () => taps.some((m) => m.payload.some((c) => c.value.type === 'stopped')),
    'the tap message of the live event',
  );
  const last = taps.find((m) => m.payload.some((c) => c.value.type === 'stopped'))!;
  assert.ok(last._deltaflow, 'after-commit messages carry the dataflow marker');
  assert.deepEqual(last.payload.map((c) => [c.value.machine, c.value.type, c.diff]).sort(), [
    ['Drill1', 'started', -1],
    ['Drill1', 'stopped', 1],
  ]);
  // A node with a non-dataflow node wired in keeps showing it, whatever the dataflow reports.
  assert.match(errorsOf('extra').join('\n'), /^input wired from helper .* is not part of a dataflow/);
  assert.ok(statusesOf('extra').length > 1, 'the dataflow reported on the extra node');
  assert.deepEqual(statusesOf('extra').at(-1), { fill: 'red', shape: 'ring', text: 'wrong input wired' });
  // Every operator shows the dataflow live (status updates are throttled); none reported an error.
  for (const id of ['filter', 'map', 'group', 'latest']) {
    await eventually(
      () => statusesOf(id).some((s) => s.fill === 'green' && s.text?.startsWith('live') === true),
      `${id} live: ${JSON.stringify(statusesOf(id))}`,
    );
    assert.deepEqual(errorsOf(id), []);
  }
});

test('dd-filter, dd-map and dd-flatmap take a property path too: truthy, the value (null when missing), the elements', async () => {
  const { logFile, dbFile } = files();
  await publish(logFile, [
    { machine: 'Drill1', type: 'started', order: '1', at: 1_000_000 },
    { machine: 'Drill2', type: 'stopped', order: '', at: 2_000_000 },
  ]);
  await helper.load(
    NODES,
    flow(logFile, dbFile, [
      { id: 'filter', type: 'dd-filter', input: 'sub', language: 'path', condition: 'payload.order', wires: [['map']] },
      { id: 'map', type: 'dd-map', language: 'path', func: 'payload', wires: [['payloads']] },
      { id: 'missing', type: 'dd-map', input: 'sub', language: 'path', func: 'payload.nothing', wires: [['nulls']] },
      { id: 'tags', type: 'dd-flatmap', input: 'sub', language: 'path', func: 'tags', wires: [['tagSink']] },
      {
        id: 'payloads',
        type: 'db-sink',
        database: 'db',
        table: 'payloads',
        columns: [col('type', 'text', 'type'), col('order_no', 'text', 'order')],
      },
      { id: 'nulls', type: 'db-sink', database: 'db', table: 'nulls', columns: [col('v', 'text', 'v')] },
      { id: 'tagSink', type: 'db-sink', database: 'db', table: 'tag_rows', columns: [col('tag', 'text', 'x')] },
    ]),
  );
  await eventually(() => table(dbFile, 'SELECT * FROM tag_rows').length === 4, 'every tag of both events');
  await eventually(() => table(dbFile, 'SELECT * FROM nulls').length === 2, 'one row per event from the missing path');
  assert.deepEqual(table(dbFile, 'SELECT * FROM payloads'), [{ type: 'started', order_no: '1' }]);
  for (const id of ['filter', 'map', 'missing', 'tags']) assert.deepEqual(errorsOf(id), []);
});

test('grouped operators fed ungrouped records work on one group with key null; reduce sees its inputs in causal order with multiplicities', async () => {
  const { logFile, dbFile } = files();
  await publish(logFile, [
    { machine: 'Drill1', type: 'started', order: '7', at: 5_000_000 },
    { machine: 'Drill2', type: 'started', order: '7', at: 1_000_000 },
    { machine: 'Drill3', type: 'stopped', order: '8', at: 3_000_000 },
    { machine: 'Drill4', type: 'started', order: '7', at: 5_000_000 }, // maps to the same record as Drill1's
  ]);
  await helper.load(
    NODES,
    flow(logFile, dbFile, [
      {
        id: 'map',
        type: 'dd-map',
        input: 'sub',
        language: 'jsonata',
        func: '{"order": payload.order, "at": timestamp}',
        wires: [['count', 'first', 'orders', 'explode']],
      },
      {
        id: 'explode',
        type: 'dd-flatmap',
        language: 'js',
        func: "return [{ order: record.order }, { order: 'any' }];",
        wires: [['once']],
      },
      { id: 'once', type: 'dd-distinct', wires: [['distinct']] },
      {
        id: 'distinct',
        type: 'db-sink',
        database: 'db',
        table: 'distinct_orders',
        mode: 'multiset',
        columns: [col('order_no', 'text', 'order')],
      },
      { id: 'count', type: 'dd-aggregate', aggregate: 'count', wires: [['counts']] },
      {
        id: 'counts',
        type: 'db-sink',
        database: 'db',
        table: 'counts',
        mode: 'multiset',
        columns: [col('k', 'text', 'key'), col('n', 'integer', 'count')],
      },
      { id: 'first', type: 'dd-minby', byType: 'path', by: 'at', wires: [['firsts']] },
      {
        id: 'firsts',
        type: 'db-sink',
        database: 'db',
        table: 'firsts',
        mode: 'multiset',
        columns: [col('order_no', 'text', 'order'), col('at', 'integer', 'at')],
      },
      {
        id: 'orders',
        type: 'dd-reduce',
        func: 'outputs.push([{ key, orders: inputs.map(([r, n]) => r.order + "x" + n).join(",") }, 1]);',
        wires: [['reduced']],
      },
      {
        id: 'reduced',
        type: 'db-sink',
        database: 'db',
        table: 'reduced',
        mode: 'multiset',
        columns: [col('k', 'text', 'key'), col('orders', 'text', 'orders')],
      },
    ]),
  );
  await eventually(
    () => table(dbFile, 'SELECT * FROM reduced').length === 1 && table(dbFile, 'SELECT * FROM counts').length === 1,
    'the aggregates',
  );
  assert.deepEqual(table(dbFile, 'SELECT * FROM counts'), [{ k: null, n: 4 }]);
  // flat map: two records per event (8 in all, 'any' four times); distinct: each once.
  await eventually(() => table(dbFile, 'SELECT * FROM distinct_orders').length === 3, 'the distinct orders');
  assert.deepEqual(table(dbFile, 'SELECT order_no FROM distinct_orders ORDER BY order_no'), [
    { order_no: '7' },
    { order_no: '8' },
    { order_no: 'any' },
  ]);
  assert.deepEqual(table(dbFile, 'SELECT * FROM firsts'), [{ order_no: '7', at: 1_000_000 }]);
  // Inputs in the causal order of their events (not by `at`, which the value order would compare
  // first): Drill1's and Drill4's records are equal but come from two places, so two entries.
  assert.deepEqual(table(dbFile, 'SELECT * FROM reduced'), [{ k: null, orders: '7x1,7x1,8x1,7x1' }]);
});

test('a wrong input kind is a clear error of that node; a throwing function names the node and the event and skips it', async () => {
  const { logFile, dbFile } = files();
  await publish(logFile, [
    { machine: 'Drill1', type: 'started', order: '1', at: 1_000_000 },
    { machine: 'Drill2', type: 'started', order: 'boom', at: 2_000_000 },
  ]);
  await helper.load(
    NODES,
    flow(logFile, dbFile, [
      {
        id: 'group',
        type: 'dd-groupby',
        input: 'sub',
        name: 'by machine',
        keyType: 'js',
        key: 'return record.tags[1];',
        wires: [['bad']],
      },
      {
        id: 'bad',
        type: 'dd-filter',
        name: 'misplaced filter',
        language: 'js',
        condition: 'return true;',
        wires: [['badsink']],
      },
      {
        id: 'badsink',
        type: 'db-sink',
        database: 'db',
        table: 'never',
        mode: 'multiset',
        columns: [col('x', 'text', 'x')],
      },
      {
        id: 'thrower',
        type: 'dd-map',
        input: 'sub',
        name: 'picky map',
        language: 'js',
        func: "if (record.payload.order === 'boom') throw new Error('cannot handle boom'); return { order: record.payload.order };",
        wires: [['good']],
      },
      {
        id: 'good',
        type: 'db-sink',
        database: 'db',
        table: 'good',
        mode: 'multiset',
        columns: [col('order_no', 'text', 'order')],
      },
      { id: 'catch', type: 'catch', z: 'tab', scope: null, uncaught: false, wires: [['caught']] },
      { id: 'caught', type: 'helper' },
    ]),
  );
  const caught: Record<string, unknown>[] = [];
  helper.getNode('caught').on('input', (msg) => caught.push(msg));

  await eventually(() => table(dbFile, 'SELECT * FROM good').length === 1, 'the good sink');
  assert.deepEqual(table(dbFile, 'SELECT * FROM good'), [{ order_no: '1' }]);
  await eventually(() => errorsOf('bad').length > 0, 'the wrong-input error');
  assert.match(
    errorsOf('bad').join('\n'),
    /misplaced filter: its input is grouped \(from dd-groupby\); this node works on ungrouped records/,
  );
  await eventually(() => statusesOf('bad').some((s) => s.fill === 'red'), 'a red status on the misplaced node');
  await eventually(() => errorsOf('thrower').some((e) => e.includes('cannot handle boom')), 'the user-function error');
  assert.match(
    errorsOf('thrower').find((e) => e.includes('cannot handle boom'))!,
    /^failed on event .*: cannot handle boom; skipped$/,
  );
  await eventually(() => caught.some((m) => JSON.stringify(m.error).includes('cannot handle boom')), 'the Catch node');
  const msg = caught.find((m) => JSON.stringify(m.error).includes('cannot handle boom'))!;
  assert.equal((msg.event as { payload: { order: string } }).payload.order, 'boom');
  await eventually(
    () => statusesOf('thrower').some((s) => /skipped/.test(s.text ?? '')),
    'the skipped count in the status',
  );
});
