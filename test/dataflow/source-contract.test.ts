/**
 * An event source that breaks its contract stops the dataflow with an error naming the event,
 * instead of silently computing a wrong table: an event repeated or out of its stream's order (the
 * committed offsets would then misstate what the table reflects), or a timestamp that is not an
 * integer (retention's cutoffs depend on it). The NB checks in src/dataflow/processor.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { rmSync } from 'node:fs';
import { startDataflow } from '../../src/dataflow/coordinator';
import type { DataflowSettings } from '../../src/dataflow/types';
import { SqliteDatabase } from '../../src/sinks/sqlite-database';
import { EmbeddedLog } from '../../src/sources/embedded-log';
import type { EventSource, SubscriptionItem } from '../../src/sources/types';
import { appendEvents, dashboardMembers, drillEvents, recordingListener, sourceMember, tempDir } from './support';

const SETTINGS: DataflowSettings = {
  batchSize: 200,
  batchMs: 5,
  maxInFlight: 3,
  retentionMicros: null,
  onError: 'skip',
};

/** The log's subscription with `change` applied to its first chunk. */
async function runWith(change: (items: readonly SubscriptionItem[]) => readonly SubscriptionItem[]): Promise<string> {
  const dir = tempDir();
  const log = new EmbeddedLog(join(dir, 'log.sqlite'));
  const db = new SqliteDatabase({ filename: join(dir, 'views.sqlite') });
  try {
    appendEvents(log, drillEvents({ machines: 3, events: 300, seed: 3 }));
    const broken: EventSource = {
      presentOffsets: () => log.presentOffsets(),
      publish: (e) => log.publish(e),
      close: () => Promise.resolve(),
      query: (q, lo, hi, o) => log.query(q, lo, hi, o),
      subscribe: (q, lo, o) => log.subscribe(q, lo, o),
      async *subscribeBatches(q, lo, o) {
        let first = true;
        for await (const chunk of log.subscribeBatches(q, lo, o)) {
          yield first ? change(chunk) : chunk;
          first = false;
        }
      },
    };
    const members = [sourceMember('src', "'machine'", broken), ...dashboardMembers('src', db, 'dashboard')];
    const run = startDataflow({ source: broken, members, settings: SETTINGS }, recordingListener());
    try {
      await Promise.race([run.finished, run.live]); // live: the broken events went through unnoticed
      const stats = run.stats();
      assert.equal(stats.phase, 'error');
      assert.equal(stats.batchesCommitted, 0, 'nothing of the broken batch is committed');
      return stats.error ?? '';
    } finally {
      await run.stop();
    }
  } finally {
    await db.close();
    await log.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

test('an event delivered twice stops the dataflow, naming the event', async () => {
  let repeated = '';
  const error = await runWith((items) => {
    const event = items.find((i) => i.type === 'event');
    assert.ok(event?.type === 'event');
    repeated = `${event.event.stream}/${event.event.offset}`;
    return [...items.slice(0, 5), event, ...items.slice(5)];
  });
  assert.match(error, /event source: event .* came twice or out of its stream's order/);
  assert.ok(error.includes(repeated), error);
});

test('an event whose timestamp is not an integer stops the dataflow, naming the event', async () => {
  const error = await runWith((items) =>
    items.map((i, n) =>
      n === 3 && i.type === 'event' ? { ...i, event: { ...i.event, timestamp: i.event.timestamp + 0.5 } } : i,
    ),
  );
  assert.match(error, /event source: event \S+ has the timestamp \d+\.5, not an integer/);
});
