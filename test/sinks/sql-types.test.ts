/**
 * Every supported SQL type (src/sinks/sql-types.ts) in multiset and keyed tables, inserted and
 * retracted, on SQLite, PostgreSQL and MariaDB: a multiset delete finds its row by every cell (so the type
 * must compare, `json` included), a keyed table updates and deletes by a key of that type.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import mysql from 'mysql2/promise';
import { MariadbDatabase } from '../../src/sinks/mariadb-database';
import { mariadbSettings } from '../dataflow/support';
import type { Batch, Value } from '../../src/engine/types';
import { PostgresDatabase } from '../../src/sinks/postgres-database';
import { SqliteDatabase } from '../../src/sinks/sqlite-database';
import { indexTypeProblem, SUPPORTED_SQL_TYPES } from '../../src/sinks/sql-types';
import { compileTable } from '../../src/sinks/table-spec';
import { SinkConfigError } from '../../src/sinks/errors';
import type { ColumnSpec, SinkDatabase, TableSpec } from '../../src/sinks/types';

const dir = mkdtempSync(join(tmpdir(), 'deltaflow-types-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let counter = 0;
const unique = (prefix: string): string => `${prefix}_${process.pid}_${Date.now().toString(36)}_${counter++}`;

/** Two different values of each type, as records carry them. */
const SAMPLES: Record<string, readonly [Value, Value]> = {
  text: ["o'brien \\ {x}", ''],
  'varchar(40)': ['drill 1', 'Drill 1'],
  'char(8)': ['ab', 'abc'],
  smallint: [7, -3],
  integer: [42, 2147483647],
  bigint: [9007199254740991, -1],
  real: [0.1, 1.5],
  'double precision': [0.1, 1e300],
  numeric: [12.345678901, 0.1],
  'numeric(10, 2)': [12.345, 0.1],
  boolean: [true, false],
  date: ['2024-03-01', '1999-12-31'],
  time: ['10:15:30.5', '23:59:59'],
  timestamp: ['2024-03-01T10:15:30.123Z', '2024-03-01T10:15:30.124Z'],
  'timestamp with time zone': ['2024-03-01T10:15:30.123Z', '2024-03-01T10:15:30.123+01:00'],
  json: [{ a: 1, b: [1, 'x'] }, [1, 2, { c: null }]],
  jsonb: [
    { a: 1, b: [1, 'x'] },
    { b: [1, 'x'], a: 2 },
  ],
  uuid: ['3f2504e0-4f89-11d3-9a0c-0305e82c3301', '00000000-0000-0000-0000-000000000000'],
};

interface Kind {
  readonly name: string;
  open(): SinkDatabase;
  /** Row count and the ids left in a table, through the raw driver. */
  ids(table: string): Promise<string[]>;
  close(): Promise<void>;
}

function sqliteKind(): Kind {
  const file = join(dir, 'types.sqlite');
  let raw: Database.Database | null = null;
  return {
    name: 'SQLite',
    open: () => new SqliteDatabase({ filename: file }),
    ids: async (table) => {
      raw ??= new Database(file);
      return (raw.prepare(`SELECT "id" FROM "${table}" ORDER BY "id"`).all() as { id: string }[]).map((r) => r.id);
    },
    close: async () => void raw?.close(),
  };
}

function postgresKind(): Kind {
  const pool = new pg.Pool({ max: 1 });
  return {
    name: 'PostgreSQL',
    open: () => new PostgresDatabase(),
    ids: async (table) =>
      ((await pool.query(`SELECT "id" FROM "${table}" ORDER BY "id"`)).rows as { id: string }[]).map((r) => r.id),
    close: () => pool.end(),
  };
}

function mariadbKind(): Kind {
  const pending = mysql.createConnection(mariadbSettings());
  return {
    name: 'MariaDB',
    open: () => new MariadbDatabase(),
    ids: async (table) =>
      ((await (await pending).query(`SELECT id FROM \`${table}\` ORDER BY id`))[0] as { id: string }[]).map(
        (r) => r.id,
      ),
    close: async () => (await pending).end(),
  };
}

test('every supported type has samples here', () => {
  assert.deepEqual(Object.keys(SAMPLES).sort(), [...SUPPORTED_SQL_TYPES].sort());
});

test('a json column cannot be a key or an index (it cannot be compared): a clear configuration error', () => {
  assert.match(indexTypeProblem('JSON not null', 'key') ?? '', /use jsonb/);
  assert.equal(indexTypeProblem('jsonb', 'key'), null);
  const spec: TableSpec = {
    name: 't',
    mode: 'keyed',
    columns: [{ name: 'doc', type: 'json', value: { path: 'd' }, key: true }],
  };
  assert.throws(
    () => compileTable(spec),
    (e: unknown) => e instanceof SinkConfigError && /key column "doc" has type json/.test(e.message),
  );
  const indexed: TableSpec = {
    name: 't',
    mode: 'multiset',
    columns: [{ name: 'doc', type: 'json', value: { path: 'd' }, index: true }],
  };
  assert.throws(
    () => compileTable(indexed),
    (e: unknown) =>
      e instanceof SinkConfigError && /index column "doc" has type json: .*cannot be indexed/.test(e.message),
  );
});

for (const kind of [sqliteKind(), postgresKind(), mariadbKind()]) {
  describe(`${kind.name}: every supported type`, () => {
    const db = kind.open();
    const created: TableSpec[] = [];
    after(async () => {
      await db.transaction(async (tx) => {
        for (const spec of created) await tx.dropTable(spec);
      });
      await db.close();
      await kind.close();
    });
    const write = (spec: TableSpec, batch: Batch) =>
      db.transaction(async (tx) => {
        await tx.ensureTable(spec);
        return tx.apply(spec, batch);
      });
    const column = (name: string, type: string, extra: Partial<ColumnSpec> = {}): ColumnSpec => ({
      name,
      type,
      value: { path: name },
      ...extra,
    });
    const rec = (v: Record<string, Value>, diff: number): readonly [Value, number, number] => [v, diff, 0];

    for (const type of SUPPORTED_SQL_TYPES) {
      const [x, y] = SAMPLES[type] as readonly [Value, Value];

      test(`${type}: multiset inserts, and retractions find their rows by this column (NULL too)`, async () => {
        const spec: TableSpec = {
          name: unique('tm'),
          mode: 'multiset',
          columns: [column('id', 'text'), column('v', type, { index: indexTypeProblem(type, 'index') === null })],
        };
        created.push(spec);
        await write(spec, [rec({ id: 'a', v: x }, 2), rec({ id: 'b', v: y }, 1), rec({ id: 'c', v: null }, 1)]);
        assert.deepEqual(await kind.ids(spec.name), ['a', 'a', 'b', 'c']);
        const deleted = await write(spec, [
          rec({ id: 'a', v: x }, -1),
          rec({ id: 'b', v: y }, -1),
          rec({ id: 'c', v: null }, -1),
        ]);
        assert.deepEqual(deleted.map((c) => [c.op, c.row.id]).sort(), [
          ['delete', 'a'],
          ['delete', 'b'],
          ['delete', 'c'],
        ]);
        assert.deepEqual(await kind.ids(spec.name), ['a']);
        // A retraction of a value that is not stored (the other sample) deletes nothing.
        assert.deepEqual(await write(spec, [rec({ id: 'a', v: y }, -1)]), []);
        await write(spec, [rec({ id: 'a', v: x }, -1)]);
        assert.deepEqual(await kind.ids(spec.name), []);
      });

      test(`${type}: keyed by text, the value updated and deleted`, async () => {
        const spec: TableSpec = {
          name: unique('tk'),
          mode: 'keyed',
          columns: [column('id', 'text', { key: true }), column('v', type)],
        };
        created.push(spec);
        await write(spec, [rec({ id: 'a', v: x }, 1), rec({ id: 'b', v: y }, 1)]);
        const changes = await write(spec, [
          rec({ id: 'a', v: x }, -1),
          rec({ id: 'a', v: y }, 1),
          rec({ id: 'b', v: y }, -1),
        ]);
        assert.deepEqual(
          changes.map((c) => [c.op, c.row.id]),
          [
            ['update', 'a'],
            ['delete', 'b'],
          ],
        );
        assert.deepEqual(await kind.ids(spec.name), ['a']);
      });

      test(`${type}: keyed by this type${indexTypeProblem(type, 'key') ? ' is refused with a clear error' : ', updated and deleted by it'}`, async () => {
        const spec: TableSpec = {
          name: unique('tkk'),
          mode: 'keyed',
          columns: [column('v', type, { key: true }), column('id', 'text')],
        };
        if (indexTypeProblem(type, 'key') !== null) {
          assert.throws(() => compileTable(spec), SinkConfigError);
          return;
        }
        created.push(spec);
        await write(spec, [rec({ v: x, id: 'a' }, 1), rec({ v: y, id: 'b' }, 1)]);
        const changes = await write(spec, [
          rec({ v: x, id: 'a' }, -1),
          rec({ v: x, id: 'c' }, 1),
          rec({ v: y, id: 'b' }, -1),
        ]);
        assert.deepEqual(
          changes.map((c) => [c.op, c.row.id]),
          [
            ['update', 'c'],
            ['delete', 'b'],
          ],
        );
        assert.deepEqual(await kind.ids(spec.name), ['c']);
      });
    }
  });
}
