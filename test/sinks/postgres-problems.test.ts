/**
 * PostgreSQL configuration problems are explained and retried: the hint names what to set (the
 * db-config field that gave the value, the connection string, or the PG* variable), for the errors
 * the driver and the server give — checked against the real server where it can give them.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { PostgresDatabase } from '../../src/sinks/postgres-database';
import { postgresProblem, settingSource } from '../../src/sinks/postgres-problems';
import { SinkDatabaseError } from '../../src/sinks/errors';

const hint = (err: unknown, options = {}, env: Record<string, string> = {}): string | undefined =>
  postgresProblem(err, options, env)?.hint;

test('where a setting comes from: the field, the connection string, the variable, or where to set it', () => {
  assert.equal(settingSource('user', { user: 'bob' }, { PGUSER: 'x' }), 'User field');
  assert.equal(settingSource('user', { connectionString: 'postgres://bob@h/db' }, {}), 'URL field');
  assert.equal(settingSource('user', {}, { DATABASE_URL: 'postgres://bob@h/db' }), 'DATABASE_URL');
  // A host field overrides DATABASE_URL (as poolConfig does), so the variable is what counts.
  assert.equal(settingSource('user', { host: 'h' }, { DATABASE_URL: 'postgres://bob@h/db', PGUSER: 'x' }), 'PGUSER');
  assert.equal(settingSource('database', { connectionString: 'postgres://bob@h' }, {}), 'PGDATABASE or Database field');
  assert.equal(settingSource('password', {}, {}), 'PGPASSWORD or Password field');
});

test('each kind of configuration problem gets a hint naming what to set, other errors none', () => {
  const noUser = { code: '28000', message: 'no PostgreSQL user name specified in startup packet' };
  assert.equal(hint(noUser), 'no user: set PGUSER or User field');
  assert.match(postgresProblem(noUser, {}, {})!.advice, /^set PGUSER or User field of the db-config/);
  assert.equal(
    hint({ code: '28000', message: 'role "bob" does not exist' }, { user: 'bob' }),
    'no role "bob" (User field)',
  );
  assert.equal(
    hint({ code: '28P01', message: 'password authentication failed for user "bob"' }, {}, { PGPASSWORD: 'x' }),
    'password refused: check PGPASSWORD',
  );
  assert.equal(
    hint({ message: 'SASL: SCRAM-SERVER-FIRST-MESSAGE: client password must be a string' }),
    'no password: set PGPASSWORD or Password field',
  );
  assert.equal(
    hint({
      code: '28000',
      message: 'no pg_hba.conf entry for host "10.0.0.1", user "bob", database "x", no encryption',
    }),
    'pg_hba.conf refuses this connection',
  );
  assert.equal(
    hint({ code: '3D000', message: 'database "plant" does not exist' }, {}, { PGDATABASE: 'plant' }),
    'no database "plant" (PGDATABASE)',
  );
  assert.equal(hint({ code: '42501', message: 'permission denied for schema public' }), 'permission denied: GRANT it');
  const refused = Object.assign(new Error('connect ECONNREFUSED 10.1.2.3:5433'), {
    code: 'ECONNREFUSED',
    address: '10.1.2.3',
    port: 5433,
  });
  assert.equal(hint(refused), 'no server at 10.1.2.3:5433');
  // localhost resolves to two addresses: the driver reports an AggregateError of both.
  assert.equal(hint(new AggregateError([refused, refused], '')), 'no server at 10.1.2.3:5433');
  assert.equal(
    hint({ code: 'ENOTFOUND', hostname: 'db.plant', message: 'getaddrinfo ENOTFOUND db.plant' }, { host: 'db.plant' }),
    'unknown host "db.plant" (Host field)',
  );
  assert.equal(
    hint(new Error('timeout exceeded when trying to connect'), { host: 'db', port: 6000 }),
    'no answer from db:6000',
  );
  assert.equal(
    hint(
      { code: 'ETIMEDOUT', message: 'no answer from the server within 62 s: it is stopped, …' },
      { host: 'db', port: 6000 },
    ),
    'no answer from db:6000',
  );
  assert.equal(
    hint({ code: '57014', message: 'canceling statement due to statement timeout' }),
    'statement timeout: see db-config',
  );
  assert.equal(
    hint({ message: 'The server does not support SSL connections' }),
    'server has no SSL: SSL field/PGSSLMODE',
  );
  // Not configuration: a data error, a serialization failure, a lost connection.
  for (const other of [
    { code: '23505', message: 'duplicate key value violates unique constraint' },
    { code: '40001', message: 'could not serialize access' },
    { code: '57014', message: 'canceling statement due to user request' },
    new Error('Connection terminated unexpectedly'),
    null,
    'text',
  ])
    assert.equal(postgresProblem(other, {}, {}), null);
});

test('the real server: no user name given is a retryable error naming PGUSER, not a stop', async () => {
  // As on a machine where neither PGUSER nor USER is set (the driver's default user is $USER).
  const saved = { PGUSER: process.env.PGUSER, DATABASE_URL: process.env.DATABASE_URL, user: pg.defaults.user };
  delete process.env.PGUSER;
  delete process.env.DATABASE_URL;
  pg.defaults.user = undefined;
  const db = new PostgresDatabase({ connectionTimeoutMs: 5000 });
  try {
    await assert.rejects(
      db.transaction(async () => undefined),
      (e: unknown) =>
        e instanceof SinkDatabaseError &&
        e.retryable &&
        e.hint === 'no user: set PGUSER or User field' &&
        e.message.includes('no PostgreSQL user name specified in startup packet'),
    );
  } finally {
    await db.close();
    if (saved.PGUSER !== undefined) process.env.PGUSER = saved.PGUSER;
    if (saved.DATABASE_URL !== undefined) process.env.DATABASE_URL = saved.DATABASE_URL;
    pg.defaults.user = saved.user;
  }
});

test('the real server: a database that does not exist is retryable, with the database named', async () => {
  const db = new PostgresDatabase({ database: 'deltaflow_no_such_database', connectionTimeoutMs: 5000 });
  try {
    await assert.rejects(
      db.transaction(async () => undefined),
      (e: unknown) =>
        e instanceof SinkDatabaseError &&
        e.retryable &&
        e.hint === 'no database "deltaflow_no_such_database" (Database field)' &&
        /CREATE DATABASE/.test(e.message),
    );
  } finally {
    await db.close();
  }
});
