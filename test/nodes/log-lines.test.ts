/**
 * Headless logs (issue 16, point 5): Node-RED prefixes every log line of a node with its type and
 * name (`[dd-map:Boom Map] …`), so a node's own errors, warnings and info lines must not repeat
 * them. One flow with a named node of each kind that reports something: a throwing dd-map, a
 * db-sink with a bad table name, a db-query without a database, an actyx-publish without a
 * connection, an actyx-subscribe with an invalid query, a misconfigured db-config.
 */
import { after, afterEach, test } from 'node:test';
import assert from 'node:assert/strict';
import actyxConfig from '../../src/nodes/actyx-config';
import actyxPublish from '../../src/nodes/actyx-publish';
import actyxSubscribe from '../../src/nodes/actyx-subscribe';
import dbConfig from '../../src/nodes/db-config';
import dbQuery from '../../src/nodes/db-query';
import dbSink from '../../src/nodes/db-sink';
import ddDataflow from '../../src/nodes/dd-dataflow';
import ddMap from '../../src/nodes/dd-map';
import { openSharedEmbeddedLog } from '../../src/sources/shared-embedded-log';
import { machineTags } from '../../src/simulator/event-model';
import { errorsOf, eventually, helper, logsOf, testFolder, warningsOf, type FlowNode } from './dd-helper';

const folder = testFolder('deltaflow-log-lines-');
afterEach(async () => {
  await helper.unload();
});
after(() => folder.remove());

test("no node repeats its own type or name in its log lines (Node-RED's prefix names it)", async () => {
  const { logFile, dbFile } = folder.files();
  const handle = openSharedEmbeddedLog(logFile);
  try {
    for (let i = 0; i < 3; i++)
      await handle.log.publishAs('drill1-0', [
        { tags: machineTags('Drill1'), payload: { type: 'started', order: `o${i}` }, timestamp: 1_000_000 + i },
      ]);
  } finally {
    await handle.release();
  }
  const at = { z: 'tab', x: 0, y: 0 };
  const column = { name: 'o', type: 'text', source: 'path', value: 'order', key: false, index: false, exclude: false };
  const nodes: FlowNode[] = [
    { id: 'tab', type: 'tab' },
    { id: 'log', type: 'actyx-config', kind: 'embedded', file: logFile },
    { id: 'df', type: 'dd-dataflow', name: 'Plant Flow', batchSize: '8', batchMs: '5', maxInFlight: '2' },
    { id: 'db', type: 'db-config', kind: 'sqlite', filename: dbFile },
    { id: 'baddb', type: 'db-config', name: 'Broken Db', kind: 'postgres', port: 'not a port' },
    {
      id: 'sub',
      type: 'actyx-subscribe',
      ...at,
      name: 'Machine Sub',
      actyx: 'log',
      query: "'machine'",
      dataflow: 'df',
      wires: [['map', 'badsink']],
    },
    {
      id: 'map',
      type: 'dd-map',
      ...at,
      name: 'Boom Map',
      dataflow: 'df',
      language: 'js',
      func: "throw new Error('boom');",
      wires: [['sink']],
    },
    {
      id: 'sink',
      type: 'db-sink',
      ...at,
      name: 'Good Sink',
      dataflow: 'df',
      database: 'db',
      table: 'orders',
      mode: 'multiset',
      columns: [column],
      wires: [[]],
    },
    {
      id: 'badsink',
      type: 'db-sink',
      ...at,
      name: 'Bad Sink',
      dataflow: 'df',
      database: 'db',
      table: 'x; drop',
      mode: 'multiset',
      columns: [column],
      wires: [[]],
    },
    { id: 'query', type: 'db-query', ...at, name: 'Lost Query', database: '', sql: 'SELECT 1', wires: [[]] },
    { id: 'badq', type: 'db-query', ...at, name: 'Pg Query', database: 'baddb', sql: 'SELECT 1', wires: [[]] },
    { id: 'pub', type: 'actyx-publish', ...at, name: 'Lonely Pub', actyx: '', tags: 't', wires: [[]] },
    {
      id: 'badsub',
      type: 'actyx-subscribe',
      ...at,
      name: 'Typo Sub',
      actyx: 'log',
      query: "'machine' &&& FROM",
      wires: [[]],
    },
  ];
  await helper.load([actyxConfig, actyxPublish, actyxSubscribe, dbConfig, dbQuery, dbSink, ddDataflow, ddMap], nodes);
  helper.getNode('query').receive({ payload: null });
  const reporting = ['map', 'badsink', 'query', 'pub', 'badsub', 'baddb'];
  const lines = (id: string): string[] => [...errorsOf(id), ...warningsOf(id), ...logsOf(id)];
  await eventually(
    () => reporting.every((id) => lines(id).length > 0),
    `every misconfigured node reports: ${JSON.stringify(Object.fromEntries(reporting.map((id) => [id, lines(id)])))}`,
  );
  assert.ok(
    errorsOf('map').some((e) => /^failed on event drill1-0\/\d+ .*: boom; skipped$/.test(e)),
    errorsOf('map').join('\n'),
  );
  for (const n of nodes) {
    if (typeof n.name !== 'string') continue;
    for (const line of lines(n.id)) {
      assert.ok(!line.includes(n.name), `${n.type} "${n.name}" repeats its name: ${line}`);
      assert.ok(
        !line.startsWith(`${n.type} `) && !line.startsWith(`${n.type}:`),
        `${n.type} repeats its type: ${line}`,
      );
    }
  }
});
