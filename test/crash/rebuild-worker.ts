/**
 * The rebuild crash test's child process: runs rebuild-members.ts's dataflow with a variant into
 * SQLite or PostgreSQL until it is killed (or SIGTERM: stops, exits 0). Prints one JSON line per
 * milestone: started, every commit, {swap: 'open'} when the transaction swapping a rebuilt table in
 * has done its work and not committed ({swap: 'done'} once committed), live.
 * Usage: rebuild-worker.ts <sqlite|postgres> <log file> <sqlite file> <table> <variant> [swap|slow|-]
 *   swap: the swap transaction stays open 300 ms before committing, so the parent kills inside it;
 *   slow: every transaction stays open 3 ms longer.
 */
import { startDataflow } from '../../src/dataflow/coordinator';
import { PostgresDatabase } from '../../src/sinks/postgres-database';
import { SqliteDatabase } from '../../src/sinks/sqlite-database';
import type { SinkDatabase } from '../../src/sinks/types';
import { EmbeddedLog } from '../../src/sources/embedded-log';
import { recordingListener } from '../dataflow/support';
import { rebuildMembers } from '../dataflow/rebuild-members';

const line = (o: object): void => void process.stdout.write(`${JSON.stringify(o)}\n`);
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function main(): Promise<void> {
  const [kind, logFile, dbFile, table, variant, mode] = process.argv.slice(2);
  if (!kind || !logFile || !dbFile || !table || !variant)
    throw new Error('usage: rebuild-worker.ts <sqlite|postgres> <log> <sqlite file> <table> <variant> [swap|slow|-]');
  const log = new EmbeddedLog(logFile, { foreignWritePollMs: 0 });
  const base: SinkDatabase = kind === 'sqlite' ? new SqliteDatabase({ filename: dbFile }) : new PostgresDatabase({});
  const db: SinkDatabase = {
    kind: base.kind,
    label: base.label,
    transaction: async (fn) => {
      let swapping = false;
      const r = await base.transaction(async (tx) => {
        const r = await fn({
          ...tx,
          swapIn: async (spec, shadow) => {
            swapping = true;
            await tx.swapIn(spec, shadow);
          },
        });
        if (swapping) line({ swap: 'open' });
        if (swapping && mode === 'swap') await sleep(300);
        else if (mode === 'slow') await sleep(3);
        return r;
      });
      if (swapping) line({ swap: 'done' });
      return r;
    },
    close: () => base.close(),
  };
  let lastCommit = 0;
  const run = startDataflow(
    {
      source: log,
      members: rebuildMembers(log, db, table, variant),
      settings: {
        batchSize: 1000,
        catchUpBatchSize: 1000,
        batchMs: 5,
        maxInFlight: 2,
        retentionMicros: null,
        onError: 'skip',
      },
    },
    {
      ...recordingListener(),
      committed: () => {
        const n = run.stats().batchesCommitted;
        if (n !== lastCommit) line({ commit: (lastCommit = n) });
      },
      log: (level, message) => process.stderr.write(`${level}: ${message}\n`),
    },
  );
  process.on('SIGTERM', () => {
    void run.stop().then(async () => {
      await base.close();
      await log.close();
      process.exit(0);
    });
  });
  line({ started: true });
  await Promise.race([run.live, run.finished]);
  const stats = run.stats();
  if (stats.error !== null) throw new Error(stats.error);
  line({ live: true, rebuilt: stats.rebuilt.length });
}

main().catch((e: unknown) => {
  process.stderr.write(`worker failed: ${e instanceof Error ? e.stack : String(e)}\n`);
  process.exit(2);
});
