/**
 * db-config and db-sink in a Node-RED runtime (node-red-node-test-helper): configuration checks
 * at deploy with their status texts, joining the dataflow, the shared reference-counted database
 * and its closing order; plus the settings parser and SharedDatabase on their own.
 */
import { after, afterEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ddDataflow from '../../src/nodes/dd-dataflow';
import dbConfig, { parseDatabaseSettings } from '../../src/nodes/db-config';
import dbSink from '../../src/nodes/db-sink';
import { SharedDatabase, type DatabaseConfigNode } from '../../src/nodes/db-access';
import { SqliteDatabase } from '../../src/sinks/sqlite-database';
import type { SinkDatabase } from '../../src/sinks/types';
import { errorsOf, eventually, helper, statusesOf, type FlowNode } from './dd-helper';

const NODES = [ddDataflow, dbConfig, dbSink];
const dir = mkdtempSync(join(tmpdir(), 'deltaflow-dbnodes-'));
const file = join(dir, 'nodes.sqlite');

const dataflow: FlowNode = { id: 'df', type: 'dd-dataflow', name: 'flow' };
const database: FlowNode = { id: 'db', type: 'db-config', kind: 'sqlite', filename: file };
const goodColumns = [
  {
    name: 'machine',
    type: 'text not null',
    source: 'path',
    value: 'payload.machine',
    index: true,
    key: true,
    exclude: false,
  },
  {
    name: 'status',
    type: 'text',
    source: 'js',
    value: "record.payload.type === 'started' ? 'working' : 'idle'",
    index: false,
    key: false,
    exclude: false,
  },
];
function sink(extra: Record<string, unknown> = {}): FlowNode {
  return {
    id: 'sink',
    type: 'db-sink',
    name: 'dashboard sink',
    dataflow: 'df',
    database: 'db',
    table: 'dashboard',
    mode: 'keyed',
    columns: goodColumns,
    version: '',
    wires: [[]],
    ...extra,
  };
}
const configNode = () => helper.getNode('db') as unknown as DatabaseConfigNode;

afterEach(async () => {
  await helper.unload();
});
after(async () => {
  await helper.stopServer().catch(() => undefined);
  rmSync(dir, { recursive: true, force: true });
});

test('a valid db-sink joins its dataflow and holds the database until it is closed', async () => {
  await helper.load(NODES, [dataflow, database, sink()]);
  assert.deepEqual(errorsOf('sink'), []);
  assert.equal(configNode().userCount(), 1);
  // The dataflow has no event source, so it marks its member red instead of running: proof that it joined.
  await eventually(
    () => statusesOf('sink').some((s) => s.text === 'no actyx-subscribe'),
    'the dataflow to report on its sink',
  );
  const cfg = configNode();
  await helper.unload();
  assert.equal(cfg.userCount(), 0);
});

describe('invalid configurations: error naming the problem, red status, no join, no database held', () => {
  const cases: [string, Record<string, unknown>, RegExp, string][] = [
    [
      'injection in the table name',
      { table: 'x; drop table y' },
      /^invalid table name "x; drop table y"/,
      'invalid config',
    ],
    [
      'quote in a column name',
      { columns: [{ ...goodColumns[0], name: 'a"b' }] },
      /invalid column name "a\\"b"/,
      'invalid config',
    ],
    [
      'comment in a column name',
      { columns: [{ ...goodColumns[0], name: '--' }] },
      /invalid column name "--"/,
      'invalid config',
    ],
    [
      'semicolon in an SQL type',
      { columns: [{ ...goodColumns[0], type: 'text; drop table x' }] },
      /column "machine": invalid SQL type "text; drop table x"/,
      'invalid config',
    ],
    ['no columns', { columns: [] }, /at least one column is required/, 'invalid config'],
    [
      'keyed mode without a key',
      { columns: goodColumns.map((c) => ({ ...c, key: false })) },
      /keyed mode needs at least one key column/,
      'invalid config',
    ],
    [
      'duplicate column names',
      { columns: [goodColumns[0], { ...goodColumns[1], name: 'MACHINE' }] },
      /duplicate column name "MACHINE"/,
      'invalid config',
    ],
    [
      'a bad property path',
      { columns: [{ ...goodColumns[0], value: 'payload..machine' }] },
      /column "machine": invalid property path "payload\.\.machine"/,
      'invalid config',
    ],
    [
      'a JavaScript syntax error',
      { columns: [goodColumns[0], { ...goodColumns[1], value: 'record.payload.' }] },
      /column "status": JavaScript syntax error/,
      'invalid expression',
    ],
    [
      'an empty expression',
      { columns: [goodColumns[0], { ...goodColumns[1], value: ' ' }] },
      /column "status": the JavaScript expression is empty/,
      'invalid expression',
    ],
    ['no dataflow', { dataflow: '' }, /no dataflow selected/, 'no dataflow'],
    ['no database', { database: '' }, /no database selected/, 'no database'],
  ];
  for (const [what, extra, message, status] of cases) {
    test(what, async () => {
      await helper.load(NODES, [dataflow, database, sink(extra)]);
      const errors = errorsOf('sink');
      assert.equal(errors.length, 1, String(errors));
      assert.match(errors[0], message);
      assert.deepEqual(statusesOf('sink').at(-1), { fill: 'red', shape: 'ring', text: status });
      assert.equal(configNode().userCount(), 0);
      // Not a member: the dataflow never reports on it.
      await new Promise((r) => setTimeout(r, 50));
      assert.ok(!statusesOf('sink').some((s) => s.text === 'no actyx-subscribe'));
    });
  }
});

test('two db-sinks writing one table of one database: the second is refused with a clear error', async () => {
  await helper.load(NODES, [
    dataflow,
    database,
    sink(),
    { ...sink({ table: 'DASHBOARD' }), id: 'sink2', name: 'second sink' },
  ]);
  const refused = ['sink', 'sink2'].filter((id) => errorsOf(id).length > 0);
  assert.equal(refused.length, 1);
  const [loser] = refused;
  const winner = loser === 'sink' ? 'sink2' : 'sink';
  assert.match(
    errorsOf(loser)[0],
    /table "(DASHBOARD|dashboard)" is already written by db-sink "(dashboard sink|second sink)" \((sink|sink2)\) on this database/,
  );
  assert.deepEqual(statusesOf(loser).at(-1), { fill: 'red', shape: 'ring', text: 'table in use' });
  assert.deepEqual(errorsOf(winner), []);
  assert.equal(configNode().userCount(), 1);
});

test('a misconfigured db-config is reported by the config node and by its sinks', async () => {
  await helper.load(NODES, [dataflow, { ...database, kind: 'postgres', port: '99999' }, sink()]);
  assert.ok(
    errorsOf('db').some((e) => /port must be a whole number from 1 to 65535/.test(e)),
    String(errorsOf('db')),
  );
  assert.match(errorsOf('sink')[0] ?? '', /database db-config|misconfigured: port must be/);
  assert.deepEqual(statusesOf('sink').at(-1), { fill: 'red', shape: 'ring', text: 'database config error' });
});

test('db-config closes its database only after the last user released it', async () => {
  await helper.load(NODES, [database]);
  const cfg = configNode();
  const lease = cfg.acquire();
  const spec = {
    name: 'held',
    mode: 'multiset' as const,
    columns: [{ name: 'v', type: 'text', value: { path: 'v' } }],
  };
  await lease.database.transaction((tx) => tx.ensureTable(spec));
  const events: string[] = [];
  const unloaded = helper.unload().then(() => events.push('config closed'));
  await new Promise((r) => setTimeout(r, 50));
  // Still usable while held, although the config node is closing.
  await lease.database.transaction((tx) => tx.apply(spec, [[{ v: 'late commit' }, 1, 0]]));
  events.push('released');
  await lease.release();
  await unloaded;
  assert.deepEqual(events, ['released', 'config closed']);
  await assert.rejects(
    lease.database.transaction(async () => 1),
    /closed/,
  );
});

test('SharedDatabase: a database that fails to close is reported, not swallowed', async () => {
  const reported: unknown[] = [];
  const failing: SinkDatabase = {
    kind: 'sqlite',
    label: 'SQLite failing.sqlite',
    transaction: () => Promise.reject(new Error('not used')),
    close: () => Promise.reject(new Error('disk gone')),
  };
  const shared = new SharedDatabase(
    () => failing,
    (err) => reported.push(err),
  );
  await shared.acquire().release(); // the last user: closed
  const lease = shared.acquire();
  const closing = shared.close(); // waits for the user
  await lease.release();
  await closing;
  assert.deepEqual(
    reported.map((e) => (e as Error).message),
    ['disk gone', 'disk gone'],
  );
});

test('SharedDatabase: one database per config, reopened after the last release, close waits for users', async () => {
  let opened = 0;
  const shared = new SharedDatabase(
    () => {
      opened++;
      return new SqliteDatabase({ filename: join(dir, 'shared.sqlite') });
    },
    (err) => assert.fail(`closing failed: ${String(err)}`),
  );
  const a = shared.acquire();
  const b = shared.acquire();
  assert.equal(a.database, b.database);
  assert.equal(opened, 1);
  await a.release();
  await a.release(); // idempotent
  assert.equal(shared.userCount, 1);
  await b.database.transaction(async () => undefined);
  await b.release();
  await assert.rejects(
    b.database.transaction(async () => 1),
    /closed/,
  );
  const c = shared.acquire();
  assert.equal(opened, 2);
  assert.notEqual(c.database, a.database);
  let closed = false;
  const closing = shared.close().then(() => (closed = true));
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(closed, false);
  assert.throws(() => shared.acquire(), /being closed/);
  await c.release();
  await closing;
  assert.equal(closed, true);
});

test('settings: SQLite paths relative to the user directory; PostgreSQL fields, credentials and ${VAR} in credentials', () => {
  const env = (n: string) => ({ SECRET: 's3cret', URL: 'postgres://u@h/db' })[n];
  assert.deepEqual(
    parseDatabaseSettings({ id: 'x', type: 'db-config', kind: 'sqlite', filename: '' }, {}, '/home/nr/.node-red', env)
      .settings,
    {
      kind: 'sqlite',
      filename: '/home/nr/.node-red/deltaflow.sqlite',
    },
  );
  assert.deepEqual(
    parseDatabaseSettings({ id: 'x', type: 'db-config', kind: 'sqlite', filename: 'data/a.db' }, {}, '/u', env)
      .settings,
    { kind: 'sqlite', filename: '/u/data/a.db' },
  );
  assert.deepEqual(
    parseDatabaseSettings({ id: 'x', type: 'db-config', kind: 'sqlite', filename: '/abs/a.db' }, {}, '/u', env)
      .settings,
    { kind: 'sqlite', filename: '/abs/a.db' },
  );
  const pg = parseDatabaseSettings(
    {
      id: 'x',
      type: 'db-config',
      kind: 'postgres',
      host: ' db.local ',
      port: '6432',
      database: 'plant',
      user: 'nr',
      ssl: 'on-noverify',
      schema: ' views ',
      poolSize: '2',
      connectTimeout: '3',
      statementTimeout: '90',
    },
    { password: '${SECRET}', connectionString: '${URL}' },
    '/u',
    env,
  );
  assert.deepEqual(pg.problems, []);
  assert.deepEqual(pg.settings, {
    kind: 'postgres',
    options: {
      connectionString: 'postgres://u@h/db',
      host: 'db.local',
      port: 6432,
      database: 'plant',
      user: 'nr',
      password: 's3cret',
      ssl: { rejectUnauthorized: false },
      schema: 'views',
      poolSize: 2,
      connectionTimeoutMs: 3000,
      statementTimeoutMs: 90_000,
    },
  });
  const bad = parseDatabaseSettings(
    {
      id: 'x',
      type: 'db-config',
      kind: 'postgres',
      port: 'abc',
      schema: 'views; drop',
      poolSize: '0',
      statementTimeout: '1.5',
    },
    {},
    '/u',
    env,
  );
  assert.deepEqual(bad.problems, [
    'port must be a whole number from 1 to 65535, not "abc"',
    'invalid schema "views; drop": use 1 to 63 letters, digits or underscores, not starting with a digit',
    'pool size must be a whole number from 1 to 100, not "0"',
    'statement timeout must be a whole number from 1 to 86400, not "1.5"',
  ]);
});

test('a column expression that throws on a record gives NULL and reports the column and the record', async () => {
  const { tableFromConfig } = await import('../../src/nodes/db-sink');
  const failures: [string, unknown, string][] = [];
  const node = { id: 'n', type: 'db-sink' } as unknown as Parameters<typeof tableFromConfig>[1];
  const { table } = tableFromConfig(
    {} as Parameters<typeof tableFromConfig>[0],
    node,
    {
      id: 'n',
      type: 'db-sink',
      table: 't',
      mode: 'multiset',
      columns: [{ name: 'len', type: 'integer', source: 'js', value: 'record.text.length' }],
    },
    (c, r, e) => failures.push([c, r, e instanceof Error ? e.message : String(e)]),
  );
  const fn = (table.columns[0].value as { fn: (r: unknown) => unknown }).fn;
  assert.equal(fn({ text: 'abc' }), 3);
  assert.equal(fn({ other: 1 }), null);
  assert.equal(failures.length, 1);
  assert.equal(failures[0][0], 'len');
  assert.deepEqual(failures[0][1], { other: 1 });
  assert.match(failures[0][2], /undefined/);
});

test('db-config fields given as ${VAR} are taken from the environment (PostgreSQL), and the label hides the password', async () => {
  process.env.DF_TEST_PG_HOST = 'db.example.internal';
  process.env.DF_TEST_PG_PORT = '6543';
  try {
    await helper.load(
      NODES,
      [
        {
          id: 'db',
          type: 'db-config',
          kind: 'postgres',
          host: '${DF_TEST_PG_HOST}',
          port: '${DF_TEST_PG_PORT}',
          database: 'plant',
          user: 'nr',
        },
      ],
      {
        db: { password: 'top-secret' },
      },
    );
    assert.deepEqual(errorsOf('db'), []);
    const lease = configNode().acquire();
    assert.equal(lease.database.kind, 'postgres');
    assert.equal(lease.database.label, 'PostgreSQL nr@db.example.internal:6543/plant');
    await lease.release();
  } finally {
    delete process.env.DF_TEST_PG_HOST;
    delete process.env.DF_TEST_PG_PORT;
  }
});
