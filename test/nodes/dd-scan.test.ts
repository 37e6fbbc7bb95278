/**
 * dd-scan in a running dataflow (node-red-node-test-helper with the real actyx-config,
 * actyx-subscribe, dd-dataflow, db-config and db-sink nodes, an embedded log and a SQLite file):
 * the started/stopped pairing as a scan writes the same rows as the same pairing written as a
 * dd-reduce, also after a late event, and sends only the difference; a bad initial state and a
 * throwing step are named in node.error (Catch nodes see them) and in the status.
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
import ddReduce from '../../src/nodes/dd-reduce';
import ddScan from '../../src/nodes/dd-scan';
import { openSharedEmbeddedLog } from '../../src/sources/shared-embedded-log';
import { machineTags } from '../../src/simulator/event-model';
import { errorsOf, eventually, helper, statusesOf, table, testFolder, type FlowNode } from './dd-helper';

const NODES = [actyxConfig, actyxSubscribe, dbConfig, dbSink, ddDataflow, ddFilter, ddMap, ddGroupby, ddReduce, ddScan];
const folder = testFolder('deltaflow-dd-scan-');
const files = folder.files;

afterEach(async () => {
  await helper.unload();
});
after(() => folder.remove());

const col = (name: string, type: string, value: string) => ({
  name,
  type,
  source: 'path',
  value,
  key: false,
  index: false,
  exclude: false,
});
const USAGE_COLUMNS = [
  col('machine', 'text not null', 'machine'),
  col('order_no', 'text', 'order'),
  col('started', 'text', 'started'),
  col('minutes', 'real', 'minutes'),
];

/** A flow with the common config nodes; `nodes` get z/x/y and the dataflow filled in. */
function flow(logFile: string, dbFile: string, nodes: FlowNode[], onError: 'skip' | 'stop' = 'skip'): FlowNode[] {
  return [
    { id: 'tab', type: 'tab' },
    { id: 'log', type: 'actyx-config', kind: 'embedded', file: logFile },
    {
      id: 'df',
      type: 'dd-dataflow',
      name: 'test dataflow',
      batchSize: '1000',
      batchMs: '5',
      maxInFlight: '2',
      onError,
    },
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
      wires: [['filter']],
    },
    {
      id: 'filter',
      type: 'dd-filter',
      z: 'tab',
      x: 0,
      y: 0,
      dataflow: 'df',
      language: 'jsonata',
      condition: 'payload.type in ["started", "stopped"]',
      wires: [['map']],
    },
    {
      id: 'map',
      type: 'dd-map',
      z: 'tab',
      x: 0,
      y: 0,
      dataflow: 'df',
      language: 'js',
      func: EXCERPT_JS,
      wires: [['group']],
    },
    {
      id: 'group',
      type: 'dd-groupby',
      z: 'tab',
      x: 0,
      y: 0,
      dataflow: 'df',
      keyType: 'path',
      key: 'machine',
      wires: [nodes.filter((n) => n.input === 'group').map((n) => n.id)],
    },
    { id: 'catch', type: 'catch', z: 'tab', x: 0, y: 0, scope: null, uncaught: false, wires: [['caught']] },
    { id: 'caught', type: 'helper', z: 'tab', x: 0, y: 0 },
    ...nodes.map(({ input: _input, ...n }) => ({ z: 'tab', x: 0, y: 0, dataflow: 'df', wires: [[]], ...n })),
  ];
}

/** `lamport` sorts first, so both the scan and the reduce see a machine's events in causal order. */
const EXCERPT_JS =
  "const m = record.tags.find((t) => t.startsWith('machine:')).slice(8); return { lamport: record.lamport, machine: m, order: record.payload.order, timestamp: record.timestamp, type: record.payload.type };";

/** The pairing as a fold step; emits a Date, which must reach the table as an ISO string. */
const PAIR_STEP = `if (record.type === 'started') {
  state[record.order] = record.timestamp;
} else if (record.type === 'stopped' && Object.hasOwn(state, record.order)) {
  const started = state[record.order];
  delete state[record.order];
  emit({ machine: key, order: record.order, started: new Date(started / 1000), minutes: (record.timestamp - started) / 60e6 });
}
return state;`;

/** The same pairing as the seed's reduce: a loop over all of the group's records. */
const PAIR_REDUCE = `const open = new Map();
for (const [r] of inputs) {
  if (r.type === 'started') open.set(r.order, r.timestamp);
  else if (r.type === 'stopped' && open.has(r.order)) {
    const started = open.get(r.order);
    open.delete(r.order);
    outputs.push([{ machine: key, order: r.order, started: new Date(started / 1000), minutes: (r.timestamp - started) / 60e6 }, 1]);
  }
}`;

interface MachineEvent {
  machine: string;
  type: string;
  order: string;
  minute: number;
  lamport: number;
}

/** Publishes to `stream` with the given Lamport stamps (an offline device's stream delivers old ones late). */
async function publish(logFile: string, stream: string, events: MachineEvent[]): Promise<void> {
  const handle = openSharedEmbeddedLog(logFile);
  try {
    await handle.log.publishAs(
      stream,
      events.map((e) => ({
        tags: machineTags(e.machine),
        payload: { type: e.type, order: e.order },
        timestamp: Date.UTC(2020, 5, 24, 8) * 1000 + e.minute * 60e6,
        lamport: e.lamport,
      })),
    );
  } finally {
    await handle.release();
  }
}

const at = (minute: number) => new Date(Date.UTC(2020, 5, 24, 8) + minute * 60_000).toISOString();
const USAGE_SQL = (t: string) => `SELECT * FROM ${t} ORDER BY machine, started, order_no`;

test('dd-scan pairs started/stopped into the same rows as dd-reduce, also after a late event, and sends only the difference', async () => {
  const { logFile, dbFile } = files();
  await publish(logFile, 'drill1-0', [
    { machine: 'Drill1', type: 'started', order: '1', minute: 0, lamport: 10 },
    { machine: 'Drill1', type: 'stopped', order: '1', minute: 30, lamport: 40 },
    { machine: 'Drill1', type: 'started', order: '2', minute: 40, lamport: 50 },
    { machine: 'Drill1', type: 'stopped', order: '2', minute: 45, lamport: 60 },
  ]);
  await publish(logFile, 'drill2-0', [
    { machine: 'Drill2', type: 'started', order: '3', minute: 5, lamport: 11 },
    { machine: 'Drill2', type: 'paused', order: '3', minute: 6, lamport: 12 }, // filtered out
    { machine: 'Drill2', type: 'stopped', order: '3', minute: 9, lamport: 13 },
    { machine: 'Drill2', type: 'started', order: '4', minute: 10, lamport: 14 }, // still open
  ]);
  await helper.load(
    NODES,
    flow(logFile, dbFile, [
      {
        id: 'scan',
        type: 'dd-scan',
        input: 'group',
        name: 'pair by scan',
        initial: '{}',
        func: PAIR_STEP,
        wires: [['scanned', 'tap']],
      },
      { id: 'scanned', type: 'db-sink', database: 'db', table: 'usage_scan', mode: 'multiset', columns: USAGE_COLUMNS },
      { id: 'tap', type: 'helper' },
      {
        id: 'reduce',
        type: 'dd-reduce',
        input: 'group',
        name: 'pair by reduce',
        func: PAIR_REDUCE,
        wires: [['reduced']],
      },
      {
        id: 'reduced',
        type: 'db-sink',
        database: 'db',
        table: 'usage_reduce',
        mode: 'multiset',
        columns: USAGE_COLUMNS,
      },
    ]),
  );
  const taps: { payload: { value: Record<string, unknown>; diff: number }[] }[] = [];
  helper.getNode('tap').on('input', (msg) => taps.push(msg as (typeof taps)[number]));

  const expected = [
    { machine: 'Drill1', order_no: '1', started: at(0), minutes: 30 },
    { machine: 'Drill1', order_no: '2', started: at(40), minutes: 5 },
    { machine: 'Drill2', order_no: '3', started: at(5), minutes: 4 },
  ];
  await eventually(
    () => table(dbFile, USAGE_SQL('usage_scan')).length === 3 && table(dbFile, USAGE_SQL('usage_reduce')).length === 3,
    'the stored events in both tables',
  );
  assert.deepEqual(table(dbFile, USAGE_SQL('usage_scan')), expected);
  assert.deepEqual(table(dbFile, USAGE_SQL('usage_reduce')), expected);

  // Changes the scan sent while the table was built from the stored events.
  await eventually(() => taps.flatMap((m) => m.payload).length === 3, 'the tap messages of the stored events');
  const sentBefore = taps.length;

  // Live, in causal order: Drill2's open order 4 stops.
  await publish(logFile, 'drill2-0', [{ machine: 'Drill2', type: 'stopped', order: '4', minute: 12, lamport: 70 }]);
  // Late: Drill1 was offline; its controller recorded a stop of order 1 at minute 20 (Lamport 20,
  // before the stop at minute 30 that the others saw) and delivers it now. Order 1 now ends at 20,
  // and the stop at minute 30 pairs with nothing.
  await publish(logFile, 'drill1-offline', [
    { machine: 'Drill1', type: 'stopped', order: '1', minute: 20, lamport: 20 },
  ]);
  const afterLate = [
    { machine: 'Drill1', order_no: '1', started: at(0), minutes: 20 },
    { machine: 'Drill1', order_no: '2', started: at(40), minutes: 5 },
    { machine: 'Drill2', order_no: '3', started: at(5), minutes: 4 },
    { machine: 'Drill2', order_no: '4', started: at(10), minutes: 2 },
  ];
  await eventually(
    () =>
      JSON.stringify(table(dbFile, USAGE_SQL('usage_scan'))) === JSON.stringify(afterLate) &&
      JSON.stringify(table(dbFile, USAGE_SQL('usage_reduce'))) === JSON.stringify(afterLate),
    'the live and the late event in both tables',
  );
  assert.deepEqual(table(dbFile, USAGE_SQL('usage_scan')), table(dbFile, USAGE_SQL('usage_reduce')));

  // What left the scan after the start: +order 4, and for the late event −(1, 30 min) +(1, 20 min).
  await eventually(
    () => taps.slice(sentBefore).flatMap((m) => m.payload).length >= 3,
    'the tap messages of the live events',
  );
  const changes = taps
    .slice(sentBefore)
    .flatMap((m) => m.payload)
    .map((c) => [c.value.order, c.value.minutes, c.diff])
    .sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));
  assert.deepEqual(changes, [
    ['1', 20, 1],
    ['1', 30, -1],
    ['4', 2, 1],
  ]);
  await eventually(
    () => statusesOf('scan').some((s) => s.fill === 'green' && s.text?.startsWith('live') === true),
    `a live status: ${JSON.stringify(statusesOf('scan'))}`,
  );
  assert.deepEqual(errorsOf('scan'), []);
});

test('an initial state that is not JSON is named at deploy (error, red status) and by the dataflow (Catch nodes see it)', async () => {
  const { logFile, dbFile } = files();
  await publish(logFile, 'drill1-0', [{ machine: 'Drill1', type: 'started', order: '1', minute: 0, lamport: 1 }]);
  await helper.load(
    NODES,
    flow(logFile, dbFile, [
      {
        id: 'scan',
        type: 'dd-scan',
        input: 'group',
        name: 'bad start',
        initial: '{"open": ',
        func: PAIR_STEP,
        wires: [['sink']],
      },
      { id: 'sink', type: 'db-sink', database: 'db', table: 'usage', mode: 'multiset', columns: USAGE_COLUMNS },
    ]),
  );
  const caught: { error?: { message?: string; source?: { id?: string } } }[] = [];
  helper.getNode('caught').on('input', (msg) => caught.push(msg as (typeof caught)[number]));

  assert.ok(
    errorsOf('scan').some((e) => /^initial state: not valid JSON: /.test(e)),
    JSON.stringify(errorsOf('scan')),
  );
  assert.ok(
    statusesOf('scan').some((s) => s.fill === 'red' && s.shape === 'ring' && s.text === 'invalid config'),
    JSON.stringify(statusesOf('scan')),
  );
  await eventually(() => caught.some((m) => m.error?.source?.id === 'scan'), 'the Catch node');
  assert.match(
    caught.find((m) => m.error?.source?.id === 'scan')!.error!.message!,
    /bad start: initial state: not valid JSON/,
  );
  await eventually(() => statusesOf('scan').at(-1)?.fill === 'red', 'the dataflow marking the node red');
});

test('a step that throws names the node and skips that record; a step that returns nothing is an error too', async () => {
  const { logFile, dbFile } = files();
  await publish(logFile, 'drill1-0', [
    { machine: 'Drill1', type: 'started', order: '1', minute: 0, lamport: 1 },
    { machine: 'Drill1', type: 'stopped', order: '1', minute: 10, lamport: 2 },
    { machine: 'Drill1', type: 'started', order: 'boom', minute: 20, lamport: 3 },
    { machine: 'Drill1', type: 'stopped', order: 'boom', minute: 25, lamport: 4 },
  ]);
  await helper.load(
    NODES,
    flow(logFile, dbFile, [
      {
        id: 'scan',
        type: 'dd-scan',
        input: 'group',
        name: 'picky scan',
        initial: '{}',
        func: `if (record.type === 'stopped' && record.order === 'boom') throw new Error('cannot fold boom');\n${PAIR_STEP}`,
        wires: [['sink']],
      },
      { id: 'sink', type: 'db-sink', database: 'db', table: 'usage', mode: 'multiset', columns: USAGE_COLUMNS },
      {
        id: 'forgetful',
        type: 'dd-scan',
        input: 'group',
        name: 'forgetful scan',
        initial: '{"n": 0}',
        func: 'state.n++;',
        wires: [['sink2']],
      },
      {
        id: 'sink2',
        type: 'db-sink',
        database: 'db',
        table: 'never',
        mode: 'multiset',
        columns: [col('n', 'integer', 'n')],
      },
    ]),
  );
  const caught: { error?: { message?: string; source?: { id?: string } }; payload?: unknown }[] = [];
  helper.getNode('caught').on('input', (msg) => caught.push(msg as (typeof caught)[number]));

  // The stop of order boom is left out: its start stays open, order 1 is written.
  await eventually(() => table(dbFile, 'SELECT * FROM usage').length === 1, 'the good row');
  assert.deepEqual(table(dbFile, 'SELECT * FROM usage'), [
    { machine: 'Drill1', order_no: '1', started: at(0), minutes: 10 },
  ]);
  await eventually(() => errorsOf('scan').some((e) => e.includes('cannot fold boom')), 'the step error');
  assert.match(
    errorsOf('scan').find((e) => e.includes('cannot fold boom'))!,
    /^failed on value \{.*"order":"boom".*\} in group "Drill1": cannot fold boom; skipped$/,
  );
  await eventually(() => caught.some((m) => m.error?.source?.id === 'scan'), 'the Catch node');
  assert.deepEqual(
    caught.find((m) => m.error?.source?.id === 'scan')!.payload,
    {
      lamport: 4,
      machine: 'Drill1',
      order: 'boom',
      timestamp: (Date.UTC(2020, 5, 24, 8) + 25 * 60_000) * 1000,
      type: 'stopped',
    },
    'the record left out is the message payload',
  );
  await eventually(
    () => statusesOf('scan').some((s) => s.fill === 'green' && /1 skipped/.test(s.text ?? '')),
    'the skipped count in the status',
  );

  await eventually(() => errorsOf('forgetful').some((e) => e.includes('returned undefined')), 'the missing return');
  assert.match(
    errorsOf('forgetful').find((e) => e.includes('returned undefined'))!,
    /^failed on value .*return state;/,
  );
  assert.deepEqual(table(dbFile, 'SELECT * FROM never'), []);
});

test('with on error: stop, a throwing step stops the dataflow and names the node', async () => {
  const { logFile, dbFile } = files();
  await publish(logFile, 'drill1-0', [
    { machine: 'Drill1', type: 'started', order: 'boom', minute: 0, lamport: 1 },
    { machine: 'Drill1', type: 'stopped', order: 'boom', minute: 5, lamport: 2 },
  ]);
  await helper.load(
    NODES,
    flow(
      logFile,
      dbFile,
      [
        {
          id: 'scan',
          type: 'dd-scan',
          input: 'group',
          name: 'strict scan',
          initial: '{}',
          func: `if (record.order === 'boom') throw new Error('cannot fold boom');\n${PAIR_STEP}`,
          wires: [['sink']],
        },
        { id: 'sink', type: 'db-sink', database: 'db', table: 'usage', mode: 'multiset', columns: USAGE_COLUMNS },
      ],
      'stop',
    ),
  );
  await eventually(() => errorsOf('scan').some((e) => e.includes('cannot fold boom')), 'the step error');
  assert.match(
    errorsOf('scan').find((e) => e.includes('cannot fold boom'))!,
    /^failed on value "Drill1": cannot fold boom; the dataflow stopped \(on error: stop\)$/,
  );
  await eventually(
    () => statusesOf('scan').some((s) => s.fill === 'red' && s.text === 'error: stopped'),
    'the stopped status',
  );
  assert.deepEqual(table(dbFile, 'SELECT * FROM usage'), []);
});
