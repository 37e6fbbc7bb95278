/**
 * The chaos tests' child process: runs the dashboard (keyed) and usage (multiset) dataflow of the
 * crash test over an embedded log into a database of a kind from `chaosDatabases`, until SIGTERM
 * (a clean stop: exit code 0). It reports on stdout, one JSON object per line:
 *   {started} {live}                         the dataflow started / reached live;
 *   {commit: n, progress}                    after each commit: commits so far, events committed;
 *   {tx: 'open' | 'done'}                    a transaction has written its rows / has ended;
 *   {status: {id, fill, text}} {error} {log} what a Node-RED node would show and log;
 *   {loaded: total}                          the live load stopped; the log holds `total` events.
 * It takes commands on stdin, one JSON object per line:
 *   {hold: ms}   each transaction stays open this long after writing its rows (default: the config's);
 *   {load: rate} appends the generator's next events at `rate` per second (0 stops and reports {loaded}).
 * Usage: worker.ts '<WorkerConfig as JSON>'
 */
import { createInterface } from 'node:readline';
import { startDataflow } from '../../src/dataflow/coordinator';
import type { SinkDatabase } from '../../src/sinks/types';
import { EmbeddedLog } from '../../src/sources/embedded-log';
import { crashMembers } from '../crash/members';
import { drillEvents } from '../dataflow/support';
import { chaosDatabases } from './databases';

export interface WorkerConfig {
  readonly kind: string;
  /** What the kind's `openSink` takes. */
  readonly sink: unknown;
  readonly logFile: string;
  /** Table name prefix (tables `<prefix>dashboard`, `<prefix>usage`). */
  readonly prefix: string;
  /** The generator of the log's events (the parent appended the first `prefilled` of them). */
  readonly events: {
    readonly machines: number;
    readonly seed: number;
    readonly prefilled: number;
    readonly max: number;
  };
  /** Initial hold of each transaction after its rows are written, ms. */
  readonly holdMs: number;
}

const say = (line: Record<string, unknown>): void => void process.stdout.write(`${JSON.stringify(line)}\n`);

/** A database whose transactions announce themselves and stay open `hold()` ms after writing. */
function announcing(db: SinkDatabase, hold: () => number): SinkDatabase {
  return {
    kind: db.kind,
    label: db.label,
    transaction: async (fn) => {
      try {
        return await db.transaction(async (tx) => {
          const r = await fn(tx);
          say({ tx: 'open' });
          const ms = hold();
          if (ms > 0) await new Promise((resolve) => setTimeout(resolve, ms));
          return r;
        });
      } finally {
        say({ tx: 'done' });
      }
    },
    close: () => db.close(),
  };
}

async function main(): Promise<void> {
  const config = JSON.parse(process.argv[2] ?? '') as WorkerConfig;
  const chaos = chaosDatabases[config.kind];
  if (!chaos) throw new Error(`no chaos database kind ${config.kind}`);
  const log = new EmbeddedLog(config.logFile, { foreignWritePollMs: 0 });
  const base = chaos.openSink(config.sink, (err) =>
    say({ log: { level: 'warn', message: `idle connection lost: ${err.message}` } }),
  );
  let holdMs = config.holdMs;
  const db = announcing(base, () => holdMs);
  const run = startDataflow(
    {
      source: log,
      members: crashMembers(log, db, config.prefix),
      // Retries after the first are logged as counts naming the latest attempt: every 200 ms here.
      reportIntervalMs: 200,
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
      status: (id, s) => {
        if (id.endsWith('-sink')) say({ status: { id, fill: s.fill, text: s.text } });
      },
      error: (_id, message) => say({ error: message }),
      committed: () => undefined,
      log: (level, message) => say({ log: { level, message } }),
    },
  );
  let commits = 0;
  const progress = (): number => Object.values(run.stats().committedOffsets).reduce((a, b) => a + b + 1, 0);
  const reportCommits = setInterval(() => {
    const n = run.stats().batchesCommitted;
    if (n !== commits) say({ commit: (commits = n), progress: progress() });
  }, 2);

  // The live load: the generator's next events, appended a few at a time.
  const events = drillEvents({ machines: config.events.machines, events: config.events.max, seed: config.events.seed });
  let next = config.events.prefilled;
  let loader: NodeJS.Timeout | null = null;
  const setLoad = (rate: number): void => {
    if (loader) clearInterval(loader);
    loader = null;
    if (rate <= 0) return say({ loaded: next });
    const started = Date.now();
    const from = next;
    loader = setInterval(() => {
      const due = Math.min(events.length, from + Math.floor(((Date.now() - started) * rate) / 1000));
      for (; next < due; next++) {
        const e = events[next]!;
        log.appendSync(e.stream, [{ tags: e.tags, payload: e.payload, lamport: e.lamport, timestamp: e.timestamp }]);
      }
    }, 10);
  };
  createInterface({ input: process.stdin }).on('line', (line) => {
    const command = JSON.parse(line) as { hold?: number; load?: number };
    if (command.hold !== undefined) holdMs = command.hold;
    if (command.load !== undefined) setLoad(command.load);
  });

  process.on('SIGTERM', () => {
    if (loader) clearInterval(loader);
    void run.stop().then(async () => {
      clearInterval(reportCommits);
      await base.close();
      await log.close();
      process.exit(0);
    });
  });
  say({ started: true });
  await run.live;
  say({ live: true });
}

main().catch((e: unknown) => {
  process.stderr.write(`worker failed: ${e instanceof Error ? e.stack : String(e)}\n`);
  process.exit(2);
});
