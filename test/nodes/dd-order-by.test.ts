/**
 * dd-scan and dd-reduce in a running Node-RED (node-red-node-test-helper with the real
 * actyx-config, actyx-subscribe, dd-dataflow, db-config and db-sink nodes, an embedded log and a
 * SQLite file): a fold's result does not change when a field of its records is renamed so that it
 * sorts first (`type` → `action`; under the old rule records compared by their fields in
 * alphabetical order, so every "started" came before every "stopped"), neither in the default
 * causal order nor with an explicit *Order by* (a path and a JSONata expression, `timestamp`,
 * which here disagrees with the causal order), also after a late event. The Order by rows fail
 * on 34efe75, whose nodes ignored the field (the records came in causal order).
 */
import { after, afterEach, test } from 'node:test';
import assert from 'node:assert/strict';
import actyxConfig from '../../src/nodes/actyx-config';
import actyxSubscribe from '../../src/nodes/actyx-subscribe';
import dbConfig from '../../src/nodes/db-config';
import dbSink from '../../src/nodes/db-sink';
import ddDataflow from '../../src/nodes/dd-dataflow';
import ddGroupby from '../../src/nodes/dd-groupby';
import ddMap from '../../src/nodes/dd-map';
import ddReduce from '../../src/nodes/dd-reduce';
import ddScan from '../../src/nodes/dd-scan';
import { machineTags } from '../../src/simulator/event-model';
import { openSharedEmbeddedLog } from '../../src/sources/shared-embedded-log';
import { errorsOf, eventually, helper, table, testFolder, type FlowNode } from './dd-helper';

const NODES = [actyxConfig, actyxSubscribe, dbConfig, dbSink, ddDataflow, ddMap, ddGroupby, ddReduce, ddScan];
const folder = testFolder('deltaflow-dd-order-by-');

afterEach(async () => {
  await helper.unload();
});
after(() => folder.remove());

const MACHINE = "const m = record.tags.find((t) => t.startsWith('machine:')).slice(8);";
/** The records as a new user writes them: no Lamport field, `type` sorting last. */
const PLAIN = `${MACHINE}\nreturn { machine: m, order: record.payload.order, timestamp: record.timestamp, type: record.payload.type };`;
/** The same records with `type` renamed to `action`, which sorts before every other field. */
const RENAMED = `${MACHINE}\nreturn { action: record.payload.type, machine: m, order: record.payload.order, timestamp: record.timestamp };`;

/** Numbers the group's records in the order they come in. */
const SCAN_STEP =
  'emit({ machine: key, n: state, order: record.order, type: record.type ?? record.action });\nreturn state + 1;';
const REDUCE_FN =
  'inputs.forEach(([r], n) => outputs.push([{ machine: key, n, order: r.order, type: r.type ?? r.action }, 1]));';

const col = (name: string, type: string) => ({
  name,
  type,
  source: 'path',
  value: name,
  key: false,
  index: false,
  exclude: false,
});
const COLUMNS = [col('machine', 'text'), col('n', 'integer'), col('order', 'text'), col('type', 'text')];

/** The folds: {node type, order by}; each runs on both record shapes and writes its own table. */
const FOLDS = [
  { id: 'scan_causal', type: 'dd-scan', orderByType: 'path', orderBy: '' },
  { id: 'reduce_causal', type: 'dd-reduce', orderByType: 'path', orderBy: '' },
  { id: 'scan_time', type: 'dd-scan', orderByType: 'path', orderBy: 'timestamp' },
  { id: 'reduce_time', type: 'dd-reduce', orderByType: 'jsonata', orderBy: 'timestamp' },
];
const SHAPES = [
  { id: 'plain', func: PLAIN },
  { id: 'renamed', func: RENAMED },
];

function flow(logFile: string, dbFile: string): FlowNode[] {
  const nodes: FlowNode[] = [
    { id: 'tab', type: 'tab' },
    { id: 'log', type: 'actyx-config', kind: 'embedded', file: logFile },
    {
      id: 'df',
      type: 'dd-dataflow',
      name: 'order by test',
      batchSize: '1000',
      batchMs: '5',
      maxInFlight: '2',
      onError: 'stop',
    },
    { id: 'db', type: 'db-config', kind: 'sqlite', filename: dbFile },
    {
      id: 'sub',
      type: 'actyx-subscribe',
      actyx: 'log',
      query: "'machine'",
      wires: [SHAPES.map((s) => `map_${s.id}`)],
    },
  ];
  for (const shape of SHAPES) {
    nodes.push(
      { id: `map_${shape.id}`, type: 'dd-map', language: 'js', func: shape.func, wires: [[`group_${shape.id}`]] },
      {
        id: `group_${shape.id}`,
        type: 'dd-groupby',
        keyType: 'path',
        key: 'machine',
        wires: [FOLDS.map((f) => `${f.id}_${shape.id}`)],
      },
    );
    for (const fold of FOLDS) {
      const id = `${fold.id}_${shape.id}`;
      const logic = fold.type === 'dd-scan' ? { initial: '0', func: SCAN_STEP } : { func: REDUCE_FN };
      nodes.push(
        { ...fold, id, name: id, ...logic, wires: [[`sink_${id}`]] },
        { id: `sink_${id}`, type: 'db-sink', database: 'db', table: id, mode: 'multiset', columns: COLUMNS },
      );
    }
  }
  return nodes.map((n) =>
    n.type === 'tab' || n.type.endsWith('-config') || n.type === 'dd-dataflow'
      ? n
      : { z: 'tab', x: 0, y: 0, dataflow: 'df', wires: [[]], ...n },
  );
}

interface MachineEvent {
  type: string;
  order: string;
  minute: number;
  lamport: number;
}

async function publish(logFile: string, stream: string, events: MachineEvent[]): Promise<void> {
  const handle = openSharedEmbeddedLog(logFile);
  try {
    await handle.log.publishAs(
      stream,
      events.map((e) => ({
        tags: machineTags('Drill1'),
        payload: { type: e.type, order: e.order },
        timestamp: Date.UTC(2020, 5, 24, 8) * 1000 + e.minute * 60e6,
        lamport: e.lamport,
      })),
    );
  } finally {
    await handle.release();
  }
}

const rows = (dbFile: string, t: string) => table(dbFile, `SELECT * FROM ${t} ORDER BY n`);
const numbered = (...records: [string, string][]) =>
  records.map(([order, type], n) => ({ machine: 'Drill1', n, order, type }));

test('a fold does not change when a field is renamed to sort first, in causal order and with an order by', async () => {
  const { logFile, dbFile } = folder.files();
  // Order 2 starts (minute 10) before order 1 stops (minute 30) on the machine's clock, but after it causally.
  await publish(logFile, 'drill1-0', [
    { type: 'started', order: '1', minute: 0, lamport: 10 },
    { type: 'stopped', order: '1', minute: 30, lamport: 20 },
    { type: 'started', order: '2', minute: 10, lamport: 30 },
    { type: 'stopped', order: '2', minute: 40, lamport: 40 },
  ]);
  await helper.load(NODES, flow(logFile, dbFile));

  const expected = {
    causal: numbered(['1', 'started'], ['1', 'stopped'], ['2', 'started'], ['2', 'stopped']),
    time: numbered(['1', 'started'], ['2', 'started'], ['1', 'stopped'], ['2', 'stopped']),
  };
  const check = async (want: typeof expected, what: string): Promise<void> => {
    const all = FOLDS.flatMap((f) => SHAPES.map((s) => `${f.id}_${s.id}`));
    const wanted = (t: string) => (t.includes('_causal_') ? want.causal : want.time);
    await eventually(
      () => all.every((t) => JSON.stringify(rows(dbFile, t)) === JSON.stringify(wanted(t))),
      what,
      30_000,
    ).catch(() => undefined); // the assertions below say what differs
    for (const t of all) assert.deepEqual(rows(dbFile, t), wanted(t), `${t} (${what})`);
    for (const f of FOLDS) assert.deepEqual(errorsOf(`${f.id}_plain`).concat(errorsOf(`${f.id}_renamed`)), []);
  };
  await check(expected, 'the stored events');

  // Late: a controller that was offline delivers the start of order 0 (minute 5, before all causally).
  await publish(logFile, 'drill1-offline', [{ type: 'started', order: '0', minute: 5, lamport: 5 }]);
  await check(
    {
      causal: numbered(['0', 'started'], ['1', 'started'], ['1', 'stopped'], ['2', 'started'], ['2', 'stopped']),
      time: numbered(['1', 'started'], ['0', 'started'], ['2', 'started'], ['1', 'stopped'], ['2', 'stopped']),
    },
    'the late event',
  );
});
