/**
 * The PostgreSQL sink when its connection fails under a transaction (the shared test server; each
 * test its own table): a session terminated while the transaction is idle between statements fails
 * that transaction with a retryable error, never the process; a transaction waits for one still
 * open on the server for the same table before it reads the table's state; the statement timeout
 * cancels a statement that waits too long.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Value } from '../../src/engine/types';
import { SinkDatabaseError } from '../../src/sinks/errors';
import { PostgresDatabase } from '../../src/sinks/postgres-database';
import type { TableSpec } from '../../src/sinks/types';
import { pgClient, uniqueName } from '../dataflow/support';

const rec = (v: Value, diff: number): readonly [Value, number, number] => [v, diff, 0];

function table(prefix: string): TableSpec {
  return { name: uniqueName(prefix), mode: 'multiset', columns: [{ name: 'v', type: 'text', value: { path: 'v' } }] };
}

async function dropTable(spec: TableSpec): Promise<void> {
  const db = new PostgresDatabase();
  await db.transaction((tx) => tx.dropTable(spec)).finally(() => db.close());
}

test('PostgreSQL: a session terminated between two statements of a transaction fails that transaction (retryable), not the process', async () => {
  const db = new PostgresDatabase();
  const spec = table('terminated');
  const admin = await pgClient();
  const uncaught: unknown[] = [];
  const onUncaught = (err: unknown): void => void uncaught.push(err);
  process.on('uncaughtException', onUncaught);
  try {
    await db.transaction((tx) => tx.ensureTable(spec));
    const failed = await db
      .transaction(async (tx) => {
        await tx.apply(spec, [rec({ v: 'a' }, 1)]);
        // The session is idle in this transaction (no query pending) when it is terminated.
        const ended = await admin.query(
          `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
            WHERE state = 'idle in transaction' AND query LIKE $1 AND pid <> pg_backend_pid()`,
          [`%${spec.name}%`],
        );
        assert.equal(ended.rowCount, 1, 'the sink session was found and terminated');
        await new Promise((r) => setTimeout(r, 300)); // its error event arrives now, with no query pending
        await tx.writeState(spec, { offsets: { s: 0 }, fingerprint: null, watermark: null });
      })
      .then(
        () => null,
        (e: unknown) => e,
      );
    assert.ok(failed instanceof SinkDatabaseError, `a SinkDatabaseError, not ${String(failed)}`);
    assert.ok(failed.retryable, 'the dataflow retries it');
    assert.match(failed.message, /terminat/i, 'it says what happened');
    assert.deepEqual(uncaught, [], 'no uncaught exception');
    // The lost connection was discarded: the next transaction works, and nothing of the failed one is there.
    const state = await db.transaction(async (tx) => {
      await tx.apply(spec, [rec({ v: 'b' }, 1)]);
      return tx.readState(spec);
    });
    assert.deepEqual(state.offsets, {});
    assert.deepEqual((await admin.query(`SELECT v FROM "${spec.name}"`)).rows, [{ v: 'b' }]);
  } finally {
    process.off('uncaughtException', onUncaught);
    await admin.end();
    await db.close();
    await dropTable(spec);
  }
});

test('PostgreSQL: a transaction reads a table’s state only after another one that wrote it has ended (a retry sees a late COMMIT)', async () => {
  const first = new PostgresDatabase();
  const second = new PostgresDatabase();
  const spec = table('claimed');
  try {
    await first.transaction((tx) => tx.ensureTable(spec));
    // The first transaction has written rows and offsets and is not committed yet: as one whose
    // connection was lost while its COMMIT was still on the way to the server.
    let commit!: () => void;
    const held = new Promise<void>((r) => (commit = r));
    let written!: () => void;
    const wrote = new Promise<void>((r) => (written = r));
    const writing = first.transaction(async (tx) => {
      await tx.apply(spec, [rec({ v: 'a' }, 1)]);
      await tx.writeState(spec, { offsets: { s: 7 }, fingerprint: 'f', watermark: 1 });
      written();
      await held;
    });
    await wrote;
    let readAt = 0;
    const reading = second
      .transaction((tx) => tx.readState(spec))
      .then((state) => {
        readAt = Date.now();
        return state;
      });
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(readAt, 0, 'the reader waits while the writer is open');
    const committedAt = Date.now();
    commit();
    await writing;
    const state = await reading;
    assert.ok(readAt >= committedAt);
    assert.deepEqual(state, { offsets: { s: 7 }, fingerprint: 'f', watermark: 1 }, 'it sees the commit');
  } finally {
    await Promise.all([first.close(), second.close()]);
    await dropTable(spec);
  }
});

test('PostgreSQL: the statement timeout cancels a statement that waits too long, with a retryable error', async () => {
  const db = new PostgresDatabase({ statementTimeoutMs: 300, lockTimeoutMs: 60_000 });
  const spec = table('slow');
  const other = await pgClient();
  try {
    await db.transaction((tx) => tx.ensureTable(spec));
    await other.query('BEGIN');
    await other.query(`LOCK TABLE "${spec.name}" IN ACCESS EXCLUSIVE MODE`);
    await assert.rejects(
      db.transaction((tx) => tx.apply(spec, [rec({ v: 'x' }, 1)])),
      (e: unknown) =>
        e instanceof SinkDatabaseError &&
        e.retryable &&
        /statement timeout/.test(e.message) &&
        e.hint === 'statement timeout: see db-config',
    );
    await other.query('ROLLBACK');
    await db.transaction((tx) => tx.apply(spec, [rec({ v: 'x' }, 1)]));
  } finally {
    await other.end();
    await db.close();
    await dropTable(spec);
  }
});
