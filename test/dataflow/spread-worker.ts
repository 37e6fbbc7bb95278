/**
 * The spread test's child process: one instance running `count` dataflows (the fencing test's
 * dataflow, tables prefixed `d<i>_`, lease `d<i>`) over one embedded log into one SQLite file
 * under leases, until it is killed or sent SIGTERM (a clean stop: it gives its leases up).
 * Prints `{"started":true}`, then `{"holding":[…]}` whenever the set of dataflows it runs changes.
 * Usage: spread-worker.ts <log file> <sqlite file> <instance> <lease ms> <count>
 */
import { startDataflow } from '../../src/dataflow/coordinator';
import { SqliteDatabase } from '../../src/sinks/sqlite-database';
import { EmbeddedLog } from '../../src/sources/embedded-log';
import { recordingListener } from './support';
import { fencingMembers } from '../chaos/fencing-members';

function say(line: object): void {
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

async function main(): Promise<void> {
  const [logFile, file, instance, leaseMs, count] = process.argv.slice(2);
  if (!logFile || !file || !instance || !leaseMs || !count)
    throw new Error('usage: spread-worker.ts <log> <sqlite file> <instance> <lease ms> <count>');
  const log = new EmbeddedLog(logFile, { foreignWritePollMs: 20 });
  const db = new SqliteDatabase({ filename: file, busyTimeoutMs: 60_000 });
  const runs = Array.from({ length: Number(count) }, (_, i) =>
    startDataflow(
      {
        source: log,
        members: fencingMembers(log, db, `d${i}_`),
        settings: {
          batchSize: 500,
          catchUpBatchSize: 500,
          batchMs: 5,
          maxInFlight: 2,
          retentionMicros: null,
          onError: 'skip',
        },
        lease: { name: `d${i}`, instance, leaseMs: Number(leaseMs) },
      },
      {
        ...recordingListener(),
        log: (level, message) => process.stderr.write(`${level}: ${message}\n`),
      },
    ),
  );
  process.on('SIGTERM', () => {
    void Promise.all(runs.map((r) => r.stop())).then(async () => {
      await db.close();
      await log.close();
      process.exit(0);
    });
  });
  let last = '';
  setInterval(() => {
    const holding = runs.flatMap((r, i) => {
      const s = r.stats();
      return s.leaseHolder === instance && s.phase !== 'standby' && s.phase !== 'stopped' ? [`d${i}`] : [];
    });
    const text = holding.join();
    if (text !== last) say({ holding });
    last = text;
  }, 20).unref();
  // NB: the process lives until it is killed or stopped, as a Node-RED instance does (its runtime's
  // HTTP server keeps it alive): the dataflows' own timers keep no process alive (see fencing-worker.ts).
  setInterval(() => undefined, 60_000);
  say({ started: true });
}

main().catch((e: unknown) => {
  process.stderr.write(`worker failed: ${e instanceof Error ? e.stack : String(e)}\n`);
  process.exit(2);
});
