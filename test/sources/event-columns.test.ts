/**
 * The read-ahead worker sends pages in columns (event-columns.ts); these tests check that the
 * events built from them are exactly those the in-thread JSON path gives, on real SQLite files.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { EmbeddedLog } from '../../src/sources/embedded-log';
import { EventColumnsDecoder } from '../../src/sources/event-columns';
import { liveReadAheadWorkers, PagePrefetcher, readAheadRangesStarted } from '../../src/sources/page-prefetcher';
import type { ActyxEvent, SubscriptionItem } from '../../src/sources/types';

function tempFile(): { file: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'deltaflow-columns-'));
  return { file: join(dir, 'events.sqlite'), cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** The stored part of a subscription (seq order), and whether a worker read it. */
async function storedItems(log: EmbeddedLog): Promise<{ items: SubscriptionItem[]; worker: boolean }> {
  const abort = new AbortController();
  const items: SubscriptionItem[] = [];
  const before = readAheadRangesStarted();
  for await (const batch of log.subscribeBatches('allEvents', {}, { signal: abort.signal })) {
    items.push(...batch);
    if (batch.some((i) => i.type === 'caughtUp')) abort.abort();
  }
  return { items, worker: readAheadRangesStarted() > before };
}

/** All stored events of a bounded query (event-key order), and whether a worker read them. */
async function queriedEvents(log: EmbeddedLog): Promise<{ events: ActyxEvent[]; worker: boolean }> {
  const events: ActyxEvent[] = [];
  const before = readAheadRangesStarted();
  for await (const batch of log.queryBatches('allEvents', {}, await log.presentOffsets())) events.push(...batch);
  return { events, worker: readAheadRangesStarted() > before };
}

/** Reads `file` in both orders with and without read-ahead and asserts the same events, key order included. */
async function assertSameEvents(file: string, pageSize: number): Promise<ActyxEvent[]> {
  const columns = new EmbeddedLog(file, { pageSize, foreignWritePollMs: 0, backgroundCheckpoints: false });
  const json = new EmbeddedLog(file, {
    pageSize,
    foreignWritePollMs: 0,
    backgroundCheckpoints: false,
    readAhead: false,
  });
  try {
    const a = await storedItems(columns);
    const b = await storedItems(json);
    assert.ok(a.worker && !b.worker, 'seq order: one read ahead, one in-thread');
    assert.equal(JSON.stringify(a.items), JSON.stringify(b.items), 'seq order: same items, same key order');
    assert.deepEqual(a.items, b.items);
    const c = await queriedEvents(columns);
    const d = await queriedEvents(json);
    assert.ok(c.worker && !d.worker, 'key order: one read ahead, one in-thread');
    assert.equal(JSON.stringify(c.events), JSON.stringify(d.events), 'key order: same events, same key order');
    assert.deepEqual(c.events, d.events);
    // Every event has its own tags array (consumers may freeze or mutate it).
    assert.equal(new Set(c.events.map((e) => e.tags)).size, c.events.length);
    return c.events;
  } finally {
    await columns.close();
    await json.close();
  }
}

/** Text that trips up naive cutting: quotes, backslashes, the writer's own key texts, braces. */
const tricky = fc.constantFrom(
  '"',
  '\\',
  '\\"',
  ',"appId":"x"',
  ',"payload":',
  '],"appId":',
  '}',
  '{"lamport":1',
  'ü',
  '😀',
  '\u0000',
  '\u2028',
  '__proto__',
);
const text = fc.oneof(
  fc.string({ unit: 'grapheme', minLength: 1, maxLength: 8 }),
  fc.string({ unit: 'binary', minLength: 1, maxLength: 6 }),
  tricky,
);
const payload = fc.oneof(
  fc.jsonValue({ stringUnit: 'grapheme', maxDepth: 4 }),
  fc.constantFrom(null, 0, -1.5, 1e21, 2 ** 53 - 1, [], {}, [null, [1, [2]]], { payload: { appId: '},"x":1' } }),
  fc.dictionary(text, fc.jsonValue({ maxDepth: 2 })),
  text,
);
// Stream ids are also a column: no NUL, no lone surrogate (the column would not hold them as they
// are). No names of Object.prototype either: the log looks streams up in plain-object offset maps,
// so a stream "toString" is lost by both paths alike (a separate bug, not the columns').
const streamId = fc
  .oneof(
    fc.string({ unit: 'grapheme', minLength: 1, maxLength: 8 }),
    fc.constantFrom('"', '\\', ',"offset":1', ',"timestamp":', 'ü', '😀', '\u2028'),
  )
  .filter((s) => !s.includes('\u0000') && !(s in Object.prototype));
const streams = fc.uniqueArray(streamId, { minLength: 1, maxLength: 40 });
const batch = (streamCount: number) =>
  fc.record({
    stream: fc.nat(streamCount - 1),
    lamportGap: fc.oneof(fc.nat(3), fc.constant(2 ** 50)),
    timestamp: fc.oneof(fc.nat(), fc.constant(2 ** 53 - 1), fc.constant(0)),
    events: fc.array(
      fc.record({ tags: fc.array(text, { maxLength: 4 }), payload, appId: fc.option(text, { nil: undefined }) }),
      { minLength: 1, maxLength: 12 },
    ),
  });

test('property: the columnar read-ahead gives exactly the events of the JSON path, in seq and key order, across pages', async () => {
  await fc.assert(
    fc.asyncProperty(
      streams.chain((names) =>
        fc.tuple(fc.constant(names), fc.array(batch(names.length), { minLength: 6, maxLength: 30 })),
      ),
      fc.integer({ min: 1, max: 9 }),
      async ([names, batches], pageSize) => {
        const { file, cleanup } = tempFile();
        try {
          const log = new EmbeddedLog(file, { foreignWritePollMs: 0, backgroundCheckpoints: false });
          let total = 0;
          try {
            // Streams start at different stamps, so key order differs from seq (arrival) order.
            const next = names.map((_, i) => (i * 7919) % 1000);
            for (const b of batches) {
              const lamport = next[b.stream]! + b.lamportGap;
              if (lamport + b.events.length > Number.MAX_SAFE_INTEGER) continue;
              log.appendSync(`${names[b.stream]!}`, b.events, { lamport, timestamp: b.timestamp });
              next[b.stream] = lamport + b.events.length;
              total += b.events.length;
            }
          } finally {
            await log.close();
          }
          // Enough rows for the read-ahead worker (more than four pages).
          fc.pre(total > 4 * pageSize);
          const events = await assertSameEvents(file, pageSize);
          assert.equal(events.length, total);
        } finally {
          cleanup();
        }
      },
    ),
    // A failure's shrinking is bounded: the events are large, and a slow shrink would hold the run.
    { numRuns: 25, interruptAfterTimeLimit: 60_000, markInterruptAsFailure: true },
  );
  assert.equal(liveReadAheadWorkers(), 0);
});

test("stored texts in another layout than the writer's travel whole and come out as JSON.parse makes them", async () => {
  const { file, cleanup } = tempFile();
  try {
    const log = new EmbeddedLog(file, { foreignWritePollMs: 0, backgroundCheckpoints: false });
    for (let i = 0; i < 20; i++)
      log.appendSync('s-0', [{ tags: ['t'], payload: { i } }], { lamport: 10 * i, timestamp: 1_000 + i });
    await log.close();
    // Rows another program could have written: other key order, whitespace, number forms, extra or missing keys.
    const odd = [
      '{"stream":"x","lamport":300,"offset":0,"timestamp":1,"tags":[],"appId":"a","payload":1}',
      '{"lamport": 301, "stream": "x", "offset": 1, "timestamp": 1, "tags": [], "appId": "a", "payload": 2}',
      '{"lamport":302,"stream":"x","offset":2,"timestamp":1.0,"tags":[],"appId":"a","payload":3}',
      '{"lamport":303,"stream":"x","offset":3,"timestamp":1e0,"tags":[],"appId":"a","payload":4}',
      '{"lamport":304,"stream":"x","offset":4,"extra":true,"timestamp":1,"tags":[],"appId":"a","payload":5}',
      '{"lamport":305,"stream":"x","offset":5,"timestamp":1,"tags":"not an array","appId":"a","payload":6}',
      '{"lamport":306,"stream":"x","offset":6,"timestamp":1,"tags":[],"appId":7,"payload":7}',
      '{"lamport":307,"stream":"x","offset":7,"timestamp":1,"tags":[],"payload":8}',
      '{"lamport":308,"stream":"x","offset":8,"timestamp":99999999999999999,"tags":[],"appId":"a","payload":9}',
      '{"lamport":309,"stream":"x","offset":9,"timestamp":-1,"tags":[],"appId":"a","payload":10}',
      '{"lamport":310,"stream":"\\u0078","offset":10,"timestamp":1,"tags":["\\u0074"],"appId":"\\u0061","payload":"\\u0062"}',
    ];
    const db = new Database(file);
    const insert = db.prepare(
      'INSERT INTO deltaflow_log_events (stream, "offset", lamport, event) VALUES (?, ?, ?, ?)',
    );
    odd.forEach((event, i) => insert.run('x', i, 300 + i, event));
    db.prepare('INSERT INTO deltaflow_log_streams (stream, last_offset, last_lamport) VALUES (?, ?, ?)').run(
      'x',
      odd.length - 1,
      300 + odd.length - 1,
    );
    db.close();
    const events = await assertSameEvents(file, 3);
    assert.equal(events.length, 20 + odd.length);
    assert.deepEqual(
      events.slice(20).map((e) => JSON.stringify(e)),
      odd.map((t) => JSON.stringify(JSON.parse(t))),
    );
  } finally {
    cleanup();
  }
});

test('the string dictionary starts over when it is full, and pages after that decode the same', async () => {
  const { file, cleanup } = tempFile();
  try {
    const log = new EmbeddedLog(file, { foreignWritePollMs: 0, backgroundCheckpoints: false });
    // 300 streams, each with its own tag set and app id: far more distinct strings than maxStrings.
    for (let round = 0; round < 3; round++) {
      for (let s = 0; s < 300; s++)
        log.appendSync(`dev${s}`, [{ tags: ['machine', `m${s}`], payload: { round, s }, appId: `app${s % 50}` }], {
          timestamp: round,
        });
    }
    await log.close();
    const json = new EmbeddedLog(file, { foreignWritePollMs: 0, backgroundCheckpoints: false, readAhead: false });
    const expected: ActyxEvent[] = [];
    for await (const item of json.subscribe('allEvents', {})) {
      if (item.type === 'caughtUp') break;
      expected.push(item.event);
    }
    await json.close();
    const pages = new PagePrefetcher({
      file,
      pageSql: 'SELECT event FROM deltaflow_log_events WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?',
      cursorSql: 'SELECT seq FROM deltaflow_log_events WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT 1 OFFSET ?',
      cursor: [0],
      bounds: [900],
      pageSize: 40,
      maxStrings: 50,
    });
    const decoder = new EventColumnsDecoder();
    const events: ActyxEvent[] = [];
    let resets = 0;
    let largest = 0;
    let dictionary = 0;
    for await (const page of pages) {
      if (page.reset) {
        resets++;
        dictionary = 0;
      }
      dictionary += page.strings.length;
      largest = Math.max(largest, dictionary);
      events.push(...decoder.decode(page));
    }
    assert.ok(resets >= 5, `the dictionary started over several times (${resets})`);
    // At most maxStrings before a page, plus three new strings per row of that page.
    assert.ok(largest <= 50 + 3 * 40, `the dictionary stays bounded (${largest})`);
    assert.equal(JSON.stringify(events), JSON.stringify(expected));
    await pages.stop(); // the worker ends by itself after the last page; stop() waits for that
    assert.equal(liveReadAheadWorkers(), 0);
  } finally {
    cleanup();
  }
});
