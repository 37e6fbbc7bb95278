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

const require = createRequire(__filename);
const RED = { util: require('@node-red/util').util } as NodeAPI;
interface Prepared {
  ast(): unknown;
  evaluate(input: unknown): Promise<unknown>;
}
const prepare = (text: string): Prepared =>
  RED.util.prepareJSONataExpression(text, null as unknown as Node) as Prepared;

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
          assert.deepStrictEqual(got, await prepared.evaluate(r), `${text} on ${JSON.stringify(r)}`);
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
