/**
 * The dd-* operator nodes in a Node-RED runtime (node-red-node-test-helper): configuration checks
 * at deploy (missing dataflow, syntax errors, unknown options), wrong input wiring at deploy and at
 * run time, and that dataflow messages on the input are accepted silently.
 */
import { after, afterEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import ddDataflow from '../../src/nodes/dd-dataflow';
import ddFilter from '../../src/nodes/dd-filter';
import ddMap from '../../src/nodes/dd-map';
import ddGroupby from '../../src/nodes/dd-groupby';
import ddMaxby from '../../src/nodes/dd-maxby';
import ddMinby from '../../src/nodes/dd-minby';
import ddReduce from '../../src/nodes/dd-reduce';
import ddScan from '../../src/nodes/dd-scan';
import ddAggregate from '../../src/nodes/dd-aggregate';
import ddFlatmap from '../../src/nodes/dd-flatmap';
import ddDistinct from '../../src/nodes/dd-distinct';
import ddJoin from '../../src/nodes/dd-join';
import ddWindow from '../../src/nodes/dd-window';
import ddTopk from '../../src/nodes/dd-topk';
import { errorsOf, eventually, helper, statusesOf, type FlowNode } from './dd-helper';

const NODES = [
  ddDataflow,
  ddFilter,
  ddMap,
  ddGroupby,
  ddMaxby,
  ddMinby,
  ddReduce,
  ddScan,
  ddAggregate,
  ddFlatmap,
  ddDistinct,
  ddJoin,
  ddWindow,
  ddTopk,
];

/** A valid configuration of every operator type. */
const VALID: Record<string, Record<string, unknown>> = {
  'dd-filter': { language: 'js', condition: "return record.payload.type === 'started';" },
  'dd-map': { language: 'jsonata', func: '{"machine": payload.machine, "since": timestamp}' },
  'dd-groupby': { keyType: 'path', key: 'payload.machine' },
  'dd-maxby': { byType: 'js', by: 'return [record.timestamp, record.lamport];' },
  'dd-minby': { byType: 'jsonata', by: 'timestamp' },
  'dd-reduce': { func: 'let n = 0; for (const [, m] of inputs) n += m; outputs.push([{ key, n }, 1]);' },
  'dd-scan': { initial: '{"n": 0}', func: 'state.n += 1; emit({ key, n: state.n }); return state;' },
  'dd-aggregate': { aggregate: 'sum', valueType: 'path', value: 'payload.count' },
  'dd-flatmap': { language: 'js', func: 'return record.tags.map((tag) => ({ tag }));' },
  'dd-distinct': {},
  'dd-join': {
    kind: 'left',
    left: 'steps',
    leftKeyType: 'path',
    leftKey: 'order',
    rightKeyType: 'jsonata',
    rightKey: 'payload.order',
  },
  'dd-window': {
    timeType: 'path',
    time: 'timestamp',
    endType: 'path',
    end: '',
    timeUnit: 'us',
    size: '8',
    slide: '',
    unit: 'hour',
    start: '06:00',
    timeZone: 'Europe/Berlin',
    field: 'window',
  },
  'dd-topk': { count: '5', direction: 'max', byType: 'path', by: 'sum' },
};

const dataflow: FlowNode = { id: 'df', type: 'dd-dataflow', name: 'test dataflow' };

function operator(type: string, config: Record<string, unknown>, extra: Partial<FlowNode> = {}): FlowNode {
  return {
    id: 'op',
    z: 'tab',
    x: 100,
    y: 100,
    type,
    name: 'my node',
    dataflow: 'df',
    wires: [[]],
    ...config,
    ...extra,
  };
}

afterEach(async () => {
  await helper.unload();
});
after(async () => {
  await helper.stopServer().catch(() => undefined);
});

describe('valid configurations', () => {
  for (const [type, config] of Object.entries(VALID)) {
    test(`${type} deploys without errors and joins its dataflow`, async () => {
      await helper.load(NODES, [dataflow, operator(type, config)]);
      assert.ok(helper.getNode('op'), `${type} not created`);
      assert.deepEqual(errorsOf('op'), []);
      // The dataflow has no event source, so it marks its member red instead of running.
      await eventually(
        () => statusesOf('op').some((s) => s.text === 'no actyx-subscribe'),
        'the dataflow to report on its member',
      );
    });
  }
});

test('every operator without a dataflow reports it clearly', async () => {
  for (const [type, config] of Object.entries(VALID)) {
    await helper.load(NODES, [operator(type, config, { dataflow: '' })]);
    assert.ok(
      errorsOf('op').some((e) => e.startsWith('no dataflow selected')),
      `${type}: ${errorsOf('op')}`,
    );
    assert.ok(statusesOf('op').some((s) => s.fill === 'red' && s.text === 'no dataflow'));
    await helper.unload();
  }
});

describe('bad expressions give a clear error and a red status at deploy', () => {
  const cases: [string, Record<string, unknown>, RegExp, string][] = [
    [
      'dd-filter',
      { language: 'js', condition: 'return record.;' },
      /^condition: JavaScript syntax error: /,
      'invalid expression',
    ],
    [
      'dd-filter',
      { language: 'jsonata', condition: 'payload.type = ' },
      /^condition: JSONata syntax error at position \d+: /,
      'invalid expression',
    ],
    ['dd-filter', { language: 'js', condition: '   ' }, /^condition: the JavaScript is empty$/, 'invalid expression'],
    ['dd-map', { language: 'jsonata', func: '{"a": }' }, /^function: JSONata syntax error/, 'invalid expression'],
    [
      'dd-map',
      { language: 'python', func: 'return 1' },
      /^function: unknown language "python" \(expected js, jsonata, path\)$/,
      'invalid expression',
    ],
    [
      'dd-groupby',
      { keyType: 'path', key: 'payload..machine' },
      /^key: invalid property path "payload\.\.machine"/,
      'invalid expression',
    ],
    ['dd-groupby', { keyType: 'path', key: '' }, /^key: the property path is empty$/, 'invalid expression'],
    ['dd-maxby', { byType: 'js', by: 'return {' }, /^order by: JavaScript syntax error/, 'invalid expression'],
    ['dd-minby', { byType: 'jsonata', by: ']' }, /^order by: JSONata syntax error/, 'invalid expression'],
    ['dd-reduce', { func: 'for (' }, /^function: JavaScript syntax error/, 'invalid expression'],
    [
      'dd-scan',
      { initial: '{}', func: 'return state;;}' },
      /^step function: JavaScript syntax error/,
      'invalid expression',
    ],
    ['dd-scan', { initial: '{}', func: ' ' }, /^step function: the JavaScript is empty$/, 'invalid expression'],
    ['dd-scan', { initial: "{'a': 1}", func: 'return state;' }, /^initial state: not valid JSON: /, 'invalid config'],
    [
      'dd-scan',
      { initial: '', func: 'return state;' },
      /^initial state: empty; enter a JSON value such as \{\}$/,
      'invalid config',
    ],
    [
      'dd-aggregate',
      { aggregate: 'avg' },
      /^aggregate: unknown function "avg" \(expected count or sum\)$/,
      'invalid expression',
    ],
    [
      'dd-aggregate',
      { aggregate: 'sum', valueType: 'path', value: '' },
      /^value to sum: the property path is empty$/,
      'invalid expression',
    ],
    [
      'dd-join',
      { kind: 'outer', leftKeyType: 'path', leftKey: 'order', rightKeyType: 'path', rightKey: 'order' },
      /^join: unknown kind "outer" \(expected inner or left\)$/,
      'invalid expression',
    ],
    [
      'dd-join',
      { kind: 'inner', leftKeyType: 'path', leftKey: 'order', rightKeyType: 'js', rightKey: 'return record.;' },
      /^right key: JavaScript syntax error/,
      'invalid expression',
    ],
    [
      'dd-window',
      { time: 'timestamp', unit: 'hour', size: '8', start: '06:00', timeZone: 'Europe/Berlln' },
      /^unknown time zone "Europe\/Berlln" \(use an IANA name such as Europe\/Berlin, or UTC\)$/,
      'invalid expression',
    ],
    [
      'dd-window',
      { time: 'timestamp', unit: 'hour', size: '7', timeZone: 'UTC' },
      /^window: 7 hours do not divide a day/,
      'invalid expression',
    ],
    [
      'dd-window',
      { timeType: 'js', time: 'return record.;', unit: 'day', size: '1', timeZone: 'UTC' },
      /^time: JavaScript syntax error/,
      'invalid expression',
    ],
    [
      'dd-topk',
      { count: '0', byType: 'path', by: 'sum' },
      /^count: "0" is not a whole number from 1 to 10000$/,
      'invalid expression',
    ],
    [
      'dd-topk',
      { count: '5', direction: 'up', byType: 'path', by: 'sum' },
      /^direction: unknown "up" \(expected max or min\)$/,
      'invalid expression',
    ],
    ['dd-flatmap', { language: 'jsonata', func: 'tags[' }, /^function: JSONata syntax error/, 'invalid expression'],
    [
      'dd-flatmap',
      { language: 'js', func: 'return [record' },
      /^function: JavaScript syntax error/,
      'invalid expression',
    ],
  ];
  for (const [type, config, expected, status] of cases) {
    test(`${type} ${JSON.stringify(config)}`, async () => {
      await helper.load(NODES, [dataflow, operator(type, config)]);
      const errors = errorsOf('op');
      assert.ok(
        errors.some((e) => expected.test(e)),
        `got ${JSON.stringify(errors)}`,
      );
      assert.ok(
        statusesOf('op').some((s) => s.fill === 'red' && s.shape === 'ring' && s.text === status),
        JSON.stringify(statusesOf('op')),
      );
    });
  }
});

test('a non-dataflow node wired into a dd node is reported at deploy and when a message arrives', async () => {
  const flow: FlowNode[] = [
    dataflow,
    { id: 'tab', type: 'tab' },
    { id: 'inj', z: 'tab', x: 0, y: 0, type: 'helper', name: 'my inject', wires: [['op']] },
    operator('dd-map', VALID['dd-map']!),
    { id: 'catch', z: 'tab', x: 0, y: 0, type: 'catch', scope: null, uncaught: false, wires: [['caught']] },
    { id: 'caught', z: 'tab', x: 0, y: 0, type: 'helper' },
  ];
  await helper.load(NODES, flow);
  assert.ok(
    errorsOf('op').some((e) => /^input wired from my inject \(helper\) is not part of a dataflow/.test(e)),
    JSON.stringify(errorsOf('op')),
  );
  assert.ok(statusesOf('op').some((s) => s.fill === 'red' && s.text === 'wrong input wired'));

  const caught = new Promise<Record<string, unknown>>((resolve) => helper.getNode('caught').on('input', resolve));
  const before = errorsOf('op').length;
  helper.getNode('op').receive({ payload: { hello: 1 } });
  const msg = (await caught) as { error?: { message?: string }; payload?: unknown };
  assert.match(msg.error?.message ?? '', /^Error: received a message that did not come from the dataflow/);
  assert.deepEqual(msg.payload, { hello: 1 });
  assert.equal(errorsOf('op').length, before + 1);
});

test('messages a dataflow node sent after a commit are ignored on a dd node input', async () => {
  await helper.load(NODES, [dataflow, operator('dd-filter', VALID['dd-filter']!)]);
  const node = helper.getNode('op');
  node.receive({ payload: [{ value: 1, diff: 1 }], _deltaflow: { dataflow: 'df' } });
  node.receive({ payload: 'stray' });
  await eventually(() => errorsOf('op').length > 0, 'the stray message error');
  assert.equal(errorsOf('op').length, 1, JSON.stringify(errorsOf('op')));
  assert.match(errorsOf('op')[0]!, /did not come from the dataflow/);
});

test('dataflow nodes of another dataflow, or of none, wired into a dd node are named at deploy', async () => {
  await helper.load(NODES, [
    dataflow,
    { id: 'df2', type: 'dd-dataflow', name: 'second dataflow' },
    { id: 'tab', type: 'tab' },
    operator('dd-map', VALID['dd-map']!, { id: 'other', name: 'other map', dataflow: 'df2', wires: [['op']] }),
    operator('dd-filter', VALID['dd-filter']!, { id: 'loose', name: 'loose filter', dataflow: '', wires: [['op']] }),
    operator('dd-groupby', VALID['dd-groupby']!),
  ]);
  const errors = errorsOf('op').join('\n');
  assert.match(errors, /other map \(dd-map\) belongs to a different dataflow/);
  assert.match(errors, /loose filter \(dd-filter\) is in no dataflow \(its Dataflow field is empty\)/);
});
