/**
 * The lease of a dataflow in a sink database (issue 14): one row per dataflow in `deltaflow_lease`
 * (dataflow, holder, epoch, expires_at). Whoever holds the row's epoch writes the dataflow's
 * tables; every commit transaction checks that epoch first (`fence`), so an instance whose lease
 * was taken over — a zombie that was paused or cut off — fails its commit and writes nothing.
 * Expiry is by the database's clock (never the device's): `expires_at` is milliseconds of the
 * server's clock, compared with the server's clock. The epoch grows with each acquisition.
 *
 * Locking: the check is an UPDATE of the lease row, the first statement of the commit, so the row
 * stays locked until the commit ends (PostgreSQL, MariaDB: row lock; SQLite: BEGIN IMMEDIATE
 * already excludes every other writer). A takeover's UPDATE waits for such a commit and then sees
 * the expiry it extended: a commit that passed its check always completes before a takeover.
 */
import { INSTANCE_TABLE, LEASE_TABLE } from './identifiers';
import { tableExistsSql, type Dialect, type Statement } from './sql-dialect';
import type { InstanceHeartbeat, LeaseAnswer, LeaseRequest, LeaseToken } from './types';

/** Runs statements inside the current transaction (see SqlExecutor). */
interface Executor {
  run(statement: Statement): Promise<number>;
  all(statement: Statement): Promise<Record<string, unknown>[]>;
}

/** Thrown by `fence` and `renew` when the lease is no longer this token's: never retried. */
export class LeaseLostError extends Error {
  constructor(
    readonly database: string,
    readonly token: LeaseToken,
    /** Who holds it now (null: nobody, it was released), and at which epoch (null: unknown). */
    readonly holder: string | null,
    readonly epoch: number | null,
    /** Why, when not because someone else holds it (e.g. it could not be renewed in time). */
    why?: string,
  ) {
    super(
      `${database}: the lease of dataflow ${token.name} is no longer held by ${token.holder} (epoch ${token.epoch})${
        why !== undefined
          ? `: ${why}`
          : holder !== null
            ? `: taken over by ${holder} (epoch ${epoch})`
            : epoch !== null
              ? ` (now epoch ${epoch})`
              : ''
      }; this instance writes nothing more and goes to standby`,
    );
    this.name = 'LeaseLostError';
  }
}

/** The server's clock in milliseconds since 1970, as an SQL expression. */
export function nowMsSql(d: Dialect): string {
  if (d.kind === 'sqlite') return `CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)`;
  if (d.kind === 'mariadb') return 'CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED)';
  return `(extract(epoch from clock_timestamp()) * 1000)::bigint`;
}

/** `CREATE TABLE IF NOT EXISTS deltaflow_lease (…)`. */
export function createLeaseSql(d: Dialect): string {
  const q = d.quote;
  const text = d.kind === 'mariadb' ? 'VARCHAR(255)' : 'text';
  return `CREATE TABLE IF NOT EXISTS ${q(LEASE_TABLE)} (${q('dataflow')} ${text} PRIMARY KEY, ${q('holder')} ${text}, ${q('epoch')} bigint NOT NULL, ${q('expires_at')} bigint NOT NULL)${d.tableOptions}`;
}

function p(d: Dialect, n: number): string {
  return d.placeholder(n);
}

/** The row of a lease, with the time left by the server's clock (ms; ≤ 0: expired). */
function selectLeaseSql(d: Dialect, name: string, lock: boolean): Statement {
  const q = d.quote;
  return {
    sql: `SELECT ${q('holder')}, ${q('epoch')}, ${q('expires_at')} - ${nowMsSql(d)} AS ${q('remaining')} FROM ${q(LEASE_TABLE)} WHERE ${q('dataflow')} = ${p(d, 1)}${lock && d.kind !== 'sqlite' ? ' FOR UPDATE' : ''}`,
    params: [name],
  };
}

function insertLeaseSql(d: Dialect, name: string): Statement {
  const q = d.quote;
  const cols = `${q('dataflow')}, ${q('holder')}, ${q('epoch')}, ${q('expires_at')}`;
  const values = `(${p(d, 1)}, NULL, 0, 0)`;
  if (d.kind === 'mariadb')
    return { sql: `INSERT IGNORE INTO ${q(LEASE_TABLE)} (${cols}) VALUES ${values}`, params: [name] };
  return { sql: `INSERT INTO ${q(LEASE_TABLE)} (${cols}) VALUES ${values} ON CONFLICT DO NOTHING`, params: [name] };
}

/** Takes a lease seen free or expired at `epoch`: changes nothing when someone else changed it meanwhile. */
function takeLeaseSql(d: Dialect, req: LeaseRequest, epoch: number): Statement {
  const q = d.quote;
  const now = nowMsSql(d);
  return {
    sql: `UPDATE ${q(LEASE_TABLE)} SET ${q('holder')} = ${p(d, 1)}, ${q('epoch')} = ${q('epoch')} + 1, ${q('expires_at')} = ${now} + ${p(d, 2)} WHERE ${q('dataflow')} = ${p(d, 3)} AND ${q('epoch')} = ${p(d, 4)} AND (${q('holder')} IS NULL OR ${q('expires_at')} <= ${now})`,
    params: [req.holder, req.leaseMs, req.name, epoch],
  };
}

/** Extends a lease held at the token's epoch (the fencing check); changes nothing otherwise. */
function renewLeaseSql(d: Dialect, token: LeaseToken): Statement {
  const q = d.quote;
  return {
    sql: `UPDATE ${q(LEASE_TABLE)} SET ${q('expires_at')} = ${nowMsSql(d)} + ${p(d, 1)} WHERE ${q('dataflow')} = ${p(d, 2)} AND ${q('holder')} = ${p(d, 3)} AND ${q('epoch')} = ${p(d, 4)}`,
    params: [token.leaseMs, token.name, token.holder, token.epoch],
  };
}

function releaseLeaseSql(d: Dialect, token: LeaseToken): Statement {
  const q = d.quote;
  return {
    sql: `UPDATE ${q(LEASE_TABLE)} SET ${q('holder')} = NULL, ${q('expires_at')} = 0 WHERE ${q('dataflow')} = ${p(d, 1)} AND ${q('holder')} = ${p(d, 2)} AND ${q('epoch')} = ${p(d, 3)}`,
    params: [token.name, token.holder, token.epoch],
  };
}

interface LeaseRow {
  readonly holder: string | null;
  readonly epoch: number;
  readonly remainingMs: number;
}

async function readLease(exec: Executor, d: Dialect, name: string, lock: boolean): Promise<LeaseRow | null> {
  const [row] = await exec.all(selectLeaseSql(d, name, lock));
  if (row === undefined) return null;
  return {
    holder: row.holder === null || row.holder === undefined ? null : String(row.holder),
    epoch: Number(row.epoch),
    remainingMs: Number(row.remaining),
  };
}

/** Creates `table` with `create` when missing (where DDL commits, only then: see ensureMeta). */
async function ensureTable(exec: Executor, d: Dialect, table: string, create: string): Promise<void> {
  if (d.ddlCommits && (await exec.all(tableExistsSql(d, table))).length > 0) return;
  await exec.run({ sql: create, params: [] });
}

/** Creates the lease table when missing. */
export async function ensureLeaseTable(exec: Executor, d: Dialect): Promise<void> {
  await ensureTable(exec, d, LEASE_TABLE, createLeaseSql(d));
}

/**
 * Takes the lease when it is free (never taken, released) or expired, with the next epoch;
 * otherwise says who holds it and for how long yet. A holder's own unexpired lease is not taken
 * again: a new acquisition always waits for the old one to end, and always gets a new epoch.
 */
export async function acquireLease(exec: Executor, d: Dialect, req: LeaseRequest): Promise<LeaseAnswer> {
  // A plain read first: a standby polling a held lease locks nothing.
  let row = await readLease(exec, d, req.name, false);
  if (row !== null && row.holder !== null && row.remainingMs > 0)
    return { held: false, holder: row.holder, epoch: row.epoch, remainingMs: row.remainingMs };
  if (req.peek === true)
    return { held: false, holder: row?.holder ?? null, epoch: row?.epoch ?? 0, remainingMs: row?.remainingMs ?? 0 };
  if (row === null) {
    await exec.run(insertLeaseSql(d, req.name));
  }
  row = await readLease(exec, d, req.name, true);
  if (row === null) throw new Error(`the lease row of dataflow ${req.name} is missing after it was inserted`);
  // NB: the UPDATE re-checks epoch and expiry under the row's lock: of two standbys, or a standby
  // and a commit extending the lease, exactly one wins (tested by test/fencing/).
  if ((await exec.run(takeLeaseSql(d, req, row.epoch))) === 1) {
    return { held: true, token: { name: req.name, holder: req.holder, epoch: row.epoch + 1, leaseMs: req.leaseMs } };
  }
  const now = await readLease(exec, d, req.name, false);
  return {
    held: false,
    holder: now?.holder ?? null,
    epoch: now?.epoch ?? row.epoch,
    remainingMs: now?.remainingMs ?? 0,
  };
}

/**
 * The fencing check and renewal in one statement: extends the lease when the token still holds it,
 * else throws LeaseLostError (`label`: the database, for the message).
 */
export async function fenceLease(exec: Executor, d: Dialect, token: LeaseToken, label: string): Promise<void> {
  // NB: a row whose values the UPDATE leaves as they were (two renewals in one millisecond) counts
  // as changed only where the driver reports matched rows: mysql2 connects with FOUND_ROWS by
  // default (test/sinks/lease.test.ts fences twice in a row on every database).
  if ((await exec.run(renewLeaseSql(d, token))) === 1) return;
  const row = await readLease(exec, d, token.name, false);
  throw new LeaseLostError(label, token, row?.holder ?? null, row?.epoch ?? null);
}

/** Gives the lease up (a clean stop): a standby takes it at its next look. Nothing when it is no longer held. */
export async function releaseLease(exec: Executor, d: Dialect, token: LeaseToken): Promise<void> {
  await exec.run(releaseLeaseSql(d, token));
}

/** `CREATE TABLE IF NOT EXISTS deltaflow_instance (pool, instance, expires_at)`: the heartbeats. */
export function createInstanceSql(d: Dialect): string {
  const q = d.quote;
  const text = d.kind === 'mariadb' ? 'VARCHAR(255)' : 'text';
  return `CREATE TABLE IF NOT EXISTS ${q(INSTANCE_TABLE)} (${q('pool')} ${text} NOT NULL, ${q('instance')} ${text} NOT NULL, ${q('expires_at')} bigint NOT NULL, PRIMARY KEY (${q('pool')}, ${q('instance')}))${d.tableOptions}`;
}

/** Creates the heartbeat table when missing. */
export async function ensureInstanceTable(exec: Executor, d: Dialect): Promise<void> {
  await ensureTable(exec, d, INSTANCE_TABLE, createInstanceSql(d));
}

/**
 * Writes the instance's heartbeat (expiring after `leaseMs` by the database's clock) and counts
 * the instances of its pool whose heartbeat has not expired, itself included.
 */
export async function announceInstance(exec: Executor, d: Dialect, h: InstanceHeartbeat): Promise<number> {
  const q = d.quote;
  const now = nowMsSql(d);
  const cols = `${q('pool')}, ${q('instance')}, ${q('expires_at')}`;
  const values = `(${p(d, 1)}, ${p(d, 2)}, ${now} + ${p(d, 3)})`;
  const upsert =
    d.kind === 'mariadb'
      ? `INSERT INTO ${q(INSTANCE_TABLE)} (${cols}) VALUES ${values} ON DUPLICATE KEY UPDATE ${q('expires_at')} = VALUES(${q('expires_at')})`
      : `INSERT INTO ${q(INSTANCE_TABLE)} (${cols}) VALUES ${values} ON CONFLICT (${q('pool')}, ${q('instance')}) DO UPDATE SET ${q('expires_at')} = excluded.${q('expires_at')}`;
  await exec.run({ sql: upsert, params: [h.pool, h.instance, h.leaseMs] });
  // The rows of instances that died (no clean stop) a day ago go.
  await exec.run({
    sql: `DELETE FROM ${q(INSTANCE_TABLE)} WHERE ${q('pool')} = ${p(d, 1)} AND ${q('expires_at')} < ${now} - 86400000`,
    params: [h.pool],
  });
  const [row] = await exec.all({
    sql: `SELECT count(*) AS ${q('n')} FROM ${q(INSTANCE_TABLE)} WHERE ${q('pool')} = ${p(d, 1)} AND ${q('expires_at')} > ${now}`,
    params: [h.pool],
  });
  return Number(row?.n ?? 0);
}

/** Deletes the instance's heartbeat (a clean stop). */
export async function leaveInstance(exec: Executor, d: Dialect, pool: string, instance: string): Promise<void> {
  const q = d.quote;
  await exec.run({
    sql: `DELETE FROM ${q(INSTANCE_TABLE)} WHERE ${q('pool')} = ${p(d, 1)} AND ${q('instance')} = ${p(d, 2)}`,
    params: [pool, instance],
  });
}
