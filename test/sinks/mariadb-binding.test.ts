/**
 * The MariaDB sink's bound values without a server: the shortcut for `toISOString` texts gives what
 * the general ISO-8601 conversion gives, and binding cells in place gives what binding a copy gives
 * (issue 17: the sink's work per row).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { mariadbBinder, utcDatetime } from '../../src/sinks/mariadb-types';
import { rowBinder, sqliteDialect } from '../../src/sinks/sql-dialect';
import type { SqlValue } from '../../src/sinks/types';

const dates = fc.date({
  min: new Date('0001-01-01T00:00:00.000Z'),
  max: new Date('9999-12-31T23:59:59.999Z'),
  noInvalidDate: true,
});

test('a toISOString text converts as the same instant written with +00:00 (the general conversion)', () => {
  fc.assert(
    fc.property(dates, (d) => {
      const iso = d.toISOString();
      const general = utcDatetime(iso.replace(/Z$/, '+00:00'));
      assert.equal(utcDatetime(iso), general);
      assert.equal(general, `${iso.slice(0, 10)} ${iso.slice(11, 23)}`);
    }),
    { numRuns: 500 },
  );
  // Texts of the same length that are not toISOString's form take the general path (or stay as they are).
  assert.equal(utcDatetime('2024-05-06T09:27:00.12+02:00'), '2024-05-06 07:27:00.12');
  assert.equal(utcDatetime('2024-05-06 09:27:00.123Z'), '2024-05-06 09:27:00.123');
  assert.equal(utcDatetime('2024-05-06T09:27:00.123z'), '2024-05-06 09:27:00.123');
  assert.equal(utcDatetime('not a date but 24 chars!'), 'not a date but 24 chars!');
});

const cell: fc.Arbitrary<SqlValue> = fc.oneof(
  fc.constant(null),
  fc.boolean(),
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.bigInt({ min: -(2n ** 70n), max: 2n ** 70n }),
  fc.string(),
  dates.map((d) => d.toISOString()),
  dates.map((d) => d.toISOString().replace(/Z$/, '+05:30')),
);
const columnType = fc.constantFrom(
  'longtext',
  'varchar(255)',
  'datetime(6)',
  'timestamp',
  'date',
  'double',
  'bigint(20)',
  'decimal(10,2)',
  'json',
  undefined,
);

test('cells bound in place are bound as a copy would be (MariaDB and SQLite)', () => {
  fc.assert(
    fc.property(fc.array(fc.tuple(columnType, cell), { minLength: 1, maxLength: 8 }), (columns) => {
      const types = columns.map(([t]) => t);
      const cells = columns.map(([, v]) => v);
      for (const [copying, inPlace] of [
        [mariadbBinder(types), mariadbBinder(types, true)],
        [rowBinder(sqliteDialect, []), rowBinder(sqliteDialect, [], true)],
      ] as const) {
        const original = cells.slice();
        const expected = copying(original);
        assert.deepEqual(original, cells, 'the copying binder leaves its argument alone');
        const own = cells.slice();
        const bound = inPlace(own);
        assert.deepEqual(bound, expected);
        // In place: the argument itself, converted (or left alone when nothing converts).
        assert.equal(bound, own);
      }
    }),
    { numRuns: 300 },
  );
});
