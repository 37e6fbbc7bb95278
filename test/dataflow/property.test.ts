/**
 * Property: whatever the batch sizes, the arrival order of the streams, and where the dataflow is
 * stopped and restarted (while events keep arriving, live or between runs), the tables end up equal
 * to the from-scratch result over all events, and the offsets equal the source's present.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { startDataflow } from '../../src/dataflow/coordinator';
import type { DataflowMember, DataflowSettings } from '../../src/dataflow/types';
import { SqliteDatabase } from '../../src/sinks/sqlite-database';
import { EmbeddedLog } from '../../src/sources/embedded-log';
import type { ActyxEvent } from '../../src/sources/types';
import {
  allEvents,
  appendEvents,
  appendInOrder,
  dashboardMembers,
  drillEvents,
  fromScratch,
  oneByOne,
  recordingListener,
  sourceMember,
  sqliteOffsets,
  sqliteRows,
  tempDir,
  usageMembers,
  waitCommitted,
} from './support';

test('incremental with restarts equals from scratch (random batches, arrival orders, restart points)', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 1, max: 60 }),
      fc.array(fc.integer({ min: 1, max: 99 }), { minLength: 1, maxLength: 4 }),
      fc.array(fc.boolean(), { minLength: 5, maxLength: 5 }),
      fc.integer({ min: 1, max: 1000 }),
      async (batchSize, cuts, streamWise, seed) => {
        const dir = tempDir('deltaflow-prop-');
        const log = new EmbeddedLog(join(dir, 'log.sqlite'));
        const file = join(dir, 'views.sqlite');
        const db = new SqliteDatabase({ filename: file });
        try {
          const events = drillEvents({ machines: 4, events: 300, seed });
          const points = [...new Set(cuts.map((c) => Math.floor((c / 100) * events.length)))].sort((a, b) => a - b);
          const chunks: (typeof events)[] = [];
          let from = 0;
          for (const p of [...points, events.length]) {
            chunks.push(events.slice(from, p));
            from = p;
          }
          const members: DataflowMember[] = [
            sourceMember('src', "'machine'", log),
            ...dashboardMembers('src', db, 'dashboard'),
            ...usageMembers('src', db, 'usage'),
          ];
          const settings = { batchSize, batchMs: 1, maxInFlight: 2, retentionMicros: null, onError: 'skip' as const };
          for (let i = 0; i < chunks.length; i++) {
            const chunk = chunks[i] as typeof events;
            const live = streamWise[i % streamWise.length];
            const append = (): void =>
              streamWise[(i + 1) % streamWise.length] ? appendEvents(log, chunk) : appendInOrder(log, chunk);
            if (!live) append(); // between runs
            const run = startDataflow({ source: log, members, settings }, recordingListener());
            await run.live;
            if (live) append(); // while running
            await waitCommitted(run, await log.presentOffsets());
            await run.stop();
          }
          const expected = await fromScratch(members, await allEvents(log));
          const present = await log.presentOffsets();
          for (const m of members) {
            if (m.role !== 'sink') continue;
            assert.deepEqual(sqliteRows(file, m.table), expected.get(m.id));
            assert.deepEqual(sqliteOffsets(file, m.table.name), present);
          }
        } finally {
          await db.close();
          await log.close();
          rmSync(dir, { recursive: true, force: true });
        }
      },
    ),
    { numRuns: 25 },
  );
});

test('with a retention window and late events, incremental with restarts equals one uninterrupted run one event at a time', async () => {
  const window = 40e6; // 40 s of the events' time (≈ 40 events), compacted in steps of 5 s
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 1, max: 60 }),
      fc.array(fc.integer({ min: 1, max: 99 }), { minLength: 1, maxLength: 4 }),
      fc.array(fc.boolean(), { minLength: 3, maxLength: 3 }),
      fc.integer({ min: 1, max: 1000 }),
      async (batchSize, cuts, live, seed) => {
        const dir = tempDir('deltaflow-prop-retention-');
        try {
          // Every 7th event late: its timestamp up to two windows before its predecessor's. With an
          // even seed, timestamps in whole seconds, so that events fall exactly on cutoffs too.
          const events = drillEvents({ machines: 4, events: 300, seed })
            .map((e, i) =>
              i % 7 === 3
                ? { ...e, timestamp: e.timestamp - Math.floor((((seed * (i + 1)) % 97) / 97) * 2 * window) }
                : e,
            )
            .map((e) => (seed % 2 === 0 ? { ...e, timestamp: Math.round(e.timestamp / 1e6) * 1e6 } : e));
          const points = [...new Set(cuts.map((c) => Math.floor((c / 100) * events.length)))].sort((a, b) => a - b);
          const tables = async (
            name: string,
            runs: { events: typeof events; live: boolean }[],
            settings: DataflowSettings,
          ): Promise<{ rows: Map<string, string[]>; stored: ActyxEvent[]; members: DataflowMember[] }> => {
            const log = new EmbeddedLog(join(dir, `${name}-log.sqlite`));
            const file = join(dir, `${name}.sqlite`);
            const db = new SqliteDatabase({ filename: file });
            try {
              const members: DataflowMember[] = [
                sourceMember('src', "'machine'", log),
                ...dashboardMembers('src', db, 'dashboard'),
                ...usageMembers('src', db, 'usage'),
              ];
              for (const r of runs) {
                // Appended in Lamport order, so events are computed in the same order live and when read back.
                if (!r.live) appendInOrder(log, r.events);
                const run = startDataflow({ source: log, members, settings }, recordingListener());
                await run.live;
                if (r.live) appendInOrder(log, r.events);
                await waitCommitted(run, await log.presentOffsets());
                await run.stop();
              }
              const rows = new Map<string, string[]>();
              for (const m of members) if (m.role === 'sink') rows.set(m.id, sqliteRows(file, m.table));
              return { rows, stored: await allEvents(log), members };
            } finally {
              await db.close();
              await log.close();
            }
          };
          const runs: { events: typeof events; live: boolean }[] = [];
          let from = 0;
          for (const [i, p] of [...points, events.length].entries()) {
            runs.push({ events: events.slice(from, p), live: live[i % live.length] as boolean });
            from = p;
          }
          const base = { batchMs: 1, maxInFlight: 2, retentionMicros: window, onError: 'skip' as const };
          const restarted = await tables('restarted', runs, { ...base, batchSize, catchUpBatchSize: batchSize });
          const reference = await tables('reference', [{ events, live: false }], {
            ...base,
            batchSize: 1,
            catchUpBatchSize: 1,
          });
          assert.deepEqual(restarted.rows, reference.rows);
          // …and both equal the engine alone computing one event per step (no coordinator).
          assert.deepEqual(restarted.rows, await oneByOne(restarted.members, restarted.stored, window));
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      },
    ),
    { numRuns: 12 },
  );
});
