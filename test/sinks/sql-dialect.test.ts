/** sql-dialect.ts's chunkSizes: how a batch's rows are split into statements, per dialect. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chunkSizes, mariadbDialect, postgresDialect, sqliteDialect } from '../../src/sinks/sql-dialect';

const mariadb = mariadbDialect('utf8mb4_nopad_bin', 1 << 23);
const sum = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0);

test('chunkSizes: full chunks of 500 rows, then the remainder as powers of two (SQLite, PostgreSQL)', () => {
  assert.deepEqual(chunkSizes(1234, 4, sqliteDialect), [500, 500, 128, 64, 32, 8, 2]);
  assert.deepEqual(chunkSizes(50, 2, postgresDialect), [32, 16, 2]);
  assert.deepEqual(chunkSizes(0, 2, sqliteDialect), []);
});

test('chunkSizes on MariaDB: the remainder in one statement (each statement is a round trip)', () => {
  assert.deepEqual(chunkSizes(1234, 4, mariadb), [500, 500, 234]);
  assert.deepEqual(chunkSizes(50, 2, mariadb), [50]);
  assert.deepEqual(chunkSizes(1000, 4, mariadb), [500, 500]);
  assert.deepEqual(chunkSizes(0, 2, mariadb), []);
  // The parameter limit (65,535) still bounds a chunk: 200 parameters per row, 327 rows.
  const wide = chunkSizes(1000, 200, mariadb);
  assert.deepEqual(wide, [327, 327, 327, 19]);
  for (let n = 0; n < 2000; n += 37) assert.equal(sum(chunkSizes(n, 3, mariadb)), n);
});
