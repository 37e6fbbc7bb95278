/** Compiling and running the user code of dd-* nodes: JavaScript bodies, JSONata, property paths, result checks. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import {
  compileRecordFunction,
  compileReduceFunction,
  compileScanFunction,
  toValue,
  UserCodeError,
  valueFunction,
} from '../../src/nodes/user-function';
import type { Node, NodeAPI } from '../../src/nodes/red';
import type { Value } from '../../src/engine/types';

const require = createRequire(__filename);
const RED = { util: require('@node-red/util').util } as NodeAPI;
const node = { id: 'n1', type: 'dd-map' } as Node;

const event: Value = {
  lamport: 7,
  stream: 's-0',
  offset: 3,
  timestamp: 1_000_000,
  tags: ['machine', 'machine:Drill1'],
  appId: 'a',
  payload: { type: 'started', order: '4711', list: [1, 2] },
};

test('JavaScript bodies get the record and run synchronously', () => {
  const fn = compileRecordFunction(
    RED,
    node,
    { language: 'js', text: 'return record.payload.order + "/" + record.lamport;' },
    ['js'],
    'function',
  );
  assert.equal(fn(event), '4711/7');
});

test('JavaScript cannot change the record (frozen, strict mode)', () => {
  const fn = compileRecordFunction(
    RED,
    node,
    { language: 'js', text: 'record.payload.order = "x"; return record;' },
    ['js'],
    'function',
  );
  const copy = structuredClone(event);
  assert.throws(() => fn(copy), TypeError);
  assert.equal((copy as { payload: { order: string } }).payload.order, '4711');
});

test('JSONata expressions evaluate asynchronously against the record', async () => {
  const fn = compileRecordFunction(
    RED,
    node,
    { language: 'jsonata', text: 'payload.type = "started" and $count(payload.list) = 2' },
    ['js', 'jsonata'],
    'condition',
  );
  const result = fn(event);
  assert.ok(result instanceof Promise);
  assert.equal(await result, true);
});

test('property paths read nested values; a missing one is undefined (null for keys and orderings)', () => {
  const fn = compileRecordFunction(RED, node, { language: 'path', text: 'payload.list[1]' }, ['path'], 'key');
  assert.equal(fn(event), 2);
  const missing = compileRecordFunction(
    RED,
    node,
    { language: 'path', text: 'payload.nothing.deeper[3]' },
    ['path'],
    'key',
  );
  assert.equal(missing(event), undefined);
  assert.equal(valueFunction(missing, 'key')(event), null, 'keys and orderings see null');
  const msgPrefix = compileRecordFunction(RED, node, { language: 'path', text: 'msg.tags[1]' }, ['path'], 'key');
  assert.equal(msgPrefix(event), 'machine:Drill1');
});

test('configuration problems are UserCodeErrors naming the field', () => {
  assert.throws(
    () => compileRecordFunction(RED, node, { language: 'js', text: 'return (' }, ['js'], 'condition'),
    (e: unknown) => e instanceof UserCodeError && /^condition: JavaScript syntax error/.test(e.message),
  );
  assert.throws(
    () => compileRecordFunction(RED, node, { language: 'jsonata', text: '(' }, ['jsonata'], 'key'),
    /UserCodeError: key: JSONata syntax error/,
  );
  assert.throws(
    () => compileRecordFunction(RED, node, { language: 'path', text: 'a..b' }, ['path'], 'key'),
    /UserCodeError: key: invalid property path/,
  );
  assert.throws(
    () => compileRecordFunction(RED, node, { language: 'jsonata', text: 'a' }, ['js'], 'function'),
    /unknown language "jsonata" \(expected js\)/,
  );
  assert.throws(() => compileReduceFunction('', 'function'), /^UserCodeError: function: the JavaScript is empty$/);
});

test('reduce functions get key, sorted inputs and outputs; changing inputs does not leak', () => {
  const fn = compileReduceFunction(
    'inputs.reverse(); for (const [r, n] of inputs) outputs.push([{ key, r }, n]);',
    'function',
  );
  const inputs: [Value, number][] = [
    [1, 2],
    [5, 1],
  ];
  const outputs: [Value, number][] = [];
  fn('k', inputs, outputs);
  assert.deepEqual(outputs, [
    [{ key: 'k', r: 5 }, 1],
    [{ key: 'k', r: 1 }, 2],
  ]);
  assert.deepEqual(inputs, [
    [1, 2],
    [5, 1],
  ]);
});

test('scan steps get state, a read-only record, emit and key; emitted rows are converted like JSON', () => {
  const fn = compileScanFunction(
    'state.n += record.v; emit({ key, n: state.n, at: new Date(0) }, 2); return state;',
    'step function',
  );
  const emitted: [Value, number | undefined][] = [];
  const state = { n: 1 };
  const next = fn(state, { v: 2 }, (row, m) => emitted.push([row, m]), 'k');
  assert.equal(next, state, 'the state may be changed in place and returned');
  assert.deepEqual(state, { n: 3 });
  assert.deepEqual(emitted, [[{ key: 'k', n: 3, at: '1970-01-01T00:00:00.000Z' }, 2]]);
  const writer = compileScanFunction('record.v = 0; return state;', 'step function');
  assert.throws(() => writer({}, { v: 2 }, () => undefined, null), TypeError);
  const bad = compileScanFunction('emit(undefined); return state;', 'step function');
  assert.throws(() => bad({}, 1, () => undefined, null), /^Error: step function emitted undefined; emit a row$/);
  assert.throws(
    () => compileScanFunction('return (', 'step function'),
    /^UserCodeError: step function: JavaScript syntax error/,
  );
});

test('results are checked and converted like JSON', () => {
  assert.equal(toValue(new Date(0), 'f'), '1970-01-01T00:00:00.000Z');
  assert.deepEqual(toValue({ a: undefined, b: [undefined, 1] }, 'f'), { b: [null, 1] });
  const same = { a: [1, { b: 'x' }] };
  assert.equal(toValue(same, 'f'), same, 'plain JSON is passed through without copying');
  assert.throws(() => toValue(undefined, 'my function'), /^Error: my function returned undefined/);
  assert.throws(() => toValue({ n: NaN }, 'f'), /non-finite number NaN at \.n/);
  assert.throws(() => toValue({ f: () => 1 }, 'f'), /produced a function at \.f/);
  const cyclic: Record<string, unknown> = {};
  cyclic.self = cyclic;
  assert.throws(() => toValue(cyclic, 'f'), /contains itself/);
});
