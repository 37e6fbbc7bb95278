/** db-query in a Node-RED runtime: SQLite and PostgreSQL statements with parameters, errors, configuration problems. */
import { after, afterEach, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import dbConfig from '../../src/nodes/db-config';
import dbQuery from '../../src/nodes/db-query';
import { errorsOf, helper, statusesOf, type FlowNode } from './dd-helper';

const dir = mkdtempSync(join(tmpdir(), 'deltaflow-db-query-'));
const schema = `dbq_${process.pid}_${Date.now() % 100000}`;

afterEach(async () => {
  await helper.unload();
});
after(() => rmSync(dir, { recursive: true, force: true }));

function flow(db: FlowNode, sql = ''): FlowNode[] {
  return [
    { id: 'tab', type: 'tab' },
    db,
    { id: 'q', type: 'db-query', z: 'tab', x: 0, y: 0, name: 'my query', database: db.id, sql, wires: [['out']] },
    { id: 'out', type: 'helper', z: 'tab', x: 0, y: 0 },
    { id: 'catch', type: 'catch', z: 'tab', x: 0, y: 0, scope: null, uncaught: false, wires: [['caught']] },
    { id: 'caught', type: 'helper', z: 'tab', x: 0, y: 0 },
  ];
}

/** Sends `msg` into the query node; resolves with what came out (or what the Catch node got). */
function ask(msg: Record<string, unknown>): Promise<{ ok: boolean; msg: Record<string, unknown> }> {
  return new Promise((resolve) => {
    helper.getNode('out').on('input', (m) => resolve({ ok: true, msg: m }));
    helper.getNode('caught').on('input', (m) => resolve({ ok: false, msg: m }));
    helper.getNode('q').receive(msg);
  });
}

test('SQLite: statements from msg.topic with positional and named parameters', async () => {
  await helper.load(
    [dbConfig, dbQuery],
    flow({ id: 'db', type: 'db-config', kind: 'sqlite', filename: join(dir, 'q.sqlite') }),
  );
  assert.deepEqual((await ask({ topic: 'CREATE TABLE t (k TEXT PRIMARY KEY, n INTEGER)' })).msg.payload, {
    changes: 0,
  });
  assert.deepEqual(
    (await ask({ topic: 'INSERT INTO t VALUES (?, ?), (?, ?)', params: ['a', 1, "b'; DROP TABLE t; --", 2] })).msg
      .payload,
    { changes: 2 },
  );
  const rows = await ask({ topic: 'SELECT k, n FROM t WHERE n >= :min ORDER BY n', params: { min: 1 }, keep: 'me' });
  assert.deepEqual(rows.msg.payload, [
    { k: 'a', n: 1 },
    { k: "b'; DROP TABLE t; --", n: 2 },
  ]);
  assert.equal(rows.msg.keep, 'me', 'other message properties pass through');
  assert.ok(statusesOf('q').some((s) => s.text === '2 rows'));

  const bad = await ask({ topic: 'SELECT * FROM missing' });
  assert.equal(bad.ok, false);
  assert.match((bad.msg.error as { message: string }).message, /my query: no such table: missing/);
  assert.ok(statusesOf('q').some((s) => s.fill === 'red' && s.text === 'query failed'));
  const none = await ask({});
  assert.match((none.msg.error as { message: string }).message, /my query: no SQL statement/);
});

test('PostgreSQL: the configured statement with $1 parameters', async () => {
  const client = new pg.Client();
  await client.connect();
  await client.query(
    `CREATE SCHEMA ${schema}; CREATE TABLE ${schema}.t (k text, n int); INSERT INTO ${schema}.t VALUES ('x', 1), ('y', 2)`,
  );
  try {
    await helper.load(
      [dbConfig, dbQuery],
      flow({ id: 'db', type: 'db-config', kind: 'postgres' }, `SELECT k, n FROM ${schema}.t WHERE n > $1 ORDER BY k`),
    );
    assert.deepEqual((await ask({ params: [0] })).msg.payload, [
      { k: 'x', n: 1 },
      { k: 'y', n: 2 },
    ]);
    const named = await ask({ params: { n: 1 } });
    assert.match((named.msg.error as { message: string }).message, /PostgreSQL takes positional parameters/);
  } finally {
    await client.query(`DROP SCHEMA ${schema} CASCADE`);
    await client.end();
  }
});

test('PostgreSQL: a database that does not exist gives a status naming it and the field', async () => {
  await helper.load(
    [dbConfig, dbQuery],
    flow({ id: 'db', type: 'db-config', kind: 'postgres', database: 'deltaflow_no_such_db' }, 'SELECT 1'),
  );
  const failed = await ask({});
  assert.equal(failed.ok, false);
  assert.match(
    (failed.msg.error as { message: string }).message,
    /my query: database "deltaflow_no_such_db" does not exist — create the database \(CREATE DATABASE …\) or set another \(Database field\)$/,
  );
  assert.ok(
    statusesOf('q').some((s) => s.fill === 'red' && s.text === 'no database "deltaflow_no_such_db" (Database field)'),
    JSON.stringify(statusesOf('q')),
  );
});

test('without a database the node reports it at deploy and for every message', async () => {
  await helper.load(
    [dbConfig, dbQuery],
    [
      { id: 'tab', type: 'tab' },
      { id: 'q', type: 'db-query', z: 'tab', x: 0, y: 0, name: 'my query', database: '', sql: 'SELECT 1', wires: [[]] },
    ],
  );
  assert.ok(
    errorsOf('q').some((e) => /^my query: no database selected/.test(e)),
    JSON.stringify(errorsOf('q')),
  );
  assert.ok(statusesOf('q').some((s) => s.fill === 'red' && s.text === 'invalid config'));
});
