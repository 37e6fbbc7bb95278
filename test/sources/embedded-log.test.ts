import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { matchesEvent, parseQuery } from '../../src/sources/aql';
import { decodePage, EmbeddedLog } from '../../src/sources/embedded-log';
import { EventColumnsDecoder } from '../../src/sources/event-columns';
import {
  liveReadAheadWorkers,
  PagePrefetcher,
  READ_AHEAD_BYTES,
  readAheadRangesStarted,
} from '../../src/sources/page-prefetcher';
import { liveWalCheckpointers } from '../../src/sqlite/wal-checkpointer';
import type { ActyxEvent } from '../../src/sources/types';
import { Collector, eventId, streamOrderProblem, tagged, waitFor } from '../support/actyx-helpers';

function tempFile(): { file: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'deltaflow-log-'));
  return { file: join(dir, 'events.sqlite'), cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

async function collectQuery(
  log: EmbeddedLog,
  query: string,
  lower: Record<string, number>,
  upper: Record<string, number>,
): Promise<ActyxEvent[]> {
  const out: ActyxEvent[] = [];
  for await (const e of log.query(query, lower, upper)) out.push(e);
  return out;
}

test('offsets are gapless per stream from 0; lamport rises; tags are a sorted set; present offsets', async () => {
  const { file, cleanup } = tempFile();
  const log = new EmbeddedLog(file);
  try {
    const a = await log.publish([
      { tags: ['b', 'a', 'b'], payload: { x: 1 } },
      { tags: ['a'], payload: null },
    ]);
    const b = await log.publishAs('drill1-0', tagged(3, ['a']), { lamport: 100, timestamp: 5_000_000 });
    const c = await log.publish(tagged(2, ['a']));
    assert.deepEqual(
      a.map((p) => p.offset),
      [0, 1],
    );
    assert.deepEqual(
      b.map((p) => [p.stream, p.offset, p.lamport, p.timestamp]),
      [
        ['drill1-0', 0, 100, 5_000_000],
        ['drill1-0', 1, 101, 5_000_000],
        ['drill1-0', 2, 102, 5_000_000],
      ],
    );
    assert.deepEqual(
      c.map((p) => p.offset),
      [2, 3],
    );
    assert.ok(a[1]!.lamport > a[0]!.lamport);
    assert.ok(c[0]!.lamport > 102, 'the clock moved past the highest stamp seen');
    assert.ok(Math.abs(a[0]!.timestamp / 1000 - Date.now()) < 60_000, 'timestamps in microseconds');
    assert.deepEqual(await log.presentOffsets(), { [log.localStream]: 3, 'drill1-0': 2 });
    const all = await collectQuery(log, 'allEvents', {}, await log.presentOffsets());
    assert.deepEqual(all[0]!.tags, ['a', 'b']);
    assert.equal(all[1]!.payload, null);
    assert.equal(all[0]!.appId, 'com.example.deltaflow');
    await assert.rejects(log.publishAs('drill1-0', tagged(1, ['a']), { lamport: 50 }), /not above 102/);
    await assert.rejects(log.publish([{ tags: ['a'], payload: 1n }]), /cannot be stored as JSON/);
    await assert.rejects(log.publish([{ tags: [''], payload: {} }]), /tags must be/);
    const big = Array.from({ length: 150 }, (_, i) => ({
      tags: ['a'],
      payload: { i },
      lamport: i === 100 ? 1 : 1000 + i,
    }));
    await assert.rejects(log.publishAs('drill1-0', big), /lamport 1 of event 100 is not above 1099/);
    assert.deepEqual(
      await log.presentOffsets(),
      { [log.localStream]: 3, 'drill1-0': 2 },
      'failed publishes leave no trace',
    );
    const ok = await log.publishAs(
      'drill1-0',
      big.map((e, i) => ({ ...e, lamport: 1000 + i })),
    );
    assert.deepEqual(
      ok.map((p) => p.offset),
      Array.from({ length: 150 }, (_, i) => 3 + i),
      'a large batch gets gapless offsets',
    );
  } finally {
    await log.close();
    cleanup();
  }
});

test('data survives closing and reopening the file; the node id and clock persist', async () => {
  const { file, cleanup } = tempFile();
  try {
    const first = new EmbeddedLog(file);
    await first.publish(tagged(3, ['a']));
    await first.publishAs('dev-0', tagged(2, ['a']), { lamport: 500 });
    const nodeId = first.nodeId;
    await first.close();
    const second = new EmbeddedLog(file);
    try {
      assert.equal(second.nodeId, nodeId);
      assert.deepEqual(await second.presentOffsets(), { [second.localStream]: 2, 'dev-0': 1 });
      const [next] = await second.publish(tagged(1, ['a']));
      assert.equal(next!.offset, 3);
      assert.ok(next!.lamport > 501);
      const events = await collectQuery(second, "FROM 'a'", {}, await second.presentOffsets());
      assert.equal(events.length, 6);
    } finally {
      await second.close();
    }
  } finally {
    cleanup();
  }
});

test('subscribe: stored, then caughtUp (whole present), then live; resuming from offsets is exact', async () => {
  const { file, cleanup } = tempFile();
  const log = new EmbeddedLog(file, { pageSize: 7 });
  try {
    await log.publish(tagged(20, ['m']));
    await log.publishAs('dev-0', tagged(10, ['m']), { lamport: 1 });
    await log.publish(tagged(5, ['other']));
    const c = new Collector(log, "FROM 'm'");
    await waitFor(() => c.caughtUp, 'caughtUp');
    assert.equal(c.events.length, 30);
    const caught = c.items.find((i) => i.type === 'caughtUp')!;
    assert.deepEqual(caught, { type: 'caughtUp', offsets: { [log.localStream]: 24, 'dev-0': 9 } });
    assert.equal(c.items.indexOf(caught), 30, 'caughtUp comes right after the stored events');
    await log.publish(tagged(3, ['m'], 100));
    await waitFor(() => c.events.length === 33, 'live events');
    await c.stop();

    // Resume from the offsets of the first 17 delivered events: exactly the rest follows.
    const resumeAt: Record<string, number> = {};
    for (const e of c.events.slice(0, 17)) resumeAt[e.stream] = e.offset;
    const r = new Collector(log, "FROM 'm'", resumeAt);
    await waitFor(() => r.caughtUp, 'caughtUp of the resumed subscription');
    assert.deepEqual(r.events.map(eventId), c.events.slice(17).map(eventId));
    await r.stop();
  } finally {
    await log.close();
    cleanup();
  }
});

test('concurrent publishes while several subscribers read lose nothing; a slow subscriber is served in pages', async () => {
  const { file, cleanup } = tempFile();
  const log = new EmbeddedLog(file, { pageSize: 50 });
  try {
    await log.publish(tagged(500, ['c']));
    const fast = new Collector(log, "FROM 'c'");
    // A slow consumer that pulls one item every few ms.
    const slowSeen: ActyxEvent[] = [];
    const slowAbort = new AbortController();
    const slow = (async () => {
      for await (const item of log.subscribe("FROM 'c'", {}, { signal: slowAbort.signal })) {
        if (item.type === 'event') slowSeen.push(item.event);
        if (slowSeen.length % 100 === 0) await new Promise((r) => setTimeout(r, 1));
      }
    })();
    const publishers = [0, 1, 2].map(async (p) => {
      for (let i = 0; i < 20; i++) {
        if (p === 2) await log.publishAs('device-0', tagged(5, ['c'], i * 5));
        else await log.publish(tagged(5, ['c'], i * 5));
        await new Promise((r) => setImmediate(r));
      }
    });
    await Promise.all(publishers);
    const total = 500 + 3 * 100;
    await waitFor(() => fast.events.length === total && slowSeen.length === total, 'every subscriber got every event');
    for (const seen of [fast.events, slowSeen]) {
      assert.equal(new Set(seen.map(eventId)).size, total);
      assert.equal(streamOrderProblem(seen), null);
    }
    await fast.stop();
    slowAbort.abort();
    await slow;
  } finally {
    await log.close();
    cleanup();
  }
});

test('a late event of an offline device (old Lamport) is delivered live; bounded query returns event-key order', async () => {
  const { file, cleanup } = tempFile();
  const log = new EmbeddedLog(file);
  try {
    await log.publish(tagged(5, ['s']));
    const c = new Collector(log, "FROM 's'");
    await waitFor(() => c.caughtUp, 'caughtUp');
    const [late] = await log.publishAs('offline-0', [{ tags: ['s'], payload: { late: true } }], {
      lamport: 1,
      timestamp: 1_000_000,
    });
    await waitFor(() => c.events.length === 6, 'the late event');
    assert.deepEqual(c.events[5]!.payload, { late: true });
    assert.ok(c.events[5]!.lamport < c.events[4]!.lamport);
    const present = await log.presentOffsets();
    const ordered = await collectQuery(log, "FROM 's'", {}, present);
    const keys = ordered.map((e) => [e.lamport, e.stream, e.offset] as const);
    const sorted = [...keys].sort((x, y) => x[0] - y[0] || (x[1] < y[1] ? -1 : x[1] > y[1] ? 1 : 0) || x[2] - y[2]);
    assert.deepEqual(keys, sorted, 'event-key order');
    assert.ok(
      ordered.slice(0, 2).some((e) => eventId(e) === eventId(late!)),
      'the late event (Lamport 1) sorts among the first',
    );
    const bounded = await collectQuery(log, "FROM 's'", { [log.localStream]: 1 }, { [log.localStream]: 3 });
    assert.deepEqual(
      bounded.map((e) => e.offset),
      [2, 3],
      'lower exclusive, upper inclusive, other streams excluded',
    );
    await c.stop();
  } finally {
    await log.close();
    cleanup();
  }
});

test('queries select by tags, appId, TIME and isLocal; a bad query rejects with AqlSyntaxError', async () => {
  const { file, cleanup } = tempFile();
  const log = new EmbeddedLog(file, { appId: 'com.example.mine' });
  try {
    await log.publish([{ tags: ['machine', 'machine:Drill1'], payload: 1 }]);
    await log.publishAs('dev-0', [
      { tags: ['machine', 'machine:Drill2'], payload: 2, appId: 'com.example.other', timestamp: 2_000_000 },
    ]);
    const present = await log.presentOffsets();
    const run = async (q: string): Promise<unknown[]> =>
      (await collectQuery(log, q, {}, present)).map((e) => e.payload);
    assert.deepEqual(await run("'machine:Drill2' | 'machine:Drill1' & 'machine'"), [1, 2]);
    assert.deepEqual(await run('FROM appId(com.example.other)'), [2]);
    assert.deepEqual(await run('FROM appId(me)'), [1]);
    assert.deepEqual(await run('FROM isLocal'), [1]);
    // The coordinator routes with the source's context and gets the same selection.
    const context = await log.matchContext();
    const events = await collectQuery(log, 'allEvents', {}, present);
    assert.deepEqual(
      events.filter((e) => matchesEvent(parseQuery('isLocal | appId(me)'), e, context)).map((e) => e.payload),
      [1],
    );
    assert.deepEqual(await run('FROM TIME < 1970-01-01T00:00:03Z'), [2]);
    await assert.rejects(collectQuery(log, "FROM 'a' SELECT _.x", {}, present), { name: 'AqlSyntaxError' });
  } finally {
    await log.close();
    cleanup();
  }
});

test("two log instances on one file see each other's events (another connection writing)", async () => {
  const { file, cleanup } = tempFile();
  const reader = new EmbeddedLog(file, { foreignWritePollMs: 10 });
  const writer = new EmbeddedLog(file);
  try {
    const c = new Collector(reader, 'allEvents');
    await waitFor(() => c.caughtUp, 'caughtUp');
    await writer.publish(tagged(4, ['w']));
    await waitFor(() => c.events.length === 4, 'events written by the other connection');
    assert.equal(reader.nodeId, writer.nodeId, 'same file, same node');
    await c.stop();
  } finally {
    await reader.close();
    await writer.close();
    cleanup();
  }
});

test('closing the log ends its subscriptions with an error instead of hanging', async () => {
  const { file, cleanup } = tempFile();
  const log = new EmbeddedLog(file);
  try {
    const c = new Collector(log, 'allEvents');
    await waitFor(() => c.caughtUp, 'caughtUp');
    await log.close();
    await c.done;
    assert.match(String(c.error), /closed/);
    await assert.rejects(log.publish(tagged(1, ['a'])), /closed/);
  } finally {
    cleanup();
  }
});

test('property: a bounded query returns exactly the matching events between the bounds, in event-key order', async () => {
  const streamArb = fc.constantFrom('a-0', 'b-0', 'c-1');
  const batchArb = fc.record({
    stream: streamArb,
    lamportStep: fc.integer({ min: 1, max: 5 }),
    tags: fc.array(fc.subarray(['x', 'y']), { minLength: 1, maxLength: 4 }),
  });
  const boundArb = fc.dictionary(streamArb, fc.integer({ min: -1, max: 12 }));
  await fc.assert(
    fc.asyncProperty(
      fc.array(batchArb, { maxLength: 12 }),
      boundArb,
      boundArb,
      fc.constantFrom("'x'", "'y' | 'x' & 'y'", 'allEvents'),
      async (batches, lower, upper, query) => {
        const log = new EmbeddedLog(':memory:', { pageSize: 3, foreignWritePollMs: 0 });
        try {
          const lamports: Record<string, number> = {};
          for (const b of batches) {
            const start = (lamports[b.stream] ?? 0) + b.lamportStep;
            lamports[b.stream] = start + b.tags.length - 1;
            log.appendSync(
              b.stream,
              b.tags.map((tags) => ({ tags, payload: null })),
              { lamport: start },
            );
          }
          const everything = await collectQuery(log, 'allEvents', {}, await log.presentOffsets());
          assert.equal(
            everything.length,
            batches.reduce((n, b) => n + b.tags.length, 0),
          );
          const parsed = parseQuery(query);
          const expected = everything
            .filter(
              (e) =>
                e.offset > (lower[e.stream] ?? -1) && upper[e.stream] !== undefined && e.offset <= upper[e.stream]!,
            )
            .filter((e) => matchesEvent(parsed, e))
            .map(eventId);
          const actual = (await collectQuery(log, query, lower, upper)).map(eventId);
          assert.deepEqual(actual, expected);
          const keys = everything.map((e) => [e.lamport, e.stream, e.offset] as const);
          const sorted = [...keys].sort(
            (x, y) => x[0] - y[0] || (x[1] < y[1] ? -1 : x[1] > y[1] ? 1 : 0) || x[2] - y[2],
          );
          assert.deepEqual(keys, sorted);
        } finally {
          await log.close();
        }
      },
    ),
    { numRuns: 150 },
  );
});

test('a page read out of order (SQLite does not promise group_concat order) is put back in order', () => {
  const e = (lamport: number, stream: string, offset: number) => ({
    lamport,
    stream,
    offset,
    timestamp: 0,
    tags: [],
    appId: 'a',
    payload: null,
  });
  const text = JSON.stringify([7, e(3, 'b', 0), 5, e(1, 'a', 0), 9, e(3, 'a', 1)]);
  assert.deepEqual(decodePage(text, 'seq').events.map(eventId), ['a/0', 'b/0', 'a/1']);
  assert.equal(decodePage(text, 'seq').lastSeq, 9);
  assert.deepEqual(decodePage(text, 'key').events.map(eventId), ['a/0', 'a/1', 'b/0']);
  const inOrder = JSON.stringify([1, e(1, 'a', 0), 2, e(2, 'a', 1)]);
  assert.deepEqual(decodePage(inOrder, 'key').events.map(eventId), ['a/0', 'a/1']);
});

// ---- read-ahead (stored ranges read by a worker thread) -------------------------------------------

/** A log of 30,000 events on four streams with interleaved Lamport stamps and three tag sets. */
function bigLog(file: string): void {
  const log = new EmbeddedLog(file, { foreignWritePollMs: 0 });
  try {
    const tagSets = [['machine', 'machine:Drill1'], ['machine', 'machine:Drill2'], ['worker']];
    for (let round = 0; round < 30; round++) {
      for (let s = 0; s < 4; s++) {
        const events = Array.from({ length: 250 }, (_, i) => ({
          tags: tagSets[(i + s) % 3]!,
          payload: { round, s, i },
        }));
        // Streams 1 and 3 write old stamps (devices that were offline), so seq order ≠ key order.
        log.appendSync(`dev${s}-0`, events, {
          lamport: round * 1000 + (s % 2 === 1 ? 0 : 500) + s,
          timestamp: 1_000_000 + round,
        });
      }
    }
  } finally {
    void log.close();
  }
}

async function subscribeStored(
  log: EmbeddedLog,
  query: string,
  lower: Record<string, number>,
): Promise<{ items: unknown[]; workersWhileReading: number }> {
  const abort = new AbortController();
  const items: unknown[] = [];
  const before = readAheadRangesStarted();
  for await (const batch of log.subscribeBatches(query, lower, { signal: abort.signal })) {
    items.push(...batch);
    if (batch.some((i) => i.type === 'caughtUp')) abort.abort();
  }
  // Counted by starts: a worker that finished before a batch was looked at still counts.
  return { items, workersWhileReading: readAheadRangesStarted() - before };
}

async function queryAll(
  log: EmbeddedLog,
  query: string,
  lower: Record<string, number>,
  upper: Record<string, number>,
): Promise<{ events: ActyxEvent[]; workersWhileReading: number }> {
  const events: ActyxEvent[] = [];
  const before = readAheadRangesStarted();
  for await (const batch of log.queryBatches(query, lower, upper)) events.push(...batch);
  return { events, workersWhileReading: readAheadRangesStarted() - before };
}

test('read-ahead: subscribe and bounded queries give the same results with and without the worker', async () => {
  const { file, cleanup } = tempFile();
  bigLog(file);
  const on = new EmbeddedLog(file, { pageSize: 500, foreignWritePollMs: 0 });
  const off = new EmbeddedLog(file, { pageSize: 500, foreignWritePollMs: 0, readAhead: false });
  try {
    const present = await on.presentOffsets();
    assert.equal(
      Object.values(present).reduce((n, o) => n + o + 1, 0),
      30_000,
    );
    const lower = { 'dev0-0': 999, 'dev1-0': 4_000, 'dev3-0': -1 };
    const upper = { 'dev0-0': 6_000, 'dev1-0': 7_499, 'dev2-0': 3_000, 'dev3-0': 5_500 };
    for (const [query, lo, hi] of [
      ['allEvents', {}, present],
      ["'machine'", lower, upper],
      ["'machine:Drill2' | 'worker'", {}, upper],
    ] as const) {
      const a = await queryAll(on, query, lo, hi);
      const b = await queryAll(off, query, lo, hi);
      assert.ok(a.events.length > 2_500, `${query}: enough events for many pages (${a.events.length})`);
      assert.deepEqual(a.events, b.events, `${query}: same events in the same order`);
      assert.equal(a.workersWhileReading, 1, `${query}: read by a worker`);
      assert.equal(b.workersWhileReading, 0, `${query}: read in-thread`);
    }
    for (const [query, lo] of [
      ['allEvents', {}],
      ["'machine:Drill1'", lower],
    ] as const) {
      const a = await subscribeStored(on, query, lo);
      const b = await subscribeStored(off, query, lo);
      assert.deepEqual(a.items, b.items, `${query}: same items, caughtUp last`);
      assert.deepEqual(a.items[a.items.length - 1], { type: 'caughtUp', offsets: present });
      assert.equal(a.workersWhileReading, 1);
      assert.equal(b.workersWhileReading, 0);
    }
    // A small range (a few pages) is read in-thread even with read-ahead on.
    const small = await queryAll(on, 'allEvents', {}, { 'dev2-0': 999 });
    assert.equal(small.events.length, 1_000);
    assert.equal(small.workersWhileReading, 0);
    assert.equal(liveReadAheadWorkers(), 0);
  } finally {
    await on.close();
    await off.close();
    cleanup();
  }
});

test('read-ahead: stopping early (break, abort) or closing the log leaves no worker running', async () => {
  const { file, cleanup } = tempFile();
  bigLog(file);
  const log = new EmbeddedLog(file, { pageSize: 500, foreignWritePollMs: 0 });
  try {
    const present = await log.presentOffsets();
    let batches = 0;
    for await (const batch of log.queryBatches('allEvents', {}, present)) {
      assert.ok(batch.length > 0);
      assert.equal(liveReadAheadWorkers(), 1);
      if (++batches === 2) break;
    }
    assert.equal(liveReadAheadWorkers(), 0, 'break (return()) stopped the worker');

    // Abort while the consumer is slow: the subscription ends without caughtUp.
    const abort = new AbortController();
    const items: string[] = [];
    for await (const batch of log.subscribeBatches('allEvents', {}, { signal: abort.signal })) {
      items.push(...batch.map((i) => i.type));
      if (items.length >= 1_000) abort.abort();
      await new Promise((r) => setTimeout(r, 5));
    }
    assert.ok(!items.includes('caughtUp'));
    assert.equal(liveReadAheadWorkers(), 0, 'abort stopped the worker');

    // Abort while nothing is consumed: the pending read ends.
    const abort2 = new AbortController();
    const it = log.queryBatches('allEvents', {}, present, { signal: abort2.signal })[Symbol.asyncIterator]();
    assert.equal((await it.next()).done, false);
    abort2.abort();
    assert.equal((await it.next()).done, true);
    assert.equal(liveReadAheadWorkers(), 0);

    // close() during reading: the reader ends with the log's "closed" error, the worker is gone.
    const reading = log.queryBatches('allEvents', {}, present)[Symbol.asyncIterator]();
    assert.equal((await reading.next()).done, false);
    const pending = assert.rejects(
      reading.next().then(() => reading.next()),
      /closed/,
    );
    await log.close();
    assert.equal(liveReadAheadWorkers(), 0, 'close() stopped the worker');
    await pending;
  } finally {
    await log.close();
    cleanup();
  }
});

test('read-ahead: a consumer that does not take pages holds at most READ_AHEAD_BYTES of them, plus one page', async () => {
  // A catch-up computes far slower than the worker reads: the whole credit sits in the consumer's
  // queue, in the main thread's heap (texts) and outside it (arrays). bigLog's 29,800 events are
  // about 1.8 MB of pages: more than the bound, less than the 8 Mi the worker had before.
  assert.ok(READ_AHEAD_BYTES <= 1024 * 1024, `${READ_AHEAD_BYTES}`);
  const { file, cleanup } = tempFile();
  bigLog(file);
  try {
    const pages = new PagePrefetcher({
      file,
      pageSql: 'SELECT event FROM deltaflow_log_events WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?',
      cursorSql: 'SELECT seq FROM deltaflow_log_events WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT 1 OFFSET ?',
      cursor: [100],
      bounds: [29_900],
      pageSize: 2000,
    });
    try {
      // Taking the first page gives its size back as credit.
      const first = await pages.next();
      assert.equal(first.done, false);
      const granted = READ_AHEAD_BYTES + first.value!.size;
      await waitFor(() => pages.buffered >= READ_AHEAD_BYTES / 2, 'the worker used its credit');
      // Until no page came for 500 ms: the worker has stopped (out of credit, or at the range's end).
      for (let before = -1; before !== pages.buffered;) {
        before = pages.buffered;
        await new Promise((r) => setTimeout(r, 500));
      }
      const held = pages.buffered;
      let largest = first.value!.size;
      let total = first.value!.size;
      for (let page = await pages.next(); !page.done; page = await pages.next()) {
        largest = Math.max(largest, page.value.size);
        total += page.value.size;
      }
      assert.ok(total > 1.5 * READ_AHEAD_BYTES, `the range is larger than the bound (${total})`);
      // The worker reads while it has credit: at most the credit plus the page that overdrew it.
      assert.ok(held <= granted + largest, `held ${held}, credit ${granted}, largest page ${largest}`);
    } finally {
      await pages.stop();
    }
  } finally {
    cleanup();
  }
});

test('read-ahead: pages sized by their payload text and one page of credit still cover the range exactly once, in order', async () => {
  const { file, cleanup } = tempFile();
  bigLog(file);
  try {
    const seqPage = 'SELECT event FROM deltaflow_log_events WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?';
    const seqCursor = 'SELECT seq FROM deltaflow_log_events WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT 1 OFFSET ?';
    const pages = new PagePrefetcher({
      file,
      pageSql: seqPage,
      cursorSql: seqCursor,
      cursor: [100],
      bounds: [29_900],
      pageSize: 1000,
      pageBytes: 1_500,
      aheadBytes: 1,
    });
    const decoder = new EventColumnsDecoder();
    const events: ActyxEvent[] = [];
    let pageCount = 0;
    for await (const page of pages) {
      // The first page has a default row count; the next ones are sized from the one before.
      if (pageCount++ > 0)
        assert.ok(
          page.payloads.length < 2 * 1_500,
          `a page's payload text stays about pageBytes long (${page.payloads.length})`,
        );
      events.push(...decoder.decode(page));
    }
    assert.ok(pageCount > 500, `many small pages (${pageCount})`);
    const inThread = new EmbeddedLog(file, { foreignWritePollMs: 0, readAhead: false });
    try {
      const expected: ActyxEvent[] = [];
      for await (const item of inThread.subscribe('allEvents', {})) {
        if (item.type === 'caughtUp') break;
        expected.push(item.event);
      }
      assert.equal(
        JSON.stringify(events),
        JSON.stringify(expected.slice(100, 29_900)),
        'seqs 101 … 29,900 in seq order',
      );
    } finally {
      await inThread.close();
    }
    await pages.stop(); // the worker ends by itself after the last page; stop() waits for that
    assert.equal(liveReadAheadWorkers(), 0);
  } finally {
    cleanup();
  }
});

test('read-ahead: ranges read at the same time share one worker; each gets exactly its events, and stopping or failing one leaves the others', async () => {
  // Two dataflows catching up read two ranges at once: one worker thread (a V8 isolate, about
  // 9 MB of RSS) serves both, each range on its own connection, cursor and credit.
  const { file, cleanup } = tempFile();
  bigLog(file);
  const seqPage = 'SELECT event FROM deltaflow_log_events WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?';
  const seqCursor = 'SELECT seq FROM deltaflow_log_events WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT 1 OFFSET ?';
  const range = (from: number, to: number, aheadBytes?: number): PagePrefetcher =>
    new PagePrefetcher({
      file,
      pageSql: seqPage,
      cursorSql: seqCursor,
      cursor: [from],
      bounds: [to],
      pageSize: 700,
      pageBytes: 20_000,
      ...(aheadBytes === undefined ? {} : { aheadBytes }),
    });
  const inThread = new EmbeddedLog(file, { foreignWritePollMs: 0, readAhead: false });
  try {
    const all: string[] = [];
    for await (const item of inThread.subscribe('allEvents', {})) {
      if (item.type === 'caughtUp') break;
      all.push(JSON.stringify(item.event));
    }
    const a = range(0, 30_000);
    const b = range(5_000, 17_000, 50_000);
    const c = range(100, 29_000);
    const bad = new PagePrefetcher({
      file,
      pageSql: 'SELECT nope FROM x',
      cursorSql: 'SELECT 1',
      cursor: [],
      bounds: [],
      pageSize: 10,
    });
    assert.equal(liveReadAheadWorkers(), 1, 'one worker for four ranges');
    const got: Record<'a' | 'b' | 'c', string[]> = { a: [], b: [], c: [] };
    const decoders = { a: new EventColumnsDecoder(), b: new EventColumnsDecoder(), c: new EventColumnsDecoder() };
    const its = { a: a[Symbol.asyncIterator](), b: b[Symbol.asyncIterator](), c: c[Symbol.asyncIterator]() };
    await assert.rejects(bad.next(), /no such table: x/);
    // Interleaved: a page of each in turn; c is stopped after three pages.
    for (let open = new Set(['a', 'b', 'c'] as const); open.size > 0;) {
      for (const k of [...open]) {
        if (k === 'c' && got.c.length > 0 && got.c.length >= 3 * 100) {
          await c.stop();
          open.delete(k);
          continue;
        }
        const page = await its[k].next();
        if (page.done) open.delete(k);
        else for (const e of decoders[k].decode(page.value)) got[k].push(JSON.stringify(e));
      }
    }
    assert.equal(got.a.length, 30_000);
    assert.deepEqual(got.a, all.slice(0, 30_000));
    assert.deepEqual(got.b, all.slice(5_000, 17_000));
    assert.deepEqual(got.c, all.slice(100, 100 + got.c.length), 'c: its first pages, in order');
    assert.ok(got.c.length < 29_000 - 100);
    await a.stop();
    await b.stop();
    await bad.stop();
    assert.equal(liveReadAheadWorkers(), 0, 'the worker ended with its last range');
    // A range opened later starts a worker again.
    const d = range(29_990, 30_000);
    const rest: ActyxEvent[] = [];
    const decoder = new EventColumnsDecoder();
    for await (const page of d) rest.push(...decoder.decode(page));
    assert.equal(rest.length, 10);
    await d.stop(); // the worker ends after the last page; stop() waits for that
    assert.equal(liveReadAheadWorkers(), 0);
  } finally {
    await inThread.close();
    cleanup();
  }
});

test('read-ahead: a failing worker rejects with the file and the reason', async () => {
  const { file, cleanup } = tempFile();
  bigLog(file);
  try {
    const bad = new PagePrefetcher({
      file,
      pageSql: 'SELECT no_such_column FROM deltaflow_log_events',
      cursorSql: 'SELECT 1',
      cursor: [],
      bounds: [],
      pageSize: 10,
    });
    await assert.rejects(
      bad.next(),
      (err: Error) => err.message.includes(file) && /failed: .*no such column/.test(err.message),
    );
    assert.deepEqual(await bad.next(), { value: undefined, done: true });
    const missing = new PagePrefetcher({
      file: `${file}.missing`,
      pageSql: 'SELECT 1',
      cursorSql: 'SELECT 1',
      cursor: [],
      bounds: [],
      pageSize: 10,
    });
    await assert.rejects(missing.next(), /reading ahead in .*missing failed/);
    await bad.stop();
    await missing.stop();
    assert.equal(liveReadAheadWorkers(), 0);
  } finally {
    cleanup();
  }
});

test('background checkpoints: appends do not checkpoint inline; a worker moves the WAL into the file, and close() ends it', async () => {
  // Fewer WAL pages than SQLite's automatic checkpoint needs (1,000): only the worker copies them.
  const appendSome = (log: EmbeddedLog) => {
    for (let i = 0; i < 40; i++)
      log.appendSync('drill1-0', [{ tags: ['machine'], payload: { i, pad: 'x'.repeat(3000) } }]);
  };
  const withWorker = tempFile();
  const without = tempFile();
  const a = new EmbeddedLog(withWorker.file);
  const b = new EmbeddedLog(without.file, { backgroundCheckpoints: false });
  try {
    const sizeA = statSync(withWorker.file).size;
    const sizeB = statSync(without.file).size;
    appendSome(a);
    appendSome(b);
    await waitFor(
      () => statSync(withWorker.file).size > sizeA + 100_000,
      'the checkpointed events in the database file',
    );
    assert.equal(
      statSync(without.file).size,
      sizeB,
      'without the worker, nothing is checkpointed below 1,000 WAL pages',
    );
    assert.equal((await collectQuery(a, "'machine'", {}, await a.presentOffsets())).length, 40);
  } finally {
    await a.close();
    await b.close();
    withWorker.cleanup();
    without.cleanup();
  }
});

test('a log that is only read runs no checkpoint worker; the first append starts it, close() ends it', async () => {
  const { file, cleanup } = tempFile();
  const before = liveWalCheckpointers();
  const writer = new EmbeddedLog(file, { foreignWritePollMs: 0 });
  try {
    writer.appendSync('a-0', [{ tags: ['t'], payload: 1 }]);
    assert.equal(liveWalCheckpointers(), before + 1, 'the writer checkpoints its appends');
    // A second log on the same file that only reads (as a catch-up does).
    const reader = new EmbeddedLog(file, { foreignWritePollMs: 0 });
    try {
      assert.equal((await collectQuery(reader, "'t'", {}, await reader.presentOffsets())).length, 1);
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(liveWalCheckpointers(), before + 1, 'reading starts no checkpoint worker');
      reader.appendSync('b-0', [{ tags: ['t'], payload: 2 }]);
      assert.equal(liveWalCheckpointers(), before + 2, 'its first append does');
    } finally {
      await reader.close();
    }
    assert.equal(liveWalCheckpointers(), before + 1);
  } finally {
    await writer.close();
    cleanup();
  }
  assert.equal(liveWalCheckpointers(), before);
});

test(
  'background workers (WAL checkpoints, read-ahead) run at a lower priority than the thread that computes',
  { skip: process.platform !== 'linux' && 'nice values are per thread only on Linux' },
  async () => {
    const niceOf = (task: string): number | null => {
      try {
        const stat = readFileSync(`/proc/self/task/${task}/stat`, 'utf8');
        return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]);
      } catch {
        return null; // the thread ended meanwhile
      }
    };
    const dir = mkdtempSync(join(tmpdir(), 'deltaflow-log-nice-'));
    const log = new EmbeddedLog(join(dir, 'log.sqlite')); // its checkpoint worker starts with the first append
    try {
      log.appendSync('a-0', [{ tags: ['t'], payload: 1 }]);
      let lowered: string[] = [];
      for (let i = 0; i < 100 && lowered.length === 0; i++) {
        lowered = readdirSync('/proc/self/task').filter((t) => niceOf(t) === 10);
        if (lowered.length === 0) await new Promise((r) => setTimeout(r, 20));
      }
      assert.ok(lowered.length >= 1, 'a worker thread runs at nice 10');
      assert.equal(niceOf(String(process.pid)), 0, 'the main thread keeps its priority');
    } finally {
      await log.close();
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
