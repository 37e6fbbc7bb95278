/**
 * Errors that lose their text or flood the log (issue 12, point 8), in a running Node-RED dataflow:
 * a JSONata error keeps its message and position; a function failing on every event logs the first
 * failure in full and then counts, while Catch nodes still receive each one.
 */
import { after, afterEach, test } from 'node:test';
import assert from 'node:assert/strict';
import actyxConfig from '../../src/nodes/actyx-config';
import actyxSubscribe from '../../src/nodes/actyx-subscribe';
import dbConfig from '../../src/nodes/db-config';
import dbSink from '../../src/nodes/db-sink';
import ddDataflow from '../../src/nodes/dd-dataflow';
import ddMap from '../../src/nodes/dd-map';
import { openSharedEmbeddedLog } from '../../src/sources/shared-embedded-log';
import { machineTags } from '../../src/simulator/event-model';
import { errorsOf, eventually, helper, statusesOf, table, testFolder, warningsOf, type FlowNode } from './dd-helper';

const folder = testFolder('deltaflow-repeated-errors-');
afterEach(async () => {
  await helper.unload();
});
after(() => folder.remove());

const EVENTS = 64;

test('a JSONata error on every event: its message and position, the first logged in full, every one to the Catch node, a count in the log at stop', async () => {
  const { logFile, dbFile } = folder.files();
  const handle = openSharedEmbeddedLog(logFile);
  try {
    for (let i = 0; i < EVENTS; i++)
      await handle.log.publishAs('drill1-0', [
        { tags: machineTags('Drill1'), payload: { type: 'started', order: `o${i}` }, timestamp: 1_000_000 + i },
      ]);
  } finally {
    await handle.release();
  }
  const nodes: FlowNode[] = [
    { id: 'tab', type: 'tab' },
    { id: 'log', type: 'actyx-config', kind: 'embedded', file: logFile },
    { id: 'df', type: 'dd-dataflow', name: 'the dataflow', batchSize: '8', batchMs: '5', maxInFlight: '2' },
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
      wires: [['map', 'ok']],
    },
    {
      id: 'map',
      type: 'dd-map',
      z: 'tab',
      x: 0,
      y: 0,
      name: 'sum map',
      dataflow: 'df',
      language: 'jsonata',
      func: '{"n": payload.type + 1}',
      wires: [['sink']],
    },
    {
      id: 'sink',
      type: 'db-sink',
      z: 'tab',
      x: 0,
      y: 0,
      dataflow: 'df',
      database: 'db',
      table: 'sums',
      mode: 'multiset',
      columns: [{ name: 'n', type: 'integer', source: 'path', value: 'n', key: false, index: false, exclude: false }],
      wires: [[]],
    },
    {
      id: 'ok',
      type: 'dd-map',
      z: 'tab',
      x: 0,
      y: 0,
      dataflow: 'df',
      language: 'js',
      func: 'return { order: record.payload.order };',
      wires: [['oksink']],
    },
    {
      id: 'oksink',
      type: 'db-sink',
      z: 'tab',
      x: 0,
      y: 0,
      dataflow: 'df',
      database: 'db',
      table: 'orders',
      mode: 'multiset',
      columns: [{ name: 'o', type: 'text', source: 'path', value: 'order', key: false, index: false, exclude: false }],
      wires: [[]],
    },
    { id: 'catch', type: 'catch', z: 'tab', x: 0, y: 0, scope: ['map'], uncaught: false, wires: [['caught']] },
    { id: 'caught', type: 'helper', z: 'tab', x: 0, y: 0 },
  ];
  await helper.load([actyxConfig, actyxSubscribe, dbConfig, dbSink, ddDataflow, ddMap], nodes);
  const caught: Record<string, unknown>[] = [];
  helper.getNode('caught').on('input', (msg) => caught.push(msg));
  await eventually(() => table(dbFile, 'SELECT * FROM orders').length === EVENTS, 'every event processed');
  await eventually(() => caught.length === EVENTS, `${EVENTS} messages at the Catch node (got ${caught.length})`);

  const texts = caught.map((m) => (m.error as { message: string }).message);
  for (const t of texts)
    assert.match(
      t,
      /^failed on event drill1-0\/\d+ .*: JSONata error T2001 at position 20 \(at "\+"\): The left side of the "\+" operator must evaluate to a number; skipped$/,
    );
  assert.equal(new Set(caught.map((m) => (m.event as { offset: number }).offset)).size, EVENTS);
  // The text does not repeat the node's name (Node-RED prefixes its log lines); msg.error.source names it.
  for (const m of caught)
    assert.deepEqual((m.error as { source: unknown }).source, { id: 'map', type: 'dd-map', name: 'sum map', count: 1 });
  // node.error (which logs when no Catch node takes it) only for the first one: the rest are counted.
  assert.equal(errorsOf('map').length, 1, JSON.stringify(errorsOf('map')));
  await eventually(
    () => statusesOf('map').some((s) => s.text === `live, ${EVENTS} skipped`),
    'the count in the status',
  );

  // Stopping the dataflow logs what was counted since the first (the interval is 30 s).
  const warnings: string[] = [];
  const df = helper.getNode('df') as unknown as { warn(m: string): void };
  const warn = df.warn.bind(df);
  df.warn = (m: string) => {
    warnings.push(m);
    warn(m);
  };
  assert.equal(warningsOf('df').filter((w) => /more inputs failed/.test(w)).length, 0);
  await helper.unload();
  const summary = warnings.filter((w) => /63 more inputs failed/.test(w));
  assert.equal(summary.length, 1, JSON.stringify(warnings));
  assert.match(summary[0]!, /\(64 since the first; each also went to Catch nodes\); the latest: .*JSONata error T2001/);
});
