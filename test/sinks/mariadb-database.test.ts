/**
 * What only the MariaDB / MySQL sink has, against the real MariaDB of the MYSQL_* environment (the
 * test launcher starts one when none is given): the type mapping and value conversions, byte-exact
 * text keys, DDL that would commit rows early, statements bounded by max_allowed_packet, lost and
 * hanging connections, lock waits and deadlocks, and the connection settings.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { join } from 'node:path';
import mysql from 'mysql2/promise';
import type { ColumnSpec, TableSpec } from '../../src/sinks/types';
import { MariadbDatabase } from '../../src/sinks/mariadb-database';
import {
  driverConfig,
  isRetryableMariadbError,
  MariadbConnection,
  mariadbTarget,
  type MariadbOptions,
} from '../../src/sinks/mariadb-connection';
import { mariadbColumnType, utcDatetime } from '../../src/sinks/mariadb-types';
import { SinkDatabaseError } from '../../src/sinks/errors';
import { mariadbDrop, mariadbSettings, uniqueName, withMariadb } from '../dataflow/support';

const created: string[] = [];
after(() => mariadbDrop(created));

const col = (name: string, type: string, path: string, extra: Partial<ColumnSpec> = {}): ColumnSpec => ({
  name,
  type,
  value: { path },
  ...extra,
});
const rec = (v: unknown, diff: number) => [v, diff, 0] as [never, number, number];
const table = (mode: 'multiset' | 'keyed', columns: ColumnSpec[]): TableSpec => {
  const name = uniqueName(mode === 'keyed' ? 'mk' : 'mm');
  created.push(name);
  return { name, mode, columns };
};

/**
 * A TCP proxy to the test server that can stop forwarding (a server that hangs) or cut every
 * connection; `upstreamPorts` are the local ports of its connections to the server (the server's
 * PROCESSLIST shows them as HOST `127.0.0.1:<port>`).
 */
async function proxy(): Promise<{
  port: number;
  upstreamPorts(): Set<number>;
  freeze(): void;
  cut(): void;
  close(): Promise<void>;
}> {
  const settings = mariadbSettings();
  let frozen = false;
  const sockets = new Set<net.Socket>();
  const upstreams = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect({ host: settings.host, port: Number(settings.port) });
    upstreams.add(upstream);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => undefined);
      s.on('close', () => {
        sockets.delete(s);
        upstreams.delete(s);
      });
    }
    client.on('data', (d) => frozen || upstream.write(d));
    upstream.on('data', (d) => frozen || client.write(d));
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    upstreamPorts: () => new Set([...upstreams].map((u) => u.localPort as number)),
    freeze: () => void (frozen = true),
    cut: () => {
      for (const s of sockets) s.destroy();
    },
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

/** KILLs, on the server, the connections that come through `via`. */
async function killThrough(via: Awaited<ReturnType<typeof proxy>>): Promise<number> {
  return withMariadb(async (c) => {
    const [r] = await c.query('SELECT ID AS id, HOST AS host FROM information_schema.PROCESSLIST');
    const ports = via.upstreamPorts();
    const ids = (r as { id: number; host: string }[])
      .filter((x) => ports.has(Number(/:(\d+)$/.exec(x.host)?.[1])))
      .map((x) => x.id);
    for (const id of ids) await c.query(`KILL ${Number(id)}`);
    return ids.length;
  });
}

test('types written as for PostgreSQL or SQLite are created as their MariaDB equivalents, and values round-trip', async () => {
  assert.equal(mariadbColumnType('text not null', 'plain'), 'LONGTEXT not null');
  assert.equal(mariadbColumnType('text not null', 'key'), 'VARCHAR(255) not null');
  assert.equal(mariadbColumnType('text', 'key', 4), 'VARCHAR(192)');
  assert.equal(mariadbColumnType('timestamp(3) with time zone', 'plain'), 'DATETIME(3)');
  assert.equal(mariadbColumnType('mediumtext', 'plain'), 'mediumtext');
  assert.equal(utcDatetime('2024-05-06T09:27:00.123456+02:00'), '2024-05-06 07:27:00.123456');
  assert.equal(utcDatetime('2024-05-06T09:27:00Z'), '2024-05-06 09:27:00');
  const spec = table('keyed', [
    col('id', 'text not null', 'id', { key: true }),
    col('t_text', 'text', 't'),
    col('t_varchar', 'varchar', 't'),
    col('t_varchar40', 'varchar(40)', 't'),
    col('t_tz', 'timestamptz', 'ts'),
    col('t_ts', 'timestamp without time zone', 'ts'),
    col('t_ts3', 'timestamp(3)', 'ts'),
    col('t_date', 'date', 'ts'),
    col('t_json', 'json', 'doc'),
    col('t_jsonb', 'jsonb', 'doc'),
    col('t_real', 'real', 'x'),
    col('t_double', 'double precision', 'x'),
    col('t_float8', 'float8', 'x'),
    col('t_int', 'integer', 'n'),
    col('t_bigint', 'bigint', 'big'),
    col('t_numeric', 'numeric(12, 2)', 'x'),
    col('t_bool', 'boolean', 'b'),
    col('t_uuid', 'uuid', 'u'),
    col('t_bytea', 'bytea', 't'),
    col('t_native', 'datetime(3)', 'ts'),
    col('t_num_text', 'text', 'n'),
  ]);
  const db = new MariadbDatabase();
  try {
    const row = {
      id: 'a',
      t: 'é😀 "quoted"',
      ts: '2024-05-06T09:27:00.123+02:00',
      doc: { k: [1, 'x'] },
      x: 31.25,
      n: 42,
      big: 9007199254740993n,
      b: true,
      u: '0e3b1c9e-6c1d-4a5e-9a5b-1d2c3e4f5a6b',
    };
    await db.transaction(async (tx) => {
      await tx.ensureTable(spec);
      await tx.apply(spec, [rec(row, 1)]);
    });
    await withMariadb(async (c) => {
      const [types] = await c.query(
        'SELECT COLUMN_NAME AS name, COLUMN_TYPE AS type FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION',
        [spec.name],
      );
      assert.deepEqual(Object.fromEntries((types as { name: string; type: string }[]).map((r) => [r.name, r.type])), {
        id: 'varchar(255)',
        t_text: 'longtext',
        t_varchar: 'longtext',
        t_varchar40: 'varchar(40)',
        t_tz: 'datetime(6)',
        t_ts: 'datetime(6)',
        t_ts3: 'datetime(3)',
        t_date: 'date',
        t_json: 'longtext',
        t_jsonb: 'longtext',
        t_real: 'double',
        t_double: 'double',
        t_float8: 'double',
        t_int: 'int(11)',
        t_bigint: 'bigint(20)',
        t_numeric: 'decimal(12,2)',
        t_bool: 'tinyint(1)',
        t_uuid: 'char(36)',
        t_bytea: 'longblob',
        t_native: 'datetime(3)',
        t_num_text: 'longtext',
      });
      const [rows] = await c.query(
        `SELECT t_text, t_varchar40, CAST(t_tz AS CHAR) AS tz, CAST(t_ts3 AS CHAR) AS ts3, CAST(t_date AS CHAR) AS d, t_json, t_real, t_numeric, CAST(t_bigint AS CHAR) AS big, t_bool, t_uuid, CAST(t_bytea AS CHAR) AS bytes, CAST(t_native AS CHAR) AS native, t_num_text FROM \`${spec.name}\``,
      );
      const r = (rows as Record<string, unknown>[])[0] as Record<string, unknown>;
      assert.equal(r.t_text, row.t);
      assert.equal(r.t_varchar40, row.t);
      assert.equal(r.tz, '2024-05-06 07:27:00.123000', 'timestamps are stored in UTC');
      assert.equal(r.ts3, '2024-05-06 07:27:00.123');
      assert.equal(r.d, '2024-05-06');
      assert.deepEqual(typeof r.t_json === 'string' ? JSON.parse(r.t_json) : r.t_json, row.doc);
      assert.equal(r.t_real, 31.25);
      assert.equal(r.t_numeric, '31.25');
      assert.equal(r.big, '9007199254740993');
      assert.equal(r.t_bool, 1);
      assert.equal(r.t_uuid, row.u);
      assert.equal(r.bytes, row.t);
      assert.equal(r.native, '2024-05-06 07:27:00.123');
      assert.equal(r.t_num_text, '42', 'a number in a text column is stored as its text');
    });
    // The stored row read back for `previous` (its retraction is not in the batch: with a retention
    // window, replaceStored, a new row replaces the stored one; without, it would be a second row).
    const [change] = await db.transaction((tx) =>
      tx.apply(spec, [rec({ ...row, t: 'next' }, 1)], true, { replaceStored: true }),
    );
    assert.equal(change?.op, 'update');
    assert.equal(change?.previous?.t_tz, '2024-05-06T07:27:00.123Z');
    assert.equal(change?.previous?.t_bigint, '9007199254740993');
    // A non-JSON text in a JSON column is refused by the server, not stored.
    await assert.rejects(
      db.transaction((tx) => tx.apply(spec, [rec({ ...row, id: 'b', doc: 'not json' }, 1)])),
      (e: unknown) => e instanceof SinkDatabaseError && !e.retryable && e.message.includes(spec.name),
    );
  } finally {
    await db.close();
  }
});

test('text compares byte for byte: a, A and "a " are three keys; a multiset delete removes exactly its rows', async () => {
  const keyed = table('keyed', [col('k', 'text', 'k', { key: true }), col('v', 'integer', 'v')]);
  const multi = table('multiset', [col('s', 'text', 's', { index: true }), col('n', 'text', 'n')]);
  const db = new MariadbDatabase();
  try {
    await db.transaction(async (tx) => {
      await tx.ensureTable(keyed);
      await tx.ensureTable(multi);
      const changes = await tx.apply(keyed, [
        rec({ k: 'a', v: 1 }, 1),
        rec({ k: 'A', v: 2 }, 1),
        rec({ k: 'a ', v: 3 }, 1),
      ]);
      assert.deepEqual(
        changes.map((c) => c.op),
        ['insert', 'insert', 'insert'],
      );
      await tx.apply(multi, [
        rec({ s: 'x', n: '1' }, 1),
        rec({ s: 'x ', n: '1' }, 1),
        rec({ s: 'X', n: '1' }, 1),
        rec({ s: 'x', n: '1.0' }, 1),
        rec({ s: 'x', n: 1 }, 1),
      ]);
    });
    const deleted = await db.transaction((tx) => tx.apply(multi, [rec({ s: 'x', n: 1 }, -2)]));
    assert.deepEqual(
      deleted.map((c) => c.op),
      ['delete', 'delete'],
      'the number 1 is the text "1": both copies, not "1.0"',
    );
    await withMariadb(async (c) => {
      const [k] = await c.query(`SELECT k, v FROM \`${keyed.name}\` ORDER BY v`);
      assert.deepEqual(
        (k as { k: string; v: number }[]).map((r) => [r.k, r.v]),
        [
          ['a', 1],
          ['A', 2],
          ['a ', 3],
        ],
      );
      const [m] = await c.query(`SELECT s, n FROM \`${multi.name}\` ORDER BY s, n`);
      assert.deepEqual(
        (m as { s: string; n: string }[]).map((r) => [r.s, r.n]),
        [
          ['X', '1'],
          ['x', '1.0'],
          ['x ', '1'],
        ],
      );
    });
  } finally {
    await db.close();
  }
});

test('DDL after rows were written in a transaction is refused before it runs: nothing is committed', async () => {
  const spec = table('multiset', [col('v', 'text', 'v')]);
  const later = table('multiset', [col('v', 'text', 'v')]);
  const db = new MariadbDatabase();
  try {
    await db.transaction((tx) => tx.ensureTable(spec));
    await assert.rejects(
      db.transaction(async (tx) => {
        await tx.apply(spec, [rec({ v: 'early' }, 1)]);
        await tx.writeState(spec, { offsets: { s: 1 }, fingerprint: 'f', watermark: 1 });
        await tx.ensureTable(later);
      }),
      /DDL after rows of table .* were written in the same transaction/,
    );
    await withMariadb(async (c) => {
      const [rows] = await c.query(`SELECT v FROM \`${spec.name}\``);
      assert.deepEqual(rows, [], 'the rows were rolled back, not committed by a CREATE TABLE');
      const [tables] = await c.query(
        'SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?',
        [later.name],
      );
      assert.deepEqual(tables, []);
    });
    assert.deepEqual((await db.transaction((tx) => tx.readState(spec))).offsets, {});
  } finally {
    await db.close();
  }
});

test('autocommit off: no START TRANSACTION round trip, yet the writes stay invisible until COMMIT and a failure rolls all back', async () => {
  // The sink's session runs with autocommit off (MariadbConnection.open, transactional): its first
  // statement starts the transaction. Every statement the sink sends is recorded here.
  const spec = table('multiset', [col('v', 'text', 'v')]);
  const db = new MariadbDatabase();
  const sent: string[] = [];
  const query = MariadbConnection.prototype.query;
  MariadbConnection.prototype.query = function (this: MariadbConnection, sql: string, params?: readonly unknown[]) {
    sent.push(sql);
    return query.call(this, sql, params);
  };
  const count = (): Promise<number> =>
    withMariadb(async (c) => {
      const [rows] = await c.query(`SELECT count(*) AS n FROM \`${spec.name}\``);
      return Number((rows as { n: number }[])[0]?.n);
    });
  try {
    await db.transaction((tx) => tx.ensureTable(spec));
    await db.transaction(async (tx) => {
      await tx.apply(spec, [rec({ v: 'one' }, 1)], false);
      await tx.writeState(spec, { offsets: { s: 1 }, fingerprint: 'f', watermark: 1 });
      await tx.readState(spec); // waits for the queued writes
      assert.equal(await count(), 0, 'written, not yet committed: invisible to another session');
    });
    assert.equal(await count(), 1);
    await assert.rejects(
      db.transaction(async (tx) => {
        await tx.apply(spec, [rec({ v: 'two' }, 1)], false);
        await tx.writeState(spec, { offsets: { s: 2 }, fingerprint: 'f', watermark: 2 });
        await tx.readState(spec);
        throw new Error('the flow failed');
      }),
      /the flow failed/,
    );
    assert.equal(await count(), 1, 'rolled back');
    assert.deepEqual((await db.transaction((tx) => tx.readState(spec))).offsets, { s: 1 });
    assert.ok(sent.includes('COMMIT') && sent.includes('ROLLBACK'), sent.join('\n'));
    assert.ok(!sent.some((s) => /START TRANSACTION|^\s*BEGIN/i.test(s)), 'no START TRANSACTION sent');
  } finally {
    MariadbConnection.prototype.query = query;
    await db.close();
  }
});

test('a queued write that fails is never committed: the commit fails naming its table, none of the transaction stays', async () => {
  // The writes of a transaction are queued (mariadb-database.ts, Pipeline): the failure of one
  // (a value too long for varchar(4) in strict mode) surfaces only at the next awaited statement,
  // here the COMMIT (the tables' column types and state are known from the first transaction, so
  // nothing is read in between), which must then not be sent.
  const good = table('multiset', [col('v', 'text', 'v')]);
  const bad = table('multiset', [col('v', 'varchar(4)', 'v')]);
  const db = new MariadbDatabase();
  const count = (name: string): Promise<number> =>
    withMariadb(async (c) => {
      const [rows] = await c.query(`SELECT count(*) AS n FROM \`${name}\``);
      return Number((rows as { n: number }[])[0]?.n);
    });
  try {
    await db.transaction(async (tx) => {
      await tx.ensureTable(good);
      await tx.ensureTable(bad);
    });
    await db.transaction(async (tx) => {
      for (const t of [good, bad]) {
        await tx.apply(t, [rec({ v: 'one' }, 1)], false);
        await tx.writeState(t, { offsets: { s: 1 }, fingerprint: 'f', watermark: 1 });
      }
    });
    const many = Array.from({ length: 1200 }, (_v, i) => rec({ v: `row ${i}` }, 1));
    await assert.rejects(
      db.transaction(async (tx) => {
        await tx.apply(good, many, false);
        await tx.writeState(good, { offsets: { s: 2 }, fingerprint: 'f', watermark: 2 });
        await tx.apply(bad, [rec({ v: 'ok' }, 1), rec({ v: 'far too long' }, 1)], false);
        await tx.writeState(bad, { offsets: { s: 2 }, fingerprint: 'f', watermark: 2 });
      }),
      (e: unknown) => e instanceof SinkDatabaseError && e.message.includes(bad.name) && /too long/i.test(e.message),
    );
    for (const t of [good, bad]) {
      assert.equal(await count(t.name), 1, `${t.name}: nothing of the failed transaction committed`);
      assert.deepEqual((await db.transaction((tx) => tx.readState(t))).offsets, { s: 1 });
    }
    // The connection serves the next transaction.
    await db.transaction(async (tx) => {
      await tx.apply(good, [rec({ v: 'next' }, 1)], false);
      await tx.writeState(good, { offsets: { s: 3 }, fingerprint: 'f', watermark: 3 });
    });
    assert.equal(await count(good.name), 2);
    assert.deepEqual((await db.transaction((tx) => tx.readState(good))).offsets, { s: 3 });
  } finally {
    await db.close();
  }
});

test('a batch larger than max_allowed_packet is split into statements that fit', async () => {
  const spec = table('multiset', [col('i', 'integer', 'i'), col('blob', 'text', 'b')]);
  const db = new MariadbDatabase();
  try {
    const packet = await withMariadb(async (c) => {
      const [r] = await c.query('SELECT @@max_allowed_packet AS p');
      return Number((r as { p: number }[])[0]?.p);
    });
    // Rows of 1 MB each, together 1.5 packets: one 500-row statement would not be accepted.
    const size = 1 << 20;
    const count = Math.ceil((1.5 * packet) / size);
    const batch = Array.from({ length: count }, (_v, i) => rec({ i, b: String(i % 10).repeat(size) }, 1));
    await db.transaction(async (tx) => {
      await tx.ensureTable(spec);
      await tx.apply(spec, batch, false);
    });
    await withMariadb(async (c) => {
      const [r] = await c.query(`SELECT count(*) AS n, sum(length(\`blob\`)) AS bytes FROM \`${spec.name}\``);
      const row = (r as { n: number; bytes: string }[])[0];
      assert.equal(Number(row?.n), count);
      assert.equal(Number(row?.bytes), count * size);
    });
  } finally {
    await db.close();
  }
});

test('an idle connection killed by the server is reported and replaced; one cut inside a transaction fails it retryably; a hanging server times out', async () => {
  const spec = table('multiset', [col('v', 'text', 'v')]);
  const via = await proxy();
  const idleErrors: string[] = [];
  const db = new MariadbDatabase({
    host: '127.0.0.1',
    port: via.port,
    statementTimeoutMs: 1500,
    onIdleError: (e) => idleErrors.push(e.message),
    idleCloseMs: 1000,
  });
  try {
    // Unused for longer than idleCloseMs, the connection is closed (quietly); the next transaction opens one.
    await db.transaction((tx) => tx.ensureTable(spec));
    for (let i = 0; i < 150 && via.upstreamPorts().size > 0; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(via.upstreamPorts().size, 0, 'the idle connection was closed');
    await db.transaction((tx) => tx.readState(spec));
    assert.equal(await killThrough(via), 1, 'the sink holds one connection');
    for (let i = 0; i < 100 && idleErrors.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(idleErrors.length, 1, 'the lost idle connection is reported (an error event with a listener)');
    await db.transaction((tx) => tx.apply(spec, [rec({ v: 'after kill' }, 1)]));

    // Cut while a transaction is open: it fails with a retryable error; nothing of it is committed.
    await assert.rejects(
      db.transaction(async (tx) => {
        await tx.apply(spec, [rec({ v: 'lost' }, 1)]);
        via.cut();
        await tx.writeState(spec, { offsets: { s: 1 }, fingerprint: 'f', watermark: 1 });
        await tx.readState(spec);
      }),
      (e: unknown) => e instanceof SinkDatabaseError && e.retryable,
    );
    await db.transaction((tx) => tx.apply(spec, [rec({ v: 'after cut' }, 1)]));

    // A server that stops answering: the statement gives up after its timeout, retryably.
    via.freeze();
    const started = Date.now();
    await assert.rejects(
      db.transaction((tx) => tx.apply(spec, [rec({ v: 'hanging' }, 1)])),
      (e: unknown) =>
        e instanceof SinkDatabaseError &&
        e.retryable &&
        /no answer from the server within 4 s/.test(e.message) &&
        e.hint === `no answer from 127.0.0.1:${via.port}`,
    );
    assert.ok(Date.now() - started < 10_000);
    await withMariadb(async (c) => {
      const [rows] = await c.query(`SELECT v FROM \`${spec.name}\` ORDER BY v`);
      assert.deepEqual(
        (rows as { v: string }[]).map((r) => r.v),
        ['after cut', 'after kill'],
      );
    });
    assert.equal(idleErrors.length, 1);
  } finally {
    await db.close();
    await via.close();
  }
});

test('a lock held by another session fails the commit retryably (1205); a real deadlock (1213) counts as retryable too', async () => {
  const spec = table('keyed', [col('k', 'integer', 'k', { key: true }), col('v', 'text', 'v')]);
  const db = new MariadbDatabase({ lockTimeoutMs: 1000 });
  const a = await mysql.createConnection(mariadbSettings());
  const b = await mysql.createConnection(mariadbSettings());
  try {
    await db.transaction(async (tx) => {
      await tx.ensureTable(spec);
      await tx.apply(spec, [rec({ k: 1, v: 'x' }, 1), rec({ k: 2, v: 'y' }, 1)]);
    });
    await a.query('BEGIN');
    await a.query(`SELECT * FROM \`${spec.name}\` WHERE k = 1 FOR UPDATE`);
    await assert.rejects(
      db.transaction((tx) => tx.apply(spec, [rec({ k: 1, v: 'x' }, -1), rec({ k: 1, v: 'z' }, 1)])),
      (e: unknown) =>
        e instanceof SinkDatabaseError &&
        e.retryable &&
        e.message.includes(spec.name) &&
        /Lock wait timeout/i.test(e.message),
    );
    await a.query('ROLLBACK');
    await db.transaction((tx) => tx.apply(spec, [rec({ k: 1, v: 'x' }, -1), rec({ k: 1, v: 'z' }, 1)]));

    // Two sessions locking two rows in opposite order: InnoDB picks a victim with error 1213.
    await a.query('BEGIN');
    await b.query('BEGIN');
    await a.query(`UPDATE \`${spec.name}\` SET v = 'a' WHERE k = 1`);
    await b.query(`UPDATE \`${spec.name}\` SET v = 'b' WHERE k = 2`);
    const results = await Promise.allSettled([
      a.query(`UPDATE \`${spec.name}\` SET v = 'a' WHERE k = 2`),
      b.query(`UPDATE \`${spec.name}\` SET v = 'b' WHERE k = 1`),
    ]);
    const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    assert.equal(failed.length, 1);
    assert.equal((failed[0]?.reason as { errno?: number }).errno, 1213);
    assert.ok(isRetryableMariadbError(failed[0]?.reason));
    await a.query('ROLLBACK');
    await b.query('ROLLBACK');
  } finally {
    await a.end();
    await b.end();
    await db.close();
  }
});

test('connection settings: fields over the URL over MYSQL_*; the label never holds the password; errors are clear', async () => {
  const saved = { ...process.env };
  try {
    for (const k of Object.keys(process.env)) if (/^(MYSQL_|MARIADB_URL)/.test(k)) delete process.env[k];
    const fromUrl = new MariadbDatabase({ url: 'mysql://u%40x:se%2Fcret@db.example:3307/prod?ssl-mode=REQUIRED' });
    assert.equal(fromUrl.label, 'MariaDB u@x@db.example:3307/prod');
    assert.ok(!fromUrl.label.includes('cret'));
    await fromUrl.close();
    assert.deepEqual(mariadbTarget({ url: 'mariadb://u:p@h/d?ssl-mode=REQUIRED' }), {
      host: 'h',
      port: 3306,
      user: 'u',
      password: 'p',
      database: 'd',
      ssl: { rejectUnauthorized: false },
    });
    assert.equal(mariadbTarget({ url: 'mysql://u@h/d?ssl=true' }).ssl, true);
    assert.equal(mariadbTarget({ url: 'mysql://u@h/d?ssl=true', ssl: false }).ssl, false, 'the SSL field wins');
    process.env.MYSQL_HOST = 'envhost';
    process.env.MYSQL_PORT = '3310';
    process.env.MYSQL_DATABASE = 'envdb';
    process.env.MYSQL_USER = 'envuser';
    process.env.MYSQL_PASSWORD = 'envpw';
    assert.deepEqual(mariadbTarget({ database: 'field' }), {
      host: 'envhost',
      port: 3310,
      user: 'envuser',
      password: 'envpw',
      database: 'field',
    });
    process.env.MARIADB_URL = 'mysql://urluser@urlhost:3311/urldb';
    assert.equal(mariadbTarget({}).host, 'urlhost', 'MARIADB_URL when no host is given');
    assert.equal(
      mariadbTarget({ host: 'fieldhost' }).host,
      'fieldhost',
      'a host field ignores the URL of the environment',
    );
    assert.equal(mariadbTarget({ host: '/run/mysqld/mysqld.sock' }).socketPath, '/run/mysqld/mysqld.sock');
    assert.throws(() => mariadbTarget({ url: 'postgres://x/y' }), /must start with mysql:\/\/ or mariadb:\/\//);
    delete process.env.MARIADB_URL;
    delete process.env.MYSQL_DATABASE;
    const noDb = new MariadbDatabase({ host: '127.0.0.1' });
    await assert.rejects(
      noDb.transaction(async () => undefined),
      (e: unknown) => e instanceof SinkDatabaseError && !e.retryable && /no database named/.test(e.message),
    );
    await noDb.close();
  } finally {
    for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
    Object.assign(process.env, saved);
  }
  // A connection that fails while it is being made is that attempt's error, never an idle connection lost.
  const idleErrors: string[] = [];
  const onIdleError = (e: Error): number => idleErrors.push(e.message);
  const refused = new MariadbDatabase({
    host: '127.0.0.1',
    port: 1,
    database: 'x',
    connectionTimeoutMs: 2000,
    onIdleError,
  });
  await assert.rejects(
    refused.transaction(async () => undefined),
    (e: unknown) =>
      e instanceof SinkDatabaseError &&
      e.retryable &&
      /127\.0\.0\.1:1/.test(e.message) &&
      /ECONNREFUSED/.test(e.message),
  );
  await refused.close();
  // A server that accepts TCP but never answers: the connect timeout ends the wait.
  const silent = net.createServer(() => undefined);
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  const port = (silent.address() as net.AddressInfo).port;
  const hanging = new MariadbDatabase({
    host: '127.0.0.1',
    port,
    database: 'x',
    connectionTimeoutMs: 300,
    onIdleError,
  });
  await assert.rejects(
    hanging.transaction(async () => undefined),
    (e: unknown) =>
      e instanceof SinkDatabaseError &&
      e.retryable &&
      e.message.includes(`no answer from the server at 127.0.0.1:${port} within 300 ms while connecting`) &&
      e.hint === `no answer from 127.0.0.1:${port}`,
  );
  await hanging.close();
  silent.close();
  assert.deepEqual(idleErrors, [], 'failed connection attempts are not reported as idle connections lost');
  const settings = mariadbSettings();
  const denied = new MariadbDatabase({
    host: settings.host,
    port: settings.port,
    user: 'nobody_here',
    password: 'wrong',
    database: String(settings.database),
  });
  await assert.rejects(
    denied.transaction(async () => undefined),
    // A setting the user can fix while the dataflow runs: retried, with a hint naming the setting.
    (e: unknown) =>
      e instanceof SinkDatabaseError &&
      e.retryable &&
      /Access denied/.test(e.message) &&
      e.hint === 'access denied: check Password field',
  );
  await denied.close();
});

test('TLS: "accept any certificate" encrypts, "verify" refuses a self-signed certificate (not retried), ssl-mode=REQUIRED in the URL, off is plain', async () => {
  // The launcher's server has a self-signed certificate; a given server without TLS is replaced by one of the test's own.
  const haveSsl = await withMariadb(async (c) => {
    const [r] = await c.query('SELECT @@have_ssl AS s');
    return String((r as { s: string }[])[0]?.s);
  });
  type Own = { env: Record<string, string>; stop(): Promise<void> };
  const own: Own | null =
    haveSsl === 'YES'
      ? null
      : await (
          (await import(join(__dirname, '..', '..', 'scripts', 'mariadb-server.mjs'))) as {
            startTemporaryMariadb(): Promise<Own>;
          }
        ).startTemporaryMariadb();
  const base = own
    ? { host: own.env.MYSQL_HOST, port: Number(own.env.MYSQL_PORT), user: 'root', database: 'deltaflow_test' }
    : {
        host: String(mariadbSettings().host),
        port: Number(mariadbSettings().port),
        user: String(mariadbSettings().user),
        password: String(mariadbSettings().password ?? ''),
        database: String(mariadbSettings().database),
      };
  /** The session's TLS cipher ('' without TLS), through the sink's own connection code. */
  const cipher = async (options: MariadbOptions): Promise<string> => {
    const c = await MariadbConnection.open(driverConfig(mariadbTarget(options), options, 'deltaflow-test'), options);
    try {
      const rows = (await c.query("SHOW SESSION STATUS LIKE 'Ssl_cipher'")) as { Value: string }[];
      return String(rows[0]?.Value ?? '');
    } finally {
      await c.close();
    }
  };
  try {
    assert.notEqual(
      await cipher({ ...base, ssl: { rejectUnauthorized: false } }),
      '',
      'a TLS session (the temporary server has a certificate only where openssl made one: apt-get install openssl)',
    );
    assert.equal(await cipher({ ...base, ssl: false }), '');
    const auth = base.user + ('password' in base && base.password ? `:${encodeURIComponent(base.password)}` : '');
    const url = `mysql://${auth}@${base.host}:${base.port}/${base.database}?ssl-mode=REQUIRED`;
    assert.notEqual(await cipher({ url }), '');
    const spec = table('keyed', [col('k', 'text', 'k', { key: true })]);
    const encrypted = new MariadbDatabase({ url });
    await encrypted.transaction(async (tx) => {
      await tx.ensureTable(spec);
      await tx.apply(spec, [rec({ k: 'over TLS' }, 1)]);
    });
    await encrypted.close();
    const verifying = new MariadbDatabase({ ...base, ssl: true });
    await assert.rejects(
      verifying.transaction(async () => undefined),
      (e: unknown) => e instanceof SinkDatabaseError && !e.retryable && /self[- ]signed|certificate/i.test(e.message),
    );
    await verifying.close();
  } finally {
    await own?.stop();
  }
});
