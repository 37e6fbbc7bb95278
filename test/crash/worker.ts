/**
 * The crash test's child process: runs the dashboard (keyed) and usage (multiset) dataflow over an
 * embedded log into SQLite, PostgreSQL or MariaDB until it is killed. Prints one JSON line per milestone.
 * Usage: worker.ts <sqlite|postgres|mariadb> <log file> <sqlite file or table prefix> [slow|hold|-] [retention µs] [durable]
 *   slow: every transaction stays open a few ms longer, so kills often land inside commits;
 *   hold: every transaction stays open 200 ms after its rows are written, announced by a line
 *   {tx: 'open'} ({tx: 'done'} once committed), so the parent can kill inside a commit for sure;
 *   durable: the operators' state is kept in the database ('Operator state: in the database', scope
 *   `<table prefix>flow`, a small state cache so that groups are evicted and loaded back).
 * The commit lines carry the events replayed so far (a restart from durable state replays none).
 */
import { startDataflow } from '../../src/dataflow/coordinator';
import { PostgresDatabase } from '../../src/sinks/postgres-database';
import { MariadbDatabase } from '../../src/sinks/mariadb-database';
import { SqliteDatabase } from '../../src/sinks/sqlite-database';
import type { SinkDatabase } from '../../src/sinks/types';
import { EmbeddedLog } from '../../src/sources/embedded-log';
import { recordingListener } from '../dataflow/support';
import { crashMembers } from './members';

/**
 * A database whose transactions linger before committing (a wider window for a kill to hit).
 * Everything else is the database's own: a Proxy forwards every member (the optional ones too, e.g.
 * `stateReader` for durable state), methods bound to the database itself.
 */
export function lingering(db: SinkDatabase, ms: number, announce = false): SinkDatabase {
  const transaction: SinkDatabase['transaction'] = async (fn) => {
    const r = await db.transaction(async (tx) => {
      const r = await fn(tx);
      if (announce) process.stdout.write(`${JSON.stringify({ tx: 'open' })}\n`);
      await new Promise((resolve) => setTimeout(resolve, ms));
      return r;
    });
    if (announce) process.stdout.write(`${JSON.stringify({ tx: 'done' })}\n`);
    return r;
  };
  return new Proxy(db, {
    get(target, key) {
      if (key === 'transaction') return transaction;
      const v: unknown = Reflect.get(target, key, target);
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

async function main(): Promise<void> {
  const [kind, logFile, target, slow, retention, durable] = process.argv.slice(2);
  if (!kind || !logFile || !target)
    throw new Error('usage: worker.ts <sqlite|postgres|mariadb> <log> <target> [slow|hold|-] [retention µs] [durable]');
  const log = new EmbeddedLog(logFile, { foreignWritePollMs: 0 });
  const base: SinkDatabase =
    kind === 'sqlite'
      ? new SqliteDatabase({ filename: target })
      : kind === 'mariadb'
        ? new MariadbDatabase({})
        : new PostgresDatabase({});
  const db = slow === 'slow' ? lingering(base, 3) : slow === 'hold' ? lingering(base, 200, true) : base;
  const prefix = kind === 'sqlite' ? '' : target;
  const listener = recordingListener();
  let lastCommit = 0;
  const run = startDataflow(
    {
      id: `${prefix}flow`,
      source: log,
      members: crashMembers(log, db, prefix, durable === 'durable'),
      settings: {
        batchSize: 1000,
        catchUpBatchSize: 1000,
        batchMs: 5,
        maxInFlight: 2,
        retentionMicros: retention ? Number(retention) : null,
        onError: 'skip',
        ...(durable === 'durable' ? { durableState: true, stateCacheBytes: 200_000 } : {}),
      },
    },
    {
      ...listener,
      // One line per commit: the parent kills at a random moment after a random number of commits.
      committed: () => {
        const n = run.stats().batchesCommitted;
        if (n !== lastCommit)
          process.stdout.write(
            `${JSON.stringify({ commit: (lastCommit = n), replayed: run.stats().eventsReplayed, durable: run.stats().durableState })}\n`,
          );
      },
      log: (level, message) => process.stderr.write(`${level}: ${message}\n`),
    },
  );
  // Installed before any line is written: the parent may send SIGTERM as soon as it reads one.
  process.on('SIGTERM', () => {
    void run.stop().then(async () => {
      await base.close();
      await log.close();
      process.exit(0);
    });
  });
  process.stdout.write(`${JSON.stringify({ started: true })}\n`);
  await run.live;
  process.stdout.write(
    `${JSON.stringify({ live: true, stats: { replayed: run.stats().eventsReplayed, read: run.stats().eventsRead, rebuilt: run.stats().rebuilt } })}\n`,
  );
}

main().catch((e: unknown) => {
  process.stderr.write(`worker failed: ${e instanceof Error ? e.stack : String(e)}\n`);
  process.exit(2);
});
