/**
 * The fencing test's child process: one instance running the fencing dataflow (members.ts) over an
 * embedded log into SQLite or PostgreSQL under a lease, until it is killed or sent SIGTERM (a clean
 * stop: it gives the lease up). Prints one JSON line per milestone: started, every status text of
 * the source member (standby, live, …), commits, and the lease lost.
 * Usage: worker.ts <sqlite|postgres> <log file> <sqlite file or table prefix> <instance> <lease ms>
 */
import { startDataflow } from '../../src/dataflow/coordinator';
import { PostgresDatabase } from '../../src/sinks/postgres-database';
import { SqliteDatabase } from '../../src/sinks/sqlite-database';
import type { SinkDatabase } from '../../src/sinks/types';
import { EmbeddedLog } from '../../src/sources/embedded-log';
import { recordingListener } from '../dataflow/support';
import { fencingMembers } from './fencing-members';

function say(line: object): void {
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

async function main(): Promise<void> {
  const [kind, logFile, target, instance, leaseMs] = process.argv.slice(2);
  if (!kind || !logFile || !target || !instance || !leaseMs)
    throw new Error('usage: worker.ts <sqlite|postgres> <log> <target> <instance> <lease ms>');
  const log = new EmbeddedLog(logFile, { foreignWritePollMs: 20 });
  const db: SinkDatabase =
    kind === 'sqlite' ? new SqliteDatabase({ filename: target, busyTimeoutMs: 60_000 }) : new PostgresDatabase({});
  const prefix = kind === 'sqlite' ? '' : target;
  const listener = recordingListener();
  let commits = 0;
  let lastStatus = '';
  const run = startDataflow(
    {
      source: log,
      members: fencingMembers(log, db, prefix),
      settings: {
        batchSize: 500,
        catchUpBatchSize: 500,
        batchMs: 5,
        maxInFlight: 2,
        retentionMicros: null,
        onError: 'skip',
      },
      lease: { name: `${prefix}fenced`, instance, leaseMs: Number(leaseMs) },
    },
    {
      ...listener,
      status: (id, status) => {
        if (id !== 'src' || status.text === lastStatus) return;
        lastStatus = status.text;
        say({ status: status.text });
      },
      committed: (id) => {
        if (id === 'applied-sink') say({ commit: ++commits });
      },
      log: (level, message) => {
        if (/lease .* is no longer held/.test(message)) say({ lost: message });
        process.stderr.write(`${level}: ${message}\n`);
      },
    },
  );
  process.on('SIGTERM', () => {
    void run.stop().then(async () => {
      await db.close();
      await log.close();
      process.exit(0);
    });
  });
  // Every acquisition of the lease (the first one is not logged: watch the counter).
  let takeovers = 0;
  setInterval(() => {
    const n = run.stats().takeovers ?? 0;
    if (n > takeovers) say({ took: `${instance} took the lease (${(takeovers = n)})` });
  }, 20).unref();
  // NB: the process lives until it is killed or stopped, as a Node-RED instance does (its runtime's
  // HTTP server keeps it alive). The dataflow's own timers (lease renewal, heartbeat, the log's
  // poll) keep no process alive: without this, a holder whose database sessions were ended while
  // no commit or retry was pending had nothing left to wait for and exited (code 0) before its
  // renewal could find the lease lost. It used to be kept alive by the embedded log's checkpoint
  // worker, which a log that is only read does not start. fencing.test.ts fails when an instance
  // ends by itself.
  setInterval(() => undefined, 60_000);
  say({ started: true });
  await run.live;
  say({ live: true });
}

main().catch((e: unknown) => {
  process.stderr.write(`worker failed: ${e instanceof Error ? e.stack : String(e)}\n`);
  process.exit(2);
});
