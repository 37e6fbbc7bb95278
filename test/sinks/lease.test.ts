/**
 * The lease of a dataflow in each database (lease-sql.ts, issue 14): only one holder at a time,
 * taken over only after it expired by the database's clock or was released, each acquisition with
 * a greater epoch; the fencing check of an old epoch fails with LeaseLostError and the transaction
 * it runs in writes nothing. Two checks in a row pass (MariaDB counts a row whose values did not
 * change only with FOUND_ROWS, which mysql2 sets).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { rmSync } from 'node:fs';
import { LeaseLostError } from '../../src/sinks/lease-sql';
import { MariadbDatabase } from '../../src/sinks/mariadb-database';
import { PostgresDatabase } from '../../src/sinks/postgres-database';
import { SqliteDatabase } from '../../src/sinks/sqlite-database';
import type { LeaseAnswer, LeaseToken, SinkDatabase } from '../../src/sinks/types';
import { tempDir, uniqueName } from '../dataflow/support';

const LEASE_MS = 400;

function held(a: LeaseAnswer): LeaseToken {
  if (!a.held) throw new Error(`not held: held by ${a.holder}`);
  return a.token;
}

async function leaseRules(a: SinkDatabase, b: SinkDatabase): Promise<void> {
  const name = uniqueName('lease');
  const first = held(await a.transaction((tx) => tx.acquireLease({ name, holder: 'A', leaseMs: LEASE_MS })));
  const other = await b.transaction((tx) => tx.acquireLease({ name, holder: 'B', leaseMs: LEASE_MS }));
  assert.equal(other.held, false);
  assert.equal(!other.held && other.holder, 'A', 'B sees who holds it');
  // Two checks in a row (one millisecond or less apart) both pass.
  await a.transaction(async (tx) => {
    await tx.fence(first);
    await tx.fence(first);
  });
  // A held lease is not taken, not even by its own holder again.
  assert.equal((await a.transaction((tx) => tx.acquireLease({ name, holder: 'A', leaseMs: LEASE_MS }))).held, false);
  // Expired (by the database's clock): B takes it over with the next epoch.
  let taken: LeaseAnswer;
  do {
    await new Promise((r) => setTimeout(r, LEASE_MS / 4));
    taken = await b.transaction((tx) => tx.acquireLease({ name, holder: 'B', leaseMs: LEASE_MS }));
  } while (!taken.held);
  const second = held(taken);
  assert.equal(second.epoch, first.epoch + 1);
  // The zombie A: its check fails, and nothing of its transaction is committed.
  const lost = await a
    .transaction(async (tx) => {
      await tx.fence(first);
      return 'committed';
    })
    .catch((e: unknown) => e);
  assert.ok(lost instanceof LeaseLostError, String(lost));
  assert.match(lost.message, /no longer held by A \(epoch \d+\): taken over by B \(epoch \d+\)/);
  // Released: taken at once, with the next epoch.
  await b.transaction((tx) => tx.releaseLease(second));
  const third = held(await a.transaction((tx) => tx.acquireLease({ name, holder: 'A', leaseMs: 60_000 })));
  assert.equal(third.epoch, second.epoch + 1);
  await assert.rejects(
    b.transaction((tx) => tx.fence(second)),
    LeaseLostError,
  );
  await a.transaction((tx) => tx.releaseLease(third));
}

/** Heartbeats (issue 14, point 3): counted per pool while unexpired, deleted on leave; a peek never takes a lease. */
async function heartbeatRules(a: SinkDatabase, b: SinkDatabase): Promise<void> {
  const pool = uniqueName('pool');
  const beat = (db: SinkDatabase, instance: string, p = pool): Promise<number> =>
    db.transaction((tx) => tx.announceInstance({ pool: p, instance, leaseMs: LEASE_MS }));
  assert.equal(await beat(a, 'A'), 1);
  assert.equal(await beat(b, 'B'), 2);
  assert.equal(await beat(b, 'B'), 2, 'a renewal is not a second instance');
  assert.equal(await beat(a, 'C', `${pool}-other`), 1, 'another pool counts apart');
  await new Promise((r) => setTimeout(r, LEASE_MS + 100));
  assert.equal(await beat(b, 'B'), 1, "A's heartbeat expired");
  assert.equal(await beat(a, 'A'), 2);
  await b.transaction((tx) => tx.leaveInstance(pool, 'B'));
  assert.equal(await beat(a, 'A'), 1, 'B left');
  await a.transaction((tx) => tx.leaveInstance(pool, 'A'));
  await a.transaction((tx) => tx.leaveInstance(`${pool}-other`, 'C'));
  const name = uniqueName('peek');
  const peeked = await a.transaction((tx) => tx.acquireLease({ name, holder: 'A', leaseMs: LEASE_MS, peek: true }));
  assert.equal(peeked.held, false, 'a peek does not take a free lease');
  const taken = held(await b.transaction((tx) => tx.acquireLease({ name, holder: 'B', leaseMs: LEASE_MS })));
  const again = await a.transaction((tx) => tx.acquireLease({ name, holder: 'A', leaseMs: LEASE_MS, peek: true }));
  assert.equal(again.held === false ? again.holder : null, 'B', 'a peek says who holds it');
  // A fence extends the expiry as a renewal does (the keeper skips renewals while commits fence).
  await b.transaction((tx) => tx.fence({ ...taken, leaseMs: 600_000 }));
  const extended = await a.transaction((tx) => tx.acquireLease({ name, holder: 'A', leaseMs: LEASE_MS, peek: true }));
  assert.ok(!extended.held && extended.remainingMs > 60_000, `extended by the fence: ${JSON.stringify(extended)}`);
  await b.transaction((tx) => tx.releaseLease(taken));
}

test('SQLite: one lease holder, takeover after expiry or release, the old epoch fenced', async () => {
  const dir = tempDir('deltaflow-lease-');
  const file = join(dir, 'lease.sqlite');
  const a = new SqliteDatabase({ filename: file });
  const b = new SqliteDatabase({ filename: file });
  try {
    await leaseRules(a, b);
    await heartbeatRules(a, b);
  } finally {
    await a.close();
    await b.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('PostgreSQL: one lease holder, takeover after expiry or release, the old epoch fenced', async () => {
  const a = new PostgresDatabase({});
  const b = new PostgresDatabase({});
  try {
    await leaseRules(a, b);
    await heartbeatRules(a, b);
  } finally {
    await a.close();
    await b.close();
  }
});

test('MariaDB: one lease holder, takeover after expiry or release, the old epoch fenced', async () => {
  const a = new MariadbDatabase({});
  const b = new MariadbDatabase({});
  try {
    await leaseRules(a, b);
    await heartbeatRules(a, b);
  } finally {
    await a.close();
    await b.close();
  }
});
