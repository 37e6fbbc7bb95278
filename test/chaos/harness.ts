/**
 * Database chaos tests, written once for any server database a sink writes to. Each case runs the
 * crash test's dataflow (dashboard keyed, usage multiset, 50 machines) in a child process
 * (worker.ts) against a server process the test owns, does violence to the server while the
 * dataflow catches up and while it is live under load, and ends with every table equal to the
 * from-scratch result, the offsets equal to the log's present, and the child still alive (it exits
 * with 0 on SIGTERM):
 *   - at least 10 SIGKILLs of the server at random moments (some certainly inside a transaction),
 *     each followed by a start on the same data directory (crash recovery);
 *   - the sink's sessions ended by the server in the middle of a transaction;
 *   - the kind's fast restart (PostgreSQL: `pg_ctl restart -m fast`) under live load;
 *   - a TCP proxy that cuts the connection at COMMIT: after forwarding it (the acknowledgement is
 *     lost, the batch committed) and before (it never commits);
 *   - the server stopped (SIGSTOP) for longer than the connect and statement timeouts, then
 *     continued: the sinks' status says retrying, each attempt ends (nothing hangs), it recovers.
 *
 * To run these cases for another kind of database (MariaDB, issue 19 point 4):
 *   1. Implement `ChaosDatabase` in test/chaos/<kind>.ts (postgres.ts is the model): a server of the
 *      test's own (`ChaosServer`: a persistent data directory in a temp folder, a free port; SIGKILL
 *      of the server process and start again on the same directory; SIGSTOP/SIGCONT of all its
 *      processes; the kind's fast restart, e.g. `mariadb-admin shutdown` and start; ending the
 *      sink's sessions inside a transaction, e.g. `KILL CONNECTION` of the sink's ids from
 *      information_schema.processlist); `sinkConfig` and `openSink` (the kind's SinkDatabase on a
 *      given port with the given connect and statement timeouts); readers of rows and offsets with a
 *      connection of the test's own; and `wire`, how the client's bytes split into messages and
 *      which is a COMMIT (MariaDB: packets of a 3-byte little-endian length and a sequence byte; a
 *      COMMIT is a COM_QUERY, payload byte 0x03, whose text is COMMIT).
 *   2. Register it in test/chaos/databases.ts (the worker opens its sink through that map).
 *   3. Add test/chaos/<kind>-chaos.test.ts: `chaosSuite(<kind>Chaos)`.
 * Nothing in the cases below is specific to PostgreSQL.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { SinkDatabase, TableSpec } from '../../src/sinks/types';
import type { OffsetMap } from '../../src/sources/types';
import { seeded } from '../dataflow/support';
import { CommitProxy, type CommitAction, type WireProtocol } from './commit-proxy';
import { Scenario } from './scenario';

/** A database server process the test owns. */
export interface ChaosServer {
  readonly port: number;
  /** SIGKILL of the server process (an OOM kill, a crash); resolves once all its processes are gone. */
  kill(): Promise<void>;
  /** Starts it on its data directory (after a kill: crash recovery); resolves when it accepts connections. */
  start(): Promise<void>;
  /** SIGSTOP of all its processes: connections stay open, nothing answers. */
  pause(): void;
  /** SIGCONT of what `pause` stopped. */
  resume(): void;
  /** The kind's own fast restart (sessions ended, clean shutdown, start); resolves when it accepts connections. */
  restartFast(): Promise<void>;
  /** Ends the sink's sessions that are inside a transaction, as an administrator would; resolves to how many. */
  endSinkTransactions(): Promise<number>;
  /** Stops it at once and removes its data directory. */
  destroy(): Promise<void>;
}

/** Connection settings a case gives the sink. */
export interface SinkOptions {
  /** The server's port, or a proxy's in front of it. */
  readonly port: number;
  readonly connectTimeoutMs?: number;
  readonly statementTimeoutMs?: number;
}

/** What a kind of database brings to the chaos cases. */
export interface ChaosDatabase {
  /** A name for test titles and the worker's map (databases.ts). */
  readonly kind: string;
  /** Why its server cannot run here (the cases are skipped with this reason), or null. */
  unavailable(): string | null;
  /** A new server of its own, started. */
  startServer(): Promise<ChaosServer>;
  /** What the worker passes to `openSink` (JSON). */
  sinkConfig(server: ChaosServer, options: SinkOptions): unknown;
  /** In the worker: the sink database for `sinkConfig`'s result. */
  openSink(config: unknown, onIdleError: (err: Error) => void): SinkDatabase;
  /** The table's rows as text (support's `rowText`, sorted), read with a connection of the test's own. */
  rows(server: ChaosServer, table: TableSpec): Promise<string[]>;
  /** The table's offsets, read with a connection of the test's own. */
  offsets(server: ChaosServer, table: string): Promise<OffsetMap>;
  /** The client protocol, for the proxy that cuts connections at COMMIT. */
  readonly wire: WireProtocol;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const retried = (s: Scenario): boolean => s.worker.statuses.some((x) => x.text.startsWith('retrying'));

/** Registers the chaos cases for `db`: a describe block, skipped with the reason when its server cannot run here. */
export function chaosSuite(db: ChaosDatabase): void {
  const why = db.unavailable();
  // With CI=true (.ci/run) they run, and fail saying why, instead of skipping.
  describe(`${db.kind} chaos`, { skip: why !== null && process.env.CI !== 'true' ? why : false }, () => {
    let server: ChaosServer;
    before(async () => {
      server = await db.startServer();
    });
    after(async () => {
      await server?.destroy();
    });

    test(`${db.kind}: ≥ 10 SIGKILLs of the server at random moments while catching up and live, restarted on the same data directory`, async () => {
      const run = await Scenario.start(db, server, 'kills', { prefilled: 30_000, holdMs: 2 });
      try {
        const rnd = seeded(1019);
        const kills = { catchingUp: 0, live: 0, insideTx: 0, heldInsideTx: 0 };
        for (let round = 0; round < 12; round++) {
          if (round === 6) {
            // The second half under live load.
            await run.worker.until(() => run.worker.live, 'live', 120_000);
            run.load(400);
          }
          // Progress since the last start: a commit went through; then a random moment.
          const commits = run.worker.commits;
          await run.worker.until(() => run.worker.commits > commits, `a commit before kill ${round + 1}`);
          const held = round % 3 === 2;
          if (held) {
            // Certainly inside a transaction: the next ones hold 300 ms after writing their rows.
            run.worker.send({ hold: 300 });
            const opened = run.worker.txOpened;
            await run.worker.until(() => run.worker.txOpened > opened && run.worker.txOpen, 'a held transaction');
          } else {
            await sleep(Math.floor(rnd() * 40));
          }
          if (run.worker.live) kills.live++;
          else kills.catchingUp++;
          if (run.worker.txOpen) kills.insideTx++;
          if (held && run.worker.txOpen) kills.heldInsideTx++;
          await server.kill();
          if (held) run.worker.send({ hold: 2 });
          await sleep(Math.floor(rnd() * 300)); // the worker retries against a dead server meanwhile
          await server.start();
        }
        const counts = JSON.stringify(kills);
        assert.ok(kills.catchingUp >= 3, `kills while catching up: ${counts}`);
        assert.ok(kills.live >= 6, `kills while live under load: ${counts}`);
        assert.equal(kills.heldInsideTx, 4, `the held rounds were killed inside a transaction: ${counts}`);
        assert.ok(retried(run), 'the sinks showed a retrying status');
        await run.finish();
      } finally {
        await run.dispose();
      }
    });

    test(`${db.kind}: the sink's sessions ended by the server in the middle of transactions`, async () => {
      const run = await Scenario.start(db, server, 'terminated', { prefilled: 10_000, holdMs: 200 });
      try {
        for (let round = 0; round < 5; round++) {
          if (round === 3) {
            await run.worker.until(() => run.worker.live, 'live');
            run.load(300);
          }
          // The next transaction to write its rows is held open 200 ms; ending it can still come too
          // late on a loaded machine (it committed meanwhile): then the one after it.
          let ended = 0;
          for (let attempt = 0; attempt < 5 && ended === 0; attempt++) {
            const opened = run.worker.txOpened;
            await run.worker.until(() => run.worker.txOpened > opened, 'an open transaction');
            ended = await server.endSinkTransactions();
          }
          assert.ok(ended >= 1, `round ${round}: a sink transaction was ended`);
        }
        run.worker.send({ hold: 0 });
        await run.worker.until(() => run.worker.errors.length > 0, 'the error of a failed commit');
        assert.ok(retried(run), 'the sinks showed a retrying status');
        await run.finish();
      } finally {
        await run.dispose();
      }
    });

    test(`${db.kind}: fast restarts of the server under live load`, async () => {
      const run = await Scenario.start(db, server, 'restarts', { prefilled: 5_000, holdMs: 0 });
      try {
        await run.worker.until(() => run.worker.live, 'live');
        run.load(500);
        for (let round = 0; round < 2; round++) {
          await sleep(1000);
          const before = run.worker.commits;
          await server.restartFast();
          await run.worker.until(() => run.worker.commits > before + 5, 'commits after the restart');
        }
        await sleep(500);
        await run.finish();
        assert.ok(
          retried(run) || run.worker.logs.some((l) => /idle connection lost/.test(l.message)),
          'the restarts were noticed (a commit retried or an idle connection replaced)',
        );
      } finally {
        await run.dispose();
      }
    });

    test(`${db.kind}: the connection cut just as COMMIT is sent — acknowledgement lost (committed) or COMMIT lost (not)`, async () => {
      let cuts = 0;
      // Every third COMMIT from the tenth on is cut, alternately after and before forwarding it, 8 in all.
      const plan = (n: number): CommitAction => {
        if (n < 10 || n % 3 !== 0 || cuts >= 8) return 'pass';
        return cuts++ % 2 === 0 ? 'after' : 'before';
      };
      const proxy = await CommitProxy.start({ host: '127.0.0.1', port: server.port }, db.wire, plan);
      const run = await Scenario.start(db, server, 'lostack', { prefilled: 10_000, holdMs: 0, sinkPort: proxy.port });
      try {
        await run.worker.until(() => run.worker.live, 'live');
        run.load(300);
        await run.worker.until(() => proxy.counts.after + proxy.counts.before >= 8, 'eight cut connections', 120_000);
        assert.ok(proxy.counts.after >= 3 && proxy.counts.before >= 3, JSON.stringify(proxy.counts));
        assert.ok(retried(run), 'the sinks showed a retrying status');
        await run.finish();
      } finally {
        await run.dispose();
        await proxy.close();
      }
    });

    test(`${db.kind}: the server stopped (SIGSTOP) longer than the connect and statement timeouts, then continued`, async () => {
      const timeouts = { connectTimeoutMs: 2000, statementTimeoutMs: 2000 };
      const run = await Scenario.start(db, server, 'stopped', { prefilled: 5_000, holdMs: 0, ...timeouts });
      try {
        await run.worker.until(() => run.worker.live, 'live');
        run.load(300);
        await sleep(1000);
        const logged = run.worker.logs.length;
        // The first failure is logged in full, later ones in counts naming the latest attempt.
        const attempts = (): string[] =>
          run.worker.logs
            .slice(logged)
            .filter((l) => /failed \(attempt \d+\)/.test(l.message))
            .map((l) => l.message);
        const latestAttempt = (): number =>
          Math.max(0, ...attempts().map((m) => Number(/failed \(attempt (\d+)\)/.exec(m)?.[1])));
        server.pause();
        const pausedAt = Date.now();
        try {
          // Each attempt ends with a timeout (nothing waits for ever) and the status says so.
          await run.worker.until(() => latestAttempt() >= 2 && retried(run), 'two failed attempts', 30_000);
          await sleep(Math.max(0, pausedAt + 10_000 - Date.now()));
        } finally {
          server.resume();
        }
        const failures = attempts();
        assert.ok(
          failures.some((m) => /no answer from the server within 4 s/.test(m)),
          `a statement without an answer was given up: ${failures.join('\n')}`,
        );
        assert.ok(
          failures.every((m) => /no answer from the server|timeout|Connection terminated/.test(m)),
          `every attempt ended by a timeout: ${failures.join('\n')}`,
        );
        assert.ok(
          run.worker.statuses.some((s) => s.text === `retrying: no answer from 127.0.0.1:${server.port}`),
          `the status named the silent server: ${JSON.stringify(run.worker.statuses.slice(-4))}`,
        );
        const statuses = run.worker.statuses.length;
        await run.worker.until(
          () => run.worker.statuses.slice(statuses).some((s) => s.text.startsWith('live')),
          'live again after SIGCONT',
          30_000,
        );
        await run.finish();
      } finally {
        server.resume();
        await run.dispose();
      }
    });
  });
}
