/**
 * One chaos case's dataflow: an embedded log prefilled with drill events in a temp folder, a worker
 * process running the dataflow into the case's own tables on the chaos server, an optional live
 * load, and the final check: every event committed, the worker still alive and stopping cleanly,
 * every table equal to the from-scratch result and its offsets equal to the log's present.
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { EmbeddedLog } from '../../src/sources/embedded-log';
import { crashMembers } from '../crash/members';
import {
  allEvents,
  appendEvents,
  assertSameRows,
  drillEvents,
  fromScratch,
  tempDir,
  unusedDatabase,
} from '../dataflow/support';
import type { ChaosDatabase, ChaosServer } from './harness';
import { WorkerProcess } from './worker-process';

export interface ScenarioOptions {
  /** Events in the log before the worker starts: its catch-up. */
  readonly prefilled: number;
  /** How long each transaction stays open after writing its rows, ms. */
  readonly holdMs: number;
  /** Where the sink connects (a proxy's port); default: the server's. */
  readonly sinkPort?: number;
  readonly connectTimeoutMs?: number;
  readonly statementTimeoutMs?: number;
}

const MACHINES = 50;
/** More events than any live load appends. */
const LIVE_EVENTS = 100_000;

export class Scenario {
  loading = false;

  private constructor(
    private readonly db: ChaosDatabase,
    private readonly server: ChaosServer,
    private readonly dir: string,
    private readonly prefix: string,
    private readonly prefilled: number,
    readonly worker: WorkerProcess,
  ) {}

  static async start(
    db: ChaosDatabase,
    server: ChaosServer,
    name: string,
    options: ScenarioOptions,
  ): Promise<Scenario> {
    const dir = tempDir(`deltaflow-chaos-${name}-`);
    const logFile = join(dir, 'log.sqlite');
    const seed = [...name].reduce((h, c) => h * 31 + c.charCodeAt(0), 7) % 100_000;
    const events = drillEvents({ machines: MACHINES, events: options.prefilled, seed });
    const log = new EmbeddedLog(logFile);
    appendEvents(log, events, 20_000);
    await log.close();
    const prefix = `${name}_`;
    const worker = new WorkerProcess({
      kind: db.kind,
      sink: db.sinkConfig(server, {
        port: options.sinkPort ?? server.port,
        connectTimeoutMs: options.connectTimeoutMs,
        statementTimeoutMs: options.statementTimeoutMs,
      }),
      logFile,
      prefix,
      events: { machines: MACHINES, seed, prefilled: options.prefilled, max: options.prefilled + LIVE_EVENTS },
      holdMs: options.holdMs,
    });
    return new Scenario(db, server, dir, prefix, options.prefilled, worker);
  }

  /** Live events at `rate` per second, appended by the worker to its log. */
  load(rate: number): void {
    this.loading = true;
    this.worker.send({ load: rate });
  }

  /**
   * Stops the load, waits until every event is committed, stops the worker (it must still be
   * running and exit with 0), and compares every table with the from-scratch result.
   */
  async finish(): Promise<void> {
    let total = this.prefilled;
    if (this.loading) {
      this.worker.send({ load: 0 });
      await this.worker.until(() => this.worker.loaded !== null, 'the load to stop');
      total = this.worker.loaded as number;
    }
    await this.worker.until(() => this.worker.progress === total, `all ${total} events committed`, 120_000);
    await this.worker.stop();
    const log = new EmbeddedLog(join(this.dir, 'log.sqlite'));
    try {
      const events = await allEvents(log);
      assert.equal(events.length, total);
      const members = crashMembers(log, unusedDatabase, this.prefix);
      const expected = await fromScratch(members, events);
      const present = await log.presentOffsets();
      for (const m of members) {
        if (m.role !== 'sink') continue;
        const rows = await this.db.rows(this.server, m.table);
        assert.ok(rows.length > 0, `${m.table.name} has rows`);
        assertSameRows(rows, expected.get(m.id), `${m.table.name} equals the from-scratch result`);
        assert.deepEqual(
          await this.db.offsets(this.server, m.table.name),
          present,
          `${m.table.name} offsets equal the present`,
        );
      }
    } finally {
      await log.close();
    }
  }

  /** Ends the worker if it still runs (after a failure) and removes the folder. */
  async dispose(): Promise<void> {
    this.worker.kill();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
