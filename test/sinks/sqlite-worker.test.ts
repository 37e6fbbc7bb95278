/**
 * The SQLite sink's connection in a worker thread: the same results and errors as in this thread,
 * this thread free while a statement runs, a dead worker replaced, no worker kept alive or left
 * behind. (The SinkDatabase contract runs in both modes: databases.test.ts and
 * databases-in-thread.test.ts.)
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import Database from 'better-sqlite3';
import type { ColumnSpec, TableSpec } from '../../src/sinks/types';
import { SqliteDatabase } from '../../src/sinks/sqlite-database';
import { SinkDatabaseError } from '../../src/sinks/errors';
import { openInProcessSession, type SqliteSession } from '../../src/sqlite/sqlite-session';
import { liveSqliteWorkers, openWorkerSession } from '../../src/sqlite/sqlite-worker-session';

const dir = mkdtempSync(join(tmpdir(), 'deltaflow-sqlite-worker-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const col = (name: string, type: string, path: string, extra: Partial<ColumnSpec> = {}): ColumnSpec => ({
  name,
  type,
  value: { path },
  ...extra,
});
const options = { backgroundCheckpoints: false };

/** The rejection of a promise that must reject. */
async function failure(p: Promise<unknown>): Promise<Error & { code?: string }> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof Error);
    return err;
  }
  assert.fail('expected a rejection');
}

test('a worker session returns what an in-thread session returns: changes, rows, bigint and null parameters', async () => {
  const results: unknown[] = [];
  for (const open of [openInProcessSession, openWorkerSession]) {
    const file = join(dir, `values-${open.name}.db`);
    const s: SqliteSession = await open(file, options);
    await s.exec('CREATE TABLE t (k INTEGER PRIMARY KEY, big INTEGER, v TEXT)');
    await s.exec('BEGIN IMMEDIATE');
    const inserted = await s.run('INSERT INTO t VALUES (?, ?, ?), (?, ?, ?)', [1, 2n ** 40n, null, 2, -5n, 'x']);
    const updated = await s.run('UPDATE t SET v = ? WHERE k > ?', ['y', 0]);
    const returned = await s.run('DELETE FROM t WHERE k = ? RETURNING k', [2]);
    await s.exec('COMMIT');
    await s.exec('BEGIN IMMEDIATE');
    await s.run('INSERT INTO t VALUES (?, ?, ?)', [3, 0, 'rolled back']);
    await s.rollback();
    await s.rollback(); // no transaction open: nothing to do
    results.push({ inserted, updated, returned, rows: await s.all('SELECT * FROM t ORDER BY k', []) });
    await s.close();
    assert.equal(s.usable, false);
    await assert.rejects(s.all('SELECT 1', []), /closed/);
  }
  assert.deepEqual(results[0], { inserted: 2, updated: 2, returned: 1, rows: [{ k: 1, big: 2 ** 40, v: 'y' }] });
  assert.deepEqual(results[1], results[0]);
  assert.equal(liveSqliteWorkers().length, 0, 'close ended the worker');
});

test('errors come back from the worker with the driver message, code and name', async () => {
  const seen: { message: string; name: string; code?: string; typeError: boolean }[][] = [];
  for (const open of [openInProcessSession, openWorkerSession]) {
    const s = await open(join(dir, `errors-${open.name}.db`), options);
    await s.exec('CREATE TABLE t (k INTEGER PRIMARY KEY)');
    await s.run('INSERT INTO t VALUES (?)', [1]);
    const errors = [
      await failure(s.run('INSERT INTO t VALUES (?)', [1])),
      await failure(s.all('SELECT nope FROM t', [])),
      await failure(s.exec('COMMIT')),
    ];
    await s.close();
    const missingDir = await failure(Promise.resolve().then(() => open(join(dir, 'missing-dir', 'x.db'), options)));
    seen.push(
      [...errors, missingDir].map((e) => ({
        message: e.message,
        name: e.name,
        code: e.code,
        typeError: e instanceof TypeError,
      })),
    );
  }
  assert.equal(seen[0][0].code, 'SQLITE_CONSTRAINT_PRIMARYKEY');
  assert.match(seen[0][0].message, /UNIQUE constraint failed: t\.k/);
  assert.equal(seen[0][0].name, 'SqliteError');
  assert.equal(seen[0][3].typeError, true);
  assert.match(seen[0][3].message, /directory does not exist/);
  assert.deepEqual(seen[1], seen[0]);
  assert.equal(liveSqliteWorkers().length, 0, 'a failed opening ends its worker');
});

test('while the worker runs a statement this thread keeps running', async () => {
  const s = await openWorkerSession(join(dir, 'busy.db'), options);
  const order: string[] = [];
  const slow = s
    .all(
      'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 2000000) SELECT count(*) AS n FROM c',
      [],
    )
    .then((rows) => {
      order.push('query');
      return rows;
    });
  await new Promise((r) => setImmediate(r));
  order.push('this thread');
  assert.deepEqual(await slow, [{ n: 2_000_000 }]);
  assert.deepEqual(order, ['this thread', 'query']);
  await s.close();
});

test('the sink: a worker that dies mid-transaction fails it retryably, the next transaction opens a new one', async () => {
  const file = join(dir, 'dies.db');
  const db = new SqliteDatabase({ filename: file, worker: true });
  const spec: TableSpec = {
    name: 'rows',
    mode: 'keyed',
    columns: [col('k', 'integer', 'k', { key: true }), col('v', 'text', 'v')],
  };
  await db.transaction(async (tx) => {
    await tx.ensureTable(spec);
    await tx.apply(spec, [[{ k: 1, v: 'kept' }, 1, 0]]);
  });
  assert.equal(liveSqliteWorkers().length, 1);
  const err = await failure(
    db.transaction(async (tx) => {
      await tx.apply(spec, [[{ k: 2, v: 'lost' }, 1, 0]]);
      await liveSqliteWorkers()[0].terminate();
      await tx.apply(spec, [[{ k: 3, v: 'lost' }, 1, 0]]);
    }),
  );
  assert.ok(err instanceof SinkDatabaseError && err.retryable, String(err));
  assert.match(err.message, /dies\.db/);
  assert.match(err.message, /worker .* exited/);
  await db.transaction(async (tx) => void (await tx.apply(spec, [[{ k: 4, v: 'after' }, 1, 0]])));
  const raw = new Database(file, { readonly: true });
  assert.deepEqual(raw.prepare('SELECT k, v FROM rows ORDER BY k').all(), [
    { k: 1, v: 'kept' },
    { k: 4, v: 'after' },
  ]);
  raw.close();
  await db.close();
  assert.equal(liveSqliteWorkers().length, 0, 'close ended the new worker');
});

test('the sink: by default, with `worker: false` and for `:memory:` (even with `worker: true`) it runs in this thread', async () => {
  const spec: TableSpec = { name: 'm', mode: 'multiset', columns: [col('v', 'text', 'v')] };
  for (const db of [
    new SqliteDatabase({ filename: ':memory:', worker: true }),
    new SqliteDatabase({ filename: join(dir, 'default.db') }),
    new SqliteDatabase({ filename: join(dir, 'in-thread.db'), worker: false }),
  ]) {
    const changes = await db.transaction(async (tx) => {
      await tx.ensureTable(spec);
      assert.equal(liveSqliteWorkers().length, 0);
      return tx.apply(spec, [[{ v: 'a' }, 2, 0]]);
    });
    assert.equal(changes.length, 2);
    await db.close();
  }
});

test('an idle sink does not keep the process alive, a pending statement does', () => {
  const script = join(dir, 'idle.ts');
  const sink = resolve(__dirname, '../../src/sinks/sqlite-database.ts');
  writeFileSync(
    script,
    `import { SqliteDatabase } from ${JSON.stringify(sink)};
const db = new SqliteDatabase({ filename: ${JSON.stringify(join(dir, 'idle.db'))}, backgroundCheckpoints: false, worker: true });
// Nothing else keeps this process alive while the transaction waits for the worker.
db.transaction(async (tx) => tx.ensureTable({ name: 't', mode: 'multiset', columns: [{ name: 'v', type: 'text', value: { path: 'v' } }] }))
  .then(() => console.log('committed'));
// Never closed: the process must still end.
`,
  );
  const child = spawnSync(process.execPath, ['--import', 'tsx', script], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(child.signal, null, 'the process ended by itself');
  assert.equal(child.status, 0, child.stderr);
  assert.equal(child.stdout.trim(), 'committed');
});
