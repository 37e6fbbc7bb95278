/**
 * Issue 12, point 3: two rows for one key of a keyed table give the same outcome whatever the
 * batching. A view (a multiset of rows, changed one event at a time) is written to a keyed table in
 * random batches, with the report on or off and the database object replaced at random points (a
 * restart: nothing cached). On SQLite, PostgreSQL and MariaDB, every run halts exactly at the first
 * commit whose view holds two rows for a key, with an error naming the table, a key that has two
 * rows there and both rows, and the table then holds the view of the commit before; a run that
 * does not halt holds the view. On 34efe75 it fails: a second row for a key in a later batch
 * silently replaced the first.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import type { Batch, Value } from '../../src/engine/types';
import type { SinkDatabase, TableSpec } from '../../src/sinks/types';
import { SqliteDatabase } from '../../src/sinks/sqlite-database';
import { PostgresDatabase } from '../../src/sinks/postgres-database';
import { MariadbDatabase } from '../../src/sinks/mariadb-database';
import { SinkDataError } from '../../src/sinks/errors';
import Database from 'better-sqlite3';
import pg from 'pg';
import mysql from 'mysql2/promise';
import { mariadbSettings } from '../dataflow/support';

const dir = mkdtempSync(join(tmpdir(), 'deltaflow-dup-'));
let pool: pg.Pool | null = null;
let mariaConnection: Promise<mysql.Connection> | null = null;
const pgClient = (): pg.Pool => (pool ??= new pg.Pool({ max: 1 }));
const maria = (): Promise<mysql.Connection> => (mariaConnection ??= mysql.createConnection(mariadbSettings()));
after(async () => {
  await pool?.end();
  if (mariaConnection) await (await mariaConnection).end();
  rmSync(dir, { recursive: true, force: true });
});
let counter = 0;

const kinds: { name: string; open: () => SinkDatabase }[] = [
  { name: 'SQLite', open: () => new SqliteDatabase({ filename: join(dir, 'dup.db') }) },
  { name: 'PostgreSQL', open: () => new PostgresDatabase() },
  { name: 'MariaDB', open: () => new MariadbDatabase() },
];

type Row = { readonly id: number; readonly v: string };
/** One event: a row enters the view, or the view's i-th row (modulo its size) leaves it. */
type Step = { readonly add: Row } | { readonly remove: number };

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc
      .record({ id: fc.integer({ min: 1, max: 3 }), v: fc.constantFrom('a', 'b', 'c') })
      .map((add) => ({ add })),
  },
  { weight: 2, arbitrary: fc.nat(20).map((remove) => ({ remove })) },
);

/** The view after each event: lists of rows (with repeats), and each event's change. */
function views(steps: readonly Step[]): { changes: [Row, number][]; after: Row[][] } {
  const rows: Row[] = [];
  const changes: [Row, number][] = [];
  const afterEach: Row[][] = [];
  for (const s of steps) {
    if ('add' in s) {
      rows.push(s.add);
      changes.push([s.add, 1]);
    } else if (rows.length > 0) {
      const [gone] = rows.splice(s.remove % rows.length, 1);
      changes.push([gone as Row, -1]);
    } else changes.push([{ id: 0, v: '' }, 0]); // nothing to remove: no change
    afterEach.push(rows.slice());
  }
  return { changes, after: afterEach };
}

const text = (rows: readonly Row[]): string[] => rows.map((r) => `${r.id}:${r.v}`).sort();
const duplicated = (rows: readonly Row[]): Set<number> => {
  const seen = new Set<number>();
  const twice = new Set<number>();
  for (const r of rows) (seen.has(r.id) ? twice : seen).add(r.id);
  return twice;
};

for (const kind of kinds) {
  describe(`${kind.name}: a keyed table's duplicates do not depend on batching`, () => {
    const names: string[] = [];
    after(async () => {
      const db = kind.open();
      await db.transaction(async (tx) => {
        for (const name of names) await tx.dropTable(spec(name));
      });
      await db.close();
    });
    const spec = (name: string): TableSpec => ({
      name,
      mode: 'keyed',
      columns: [
        { name: 'id', type: 'integer', value: { path: 'id' }, key: true },
        { name: 'v', type: 'text', value: { path: 'v' } },
      ],
    });

    test('random views, batchings, reports and restarts', async () => {
      let db = kind.open();
      try {
        await fc.assert(
          fc.asyncProperty(
            fc.array(stepArb, { minLength: 1, maxLength: 10 }),
            fc.array(fc.record({ cut: fc.boolean(), restart: fc.boolean(), report: fc.boolean() }), {
              minLength: 10,
              maxLength: 10,
            }),
            async (steps, plan) => {
              const name = `kdup_${process.pid}_${counter++}`;
              names.push(name);
              const t = spec(name);
              const { changes, after: viewAfter } = views(steps);
              let halted: { error: unknown; at: number } | null = null;
              let committed = -1; // the last event of the last commit
              let start = 0;
              for (let i = 0; i < steps.length; i++) {
                const last = i === steps.length - 1;
                if (!last && !(plan[i] as { cut: boolean }).cut) continue;
                const batch: Batch = changes
                  .slice(start, i + 1)
                  .filter(([, d]) => d !== 0)
                  .map(([r, d]) => [r as unknown as Value, d, 0]);
                start = i + 1;
                const { restart, report } = plan[i] as { restart: boolean; report: boolean };
                if (restart) {
                  await db.close();
                  db = kind.open();
                }
                try {
                  await db.transaction(async (tx) => {
                    await tx.ensureTable(t);
                    await tx.apply(t, batch, report);
                    await tx.writeState(t, { offsets: { s: i }, fingerprint: 'f', watermark: null });
                  });
                  committed = i;
                } catch (error) {
                  halted = { error, at: i };
                  break;
                }
              }
              // The commit points are the batch ends; the first whose view has two rows for a key halts.
              const cuts = plan.map((p, i) => p.cut || i === steps.length - 1).slice(0, steps.length);
              const firstBad = viewAfter.findIndex((rows, i) => cuts[i] && duplicated(rows).size > 0);
              const h = halted as { error: unknown; at: number } | null;
              if (firstBad < 0) assert.equal(h, null, `no commit's view has a duplicate: ${String(h?.error)}`);
              else {
                assert.ok(h !== null, `the view at event ${firstBad} has two rows for a key, yet nothing halted`);
                assert.equal(h.at, firstBad);
                assert.ok(h.error instanceof SinkDataError, String(h.error));
                const m = /two rows for key \{"id":(\d+)\} in the view \((.*)\), and a keyed table/.exec(
                  (h.error as Error).message,
                );
                assert.ok(m, (h.error as Error).message);
                const key = Number(m[1]);
                assert.ok(duplicated(viewAfter[firstBad] as Row[]).has(key), `key ${key} has one row`);
                assert.ok((h.error as Error).message.includes(`table "${name}"`));
              }
              const stored = await db.transaction(async (tx) => {
                await tx.ensureTable(t);
                return tx.readState(t);
              });
              assert.deepEqual(stored.offsets, committed < 0 ? {} : { s: committed });
              const rows = await readRows(kind.name, name);
              assert.deepEqual(rows, committed < 0 ? [] : text(viewAfter[committed] as Row[]));
            },
          ),
          { numRuns: 30 },
        );
      } finally {
        await db.close();
      }
    });
  });
}

/** The table's rows through the driver, as `id:v`, sorted. */
async function readRows(kind: string, table: string): Promise<string[]> {
  let rows: Record<string, unknown>[];
  if (kind === 'SQLite') {
    const db = new Database(join(dir, 'dup.db'), { readonly: true });
    try {
      rows = db.prepare(`SELECT id, v FROM "${table}"`).all() as Record<string, unknown>[];
    } finally {
      db.close();
    }
  } else if (kind === 'PostgreSQL') {
    rows = (await pgClient().query(`SELECT id, v FROM "${table}"`)).rows;
  } else {
    rows = (await (await maria()).query(`SELECT id, v FROM \`${table}\``))[0] as Record<string, unknown>[];
  }
  return rows.map((r) => `${Number(r.id)}:${String(r.v)}`).sort();
}
