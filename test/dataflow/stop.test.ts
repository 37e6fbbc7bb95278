/**
 * What stop() does (issue 12, point 4), on SQLite and PostgreSQL: the work computed before the stop
 * is committed with its offsets before stop() resolves, a step in progress finishes first (its
 * result dropped), and so a redeploy never steps the old graph beside the new one.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { rmSync } from 'node:fs';
import { startDataflow } from '../../src/dataflow/coordinator';
import type { DataflowMember, DataflowSettings, Stage } from '../../src/dataflow/types';
import type { Value } from '../../src/engine/types';
import { PostgresDatabase } from '../../src/sinks/postgres-database';
import { SqliteDatabase } from '../../src/sinks/sqlite-database';
import type { SinkDatabase, TableSpec } from '../../src/sinks/types';
import { EmbeddedLog } from '../../src/sources/embedded-log';
import type { OffsetMap } from '../../src/sources/types';
import {
  allEvents,
  appendInOrder,
  drillEvents,
  fromScratch,
  operatorMember,
  pgExec,
  pgOffsets,
  pgRows,
  recordingListener,
  sinkMember,
  sourceMember,
  sqliteOffsets,
  sqliteRows,
  tempDir,
  uniqueName,
} from './support';

// Catching up 3,000 stored events in steps of 1,000: a commit holds up to 16 steps, so after the
// first step its commit is held (not yet queued) — exactly the work stop() must not drop.
const SETTINGS: DataflowSettings = {
  batchSize: 100,
  catchUpBatchSize: 1000,
  batchMs: 5,
  maxInFlight: 16,
  retentionMicros: null,
  onError: 'skip',
};

/** An asynchronous map that waits at a gate once it has let `open` records through. */
class Gate {
  active = 0;
  passed = 0;
  private release: (() => void) | null = null;
  private readonly opened: Promise<void>;
  waiting = false;

  constructor(private readonly open: number) {
    this.opened = new Promise((resolve) => (this.release = resolve));
  }

  async pass(): Promise<void> {
    this.active++;
    try {
      if (this.passed >= this.open) {
        this.waiting = true;
        await this.opened;
      }
      this.passed++;
    } finally {
      this.active--;
    }
  }

  openAll(): void {
    this.release?.();
  }
}

function table(name: string): TableSpec {
  return {
    name,
    mode: 'multiset',
    columns: [
      { name: 'stream', type: 'text', value: { path: 'stream' } },
      { name: 'n', type: 'bigint', value: { path: 'offset' } },
    ],
  };
}

function members(log: EmbeddedLog, db: SinkDatabase, name: string, gate: Gate): DataflowMember[] {
  return [
    sourceMember('src', "'machine'", log),
    operatorMember('slow', ['src'], { fn: 'gate' }, ([s]) => {
      const stage = s as Stage;
      if (stage.kind !== 'collection') throw new Error('expected a collection');
      return {
        kind: 'collection',
        collection: stage.collection.map(async (v) => {
          await gate.pass();
          const ev = v as { stream: string; offset: number };
          return { stream: ev.stream, offset: ev.offset } as Value;
        }),
      };
    }),
    sinkMember('sink', ['slow'], db, table(name)),
  ];
}

for (const kind of ['sqlite', 'postgres'] as const) {
  test(`${kind}: stop() commits the steps computed before it, waits for the step in progress, and a new dataflow starts only then`, async () => {
    const dir = tempDir();
    const log = new EmbeddedLog(join(dir, 'log.sqlite'));
    const file = join(dir, 'views.sqlite');
    const db = kind === 'sqlite' ? new SqliteDatabase({ filename: file }) : new PostgresDatabase({});
    const name = uniqueName('stopped');
    const rows = (): Promise<string[]> =>
      kind === 'sqlite' ? Promise.resolve(sqliteRows(file, table(name))) : pgRows(table(name));
    const offsets = (): Promise<OffsetMap> =>
      kind === 'sqlite' ? Promise.resolve(sqliteOffsets(file, name)) : pgOffsets(name);
    try {
      appendInOrder(log, drillEvents({ machines: 3, events: 3000, seed: 2 }));
      const gate = new Gate(1000);
      const first = startDataflow(
        { source: log, members: members(log, db, name, gate), settings: SETTINGS },
        recordingListener(),
      );
      while (!gate.waiting) await new Promise((r) => setTimeout(r, 5));
      // The first step (1,000 events) is computed and its commit held; the second waits at the gate.
      assert.equal(first.stats().batchesCommitted, 0);
      let stopped = false;
      const stopping = first.stop().then(() => (stopped = true));
      await new Promise((r) => setTimeout(r, 50));
      const waited = !stopped;
      gate.openAll();
      await stopping;

      const committed = await offsets();
      const events = await allEvents(log);
      const done = events.filter((e) => e.offset <= (committed[e.stream] ?? -1));
      assert.equal(done.length, 1000, `the held step was committed: ${JSON.stringify(committed)}`);
      assert.deepEqual(await rows(), (await fromScratch(members(log, db, name, new Gate(1e9)), done)).get('sink'));
      // Checked after the commit, so that a failure of either shows.
      assert.equal(waited, true, 'stop() waits for the step in progress');
      assert.equal(gate.active, 0, 'no call of the old graph runs once stop() resolved');

      // A new dataflow (a redeploy) continues exactly from there.
      const again = new Gate(1e9);
      const second = startDataflow(
        { source: log, members: members(log, db, name, again), settings: SETTINGS },
        recordingListener(),
      );
      await second.live;
      await second.stop();
      assert.deepEqual(await rows(), (await fromScratch(members(log, db, name, new Gate(1e9)), events)).get('sink'));
      assert.deepEqual(await offsets(), await log.presentOffsets());
    } finally {
      await db.close();
      await log.close();
      rmSync(dir, { recursive: true, force: true });
      if (kind === 'postgres')
        await pgExec(
          `drop table if exists "${name}", "${name}_offsets"; delete from deltaflow_meta where table_name = '${name}'`,
        );
    }
  });
}
