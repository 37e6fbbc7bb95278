/** db-query in a Node-RED runtime: SQLite, PostgreSQL and MariaDB statements with parameters, errors, configuration problems. */
import { after, afterEach, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { uniqueName, withMariadb } from '../dataflow/support';
import dbConfig from '../../src/nodes/db-config';
import dbQuery from '../../src/nodes/db-query';
import { errorsOf, helper, statusesOf, type FlowNode } from './dd-helper';

const dir = mkdtempSync(join(tmpdir(), 'deltaflow-db-query-'));
const schema = `dbq_${process.pid}_${Date.now() % 100000}`;

afterEach(async () => {
  await helper.unload();
});
after(() => rmSync(dir, { recursive: true, force: true }));

function flow(db: FlowNode, sql = '', script = false): FlowNode[] {
  return [
    { id: 'tab', type: 'tab' },
    db,
    {
      id: 'q',
      type: 'db-query',
      z: 'tab',
      x: 0,
      y: 0,
      name: 'my query',
      database: db.id,
      sql,
      script,
      wires: [['out']],
    },
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
  assert.match((bad.msg.error as { message: string }).message, /no such table: missing/);
  assert.ok(statusesOf('q').some((s) => s.fill === 'red' && s.text === 'query failed'));
  const none = await ask({});
  assert.match((none.msg.error as { message: string }).message, /no SQL statement/);
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
    // Fields written as ${VAR}: db-query connects with the values Node-RED substituted for the
    // db-config (it read the raw flow definition before and refused the port "${PGPORT}").
    await helper.unload();
    await helper.load(
      [dbConfig, dbQuery],
      flow({ id: 'db', type: 'db-config', kind: 'postgres', host: '${PGHOST}', port: '${PGPORT}' }),
    );
    const count = { topic: `SELECT count(*)::int AS c FROM ${schema}.t` };
    const counted = await ask(count);
    assert.deepEqual(counted.msg.payload, [{ c: 2 }], JSON.stringify(counted.msg.error));
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
    /database "deltaflow_no_such_db" does not exist — create the database \(CREATE DATABASE …\) or set another \(Database field\)$/,
  );
  assert.ok(
    statusesOf('q').some((s) => s.fill === 'red' && s.text === 'no database "deltaflow_no_such_db" (Database field)'),
    JSON.stringify(statusesOf('q')),
  );
});

/** A db-query fed `SELECT …; DROP TABLE t` in msg.topic (a topic built from outside input). */
async function injection(table: string, exists: () => Promise<boolean>): Promise<void> {
  const refused = await ask({ topic: `SELECT count(*) AS n FROM ${table}; DROP TABLE ${table}` });
  assert.equal(refused.ok, false, `answered ${JSON.stringify(refused.msg.payload)}`);
  assert.match(
    (refused.msg.error as { message: string }).message,
    /refused: the SQL holds more than one statement, and db-query runs exactly one per message/,
  );
  assert.ok(statusesOf('q').some((s) => s.fill === 'red' && s.text === 'refused: several statements'));
  assert.equal(await exists(), true, 'the table was not dropped');
  // One statement with a trailing semicolon is one statement.
  const one = await ask({ topic: `SELECT count(*) AS n FROM ${table};` });
  assert.equal(one.ok, true);
  assert.equal(Number((one.msg.payload as { n: unknown }[])[0]?.n), 2);
}

test('SQLite: several statements in msg.topic are refused and none runs', async () => {
  const file = join(dir, 'injection.sqlite');
  await helper.load([dbConfig, dbQuery], flow({ id: 'db', type: 'db-config', kind: 'sqlite', filename: file }));
  assert.equal((await ask({ topic: 'CREATE TABLE t (k TEXT)' })).ok, true);
  assert.equal((await ask({ topic: 'INSERT INTO t VALUES (?), (?)', params: ['a', 'b'] })).ok, true);
  await injection('t', async () => (await ask({ topic: "SELECT name FROM sqlite_master WHERE name = 't'" })).ok);
  const listed = await ask({ topic: "SELECT name FROM sqlite_master WHERE name = 't'" });
  assert.equal((listed.msg.payload as unknown[]).length, 1);
});

test('PostgreSQL: several statements in msg.topic are refused and none runs (also without parameters)', async () => {
  const client = new pg.Client();
  await client.connect();
  const s = `${schema}_inj`;
  await client.query(`CREATE SCHEMA ${s}; CREATE TABLE ${s}.t (k text); INSERT INTO ${s}.t VALUES ('a'), ('b')`);
  try {
    await helper.load([dbConfig, dbQuery], flow({ id: 'db', type: 'db-config', kind: 'postgres' }));
    await injection(
      `${s}.t`,
      async () => (await client.query(`SELECT to_regclass('${s}.t') IS NOT NULL AS e`)).rows[0].e === true,
    );
    const withParams = await ask({ topic: `SELECT $1::int; DROP TABLE ${s}.t`, params: [1] });
    assert.equal(withParams.ok, false);
    assert.equal((await client.query(`SELECT count(*)::int AS n FROM ${s}.t`)).rows[0].n, 2);
  } finally {
    await client.query(`DROP SCHEMA ${s} CASCADE`);
    await client.end();
  }
});

for (const kind of ['sqlite', 'postgres', 'mariadb'] as const) {
  test(`${kind}: the script opt-in runs the node's own SQL as several statements, without parameters`, async () => {
    const client = kind === 'postgres' ? new pg.Client() : null;
    await client?.connect();
    const s = `${schema}_scr`;
    const prefix = kind === 'postgres' ? `${s}.` : kind === 'mariadb' ? `${s}_` : '';
    await client?.query(`CREATE SCHEMA ${s}`);
    const db: FlowNode =
      kind === 'sqlite'
        ? { id: 'db', type: 'db-config', kind: 'sqlite', filename: join(dir, 'script.sqlite') }
        : { id: 'db', type: 'db-config', kind };
    try {
      const sql = `CREATE TABLE ${prefix}a (x integer); INSERT INTO ${prefix}a VALUES (1); INSERT INTO ${prefix}a VALUES (2), (3)`;
      await helper.load([dbConfig, dbQuery], flow(db, sql, true));
      const ran = await ask({ topic: 'DROP TABLE nothing' });
      assert.equal(ran.ok, true, JSON.stringify(ran.msg.error));
      assert.deepEqual(ran.msg.payload, { changes: 3 });
      const withParams = await ask({ params: [1] });
      assert.match((withParams.msg.error as { message: string }).message, /a script takes no parameters/);
      await helper.unload();
      await helper.load([dbConfig, dbQuery], flow(db, '', true));
      assert.ok(
        errorsOf('q').some((e) => /script is ticked but the SQL field is empty/.test(e)),
        JSON.stringify(errorsOf('q')),
      );
    } finally {
      await client?.query(`DROP SCHEMA ${s} CASCADE`);
      await client?.end();
      if (kind === 'mariadb') await withMariadb((c) => c.query(`DROP TABLE IF EXISTS ${prefix}a`));
    }
  });
}

test('MariaDB: ? parameters as a prepared statement, several statements refused, connection from ${VAR} fields and MYSQL_*', async () => {
  const t = uniqueName('dbq');
  const exists = (): Promise<boolean> =>
    withMariadb(async (c) => {
      const [r] = await c.query(
        'SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?',
        [t],
      );
      return (r as unknown[]).length === 1;
    });
  try {
    await helper.load(
      [dbConfig, dbQuery],
      // Host and port as ${VAR} (Node-RED substitutes them); user, password and database from MYSQL_*.
      flow({ id: 'db', type: 'db-config', kind: 'mariadb', host: '${MYSQL_HOST}', port: '${MYSQL_PORT}' }),
    );
    const created = await ask({ topic: `CREATE TABLE ${t} (k varchar(100), n int)` });
    assert.deepEqual(created.msg.payload, { changes: 0 }, JSON.stringify(created.msg.error));
    assert.deepEqual(
      (await ask({ topic: `INSERT INTO ${t} VALUES (?, ?), (?, ?)`, params: ['a', 1, "b'; DROP TABLE t; --", 2] })).msg
        .payload,
      { changes: 2 },
    );
    assert.deepEqual((await ask({ topic: `SELECT k, n FROM ${t} WHERE n >= ? ORDER BY n`, params: [1] })).msg.payload, [
      { k: 'a', n: 1 },
      { k: "b'; DROP TABLE t; --", n: 2 },
    ]);
    await injection(t, exists);
    const withParams = await ask({ topic: `SELECT ?; DROP TABLE ${t}`, params: [1] });
    assert.match(
      (withParams.msg.error as { message: string }).message,
      /refused: the SQL holds more than one statement/,
    );
    assert.equal(await exists(), true);
    const named = await ask({ topic: `SELECT * FROM ${t} WHERE n = :n`, params: { n: 1 } });
    assert.match((named.msg.error as { message: string }).message, /MariaDB takes positional parameters/);
    // A syntax error that is not a second statement is reported as it is.
    const typo = await ask({ topic: `SELEC 1` });
    assert.match((typo.msg.error as { message: string }).message, /You have an error in your SQL syntax/);
  } finally {
    await withMariadb((c) => c.query(`DROP TABLE IF EXISTS ${t}`));
  }
});

test('MariaDB: a database that does not exist gives a status naming it and the field', async () => {
  await helper.load(
    [dbConfig, dbQuery],
    flow({ id: 'db', type: 'db-config', kind: 'mariadb', database: 'deltaflow_no_such_db' }, 'SELECT 1'),
  );
  const failed = await ask({});
  assert.equal(failed.ok, false);
  assert.match(
    (failed.msg.error as { message: string }).message,
    /Unknown database 'deltaflow_no_such_db' — create the database \(CREATE DATABASE …\) or set another \(Database field\)$/,
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
    errorsOf('q').some((e) => /^no database selected/.test(e)),
    JSON.stringify(errorsOf('q')),
  );
  assert.ok(statusesOf('q').some((s) => s.fill === 'red' && s.text === 'invalid config'));
});
