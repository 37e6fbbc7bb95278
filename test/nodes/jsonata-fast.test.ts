/**
 * The synchronous evaluator of simple JSONata expressions gives exactly what Node-RED's JSONata
 * gives (or leaves the record to it), on random records and random expressions of its subset;
 * everything outside the subset is left to JSONata; and a dd node using it gets the same results.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import fc from 'fast-check';
import { BAIL, compileSimpleJsonata } from '../../src/nodes/jsonata-fast';
import { compileRecordFunction } from '../../src/nodes/user-function';
import type { Node, NodeAPI } from '../../src/nodes/red';
import type { Value } from '../../src/engine/types';
import { isPlainObject } from '../../src/engine/value-check';
import { canonicalKey, valueEquals } from '../../src/engine/value-identity';

const require = createRequire(__filename);
const RED = { util: require('@node-red/util').util } as NodeAPI;
interface Prepared {
  ast(): unknown;
  evaluate(input: unknown): Promise<unknown>;
}
const prepare = (text: string): Prepared =>
  RED.util.prepareJSONataExpression(text, null as unknown as Node) as Prepared;

/**
 * `v` with every object of null prototype rebuilt with Object.prototype (arrays keep their own
 * properties, such as JSONata's `sequence`). NB: Node-RED 5's patched JSONata (@node-red/util
 * lib/jsonata.js, 5.0.7) builds the objects of its results with a null prototype, Node-RED 4's
 * jsonata with Object.prototype; the engine takes both as the same plain record (isPlainObject,
 * valueEquals: checked below), and fast-check makes records of both kinds, so the comparison ignores it.
 */
function withObjectPrototype(v: unknown): unknown {
  if (v === null || typeof v !== 'object') return v;
  const proto: unknown = Object.getPrototypeOf(v);
  if (Array.isArray(v)) {
    const out = Object.assign([], v) as unknown[];
    for (let i = 0; i < out.length; i++) out[i] = withObjectPrototype(out[i]);
    return out;
  }
  if (proto !== null && proto !== Object.prototype) return v; // not a record: compared as it is
  const out = {};
  for (const [k, x] of Object.entries(v)) {
    Object.defineProperty(out, k, {
      value: withObjectPrototype(x),
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return out;
}

test('a record of null prototype is the same value as one of Object.prototype', () => {
  const bare = Object.assign(Object.create(null) as Record<string, Value>, { k: Object.create(null) as Value });
  assert.ok(isPlainObject(bare));
  assert.ok(valueEquals(bare as Value, { k: {} }));
  assert.equal(canonicalKey(bare as Value), canonicalKey({ k: {} }));
});

// Names that are fields of the records, and some that objects inherit.
const NAMES = ['a', 'b', 'type', 'order', 'toString', 'constructor', 'length', '__proto__'] as const;
const name = fc.constantFrom(...NAMES);
const scalar = fc.oneof(
  fc.constantFrom('started', 'stopped', 'x', ''),
  fc.integer({ min: -3, max: 3 }),
  fc.boolean(),
  fc.constant(null),
);
const { record } = fc.letrec((tie) => ({
  record: fc.oneof(
    { depthSize: 'small' },
    scalar,
    fc.dictionary(fc.constantFrom('a', 'b', 'type', 'order', 'length'), tie('record'), { maxKeys: 4 }),
    fc.array(tie('record'), { maxLength: 3 }),
  ),
}));

const literalText = fc.oneof(
  fc.constantFrom('"started"', '"stopped"', '"x"', '""', 'true', 'false', 'null'),
  fc.integer({ min: -3, max: 3 }).map(String),
);
const pathText = fc.array(name, { minLength: 1, maxLength: 3 }).map((ns) => ns.join('.'));
const { expr, pred } = fc.letrec((tie) => ({
  expr: fc.oneof(
    { depthSize: 'small' },
    pathText,
    literalText,
    fc
      .uniqueArray(fc.tuple(fc.constantFrom('k', 'm', 'n', '1', 'machine'), tie('expr') as fc.Arbitrary<string>), {
        minLength: 1,
        maxLength: 3,
        selector: ([k]) => k,
      })
      .map((pairs) => `{${pairs.map(([k, v]) => `"${k}": ${v}`).join(', ')}}`),
    tie('pred'),
  ),
  pred: fc.oneof(
    { depthSize: 'small' },
    fc.tuple(pathText, fc.constantFrom('=', '!='), literalText).map(([p, op, l]) => `${p} ${op} ${l}`),
    fc.tuple(pathText, fc.constantFrom('=', '!='), pathText).map(([p, op, q]) => `${p} ${op} ${q}`),
    fc.tuple(pathText, fc.array(literalText, { maxLength: 3 })).map(([p, ls]) => `${p} in [${ls.join(', ')}]`),
    fc
      .tuple(tie('pred') as fc.Arbitrary<string>, fc.constantFrom('and', 'or'), tie('pred') as fc.Arbitrary<string>)
      .map(([l, op, r]) => `${l} ${op} ${r}`),
  ),
}));

test('simple expressions give what JSONata gives, or leave the record to JSONata', async () => {
  let answered = 0;
  let runs = 0;
  await fc.assert(
    fc.asyncProperty(
      expr as fc.Arbitrary<string>,
      fc.array(record, { minLength: 1, maxLength: 4 }),
      async (text, records) => {
        const prepared = prepare(text);
        const fast = compileSimpleJsonata(prepared.ast());
        assert.ok(fast !== null, `${text} is in the subset`);
        for (const r of records) {
          runs++;
          const got = fast(r);
          if (got === BAIL) continue;
          answered++;
          const expected = withObjectPrototype(await prepared.evaluate(r));
          assert.deepStrictEqual(withObjectPrototype(got), expected, `${text} on ${JSON.stringify(r)}`);
        }
      },
    ),
    { numRuns: 400 },
  );
  assert.ok(answered > runs / 2, `the fast path answered ${answered} of ${runs}`);
});

test('expressions outside the subset are left to JSONata', () => {
  for (const text of [
    '$count(a)',
    'a[0]',
    'a.b[type="x"]',
    'a & b',
    'a.*',
    '(a)',
    'a + 1',
    '$',
    'a < 1',
    '{"k": a, "k": b}',
    'a ? b : c',
    '[a, b]',
    'a in b',
    '{"__proto__": a}',
    'a{type: b}',
    'a^(b)',
    '**.a',
  ])
    assert.equal(compileSimpleJsonata(prepare(text).ast()), null, text);
});

test('a dd node answers simple expressions synchronously and the rest through JSONata, with equal results', async () => {
  const node = { id: 'n1', type: 'dd-map' } as Node;
  const record: Value = { machine: 'Drill1', order: '4711', tags: ['machine'], payload: { list: [1, 2] } };
  const fast = compileRecordFunction(
    RED,
    node,
    { language: 'jsonata', text: '{"machine": machine, "order": order}' },
    ['jsonata'],
    'f',
  );
  assert.deepEqual(fast(record), { machine: 'Drill1', order: '4711' }, 'no promise');
  // An array on the path: JSONata's sequence semantics, asynchronously.
  const mapped = compileRecordFunction(RED, node, { language: 'jsonata', text: 'payload.list' }, ['jsonata'], 'f');
  assert.deepEqual(mapped(record), [1, 2]);
  const flattened = compileRecordFunction(RED, node, { language: 'jsonata', text: 'items.n' }, ['jsonata'], 'f');
  const result = flattened({ items: [{ n: 1 }, { n: 2 }] });
  assert.ok(result instanceof Promise);
  assert.deepEqual([...(await (result as Promise<number[]>))], [1, 2]);
  // Node-RED's msg form: the record is msg.
  const legacy = compileRecordFunction(RED, node, { language: 'jsonata', text: 'msg.machine' }, ['jsonata'], 'f');
  assert.equal(legacy(record), 'Drill1');
});
