import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  quoteIdentifier,
  validateColumnName,
  validateIdentifier,
  validateSqlType,
  validateTableName,
} from '../../src/sinks/identifiers';
import { SinkConfigError } from '../../src/sinks/errors';

test('plain identifiers pass and are double-quoted', () => {
  for (const n of ['dashboard', 'Usage_2024', '_x', 'a'.repeat(63)]) {
    assert.equal(validateIdentifier(n, 'name'), n);
    assert.equal(quoteIdentifier(n), `"${n}"`);
  }
});

test('injection attempts and malformed names are rejected with the name in the message', () => {
  for (const bad of ['a"b', 'x; drop table y', '--', 'a b', '1abc', '', 'a'.repeat(64), "o'neil", 'tab\tle', 'é']) {
    assert.throws(
      () => validateColumnName(bad),
      (e: unknown) => e instanceof SinkConfigError && e.message.includes(JSON.stringify(bad)),
      `expected ${JSON.stringify(bad)} to be rejected`,
    );
    assert.throws(() => validateTableName(bad), SinkConfigError);
    assert.throws(() => quoteIdentifier(bad), SinkConfigError);
  }
  assert.throws(() => validateColumnName(undefined), /invalid column name undefined/);
});

test('reserved table and column names are rejected', () => {
  for (const t of ['sqlite_master', 'pg_class', 'deltaflow_meta', 'DeltaFlow_Meta', 'usage_offsets', 'a'.repeat(56)]) {
    assert.throws(() => validateTableName(t), SinkConfigError, t);
  }
  assert.equal(validateTableName('a'.repeat(55)), 'a'.repeat(55));
  for (const c of ['rowid', 'ROWID', 'oid', '_rowid_', 'ctid', 'xmin', 'tableoid'])
    assert.throws(() => validateColumnName(c), /reserved/);
  // Keywords are fine: every identifier is quoted.
  assert.equal(validateColumnName('order'), 'order');
});

test('SQL types: an allow-list of letters, digits, spaces, parentheses and commas', () => {
  for (const t of [
    'text',
    'text not null',
    'bigint',
    'double precision',
    'numeric(10, 2)',
    'timestamp with time zone',
    'varchar(50)',
    'integer primary key autoincrement',
  ]) {
    assert.equal(validateSqlType(t, 'c'), t);
  }
  assert.equal(validateSqlType('  text  ', 'c'), 'text');
  for (const bad of [
    'text; drop table x',
    'text -- comment',
    "text default 'x'",
    'text /* c */',
    'int)',
    '(int',
    '"text"',
    '',
    '   ',
    'a'.repeat(101),
    '1int',
    'text, extra integer',
    'int), (x',
  ]) {
    assert.throws(
      () => validateSqlType(bad, 'col'),
      (e: unknown) => e instanceof SinkConfigError && e.message.includes('column "col"'),
      bad,
    );
  }
});
