import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileTable, parsePropertyPath, readPath, toSqlValue } from '../../src/sinks/table-spec';
import { planWrites } from '../../src/sinks/write-plan';
import { SinkConfigError, SinkDataError } from '../../src/sinks/errors';
import type { ColumnSpec, TableSpec } from '../../src/sinks/types';

test('property paths: dots, indexes, quoted keys', () => {
  assert.deepEqual(parsePropertyPath('payload.order'), ['payload', 'order']);
  assert.deepEqual(parsePropertyPath('a.b[0]'), ['a', 'b', 0]);
  assert.deepEqual(parsePropertyPath('a["x y"][12].$z'), ['a', 'x y', 12, '$z']);
  assert.deepEqual(parsePropertyPath("a['it\\'s']"), ['a', "it's"]);
  for (const bad of ['', '.a', 'a..b', 'a[', 'a[x]', 'a b', 'a.1'])
    assert.throws(() => parsePropertyPath(bad), SinkConfigError, bad);
  const rec = { a: { b: [10, 20] }, 'x y': 1 };
  assert.equal(readPath(rec, parsePropertyPath('a.b[1]')), 20);
  assert.equal(readPath(rec, parsePropertyPath('a.c.d')), undefined);
  assert.equal(readPath(rec, parsePropertyPath('["x y"]')), 1);
});

test('values convert to bound SQL values', () => {
  assert.equal(toSqlValue(undefined), null);
  assert.equal(toSqlValue(null), null);
  assert.equal(toSqlValue(1.5), 1.5);
  assert.equal(toSqlValue(Number.NaN), null);
  assert.equal(toSqlValue(Number.POSITIVE_INFINITY), null);
  assert.equal(toSqlValue('x'), 'x');
  assert.equal(toSqlValue(true), true);
  assert.equal(toSqlValue(12n), 12n);
  assert.equal(toSqlValue(new Date(Date.UTC(2024, 0, 2, 3, 4, 5))), '2024-01-02T03:04:05.000Z');
  assert.equal(toSqlValue({ a: [1, 'b'], n: 3n }), '{"a":[1,"b"],"n":"3"}');
});

const col = (name: string, path: string, extra: Partial<ColumnSpec> = {}): ColumnSpec => ({
  name,
  type: 'text',
  value: { path },
  ...extra,
});

test('table specs are validated as a whole, naming the bad part', () => {
  const ok: TableSpec = {
    name: 'dash',
    mode: 'keyed',
    columns: [col('machine', 'm', { key: true }), col('status', 's')],
  };
  assert.equal(compileTable(ok).keyPositions.length, 1);
  const cases: [TableSpec, RegExp][] = [
    [{ ...ok, columns: [] }, /at least one column/],
    [{ ...ok, columns: [col('machine', 'm'), col('status', 's')] }, /keyed mode needs at least one key column/],
    [{ ...ok, columns: [col('machine', 'm', { key: true }), col('Machine', 's')] }, /duplicate column name "Machine"/],
    [{ ...ok, name: 'x; drop table y' }, /invalid table name "x; drop table y"/],
    [
      { ...ok, columns: [col('machine', 'm', { key: true, exclude: true })] },
      /key column "machine" cannot be excluded/,
    ],
    [{ ...ok, mode: 'multiset', columns: [col('a', 'a', { key: true })] }, /only keyed mode has keys/],
    [{ ...ok, mode: 'multiset', columns: [col('a', 'a', { exclude: true })] }, /every column is excluded/],
    [{ ...ok, columns: [col('machine', 'm..x', { key: true })] }, /column "machine": invalid property path/],
    [{ ...ok, columns: [{ ...col('machine', 'm', { key: true }), type: 'text;' }] }, /invalid SQL type/],
  ];
  for (const [spec, re] of cases)
    assert.throws(
      () => compileTable(spec),
      (e: unknown) => e instanceof SinkConfigError && re.test(e.message),
      String(re),
    );
});

test('cells are consolidated: records that differ only in unread fields cancel out', () => {
  const t = compileTable({
    name: 'm',
    mode: 'multiset',
    columns: [
      col('a', 'a'),
      { name: 'u', type: 'text', value: { fn: (r) => String((r as { a: string }).a).toUpperCase() } },
    ],
  });
  const plan = planWrites(t, [
    [{ a: 'x', seen: 1 }, -1, 0],
    [{ a: 'x', seen: 2 }, 1, 0],
    [{ a: 'y' }, 2, 0],
  ]);
  assert.deepEqual(plan, { mode: 'multiset', inserts: [{ cells: ['y', 'Y'], count: 2 }], deletes: [] });
});

test('keyed plans: one entry per key; two rows for one key in a batch or a NULL key are data errors', () => {
  const t = compileTable({ name: 'k', mode: 'keyed', columns: [col('id', 'id', { key: true }), col('v', 'v')] });
  const plan = planWrites(t, [
    [{ id: 1, v: 'a' }, -1, 0],
    [{ id: 1, v: 'b' }, 1, 0],
    [{ id: 2, v: 'c' }, -1, 0],
  ]);
  assert.deepEqual(plan, {
    mode: 'keyed',
    entries: [
      { key: [1], next: [1, 'b'], retracted: [1, 'a'] },
      { key: [2], next: null, retracted: [2, 'c'] },
    ],
  });
  assert.throws(
    () =>
      planWrites(t, [
        [{ id: 1, v: 'a' }, 1, 0],
        [{ id: 1, v: 'b' }, 1, 0],
      ]),
    (e: unknown) => e instanceof SinkDataError && /two rows for key \{"id":1\}/.test(e.message),
  );
  assert.throws(
    () => planWrites(t, [[{ id: 1, v: 'a' }, 2, 0]]),
    /two rows for key \{"id":1\} in the view \(2 copies of \{"id":1,"v":"a"\}\)/,
  );
  assert.throws(() => planWrites(t, [[{ v: 'a' }, 1, 0]]), /key column "id" is NULL/);
});
