/**
 * The dd-dataflow config node in the Node-RED runtime (node-red-node-test-helper with the real
 * actyx-config, actyx-subscribe, dd-map, db-config and db-sink nodes and the core catch node): inputs
 * from wires, after-commit messages, a non-dataflow node wired into a db-sink, a throwing function
 * reaching a Catch node with the event, restart on every deploy without writing again.
 */
import { after, afterEach, test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import actyxConfig from '../../src/nodes/actyx-config';
import actyxSubscribe from '../../src/nodes/actyx-subscribe';
import dbConfig from '../../src/nodes/db-config';
import dbSink from '../../src/nodes/db-sink';
import ddDataflow, { parseDataflowSettings, wireInputs } from '../../src/nodes/dd-dataflow';
import ddMap from '../../src/nodes/dd-map';
import type { NodeAPI } from '../../src/nodes/red';
import { openSharedEmbeddedLog } from '../../src/sources/shared-embedded-log';
import { errorsOf, eventually, helper, logsOf, statusesOf, warningsOf, type FlowNode } from '../nodes/dd-helper';
import { tempDir } from './support';

const require = createRequire(__filename);
const catchNode = require('@node-red/nodes/core/common/25-catch.js') as (RED: NodeAPI) => void;
const NODES = [actyxConfig, actyxSubscribe, dbConfig, dbSink, ddDataflow, ddMap, catchNode];
const dir = tempDir('deltaflow-dd-dataflow-node-');
let run = 0;
/** The helper's redeploy (full or 'nodes' = only changed nodes restart). */
const setFlows = (nodes: FlowNode[], type: 'full' | 'nodes'): Promise<void> =>
  (helper as unknown as { setFlows(f: FlowNode[], t: string): Promise<void> }).setFlows(nodes, type);

afterEach(async () => {
  await helper.unload();
});
after(() => rmSync(dir, { recursive: true, force: true }));

const MAP_JS =
  "if (record.payload.order === 'bad') throw new Error('bad order'); return { machine: record.tags.find((t) => t.startsWith('machine:')).slice(8), order: record.payload.order };";

function flow(logFile: string, dbFile: string, extra: FlowNode[] = [], mapFunc = MAP_JS): FlowNode[] {
  return [
    { id: 'tab', type: 'tab' },
    { id: 'log', type: 'actyx-config', kind: 'embedded', file: logFile },
    {
      id: 'df',
      type: 'dd-dataflow',
      name: 'plant',
      batchSize: '500',
      batchMs: '2',
      maxInFlight: '2',
      retention: '',
      retentionUnit: 'days',
      onError: 'skip',
    },
    { id: 'db', type: 'db-config', kind: 'sqlite', filename: dbFile },
    {
      id: 'sub',
      type: 'actyx-subscribe',
      z: 'tab',
      actyx: 'log',
      query: "'machine'",
      dataflow: 'df',
      wires: [['map']],
    },
    { id: 'map', type: 'dd-map', z: 'tab', dataflow: 'df', language: 'js', func: mapFunc, wires: [['sink', 'tap']] },
    {
      id: 'sink',
      type: 'db-sink',
      z: 'tab',
      dataflow: 'df',
      database: 'db',
      table: 'orders',
      mode: 'multiset',
      columns: [
        { name: 'machine', type: 'text', source: 'path', value: 'machine', key: false, index: true, exclude: false },
        { name: 'order_no', type: 'text', source: 'path', value: 'order', key: false, index: false, exclude: false },
      ],
      wires: [['after']],
    },
    { id: 'tap', type: 'helper', z: 'tab' },
    { id: 'after', type: 'helper', z: 'tab' },
    { id: 'catcher', type: 'catch', z: 'tab', scope: null, uncaught: false, wires: [['caught']] },
    { id: 'caught', type: 'helper', z: 'tab' },
    ...extra,
  ].map((n) => (n.z ? { x: 0, y: 0, ...n } : n)); // x/y: a flow node, not a config node
}

async function publish(logFile: string, orders: string[]): Promise<void> {
  const handle = openSharedEmbeddedLog(logFile);
  try {
    for (const order of orders)
      await handle.log.publishAs('drill1-0', [
        { tags: ['machine', 'machine:Drill1'], payload: { type: 'started', order } },
      ]);
  } finally {
    await handle.release();
  }
}

function rows(dbFile: string): { machine: string; order_no: string }[] {
  try {
    const db = new Database(dbFile, { readonly: true, fileMustExist: true });
    try {
      return db.prepare('select machine, order_no from orders order by order_no').all() as {
        machine: string;
        order_no: string;
      }[];
    } finally {
      db.close();
    }
  } catch {
    return [];
  }
}

test('settings: defaults, units, and a clear message for unusable values', () => {
  const ok = parseDataflowSettings({
    id: 'x',
    type: 'dd-dataflow',
    batchSize: '200',
    batchMs: '0',
    maxInFlight: '8',
    retention: '1.5',
    retentionUnit: 'hours',
    onError: 'stop',
  });
  assert.deepEqual(ok.settings, {
    batchSize: 200,
    batchMs: 0,
    maxInFlight: 8,
    retentionMicros: 1.5 * 3600e6,
    clockAheadMicros: 10 * 60e6,
    onError: 'stop',
    durableState: false,
    stateCacheBytes: 64 * 1048576,
    warmUpMs: 400,
  });
  assert.deepEqual(ok.problems, []);
  // Operator state: in memory unless 'database'; the cache in MB (default 64), anything else reported.
  const durable = parseDataflowSettings({ id: 'x', type: 'dd-dataflow', operatorState: 'database', stateCache: '8' });
  assert.equal(durable.settings.durableState, true);
  assert.equal(durable.settings.stateCacheBytes, 8 * 1048576);
  const badCache = parseDataflowSettings({ id: 'x', type: 'dd-dataflow', stateCache: '-1' });
  assert.equal(badCache.settings.stateCacheBytes, 64 * 1048576);
  assert.match(badCache.problems[0] ?? '', /stateCache must be a whole number from 0 to 65536/);
  // The warm-up: ms, default 400 (a node saved before the setting too), 0 allowed (none), anything else reported.
  assert.equal(parseDataflowSettings({ id: 'x', type: 'dd-dataflow', warmUp: '0' }).settings.warmUpMs, 0);
  assert.equal(parseDataflowSettings({ id: 'x', type: 'dd-dataflow', warmUp: '2000' }).settings.warmUpMs, 2000);
  const badWarmUp = parseDataflowSettings({ id: 'x', type: 'dd-dataflow', warmUp: '-1' });
  assert.equal(badWarmUp.settings.warmUpMs, 400);
  assert.match(badWarmUp.problems[0] ?? '', /warmUp must be a whole number from 0 to 60000/);
  // The clock bound: minutes, default 10, 0 allowed (the wall clock itself), anything else reported.
  assert.equal(parseDataflowSettings({ id: 'x', type: 'dd-dataflow', clockAhead: '0' }).settings.clockAheadMicros, 0);
  assert.equal(
    parseDataflowSettings({ id: 'x', type: 'dd-dataflow', clockAhead: '90' }).settings.clockAheadMicros,
    90 * 60e6,
  );
  const badClock = parseDataflowSettings({ id: 'x', type: 'dd-dataflow', clockAhead: '-1' });
  assert.equal(badClock.settings.clockAheadMicros, 10 * 60e6);
  assert.match(badClock.problems[0] ?? '', /clockAhead must be a whole number from 0 to 525600/);
  const bad = parseDataflowSettings({
    id: 'x',
    type: 'dd-dataflow',
    batchSize: '-3',
    maxInFlight: 'many',
    retention: 'x',
  });
  assert.equal(bad.settings.batchSize, 10000);
  assert.equal(bad.settings.maxInFlight, 16, 'In flight defaults to 16 (the help text says so)');
  assert.equal(bad.settings.retentionMicros, null);
  assert.equal(bad.problems.length, 3);
  assert.match(bad.problems[0] ?? '', /batchSize must be a whole number/);
  // The catch-up step: empty is automatic, a number is taken, anything else is reported.
  assert.equal(
    parseDataflowSettings({ id: 'x', type: 'dd-dataflow', catchUpBatchSize: '' }).settings.catchUpBatchSize,
    undefined,
  );
  assert.equal(
    parseDataflowSettings({ id: 'x', type: 'dd-dataflow', catchUpBatchSize: '20000' }).settings.catchUpBatchSize,
    20000,
  );
  const badStep = parseDataflowSettings({ id: 'x', type: 'dd-dataflow', catchUpBatchSize: '0' });
  assert.equal(badStep.settings.catchUpBatchSize, undefined);
  assert.match(
    badStep.problems[0] ?? '',
    /catchUpBatchSize must be a whole number from 1 to 100000 or empty .*automatic/,
  );
});

test('wire inputs: first-port wires between members are inputs; wires from other nodes are bad wires', () => {
  const members = new Map([
    ['a', 1],
    ['b', 1],
    ['s', 1],
  ]);
  const { inputs, badWires } = wireInputs('df', members, [
    { id: 'a', type: 'actyx-subscribe', label: 'A', dataflow: 'df', wires: [['b']] },
    { id: 'b', type: 'dd-map', label: 'B', dataflow: 'df', wires: [['s']] },
    { id: 's', type: 'db-sink', label: 'S', dataflow: 'df', wires: [['b']] },
    { id: 'inj', type: 'inject', label: 'tick', dataflow: undefined, wires: [['s']] },
    { id: 'other', type: 'dd-map', label: 'O', dataflow: 'df2', wires: [['s']] },
  ]);
  assert.deepEqual(inputs.get('b'), ['a']);
  assert.deepEqual(inputs.get('s'), ['b']);
  assert.match((badWires.get('b') ?? []).join(), /S \(db-sink\) sends committed rows/);
  assert.match(
    (badWires.get('s') ?? []).join(),
    /tick \(inject\) is not part of this dataflow.*O \(dd-map\) belongs to a different dataflow/,
  );
});

test('dd-dataflow runs the wired nodes: rows committed, after-commit messages, Catch sees a throwing function with the event, redeploy writes nothing again', async () => {
  run++;
  const logFile = join(dir, `log-${run}.sqlite`);
  const dbFile = join(dir, `db-${run}.sqlite`);
  await publish(logFile, ['1', 'bad', '2']);
  await helper.load(NODES, flow(logFile, dbFile, [{ id: 'inj', type: 'helper', z: 'tab', wires: [['sink']] }]));
  const after: Record<string, unknown>[] = [];
  const taps: Record<string, unknown>[] = [];
  const caught: Record<string, unknown>[] = [];
  helper.getNode('after').on('input', (m) => after.push(m));
  helper.getNode('tap').on('input', (m) => taps.push(m));
  helper.getNode('caught').on('input', (m) => caught.push(m));

  await eventually(() => rows(dbFile).length === 2, 'two rows');
  await publish(logFile, ['3']);
  await eventually(() => rows(dbFile).length === 3, 'the live row');
  assert.deepEqual(
    rows(dbFile).map((r) => r.order_no),
    ['1', '2', '3'],
  );

  // db-sink sends the committed row changes with the offsets and the table name.
  await eventually(() => after.some((m) => JSON.stringify(m.payload).includes('"3"')), 'after-commit message');
  const last = after.find((m) => JSON.stringify(m.payload).includes('"3"')) as {
    payload: { op: string; row: Record<string, unknown> }[];
    offsets: Record<string, number>;
    table: string;
    _deltaflow: unknown;
  };
  assert.deepEqual(last.payload, [{ op: 'insert', row: { machine: 'Drill1', order_no: '3' } }]);
  assert.deepEqual(last.offsets, { 'drill1-0': 3 });
  assert.equal(last.table, 'orders');
  assert.ok(last._deltaflow);
  // The tapped dd-map sends [{value, diff}] for events after the committed offsets.
  await eventually(() => taps.length > 0, 'tap message');
  assert.ok(
    taps.some(
      (m) => JSON.stringify(m.payload) === JSON.stringify([{ value: { machine: 'Drill1', order: '3' }, diff: 1 }]),
    ),
    JSON.stringify(taps.map((t) => t.payload)),
  );

  // The throwing function: node.error names the event; a Catch node receives it with the event.
  await eventually(() => caught.length > 0, 'catch message');
  const err = caught[0] as {
    error: { message: string; source: { id: string } };
    event: { stream: string; offset: number };
  };
  assert.equal(err.error.source.id, 'map');
  assert.match(err.error.message, /bad order/);
  assert.match(err.error.message, /event drill1-0\/1/);
  assert.deepEqual([err.event.stream, err.event.offset], ['drill1-0', 1]);
  await eventually(
    () => statusesOf('map').some((s) => s.text === 'live, 1 skipped'),
    `the skip in the status: ${JSON.stringify(statusesOf('map'))}`,
  );

  // A non-dataflow node wired into the db-sink is reported on the sink.
  assert.ok(
    errorsOf('sink').some((e) => /inj \(helper\) is not part of this dataflow/.test(e)),
    JSON.stringify(errorsOf('sink')),
  );
  assert.ok(statusesOf('sink').some((s) => s.text === 'bad input wire'));

  // A full redeploy of the same flow: the new coordinator replays without writing.
  const db = new Database(dbFile);
  db.exec(
    'create table writes (n integer); insert into writes values (0); create trigger count_writes after insert on orders begin update writes set n = n + 1; end;',
  );
  db.close();
  await setFlows(flow(logFile, dbFile), 'full');
  await eventually(() => statusesOf('sink').some((s) => s.text === 'live'), 'live again');
  const count = new Database(dbFile, { readonly: true });
  assert.equal((count.prepare('select n from writes').get() as { n: number }).n, 0);
  count.close();
  // A partial deploy that changes the function rebuilds the table from the events.
  await setFlows(
    flow(logFile, dbFile, [], MAP_JS.replace('order: record.payload.order', "order: 'o' + record.payload.order")),
    'nodes',
  );
  await eventually(
    () =>
      rows(dbFile)
        .map((r) => r.order_no)
        .join() === 'o1,o2,o3',
    'rebuilt table',
    10_000,
  );
});

test('headless log: one info line when live (events, time) at a start and after a restart; warnings without the node name', async () => {
  run++;
  const logFile = join(dir, `log-${run}.sqlite`);
  const dbFile = join(dir, `db-${run}.sqlite`);
  await publish(logFile, ['1', '2', '3']);
  await helper.load(NODES, flow(logFile, dbFile));
  await eventually(() => rows(dbFile).length === 3, 'three rows');
  const live = (): string[] => logsOf('df').filter((l) => l.startsWith('live'));
  await eventually(() => live().length === 1, `the live line: ${JSON.stringify(logsOf('df'))}`);
  assert.match(live()[0]!, /^live: caught up with 3 events in \d+\.\d s$/);
  // Live events later: no second line.
  await publish(logFile, ['4']);
  await eventually(() => rows(dbFile).length === 4, 'the live row');
  assert.equal(live().length, 1, 'logged once per run');
  // A restart (full redeploy): caught up again, one more line.
  await setFlows(flow(logFile, dbFile), 'full');
  await eventually(() => live().length === 2, `the live line after the restart: ${JSON.stringify(logsOf('df'))}`);
  assert.match(live()[1]!, /^live: caught up with \d+ events in \d+\.\d s$/);
  // Node-RED prefixes [dd-dataflow:plant]: the texts do not repeat it.
  for (const text of [...logsOf('df'), ...warningsOf('df'), ...errorsOf('df')])
    assert.doesNotMatch(text, /dd-dataflow|plant/, text);
});

test('an invalid query: the source says so once; the other members say the source failed, not that there is none', async () => {
  run++;
  const logFile = join(dir, `log-${run}.sqlite`);
  const dbFile = join(dir, `db-${run}.sqlite`);
  const nodes = flow(logFile, dbFile).map((n) => (n.id === 'sub' ? { ...n, query: "'machine' &&& FROM" } : n));
  await helper.load(NODES, nodes);
  await eventually(
    () => statusesOf('map').some((s) => /^source failed/.test(s.text ?? '')),
    `the map's status: ${JSON.stringify(statusesOf('map'))}`,
  );
  assert.equal(statusesOf('map').at(-1)?.text, 'source failed: actyx-subscribe sub');
  assert.equal(statusesOf('sink').at(-1)?.text, 'source failed: actyx-subscribe sub');
  for (const id of ['map', 'sink'])
    assert.ok(!statusesOf(id).some((s) => /no actyx-subscribe/.test(s.text ?? '')), JSON.stringify(statusesOf(id)));
  assert.deepEqual(
    warningsOf('df').filter((w) => /no actyx-subscribe/.test(w)),
    [],
  );
  // The syntax error: logged once, by the source.
  assert.equal(errorsOf('sub').filter((e) => /invalid query/.test(e)).length, 1, JSON.stringify(errorsOf('sub')));
  assert.equal(statusesOf('sub').at(-1)?.text, 'invalid query');
  // Fixed by a deploy: the dataflow runs.
  await publish(logFile, ['1']);
  await setFlows(flow(logFile, dbFile), 'full');
  await eventually(() => rows(dbFile).length === 1, 'the row after the fix');
});

test('a db-sink added by a partial deploy is filled from the history; the other sink writes no row', async () => {
  run++;
  const logFile = join(dir, `log-${run}.sqlite`);
  const dbFile = join(dir, `db-${run}.sqlite`);
  await publish(logFile, ['1', '2', '3']);
  await helper.load(NODES, flow(logFile, dbFile));
  await eventually(() => rows(dbFile).length === 3, 'three rows');
  await eventually(() => statusesOf('sink').some((s) => s.text === 'live'), 'live');
  const db = new Database(dbFile);
  db.exec(
    'create table writes (n integer); insert into writes values (0); create trigger count_writes after insert on orders begin update writes set n = n + 1; end; create trigger count_deletes after delete on orders begin update writes set n = n + 1; end;',
  );
  db.close();

  // The dd-map gets a second wire, to a new db-sink keyed by order.
  const extended = flow(logFile, dbFile, [
    {
      id: 'sink2',
      type: 'db-sink',
      z: 'tab',
      dataflow: 'df',
      database: 'db',
      table: 'latest_orders',
      mode: 'keyed',
      columns: [
        { name: 'order_no', type: 'text', source: 'path', value: 'order', key: true, index: false, exclude: false },
        { name: 'machine', type: 'text', source: 'path', value: 'machine', key: false, index: false, exclude: false },
      ],
      wires: [],
    },
  ]).map((n) => (n.id === 'map' ? { ...n, wires: [['sink', 'tap', 'sink2']] } : n));
  await setFlows(extended, 'nodes');
  const latest = (): string => {
    const r = new Database(dbFile, { readonly: true });
    try {
      return JSON.stringify(r.prepare('select order_no, machine from latest_orders order by order_no').all());
    } catch {
      return '[]';
    } finally {
      r.close();
    }
  };
  const want = JSON.stringify(['1', '2', '3'].map((o) => ({ order_no: o, machine: 'Drill1' })));
  await eventually(() => latest() === want, `the new table filled from the history: ${latest()}`, 10_000);
  await eventually(() => statusesOf('sink2').some((s) => s.text === 'live'), 'the new sink is live');
  // Both go on live.
  await publish(logFile, ['4']);
  await eventually(() => rows(dbFile).length === 4 && latest().includes('"4"'), 'the live event in both tables');
  const count = new Database(dbFile, { readonly: true });
  assert.equal(
    (count.prepare('select n from writes').get() as { n: number }).n,
    1,
    'the existing sink wrote only the live row',
  );
  count.close();
});
