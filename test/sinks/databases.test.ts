/**
 * The SinkDatabase contract against real databases: a SQLite file in a temp dir, the PostgreSQL
 * named by the PG* environment and the MariaDB named by the MYSQL_* environment (the test launcher
 * provides both). Every test uses its own table names.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import Database from 'better-sqlite3';
import pg from 'pg';
import mysql from 'mysql2/promise';
import type { Batch, Value } from '../../src/engine/types';
import type { ColumnSpec, SinkDatabase, SinkTransaction, TableSpec } from '../../src/sinks/types';
import type { OffsetDelta } from '../../src/core/offset-map';
import { SqliteDatabase } from '../../src/sinks/sqlite-database';
import { PostgresDatabase } from '../../src/sinks/postgres-database';
import { MariadbDatabase } from '../../src/sinks/mariadb-database';
import { SinkDatabaseError, SinkDataError } from '../../src/sinks/errors';
import { mariadbSettings } from '../dataflow/support';

const dir = mkdtempSync(join(tmpdir(), 'deltaflow-sinks-'));
const sqliteFile = join(dir, 'sink.db');
let counter = 0;
const unique = (prefix: string) => `${prefix}_${process.pid}_${Date.now().toString(36)}_${counter++}`;

/** Reads a table independently of the sink code: raw driver, ordered, values normalised. */
interface Inspector {
  rows(table: string, orderBy: string): Promise<Record<string, unknown>[]>;
  query(sql: string): Promise<Record<string, unknown>[]>;
  close(): Promise<void>;
}

function sqliteInspector(): Inspector {
  const db = new Database(sqliteFile);
  return {
    rows: async (t, o) => db.prepare(`SELECT * FROM "${t}" ORDER BY ${o}`).all() as Record<string, unknown>[],
    query: async (sql) => {
      const st = db.prepare(sql);
      if (st.reader) return st.all() as Record<string, unknown>[];
      st.run();
      return [];
    },
    close: async () => void db.close(),
  };
}

function postgresInspector(): Inspector {
  const pool = new pg.Pool({ max: 1 });
  return {
    rows: async (t, o) => (await pool.query(`SELECT * FROM "${t}" ORDER BY ${o}`)).rows,
    query: async (sql) => (await pool.query(sql)).rows,
    close: () => pool.end(),
  };
}

/**
 * MariaDB through mysql2, reading the tests' SQL: double-quoted identifiers become backticks,
 * `CAST(… AS text)` becomes `CAST(… AS CHAR)`, and `NULLS FIRST` (MariaDB's default order) goes.
 */
function mariadbInspector(): Inspector {
  const pending = mysql.createConnection(mariadbSettings());
  const translate = (sql: string): string =>
    sql
      .replace(/"([A-Za-z_][A-Za-z0-9_]*)"/g, '`$1`')
      .replace(/ AS text\)/gi, ' AS CHAR)')
      .replace(/ NULLS FIRST/gi, '');
  return {
    rows: async (t, o) =>
      (await (await pending).query(translate(`SELECT * FROM "${t}" ORDER BY ${o}`)))[0] as Record<string, unknown>[],
    query: async (sql) => (await (await pending).query(translate(sql)))[0] as Record<string, unknown>[],
    close: async () => (await pending).end(),
  };
}

const kinds: {
  name: string;
  open: () => SinkDatabase;
  inspect: () => Inspector;
  bool: (b: boolean) => unknown;
  int: (n: number) => unknown;
}[] = [
  {
    name: 'SQLite',
    open: () => new SqliteDatabase({ filename: sqliteFile }),
    inspect: sqliteInspector,
    bool: (b) => (b ? 1 : 0),
    int: (n) => n,
  },
  {
    name: 'PostgreSQL',
    open: () => new PostgresDatabase(),
    inspect: postgresInspector,
    bool: (b) => b,
    int: (n) => String(n),
  },
  {
    name: 'MariaDB',
    open: () => new MariadbDatabase(),
    inspect: mariadbInspector,
    bool: (b) => (b ? 1 : 0),
    int: (n) => n,
  },
];

after(() => rmSync(dir, { recursive: true, force: true }));

const col = (name: string, type: string, path: string, extra: Partial<ColumnSpec> = {}): ColumnSpec => ({
  name,
  type,
  value: { path },
  ...extra,
});
const rec = (v: Value, diff: number): readonly [Value, number, number] => [v, diff, 0];

/**
 * One commit of the offset-delta properties: streams s0..s5 raised (new ones too), how the offsets
 * come with their delta (SinkState.delta, StateScope.delta), and whether the commit fails.
 */
const deltaStep = fc.record({
  raise: fc.uniqueArray(fc.integer({ min: 0, max: 5 }), { maxLength: 4 }),
  base: fc.constantFrom('previous', 'none', 'unrelated', 'null'),
  fail: fc.boolean(),
});

/** Commit `i`'s offsets after `previous` (the last written), frozen, and the delta `step.base` asks for. */
function deltaCommit(
  previous: Readonly<Record<string, number>>,
  step: { readonly raise: readonly number[]; readonly base: string },
  i: number,
): { next: Readonly<Record<string, number>>; delta: OffsetDelta | undefined } {
  const raised = new Map(step.raise.map((s) => [`s${s}`, (previous[`s${s}`] ?? -1) + 1 + i]));
  const next = Object.freeze({ ...previous, ...Object.fromEntries(raised) });
  const delta =
    step.base === 'previous'
      ? { base: previous, raised }
      : step.base === 'unrelated'
        ? { base: Object.freeze({ ...previous }), raised }
        : step.base === 'null'
          ? { base: null, raised }
          : undefined;
  return { next, delta };
}

/**
 * Runs the property's commits: each writes (`write`) its offsets and delta after the last written,
 * then fails when the step says so (rolled back); after each, `check` gets the offsets committed.
 * A delta is relative to what the caller wrote last; after a failure, to what is stored.
 */
async function deltaCommits(
  db: SinkDatabase,
  steps: readonly { readonly raise: readonly number[]; readonly base: string; readonly fail: boolean }[],
  write: (
    tx: SinkTransaction,
    next: Readonly<Record<string, number>>,
    delta: OffsetDelta | undefined,
    i: number,
  ) => Promise<void>,
  check: (committed: Readonly<Record<string, number>>) => Promise<void>,
): Promise<void> {
  let committed: Readonly<Record<string, number>> = Object.freeze({});
  for (let i = 0; i < steps.length; i++) {
    const { next, delta } = deltaCommit(committed, steps[i]!, i);
    const attempt = db.transaction(async (tx) => {
      await write(tx, next, delta, i);
      if (steps[i]!.fail) throw new Error('injected');
    });
    if (steps[i]!.fail) await assert.rejects(attempt, /injected/);
    else {
      await attempt;
      committed = next;
    }
    await check(committed);
  }
}

for (const kind of kinds) {
  describe(`${kind.name} sink`, () => {
    const db = kind.open();
    const look = kind.inspect();
    const created: string[] = [];
    after(async () => {
      await db.transaction(async (tx) => {
        for (const name of created) await tx.dropTable({ name, mode: 'multiset', columns: [col('x', 'text', 'x')] });
      });
      await db.close();
      await look.close();
    });
    const table = (mode: 'multiset' | 'keyed', columns: ColumnSpec[]): TableSpec => {
      const name = unique(mode === 'keyed' ? 'k' : 'm');
      created.push(name);
      return { name, mode, columns };
    };
    const write = (spec: TableSpec, batch: Batch) =>
      db.transaction(async (tx) => {
        await tx.ensureTable(spec);
        return tx.apply(spec, batch);
      });

    test('creates the table, its offsets table, its index and the meta table', async () => {
      const spec = table('multiset', [
        col('machine', 'text not null', 'm', { index: true }),
        col('since', 'bigint', 's', { index: true }),
        col('note', 'text', 'n'),
      ]);
      await db.transaction((tx) => tx.ensureTable(spec));
      await db.transaction((tx) => tx.ensureTable(spec)); // idempotent
      const names =
        kind.name === 'SQLite'
          ? (
              await look.query(
                `SELECT name FROM sqlite_master WHERE name LIKE '${spec.name}%' OR name = 'deltaflow_meta' ORDER BY name`,
              )
            ).map((r) => r.name)
          : kind.name === 'MariaDB'
            ? (
                await look.query(
                  `SELECT TABLE_NAME AS name FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND (TABLE_NAME LIKE '${spec.name}%' OR TABLE_NAME = 'deltaflow_meta') UNION SELECT INDEX_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = '${spec.name}' AND INDEX_NAME <> 'PRIMARY' ORDER BY name`,
                )
              ).map((r) => r.name)
            : (
                await look.query(
                  `SELECT relname AS name FROM pg_class WHERE relname LIKE '${spec.name.toLowerCase()}%' OR relname = 'deltaflow_meta' ORDER BY relname`,
                )
              ).map((r) => r.name);
      assert.ok(names.includes('deltaflow_meta'));
      const own = names.filter(
        (n) => n !== 'deltaflow_meta' && !String(n).includes('autoindex') && !String(n).endsWith('_pkey'),
      );
      assert.deepEqual(own, [spec.name, `${spec.name}_index`, `${spec.name}_offsets`].sort());
    });

    test('multiset: +2 then -1 leaves one row; NULL-safe delete; deletes only n of several equal rows', async () => {
      const spec = table('multiset', [
        col('machine', 'text', 'm', { index: true }),
        col('orderno', 'text', 'o'),
        col('n', 'integer', 'n'),
      ]);
      const a = { m: 'drill', o: null, n: 1 };
      const b = { m: 'drill', o: 'x', n: 1 };
      assert.equal((await write(spec, [rec(a, 2), rec(b, 3)])).length, 5);
      const del = await write(spec, [rec(a, -1), rec(b, -2)]);
      assert.deepEqual(
        del.map((c) => [c.op, c.row.orderno]),
        [
          ['delete', null],
          ['delete', 'x'],
          ['delete', 'x'],
        ],
      );
      const rows = await look.rows(spec.name, '"orderno" NULLS FIRST');
      assert.deepEqual(
        rows.map((r) => [r.machine, r.orderno, r.n]),
        [
          ['drill', null, kind.int(1) === '1' ? 1 : 1],
          ['drill', 'x', 1],
        ],
      );
      // Deleting more copies than exist deletes what exists and reports exactly that.
      const more = await write(spec, [rec(b, -3)]);
      assert.equal(more.length, 1);
      assert.equal((await look.rows(spec.name, '"machine"')).length, 1);
    });

    test('multiset: excluded columns are created but neither written nor matched', async () => {
      const idType =
        kind.name === 'SQLite'
          ? 'integer primary key autoincrement'
          : kind.name === 'MariaDB'
            ? 'bigint auto_increment primary key'
            : 'bigint generated always as identity';
      const spec = table('multiset', [col('id', idType, 'id', { exclude: true }), col('v', 'text', 'v')]);
      await write(spec, [rec({ v: 'a', id: 99 }, 2)]);
      const changes = await write(spec, [rec({ v: 'a' }, -1)]);
      assert.deepEqual(changes, [{ op: 'delete', row: { v: 'a' } }]);
      const rows = await look.rows(spec.name, '"id"');
      assert.equal(rows.length, 1);
      assert.notEqual(Number(rows[0].id), 99);
    });

    test('values: booleans, bigints, objects as JSON, dates as ISO text, functions of the record', async () => {
      const spec = table('multiset', [
        col('flag', 'boolean', 'f'),
        col('big', 'bigint', 'b'),
        col('doc', 'text', 'd'),
        { name: 'upper', type: 'text', value: { fn: (r) => String((r as { s: string }).s).toUpperCase() } },
        { name: 'at', type: 'text', value: { fn: () => new Date(Date.UTC(2024, 4, 6)) } },
      ]);
      const changes = await write(spec, [
        rec({ f: true, b: 9007199254740993n as unknown as Value, d: { x: [1] }, s: 'abc' }, 1),
      ]);
      assert.deepEqual(changes[0].row, {
        flag: true,
        big: 9007199254740993n,
        doc: '{"x":[1]}',
        upper: 'ABC',
        at: '2024-05-06T00:00:00.000Z',
      });
      const [row] = await look.query(`SELECT "flag", CAST("big" AS text) AS big, "doc", "upper" FROM "${spec.name}"`);
      assert.equal(row.flag, kind.bool(true));
      assert.equal(row.big, '9007199254740993');
      assert.equal(row.doc, '{"x":[1]}');
      assert.equal(row.upper, 'ABC');
    });

    test('awkward values survive many-row inserts and upserts exactly (quotes, backslashes, braces, NULL and "NULL", unicode, floats, jsonb)', async () => {
      const strings = [
        'a"b',
        'back\\slash',
        '{x,y}',
        'NULL',
        '',
        'é😀',
        'comma, here',
        'line\nbreak',
        "it's",
        ' padded ',
      ];
      const docType = kind.name === 'SQLite' ? 'text' : 'jsonb';
      const cols = (key: boolean) => [
        col('s', 'text', 's', { key }),
        col('n', 'double precision', 'n'),
        col('maybe', 'text', 'm'),
        col('doc', docType, 'd'),
      ];
      const multi = table('multiset', cols(false));
      const keyed = table('keyed', cols(true));
      const records = strings.map((s, i) => ({ s, n: i + 0.25, m: i % 3 === 0 ? null : s, d: { s, i } }));
      const batch: Batch = records.map((r) => rec(r as Value, 1));
      for (const spec of [multi, keyed]) {
        await write(spec, batch);
        if (spec.mode === 'keyed')
          await write(spec, [
            ...records.slice(0, 3).map((r) => rec(r as Value, -1)),
            ...records.slice(0, 3).map((r) => rec({ ...r, n: -1 } as Value, 1)),
          ]);
        const rows = await look.query(
          `SELECT "s", "n", "maybe", CAST("doc" AS text) AS doc FROM "${spec.name}" ORDER BY "n", "s"`,
        );
        const expected = records
          .map((r, i) => ({ s: r.s, n: spec.mode === 'keyed' && i < 3 ? -1 : r.n, maybe: r.m, doc: r.d }))
          .sort((a, b) => a.n - b.n || (a.s < b.s ? -1 : a.s > b.s ? 1 : 0));
        assert.equal(rows.length, strings.length, spec.mode);
        const bySql = new Map(rows.map((r) => [r.s as string, r]));
        for (const e of expected) {
          const r = bySql.get(e.s);
          assert.ok(r, `${spec.mode}: row ${JSON.stringify(e.s)} missing`);
          assert.equal(Number(r.n), e.n, `${spec.mode}: n of ${JSON.stringify(e.s)}`);
          assert.equal(r.maybe, e.maybe, `${spec.mode}: NULL stays NULL and "NULL" stays a string`);
          assert.deepEqual(JSON.parse(r.doc as string), e.doc);
        }
      }
    });

    test('keyed: retraction + insertion of one key is one update; a retraction alone a delete; an insertion for a stored key an upsert', async () => {
      const spec = table('keyed', [
        col('machine', 'text', 'm', { key: true }),
        col('status', 'text', 's'),
        col('since', 'bigint', 't', { index: true }),
      ]);
      assert.deepEqual(await write(spec, [rec({ m: 'a', s: 'idle', t: 1 }, 1), rec({ m: 'b', s: 'idle', t: 1 }, 1)]), [
        { op: 'insert', row: { machine: 'a', status: 'idle', since: 1 } },
        { op: 'insert', row: { machine: 'b', status: 'idle', since: 1 } },
      ]);
      const changes = await write(spec, [
        rec({ m: 'a', s: 'idle', t: 1 }, -1),
        rec({ m: 'a', s: 'working', t: 2 }, 1),
        rec({ m: 'b', s: 'idle', t: 1 }, -1),
      ]);
      assert.deepEqual(changes, [
        {
          op: 'update',
          row: { machine: 'a', status: 'working', since: 2 },
          previous: { machine: 'a', status: 'idle', since: 1 },
        },
        { op: 'delete', row: { machine: 'b', status: 'idle', since: 1 } },
      ]);
      // A new row for a stored key the batch does not retract: the view holds two rows for "a".
      await assert.rejects(
        write(spec, [rec({ m: 'a', s: 'idle', t: 3 }, 1)]),
        (e: unknown) =>
          e instanceof SinkDataError &&
          /two rows for key \{"machine":"a"\} in the view \(\{"machine":"a","status":"idle","since":3\} and \{"machine":"a","status":"working","since":(2|"2")\}\)/.test(
            e.message,
          ),
      );
      // Retention forgot the old row of "a" (replaceStored): its new row replaces it (upsert), reported with the stored previous row.
      const up = await db.transaction((tx) =>
        tx.apply(spec, [rec({ m: 'a', s: 'idle', t: 3 }, 1)], true, { replaceStored: true }),
      );
      assert.equal(up.length, 1);
      assert.equal(up[0].op, 'update');
      assert.equal(up[0].previous?.status, 'working');
      // A retraction of a key that is not stored changes nothing.
      assert.deepEqual(await write(spec, [rec({ m: 'zz', s: 'idle', t: 1 }, -1)]), []);
      const rows = await look.rows(spec.name, '"machine"');
      assert.deepEqual(
        rows.map((r) => [r.machine, r.status, Number(r.since)]),
        [['a', 'idle', 3]],
      );
    });

    test('without a report the same rows are written and no changes are built (keyed and multiset)', async () => {
      const keyedSpecs = [0, 1].map(() =>
        table('keyed', [col('machine', 'text', 'm', { key: true }), col('status', 'text', 's')]),
      );
      const multiSpecs = [0, 1].map(() => table('multiset', [col('machine', 'text', 'm'), col('status', 'text', 's')]));
      const batches: Batch[] = [
        [rec({ m: 'a', s: 'idle' }, 1), rec({ m: 'b', s: 'idle' }, 1), rec({ m: 'c', s: 'idle' }, 2)],
        [
          rec({ m: 'a', s: 'idle' }, -1),
          rec({ m: 'a', s: 'working' }, 1),
          rec({ m: 'b', s: 'idle' }, -1),
          rec({ m: 'zz', s: 'idle' }, -1),
          rec({ m: 'c', s: 'idle' }, -1),
        ],
        [rec({ m: 'b', s: 'working' }, 1), rec({ m: 'a', s: 'idle' }, 1), rec({ m: 'a', s: 'working' }, -1)],
      ];
      for (const batch of batches) {
        for (const [reported, silent] of [keyedSpecs, multiSpecs]) {
          if (reported.mode === 'keyed' && batch.some(([v, d]) => d > 1 && (v as { m: string }).m === 'c')) continue; // two rows for one key
          await write(reported, batch);
          const none = await db.transaction(async (tx) => {
            await tx.ensureTable(silent);
            return tx.apply(silent, batch, false);
          });
          assert.deepEqual(none, []);
          const rowsOf = async (spec: TableSpec) =>
            (await look.rows(spec.name, '"machine", "status"')).map((r) => [r.machine, r.status]);
          assert.deepEqual(await rowsOf(silent), await rowsOf(reported), `${reported.mode}: same rows`);
        }
      }
      assert.deepEqual(
        (await look.rows(keyedSpecs[1].name, '"machine"')).map((r) => [r.machine, r.status]),
        [
          ['a', 'idle'],
          ['b', 'working'],
        ],
      );
    });

    test('keyed: two rows for one key in one batch are refused and nothing is written', async () => {
      const spec = table('keyed', [col('id', 'integer', 'id', { key: true }), col('v', 'text', 'v')]);
      await write(spec, [rec({ id: 1, v: 'x' }, 1)]);
      await assert.rejects(
        write(spec, [rec({ id: 2, v: 'a' }, 1), rec({ id: 1, v: 'a' }, 1), rec({ id: 1, v: 'b' }, 1)]),
        SinkDataError,
      );
      assert.deepEqual(
        (await look.rows(spec.name, '"id"')).map((r) => r.v),
        ['x'],
      );
    });

    test('keyed with a composite key and NULLs in other columns', async () => {
      const spec = table('keyed', [
        col('site', 'text', 'site', { key: true }),
        col('machine', 'text', 'm', { key: true }),
        col('v', 'double precision', 'v'),
      ]);
      await write(spec, [
        rec({ site: 's', m: 'a', v: null }, 1),
        rec({ site: 's', m: 'b', v: 1.5 }, 1),
        rec({ site: 't', m: 'a', v: 2 }, 1),
      ]);
      const ch = await write(spec, [
        rec({ site: 's', m: 'a', v: null }, -1),
        rec({ site: 's', m: 'a', v: 0.25 }, 1),
        rec({ site: 't', m: 'a', v: 2 }, -1),
      ]);
      assert.deepEqual(
        ch.map((c) => c.op),
        ['update', 'delete'],
      );
      assert.deepEqual(
        (await look.rows(spec.name, '"site", "machine"')).map((r) => [r.site, r.machine, r.v]),
        [
          ['s', 'a', 0.25],
          ['s', 'b', 1.5],
        ],
      );
    });

    test('streams that are gone from the offsets are deleted, also when as many come as go', async () => {
      const spec = table('multiset', [col('v', 'text', 'v')]);
      await db.transaction((tx) => tx.ensureTable(spec));
      const maps: Record<string, number>[] = [
        { s1: 10, s2: 25, s3: 1 },
        { s1: 10, s2: 25, s4: 0 },
        { s2: 26 },
        { s1: 3, s5: 4 },
      ];
      for (const offsets of maps) {
        await db.transaction((tx) => tx.writeState(spec, { offsets, fingerprint: 'f1', watermark: 1 }));
        const fresh = kind.open();
        try {
          assert.deepEqual((await fresh.transaction((tx) => tx.readState(spec))).offsets, offsets);
        } finally {
          await fresh.close();
        }
      }
      await db.transaction((tx) => tx.dropTable(spec));
    });

    test('offsets, fingerprint and watermark round-trip; only changed streams are written; dropTable resets', async () => {
      const spec = table('multiset', [col('v', 'text', 'v')]);
      const empty = await db.transaction(async (tx) => {
        await tx.ensureTable(spec);
        return tx.readState(spec);
      });
      assert.deepEqual(empty, { offsets: {}, fingerprint: null, watermark: null });
      await db.transaction(async (tx) => {
        await tx.apply(spec, [rec({ v: 'a' }, 1)]);
        await tx.writeState(spec, { offsets: { s1: 10, s2: 20 }, fingerprint: 'f1', watermark: 1_700_000_000_000_000 });
      });
      const stamp = kind.name === 'PostgreSQL' ? 'xmin::text' : '0';
      if (kind.name === 'SQLite') {
        // SQLite's offsets table has no rowid (WITHOUT ROWID): triggers count the rows written.
        await look.query(`CREATE TABLE "${spec.name}_w" (s text)`);
        for (const [when, row] of [
          ['INSERT', 'NEW'],
          ['UPDATE', 'NEW'],
          ['DELETE', 'OLD'],
        ])
          await look.query(
            `CREATE TRIGGER "${spec.name}_${when}" AFTER ${when} ON "${spec.name}_offsets" FOR EACH ROW BEGIN INSERT INTO "${spec.name}_w" VALUES (${row}.stream); END`,
          );
      }
      if (kind.name === 'MariaDB') {
        // MariaDB has no row version to look at: triggers count the rows written instead.
        await look.query(`CREATE TABLE "${spec.name}_w" (s text)`);
        for (const [when, row] of [
          ['INSERT', 'NEW'],
          ['UPDATE', 'NEW'],
          ['DELETE', 'OLD'],
        ])
          await look.query(
            `CREATE TRIGGER "${spec.name}_${when}" AFTER ${when} ON "${spec.name}_offsets" FOR EACH ROW INSERT INTO "${spec.name}_w" VALUES (${row}.stream)`,
          );
      }
      const before = await look.query(
        `SELECT "stream", ${stamp} AS stamp FROM "${spec.name}_offsets" ORDER BY "stream"`,
      );
      await db.transaction((tx) =>
        tx.writeState(spec, {
          offsets: { s1: 10, s2: 25, s3: 1 },
          fingerprint: 'f1',
          watermark: 1_700_000_000_000_001,
        }),
      );
      const afterRows = await look.query(
        `SELECT "stream", "offset", ${stamp} AS stamp FROM "${spec.name}_offsets" ORDER BY "stream"`,
      );
      assert.deepEqual(
        afterRows.map((r) => [r.stream, Number(r.offset)]),
        [
          ['s1', 10],
          ['s2', 25],
          ['s3', 1],
        ],
      );
      if (kind.name === 'PostgreSQL') {
        assert.equal(afterRows[0].stamp, before[0].stamp, 'unchanged stream s1 not rewritten');
        assert.notEqual(afterRows[1].stamp, before[1].stamp, 'changed stream s2 rewritten');
      }
      if (kind.name === 'MariaDB' || kind.name === 'SQLite') {
        const written = await look.query(`SELECT s FROM "${spec.name}_w" ORDER BY s`);
        assert.deepEqual(
          written.map((r) => r.s),
          ['s2', 's3'],
          'only the changed and the new stream were written',
        );
        await look.query(`DROP TABLE "${spec.name}_w"`);
      }
      // A fresh database object (as after a restart) reads the same state from the database.
      const other = kind.open();
      try {
        const state = await other.transaction((tx) => tx.readState(spec));
        assert.deepEqual(state, {
          offsets: { s1: 10, s2: 25, s3: 1 },
          fingerprint: 'f1',
          watermark: 1_700_000_000_000_001,
        });
        await other.transaction(async (tx) => {
          await tx.dropTable(spec);
          assert.deepEqual(await tx.readState(spec), { offsets: {}, fingerprint: null, watermark: null });
          await tx.ensureTable(spec);
        });
      } finally {
        await other.close();
      }
      assert.equal((await look.rows(spec.name, '1')).length, 0);
      assert.deepEqual(await db.transaction((tx) => tx.readState(spec)), {
        offsets: {},
        fingerprint: null,
        watermark: null,
      });
    });

    test('a failure mid-transaction rolls back rows, offsets and meta together', async () => {
      const spec = table('multiset', [col('v', 'text not null', 'v')]);
      await db.transaction(async (tx) => {
        await tx.ensureTable(spec);
        await tx.apply(spec, [rec({ v: 'kept' }, 1)]);
        await tx.writeState(spec, { offsets: { s: 1 }, fingerprint: 'f', watermark: 5 });
      });
      // A failure of the caller after rows and state were written.
      await assert.rejects(
        db.transaction(async (tx) => {
          await tx.apply(spec, [rec({ v: 'lost' }, 1), rec({ v: 'kept' }, -1)]);
          await tx.writeState(spec, { offsets: { s: 2 }, fingerprint: 'g', watermark: 6 });
          throw new Error('injected');
        }),
        /injected/,
      );
      // A failure of the database itself (NOT NULL violated) after offsets were written.
      await assert.rejects(
        db.transaction(async (tx) => {
          await tx.writeState(spec, { offsets: { s: 3 }, fingerprint: 'f', watermark: 7 });
          await tx.apply(spec, [rec({ v: 'x' }, 1), rec({ w: 'no v' }, 1)]);
        }),
        (e: unknown) => e instanceof SinkDatabaseError && e.message.includes(`table "${spec.name}"`) && !e.retryable,
      );
      // The same when the failing write is followed by work on another table (a queued write's
      // failure may surface there): the error names the table written to.
      const other = table('multiset', [col('v', 'text', 'v')]);
      await assert.rejects(
        db.transaction(async (tx) => {
          await tx.apply(spec, [rec({ w: 'no v' }, 1)]);
          await tx.readState(other);
          await tx.ensureTable(other);
        }),
        (e: unknown) =>
          e instanceof SinkDatabaseError &&
          e.message.includes(`table "${spec.name}"`) &&
          !e.message.includes(other.name) &&
          !e.retryable,
      );
      assert.deepEqual(
        (await look.rows(spec.name, '"v"')).map((r) => r.v),
        ['kept'],
      );
      assert.deepEqual(await db.transaction((tx) => tx.readState(spec)), {
        offsets: { s: 1 },
        fingerprint: 'f',
        watermark: 5,
      });
      assert.deepEqual(
        (await look.query(`SELECT "offset" FROM "${spec.name}_offsets"`)).map((r) => Number(r.offset)),
        [1],
      );
    });

    test('transactions are serialised and close waits for the running one', async () => {
      const spec = table('multiset', [col('v', 'integer', 'v')]);
      await db.transaction((tx) => tx.ensureTable(spec));
      const local = kind.open();
      const order: string[] = [];
      const slow = local.transaction(async (tx) => {
        order.push('a:start');
        await tx.apply(spec, [rec({ v: 1 }, 1)]);
        await new Promise((r) => setTimeout(r, 50));
        order.push('a:end');
      });
      const fast = local.transaction(async (tx) => {
        order.push('b:start');
        await tx.apply(spec, [rec({ v: 2 }, 1)]);
        order.push('b:end');
      });
      const closed = local.close().then(() => order.push('closed'));
      await Promise.all([slow, fast, closed]);
      assert.deepEqual(order, ['a:start', 'a:end', 'b:start', 'b:end', 'closed']);
      await assert.rejects(
        local.transaction(async () => 1),
        /closed/,
      );
      assert.equal((await look.rows(spec.name, '"v"')).length, 2);
    });

    test('large batches are chunked under the parameter limits', async () => {
      const spec = table('multiset', [col('a', 'integer', 'a', { index: true }), col('b', 'text', 'b')]);
      const batch: [Value, number, number][] = [];
      for (let i = 0; i < 2345; i++) batch.push([{ a: i, b: i % 3 === 0 ? null : `r${i}` }, 1 + (i % 2), 0]);
      const ins = await write(spec, batch);
      assert.equal(ins.length, 2345 + 1172);
      const del = await write(
        spec,
        batch.filter((_r, i) => i % 5 === 0).map(([v, n]) => rec(v, -n)),
      );
      assert.equal(
        del.length,
        batch.filter((_r, i) => i % 5 === 0).reduce((s, [, n]) => s + n, 0),
      );
      const [{ c }] = await look.query(`SELECT count(*) AS c FROM "${spec.name}"`);
      assert.equal(Number(c), 2345 + 1172 - del.length);
    });

    test('property: a keyed table equals the from-scratch view after every commit, one row per key', async () => {
      const op = fc.record({
        key: fc.integer({ min: 0, max: 7 }),
        value: fc.option(fc.integer({ min: 0, max: 3 }), { nil: null }),
      });
      await fc.assert(
        fc.asyncProperty(fc.array(fc.array(op, { maxLength: 8 }), { minLength: 1, maxLength: 6 }), async (steps) => {
          const spec = table('keyed', [col('k', 'integer', 'k', { key: true }), col('v', 'text', 'v')]);
          const view = new Map<number, string>(); // what the upstream logic holds now
          const all: [Value, number][] = [];
          for (const step of steps) {
            const batch = new Map<string, [Value, number]>();
            const add = (v: Value, d: number) => {
              const key = JSON.stringify(v);
              const hit = batch.get(key);
              if (hit) hit[1] += d;
              else batch.set(key, [v, d]);
            };
            for (const { key, value } of step) {
              const old = view.get(key);
              if (old !== undefined) add({ k: key, v: old }, -1);
              if (value === null) view.delete(key);
              else {
                view.set(key, `v${value}`);
                add({ k: key, v: `v${value}` }, 1);
              }
            }
            const b: Batch = [...batch.values()].filter(([, d]) => d !== 0).map(([v, d]) => [v, d, 0]);
            all.push(...b.map(([v, d]) => [v, d] as [Value, number]));
            await write(spec, b);
            // From scratch: consolidate everything written so far.
            const sum = new Map<string, number>();
            for (const [v, d] of all) sum.set(JSON.stringify(v), (sum.get(JSON.stringify(v)) ?? 0) + d);
            const expected = [...sum]
              .filter(([, n]) => n > 0)
              .map(([v]) => JSON.parse(v) as { k: number; v: string })
              .sort((x, y) => x.k - y.k);
            const rows = await look.rows(spec.name, '"k"');
            assert.deepEqual(
              rows.map((r) => ({ k: Number(r.k), v: r.v })),
              expected,
            );
            assert.equal(new Set(rows.map((r) => Number(r.k))).size, rows.length);
          }
        }),
        { numRuns: 15 },
      );
    });

    test('property: rolled-back commits leave no trace in rows, offsets or meta', async () => {
      const step = fc.record({
        keys: fc.uniqueArray(fc.integer({ min: 0, max: 5 }), { maxLength: 4 }),
        fail: fc.boolean(),
      });
      await fc.assert(
        fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 6 }), async (steps) => {
          const spec = table('keyed', [col('k', 'integer', 'k', { key: true }), col('v', 'integer', 'v')]);
          await db.transaction((tx) => tx.ensureTable(spec));
          const committed = new Map<number, number>();
          let offsets: Record<string, number> = {};
          for (let i = 0; i < steps.length; i++) {
            const { keys, fail } = steps[i];
            const batch: [Value, number, number][] = [];
            for (const k of keys) {
              const old = committed.get(k);
              if (old !== undefined) batch.push([{ k, v: old }, -1, 0]);
              if (old === undefined || i % 2 === 0) batch.push([{ k, v: i }, 1, 0]); // else: a retraction alone
            }
            const next = { ...offsets, [`s${i % 3}`]: i };
            const attempt = db.transaction(async (tx) => {
              await tx.apply(spec, batch);
              await tx.writeState(spec, { offsets: next, fingerprint: `f${i}`, watermark: i });
              if (fail) throw new Error('injected');
            });
            if (fail) {
              await assert.rejects(attempt, /injected/);
            } else {
              await attempt;
              offsets = next;
              for (const k of keys) {
                if (committed.has(k) && i % 2 !== 0) committed.delete(k);
                else committed.set(k, i);
              }
            }
            const rows = await look.rows(spec.name, '"k"');
            assert.deepEqual(
              rows.map((r) => [Number(r.k), Number(r.v)]),
              [...committed].sort((a, b) => a[0] - b[0]),
            );
            const lastOk = steps
              .slice(0, i + 1)
              .map((s, j) => (s.fail ? -1 : j))
              .reduce((a, b) => Math.max(a, b), -1);
            assert.deepEqual(await db.transaction((tx) => tx.readState(spec)), {
              offsets,
              fingerprint: lastOk < 0 ? null : `f${lastOk}`,
              watermark: lastOk < 0 ? null : lastOk,
            });
          }
        }),
        { numRuns: 15 },
      );
    });

    test('property: offsets given with their delta (SinkState.delta) are stored whole, in every table, also after failed commits and broken chains', async () => {
      // One commit: streams s0..s5 raised (new ones too); how the offsets come with their delta.
      await fc.assert(
        fc.asyncProperty(fc.array(deltaStep, { minLength: 1, maxLength: 8 }), async (steps) => {
          const specs = [0, 1].map(() => table('multiset', [col('v', 'integer', 'v')]));
          await db.transaction(async (tx) => {
            for (const spec of specs) await tx.ensureTable(spec);
          });
          await deltaCommits(
            db,
            steps,
            async (tx, next, delta, i) => {
              for (const spec of specs) {
                await tx.apply(spec, [[{ v: i }, 1, 0]]);
                await tx.writeState(spec, {
                  offsets: next,
                  fingerprint: 'f',
                  watermark: i,
                  ...(delta ? { delta } : {}),
                });
              }
            },
            async (committed) => {
              for (const spec of specs) {
                const stored = await look.rows(`${spec.name}_offsets`, '"stream"');
                assert.deepEqual(Object.fromEntries(stored.map((r) => [r.stream, Number(r.offset)])), committed);
                assert.deepEqual((await db.transaction((tx) => tx.readState(spec))).offsets, committed);
              }
            },
          );
        }),
        { numRuns: 15 },
      );
    });

    test('a delta whose base is the stored offsets object itself is taken as it says: only its raised streams are written', async () => {
      const spec = table('multiset', [col('v', 'integer', 'v')]);
      const first = Object.freeze({ a: 1, b: 2 });
      await db.transaction(async (tx) => {
        await tx.ensureTable(spec);
        await tx.writeState(spec, {
          offsets: first,
          fingerprint: 'f',
          watermark: 1,
          delta: { base: null, raised: new Map() },
        });
      });
      // The caller says only `a` was raised since `first`, while its offsets also raise `b`: the sink
      // trusts the delta (it does not compare every stream), so `b` stays as stored.
      const second = Object.freeze({ a: 5, b: 9 });
      await db.transaction((tx) =>
        tx.writeState(spec, {
          offsets: second,
          fingerprint: 'f',
          watermark: 1,
          delta: { base: first, raised: new Map([['a', 5]]) },
        }),
      );
      const stored = await look.rows(`${spec.name}_offsets`, '"stream"');
      assert.deepEqual(Object.fromEntries(stored.map((r) => [r.stream, Number(r.offset)])), { a: 5, b: 2 });
    });

    test('property: a scope level given with its delta (StateScope.delta) is stored whole, also after failed commits and broken chains', async () => {
      // As the sinks' offsets above, for a dataflow's stored operator state: its level per stream.
      await fc.assert(
        fc.asyncProperty(fc.array(deltaStep, { minLength: 1, maxLength: 8 }), async (steps) => {
          const scope = unique('scope');
          const level = (offsets: Readonly<Record<string, number>>, i: number) => ({
            format: 1,
            fingerprint: 'f',
            offsets,
            watermark: i,
            cutoff: null,
          });
          const none = { entries: new Map(), forget: null };
          assert.equal(await db.transaction((tx) => tx.readScope!(scope)), null);
          await deltaCommits(
            db,
            steps,
            (tx, next, delta, i) => tx.writeScope!(scope, { ...level(next, i), ...(delta ? { delta } : {}) }, none),
            async (committed) => {
              const stored = await look.query(
                `SELECT "stream", "offset" FROM "deltaflow_state_offsets" WHERE "scope" = '${scope}' ORDER BY "stream"`,
              );
              assert.deepEqual(Object.fromEntries(stored.map((r) => [r.stream, Number(r.offset)])), committed);
              const read = await db.transaction((tx) => tx.readScope!(scope));
              assert.deepEqual(read?.offsets ?? {}, committed);
            },
          );
          await db.transaction((tx) => tx.resetScope!(scope));
        }),
        { numRuns: 15 },
      );
    });

    test('a scope delta whose base is the stored level object itself is taken as it says: only its raised streams are written', async () => {
      const scope = unique('scope');
      const none = { entries: new Map(), forget: null };
      const level = (offsets: Readonly<Record<string, number>>) => ({
        format: 1,
        fingerprint: 'f',
        offsets,
        watermark: null,
        cutoff: null,
      });
      const first = Object.freeze({ a: 1, b: 2 });
      await db.transaction(async (tx) => {
        await tx.readScope!(scope);
        await tx.writeScope!(scope, { ...level(first), delta: { base: null, raised: new Map() } }, none);
      });
      // The caller says only `a` was raised since `first`, while its offsets also raise `b`: the level
      // trusts the delta (it does not compare every stream), so `b` stays as stored.
      const second = Object.freeze({ a: 5, b: 9 });
      await db.transaction((tx) =>
        tx.writeScope!(scope, { ...level(second), delta: { base: first, raised: new Map([['a', 5]]) } }, none),
      );
      const stored = await look.query(
        `SELECT "stream", "offset" FROM "deltaflow_state_offsets" WHERE "scope" = '${scope}' ORDER BY "stream"`,
      );
      assert.deepEqual(Object.fromEntries(stored.map((r) => [r.stream, Number(r.offset)])), { a: 5, b: 2 });
      await db.transaction((tx) => tx.resetScope!(scope));
    });

    test('property: a multiset table equals the from-scratch multiset after every commit', async () => {
      const val = fc.record({ a: fc.constantFrom('x', 'y', null), b: fc.integer({ min: 0, max: 2 }) });
      await fc.assert(
        fc.asyncProperty(
          fc.array(fc.array(fc.tuple(val, fc.integer({ min: 1, max: 3 }), fc.boolean()), { maxLength: 6 }), {
            minLength: 1,
            maxLength: 5,
          }),
          async (steps) => {
            const spec = table('multiset', [col('a', 'text', 'a', { index: true }), col('b', 'integer', 'b')]);
            const held = new Map<string, number>();
            for (const step of steps) {
              const batch = new Map<string, number>();
              for (const [v, n, retract] of step) {
                const key = JSON.stringify(v);
                const have = (held.get(key) ?? 0) + (batch.get(key) ?? 0);
                const d = retract ? -Math.min(n, have) : n; // the view never retracts what it does not hold
                batch.set(key, (batch.get(key) ?? 0) + d);
              }
              const b: Batch = [...batch].filter(([, d]) => d !== 0).map(([v, d]) => [JSON.parse(v) as Value, d, 0]);
              for (const [v, d] of batch) held.set(v, (held.get(v) ?? 0) + d);
              await write(spec, b);
              const expected = [...held].flatMap(([v, n]) => Array.from({ length: n }, () => v)).sort();
              const rows = await look.rows(spec.name, '1');
              assert.deepEqual(rows.map((r) => JSON.stringify({ a: r.a, b: Number(r.b) })).sort(), expected);
            }
          },
        ),
        { numRuns: 15 },
      );
    });
  });
}

test('PostgreSQL schema option: tables, offsets and meta go to that schema; a missing schema is a clear retryable error', async () => {
  const schema = unique('s');
  const admin = new pg.Pool({ max: 1 });
  const missing = new PostgresDatabase({ schema });
  try {
    await assert.rejects(
      missing.transaction(async () => undefined),
      (e: unknown) =>
        e instanceof SinkDatabaseError &&
        e.retryable &&
        e.message.includes(`schema "${schema}" does not exist`) &&
        e.message.includes('CREATE SCHEMA'),
    );
    await admin.query(`CREATE SCHEMA "${schema}"`);
    // The same database object recovers once the schema exists (the dataflow retries).
    const name = unique('u');
    const spec: TableSpec = {
      name,
      mode: 'multiset',
      columns: [col('machine', 'text', 'm'), col('minutes', 'integer', 'n')],
    };
    await missing.transaction(async (tx) => {
      await tx.ensureTable(spec);
      await tx.apply(spec, [rec({ m: 'Drill1', n: 31 }, 1)]);
      await tx.writeState(spec, { offsets: { 'drill1-0': 7 }, fingerprint: 'f', watermark: 1 });
    });
    const tables = (
      await admin.query(`SELECT table_name FROM information_schema.tables WHERE table_schema = $1 ORDER BY 1`, [schema])
    ).rows.map((r) => r.table_name);
    assert.deepEqual(tables, ['deltaflow_meta', name, `${name}_offsets`]);
    assert.deepEqual((await admin.query(`SELECT machine, minutes FROM "${schema}"."${name}"`)).rows, [
      { machine: 'Drill1', minutes: 31 },
    ]);
    const publicUsage = await admin.query(`SELECT to_regclass('public."${name}"') AS t`);
    assert.equal(publicUsage.rows[0].t, null, 'nothing was created in public');
    await missing.transaction(async (tx) => assert.deepEqual((await tx.readState(spec)).offsets, { 'drill1-0': 7 }));
    assert.throws(() => new PostgresDatabase({ schema: 'x"; drop table t; --' }), /invalid schema/);
  } finally {
    await missing.close();
    await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await admin.end();
  }
});

test('SQLite: commits do not checkpoint inline; a worker moves the WAL into the file (and stops with close)', async () => {
  const spec: TableSpec = { name: 'rows', mode: 'multiset', columns: [col('text', 'text', 't')] };
  const sizes: number[] = [];
  for (const backgroundCheckpoints of [true, false]) {
    const filename = join(dir, `checkpoints-${backgroundCheckpoints}.db`);
    const db = new SqliteDatabase({ filename, backgroundCheckpoints });
    await db.transaction(async (tx) => tx.ensureTable(spec));
    const before = statSync(filename).size;
    // About 100 WAL pages: far below SQLite's automatic checkpoint (1,000 pages).
    for (let i = 0; i < 20; i++)
      await db.transaction(async (tx) => void (await tx.apply(spec, [rec({ t: `${i}-${'x'.repeat(20_000)}` }, 1)])));
    if (backgroundCheckpoints) {
      const deadline = Date.now() + 10_000;
      while (statSync(filename).size < before + 300_000 && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 20));
    } else await new Promise((r) => setTimeout(r, 500));
    sizes.push(statSync(filename).size - before);
    await db.close();
  }
  assert.ok(sizes[0] >= 300_000, `the worker checkpointed the commits into the file (grew ${sizes[0]} bytes)`);
  assert.equal(sizes[1], 0, 'without it nothing is checkpointed below 1,000 WAL pages');
});

test('SQLite: new offsets tables have no rowid; one made before (with a rowid) is read and written alike', async () => {
  const file = join(dir, 'offsets-rowid.db');
  const raw = new Database(file);
  // As an earlier version created it.
  raw.exec(
    `CREATE TABLE "old" ("v" text); CREATE TABLE "old_offsets" ("stream" text PRIMARY KEY, "offset" bigint NOT NULL)`,
  );
  raw.exec(`INSERT INTO "old_offsets" VALUES ('s1', 4), ('s2', 7)`);
  const db = new SqliteDatabase({ filename: file });
  const spec = (name: string): TableSpec => ({ name, mode: 'multiset', columns: [col('v', 'text', 'v')] });
  try {
    await db.transaction(async (tx) => {
      await tx.ensureTable(spec('old'));
      await tx.ensureTable(spec('fresh'));
    });
    const ddl = (name: string) =>
      (raw.prepare(`SELECT sql FROM sqlite_master WHERE name = ?`).get(name) as { sql: string }).sql;
    assert.match(ddl('fresh_offsets'), /WITHOUT ROWID$/);
    assert.doesNotMatch(ddl('old_offsets'), /WITHOUT ROWID/);
    for (const name of ['old', 'fresh']) {
      const before = await db.transaction((tx) => tx.readState(spec(name)));
      const offsets = { ...before.offsets, s2: 9, s3: 0 };
      await db.transaction((tx) => tx.writeState(spec(name), { offsets, fingerprint: 'f', watermark: 1 }));
      const other = new SqliteDatabase({ filename: file });
      try {
        assert.deepEqual((await other.transaction((tx) => tx.readState(spec(name)))).offsets, offsets);
      } finally {
        await other.close();
      }
    }
  } finally {
    await db.close();
    raw.close();
  }
});

test('SQLite runs in WAL mode; an unopenable file is a retryable error naming the database', async () => {
  const db = new SqliteDatabase({ filename: join(dir, 'wal.db') });
  await db.transaction(async () => undefined);
  await db.close();
  const raw = new Database(join(dir, 'wal.db'));
  assert.equal(raw.pragma('journal_mode', { simple: true }), 'wal');
  raw.close();
  const bad = new SqliteDatabase({ filename: join(dir, 'missing-dir', 'x.db') });
  await assert.rejects(
    bad.transaction(async () => undefined),
    (e: unknown) => e instanceof SinkDatabaseError && e.retryable && e.message.includes('missing-dir'),
  );
  await bad.close();
});

test('an unreachable PostgreSQL gives a clear retryable error, not a hang', async () => {
  const refused = new PostgresDatabase({
    host: '127.0.0.1',
    port: 1,
    user: 'nobody',
    database: 'none',
    connectionTimeoutMs: 2000,
  });
  await assert.rejects(
    refused.transaction(async () => undefined),
    (e: unknown) =>
      e instanceof SinkDatabaseError &&
      e.retryable &&
      /127\.0\.0\.1:1/.test(e.message) &&
      /ECONNREFUSED|connect/.test(e.message),
  );
  await refused.close();
  // A server that accepts TCP but never answers: the connection timeout ends the wait.
  const net = await import('node:net');
  const silent = net.createServer(() => undefined);
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  const port = (silent.address() as { port: number }).port;
  const hanging = new PostgresDatabase({ host: '127.0.0.1', port, user: 'x', database: 'y', connectionTimeoutMs: 300 });
  await assert.rejects(
    hanging.transaction(async () => undefined),
    (e: unknown) => e instanceof SinkDatabaseError && e.retryable && /timeout/i.test(e.message),
  );
  await hanging.close();
  silent.close();
  for (const s of [silent]) s.unref();
});

test('the PostgreSQL label never contains the password', () => {
  const db = new PostgresDatabase({ connectionString: 'postgres://u:secret@db.example:6543/prod' });
  assert.equal(db.label, 'PostgreSQL u@db.example:6543/prod');
  void db.close();
});

test('SQLite: a transaction waits without blocking while another connection of this process holds the write lock', async () => {
  const file = join(dir, 'lock.db');
  const a = new SqliteDatabase({ filename: file });
  const b = new SqliteDatabase({ filename: file, busyTimeoutMs: 5000 });
  const spec: TableSpec = { name: 'locked', mode: 'multiset', columns: [col('v', 'text', 'v')] };
  await a.transaction((tx) => tx.ensureTable(spec));
  const order: string[] = [];
  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  const first = a.transaction(async (tx) => {
    await tx.apply(spec, [rec({ v: 'a' }, 1)]);
    order.push('a holds the lock');
    await held;
    order.push('a commits');
  });
  await new Promise((r) => setTimeout(r, 10));
  const second = b.transaction(async (tx) => {
    order.push('b started');
    await tx.apply(spec, [rec({ v: 'b' }, 1)]);
  });
  // The event loop keeps running while b waits: a timer fires and lets a finish.
  await new Promise((r) => setTimeout(r, 30));
  order.push('timer');
  release();
  await Promise.all([first, second]);
  assert.deepEqual(order, ['a holds the lock', 'timer', 'a commits', 'b started']);
  const impatient = new SqliteDatabase({ filename: file, busyTimeoutMs: 50 });
  let unblock!: () => void;
  const blocker = a.transaction(() => new Promise<void>((r) => (unblock = r)));
  await new Promise((r) => setTimeout(r, 10));
  await assert.rejects(
    impatient.transaction(async () => 1),
    (e: unknown) => e instanceof SinkDatabaseError && e.retryable && /locked|busy/i.test(e.message),
  );
  unblock();
  await blocker;
  await Promise.all([a.close(), b.close(), impatient.close()]);
});

test('PostgreSQL: a lock held by another session fails the commit with a retryable error instead of stalling', async () => {
  const db = new PostgresDatabase({ lockTimeoutMs: 200 });
  const spec: TableSpec = { name: unique('lk'), mode: 'multiset', columns: [col('v', 'text', 'v')] };
  await db.transaction((tx) => tx.ensureTable(spec));
  const other = new pg.Client();
  await other.connect();
  try {
    await other.query('BEGIN');
    await other.query(`LOCK TABLE "${spec.name}" IN ACCESS EXCLUSIVE MODE`);
    await assert.rejects(
      db.transaction((tx) => tx.apply(spec, [rec({ v: 'x' }, 1)])),
      (e: unknown) =>
        e instanceof SinkDatabaseError &&
        e.retryable &&
        e.message.includes(spec.name) &&
        /lock timeout/.test(e.message),
    );
    await other.query('ROLLBACK');
    await db.transaction((tx) => tx.apply(spec, [rec({ v: 'x' }, 1)]));
  } finally {
    await other.end();
    await db.transaction((tx) => tx.dropTable(spec));
    await db.close();
  }
});

test('a SinkTransaction cannot be used after its transaction function returned', async () => {
  const db = new SqliteDatabase({ filename: join(dir, 'escape.db') });
  const spec: TableSpec = { name: 'escape', mode: 'multiset', columns: [col('v', 'text', 'v')] };
  const tx = await db.transaction(async (t) => {
    await t.ensureTable(spec);
    return t;
  });
  await assert.rejects(tx.apply(spec, [rec({ v: 'x' }, 1)]), /used after its transaction function returned/);
  await db.close();
});
