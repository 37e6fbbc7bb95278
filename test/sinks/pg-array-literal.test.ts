/**
 * `arrayLiteral` (the sinks' PostgreSQL array parameters) against a real server: whatever text,
 * numbers or NULLs go in, `$1::type[]` gives back the same values — what pg's own array encoding
 * gives, which the literal replaces.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import pg from 'pg';
import { arrayLiteral } from '../../src/sinks/sql-dialect';

const pool = new pg.Pool({ max: 1 });
after(() => pool.end());

async function roundTrip(
  values: readonly (string | number | boolean | bigint | null)[],
  type: string,
): Promise<unknown[]> {
  const r = await pool.query(`SELECT $1::${type}[] AS a`, [arrayLiteral(values)]);
  return r.rows[0].a as unknown[];
}

describe('PostgreSQL array literals', () => {
  test('text: quotes, backslashes, braces, commas, blanks, "NULL", unicode and NULL come back as they went in', async () => {
    // Characters that mean something in an array literal are drawn often; NUL is not text in PostgreSQL.
    const char = fc.oneof(
      fc.constantFrom('"', '\\', '{', '}', ',', ' ', '\n', "'", 'N', 'U', 'L', 'é', '😀'),
      fc.string({ unit: 'grapheme', minLength: 1, maxLength: 1 }),
    );
    const text = fc.oneof(
      fc.constantFrom('NULL', 'null', '', ' ', '{}', '""'),
      fc.array(char, { maxLength: 12 }).map((cs) => cs.join('').replace(/\u0000/g, '')),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(fc.option(text, { nil: null }), { maxLength: 20 }), async (values) => {
        assert.deepEqual(await roundTrip(values, 'text'), values);
      }),
      { numRuns: 200 },
    );
  });

  test('numbers, booleans and bigints keep their values in numeric, float8, bigint and boolean arrays', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.option(fc.double({ noNaN: true, noDefaultInfinity: true }), { nil: null }), { maxLength: 20 }),
        async (values) => {
          const back = await roundTrip(values, 'float8');
          assert.deepEqual(
            back,
            values.map((v) => (v === null ? null : v === 0 ? 0 : v)),
          );
        },
      ),
      { numRuns: 100 },
    );
    assert.deepEqual(await roundTrip([1, -2, null, 9007199254740993n], 'bigint'), [
      '1',
      '-2',
      null,
      '9007199254740993',
    ]);
    assert.deepEqual(await roundTrip([true, false, null], 'boolean'), [true, false, null]);
    assert.deepEqual(await roundTrip([1.5, -0.25, 1e21], 'numeric'), [1.5, -0.25, 1e21]); // pg parses numeric[] elements as numbers
  });
});
