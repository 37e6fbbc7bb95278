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
import type { DataflowMember } from '../../src/dataflow/types';
import { SqliteDatabase } from '../../src/sinks/sqlite-database';
import { EmbeddedLog } from '../../src/sources/embedded-log';
import { allEvents, appendEvents, appendInOrder, dashboardMembers, drillEvents, fromScratch, recordingListener, sourceMember, sqliteOffsets, sqliteRows, tempDir, usageMembers, waitCommitted } from './support';

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
          const members: DataflowMember[] = [sourceMember('src', "'machine'", log), ...dashboardMembers('src', db, 'dashboard'), ...usageMembers('src', db, 'usage')];
          const settings = { batchSize, batchMs: 1, maxInFlight: 2, retentionMicros: null, onError: 'skip' as const };
          for (let i = 0; i < chunks.length; i++) {
            const chunk = chunks[i] as typeof events;
            const live = streamWise[i % streamWise.length];
            const append = (): void => (streamWise[(i + 1) % streamWise.length] ? appendEvents(log, chunk) : appendInOrder(log, chunk));
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
