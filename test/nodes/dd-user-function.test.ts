/** Compiling and running the user code of dd-* nodes: JavaScript bodies, JSONata, property paths, result checks. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import {
  compileRecordFunction,
  compileReduceFunction,
  compileScanFunction,
  UserCodeError,
  valueFunction,
} from '../../src/nodes/user-function';
import { toValue } from '../../src/nodes/user-values';
import type { Node, NodeAPI } from '../../src/nodes/red';
import type { Value } from '../../src/engine/types';
import { createGraph } from '../../src/engine';

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

test("reduce functions cannot change the engine's inputs: pairs are copies, values are read-only", () => {
  const outputs: [Value, number][] = [];
  const change = compileReduceFunction('inputs[0][1] = 9; outputs.push([inputs[0][1], 1]);', 'f');
  // The engine's pairs are frozen (sorted-inputs.ts); the function gets its own.
  const frozen: [Value, number][] = [Object.freeze([1, 2]) as unknown as [Value, number], [{ x: 1 }, 1]];
  change('k', frozen, outputs);
  assert.deepEqual(outputs, [[9, 1]]);
  assert.deepEqual(frozen, [
    [1, 2],
    [{ x: 1 }, 1],
  ]);
  assert.throws(() => compileReduceFunction('inputs[1][0].x = 9;', 'f')('k', frozen, []), TypeError);
  assert.deepEqual(frozen[1], [{ x: 1 }, 1]);
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

test('records are read-only all the way down: writing to the record, its payload or its tags throws and changes nothing', () => {
  const writes = [
    'record.lamport = 1; return 1;',
    'record.payload.order = "x"; return 1;',
    'record.tags.push("x"); return 1;',
    'record.payload.list.sort((a, b) => b - a); return 1;',
    'delete record.appId; return 1;',
  ];
  const record = structuredClone(event);
  for (const text of writes) {
    const fn = compileRecordFunction(RED, node, { language: 'js', text }, ['js'], 'function');
    assert.throws(() => fn(record), TypeError, text);
  }
  assert.deepEqual(record, event, 'every function saw the record as it was');
  // The key and inputs of a reduce, the record and key of a scan step, too.
  const reduce = compileReduceFunction('inputs[0][0].x = 1;', 'function');
  assert.throws(() => reduce('k', [[{ x: 0 }, 1]], []), TypeError);
  const scan = compileScanFunction('key.machine = "x"; return state;', 'step function');
  assert.throws(() => scan({}, 1, () => undefined, { machine: 'Drill1' }), TypeError);
});

test('results that are not JSON: class instances and Object.prototype become their own properties, deep values convert, a deep cycle is named', () => {
  class Point {
    constructor(
      readonly x: number,
      readonly y: number,
    ) {}
    get sum(): number {
      return this.x + this.y;
    }
  }
  assert.deepStrictEqual(toValue(new Point(1, 2), 'f'), { x: 1, y: 2 });
  assert.deepStrictEqual(toValue({ at: [new Point(3, 4)] }, 'f'), { at: [{ x: 3, y: 4 }] });
  assert.deepStrictEqual(toValue(new Map([[1, 2]]), 'f'), {});
  const proto = toValue(Object.prototype, 'f');
  assert.deepStrictEqual(proto, {});
  assert.notEqual(proto, Object.prototype);
  // Deeper than the fast check goes: converted by the careful walk, which finds cycles.
  let deep: unknown = 'leaf';
  for (let i = 0; i < 100; i++) deep = { next: deep, d: i % 2 === 0 ? undefined : i };
  assert.deepStrictEqual(toValue(deep, 'f'), JSON.parse(JSON.stringify(deep)));
  const ring: Record<string, unknown> = {};
  let inner: Record<string, unknown> = ring;
  for (let i = 0; i < 80; i++) inner = inner.next = {};
  inner.next = ring;
  assert.throws(
    () => toValue(ring, 'my function'),
    /my function produced a value that contains itself at (\.next){81}$/,
  );
  assert.throws(() => toValue([1, 2n], 'f'), /f produced a bigint at \[1\], which is not a JSON value/);
  assert.throws(() => toValue({ s: Symbol('s') }, 'f'), /f produced a symbol at \.s/);
  assert.throws(() => toValue({ n: -Infinity }, 'f'), /non-finite number -Infinity at \.n/);
});

test('results are checked, not frozen: objects user code returns but does not own stay as they are', () => {
  const fn = compileRecordFunction(RED, node, { language: 'js', text: 'return Math;' }, ['js'], 'function');
  toValue(fn(event), 'f'); // accepted (no enumerable properties: the record {})
  assert.equal(Object.isFrozen(Math), false);
  assert.equal(Object.isFrozen(Object.prototype), false);
  const plain = { a: [1, { b: 'x' }] };
  assert.equal(toValue(plain, 'f'), plain, 'plain JSON is passed through without copying');
  assert.equal(Object.isFrozen(plain), false);
});

test('the same object returned twice is the same record twice; once handed to JavaScript it is read-only', async () => {
  const g = createGraph();
  const input = g.input('events', { insertOnly: true });
  // A map that keeps one object across calls (through a global) and returns it for every record.
  const shared = compileRecordFunction(
    RED,
    node,
    {
      language: 'js',
      text: 'const o = (globalThis.__ddSharedResult ??= { n: 0 }); if (record.change) o.n = record.n; return o;',
    },
    ['js'],
    'function',
  );
  const mapped = input.map((r) => toValue(shared(r), 'map'), { name: 'shared' });
  g.output('direct', mapped);
  const seen = compileRecordFunction(RED, node, { language: 'js', text: 'return true;' }, ['js'], 'condition');
  g.output(
    'filtered',
    mapped.filter((r) => seen(r) as boolean, { name: 'filter' }),
  );
  try {
    const first = await g.step({
      events: [
        [{ n: 1 }, 1, 1],
        [{ n: 2 }, 1, 1],
      ],
    });
    assert.deepEqual(first.outputs.get('direct'), [[{ n: 0 }, 2, 1]]);
    assert.deepEqual(first.outputs.get('filtered'), [[{ n: 0 }, 2, 1]]);
    // The filter's JavaScript got the object: it is frozen now, so changing it fails for that record.
    const second = await g.step({ events: [[{ change: true, n: 5 }, 1, 2]] });
    assert.equal(second.outputs.size, 0);
    assert.equal(second.skipped.length, 1);
    assert.equal(second.skipped[0]!.operator, 'shared');
    assert.ok(second.skipped[0]!.error instanceof TypeError);
  } finally {
    delete (globalThis as { __ddSharedResult?: unknown }).__ddSharedResult;
  }
});
