/**
 * Offset maps are plain objects keyed by stream name, and the embedded log (and an Actyx node's
 * replicated streams) accept any stream name: names of Object.prototype properties (`toString`,
 * `constructor`, `__proto__`, …) must be ordinary streams everywhere — in the log's bounds, the
 * offset tracking of the dataflow, the offsets a sink stores and reads back, and the Actyx client.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { rmSync } from 'node:fs';
import Database from 'better-sqlite3';
import { startDataflow } from '../../src/dataflow/coordinator';
import { covers, eventsBetween, mergeOffsets, type OffsetMap, offsetsEqual } from '../../src/core/offset-map';
import { OffsetTracker } from '../../src/dataflow/offset-tracker';
import type { DataflowMember, DataflowSettings, Stage } from '../../src/dataflow/types';
import { SqliteDatabase } from '../../src/sinks/sqlite-database';
import type { TableSpec } from '../../src/sinks/types';
import { ActyxClient } from '../../src/sources/actyx-client';
import { EmbeddedLog } from '../../src/sources/embedded-log';
import type { ActyxEvent, EventSource, SubscriptionItem } from '../../src/sources/types';
import { eventId, tagged, waitFor, Collector } from '../support/actyx-helpers';
import { FakeActyx } from '../support/fake-actyx';
import {
  operatorMember,
  recordingListener,
  sinkMember,
  sourceMember,
  tempDir,
  waitCommitted,
} from '../dataflow/support';

/** Stream names that are also properties of Object.prototype, and an ordinary one. */
const ODD = ['constructor', 'toString', '__proto__', 'hasOwnProperty', 'valueOf'] as const;
const NORMAL = 'drill1-0';
const STREAMS = [...ODD, NORMAL];

/** A map's own entries, sorted (the comparison does not depend on how the map was built). */
function entries(map: OffsetMap): [string, number][] {
  return Object.entries(map).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

/** An offset map from entries, with an own property for every name (even `__proto__`). */
function mapOf(list: readonly (readonly [string, number])[]): OffsetMap {
  return JSON.parse(JSON.stringify(Object.fromEntries(list))) as OffsetMap;
}

/** Checks that `map` is an ordinary plain object naming exactly `expected`, also through JSON. */
function assertOffsets(map: OffsetMap, expected: readonly (readonly [string, number])[], what: string): void {
  const want = [...expected]
    .map(([s, o]) => [s, o] as [string, number])
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  assert.equal(Object.getPrototypeOf(map), Object.prototype, `${what} is a plain object`);
  assert.deepEqual(entries(map), want, what);
  assert.deepEqual(entries(JSON.parse(JSON.stringify(map)) as OffsetMap), want, `${what} (through JSON)`);
}

/** Every stream's highest offset among `events`. */
function highest(events: readonly { stream: string; offset: number }[]): [string, number][] {
  const m = new Map<string, number>();
  for (const e of events) m.set(e.stream, Math.max(m.get(e.stream) ?? -1, e.offset));
  return [...m];
}

/** Event ids, sorted; duplicates stay (so exactly-once is an equality of these lists). */
const ids = (events: readonly { stream: string; offset: number }[]): string[] => events.map(eventId).sort();

/**
 * Publishes `rounds` rounds of events: in each, first `constructor`, then the others, so the
 * first stored events belong to a stream named like a prototype property.
 */
async function publishRounds(
  log: EmbeddedLog,
  rounds: number,
  perStream = 3,
): Promise<{ stream: string; offset: number }[]> {
  const out: { stream: string; offset: number }[] = [];
  for (let r = 0; r < rounds; r++) {
    for (const stream of STREAMS) {
      for (const p of await log.publishAs(stream, tagged(perStream, ['t'])))
        out.push({ stream: p.stream, offset: p.offset });
    }
  }
  return out;
}

async function collectQuery(source: EventSource, lower: OffsetMap, upper: OffsetMap): Promise<ActyxEvent[]> {
  const out: ActyxEvent[] = [];
  for await (const e of source.query("FROM 't'", lower, upper)) out.push(e);
  return out;
}

/** Subscribes until caught up; returns the events and the caughtUp offsets. */
async function collectUntilCaughtUp(
  log: EmbeddedLog,
  lower: OffsetMap,
): Promise<{ events: ActyxEvent[]; offsets: OffsetMap }> {
  const abort = new AbortController();
  const events: ActyxEvent[] = [];
  for await (const item of log.subscribe("FROM 't'", lower, {
    signal: abort.signal,
  }) as AsyncIterable<SubscriptionItem>) {
    if (item.type === 'event') events.push(item.event);
    else {
      abort.abort();
      return { events, offsets: item.offsets };
    }
  }
  throw new Error('the subscription ended before caughtUp');
}

test('offset map functions and the tracker treat prototype-named streams as ordinary streams', () => {
  const a = mapOf([
    ['__proto__', 3],
    ['toString', 1],
    ['x-0', 2],
  ]);
  assert.equal(covers({}, a), false, 'the empty map covers nothing');
  assert.equal(covers({ 'x-0': 2 }, { constructor: 0 }), false, 'a map without `constructor` does not cover it');
  assert.equal(covers(a, mapOf([['__proto__', 4]])), false);
  assert.equal(
    covers(
      a,
      mapOf([
        ['__proto__', 3],
        ['toString', 0],
      ]),
    ),
    true,
  );
  assert.equal(
    offsetsEqual(
      a,
      mapOf([
        ['x-0', 2],
        ['toString', 1],
        ['__proto__', 3],
      ]),
    ),
    true,
  );
  assert.equal(offsetsEqual(a, { 'x-0': 2 }), false);
  assert.equal(eventsBetween({}, a), 4 + 2 + 3);
  assert.equal(eventsBetween(mapOf([['__proto__', 1]]), a), 2 + 2 + 3);
  assertOffsets(
    mergeOffsets({ valueOf: 5 }, a),
    [
      ['__proto__', 3],
      ['toString', 1],
      ['x-0', 2],
      ['valueOf', 5],
    ],
    'merged',
  );
  assertOffsets(
    mergeOffsets(a, mapOf([['__proto__', 7]])),
    [
      ['__proto__', 7],
      ['toString', 1],
      ['x-0', 2],
    ],
    'merged (raised)',
  );

  const tracker = new OffsetTracker({});
  const ev = (stream: string, offset: number): ActyxEvent => ({
    stream,
    offset,
    lamport: 1,
    timestamp: 1,
    tags: [],
    appId: 'a',
    payload: null,
  });
  for (const s of STREAMS) for (let o = 0; o < 3; o++) tracker.advance(ev(s, o));
  tracker.advance(ev('__proto__', 1)); // not below what it has
  tracker.include(
    mapOf([
      ['hasOwnProperty', 9],
      ['constructor', 0],
    ]),
  );
  const snap = tracker.snapshot();
  assertOffsets(
    snap,
    STREAMS.map((s) => [s, s === 'hasOwnProperty' ? 9 : 2]),
    'tracked',
  );
  assert.notEqual(Object.getPrototypeOf(snap), null);
  assertOffsets(new OffsetTracker(snap).snapshot(), entries(snap), 'a tracker started from a snapshot');
});

test(
  'embedded log: prototype-named streams are delivered exactly once and bound queries and subscriptions',
  { timeout: 60_000 },
  async () => {
    const dir = tempDir('deltaflow-names-');
    const file = join(dir, 'log.sqlite');
    try {
      const log = new EmbeddedLog(file, { pageSize: 4 });
      const published = await publishRounds(log, 3);
      try {
        assertOffsets(await log.presentOffsets(), highest(published), 'present offsets');

        // Everything, once, from the beginning (the first stored events are `constructor`'s).
        const all = await collectUntilCaughtUp(log, {});
        assert.deepEqual(ids(all.events), ids(published));
        assertOffsets(all.offsets, highest(published), 'caughtUp offsets');

        // Resuming from a bound that names prototype-named streams delivers exactly the rest.
        const lower = mapOf([
          ['__proto__', 4],
          ['constructor', 2],
          ['toString', 8],
          [NORMAL, 0],
        ]);
        const after = (e: { stream: string; offset: number }): boolean => {
          const l = Object.entries(lower).find(([s]) => s === e.stream)?.[1];
          return l === undefined || e.offset > l;
        };
        const rest = await collectUntilCaughtUp(log, lower);
        assert.deepEqual(ids(rest.events), ids(published.filter(after)));

        // A query's upper bound that does not name a stream yields nothing of it.
        const upper = mapOf([
          ['__proto__', 5],
          [NORMAL, 8],
        ]);
        const bounded = await collectQuery(log, {}, upper);
        assert.deepEqual(
          ids(bounded),
          ids(published.filter((e) => (e.stream === '__proto__' && e.offset <= 5) || e.stream === NORMAL)),
        );
        const between = await collectQuery(
          log,
          lower,
          mapOf([
            ['__proto__', 6],
            ['constructor', 5],
            ['toString', 8],
            ['valueOf', 1],
          ]),
        );
        assert.deepEqual(ids(between), [
          '__proto__/5',
          '__proto__/6',
          'constructor/3',
          'constructor/4',
          'constructor/5',
          'valueOf/0',
          'valueOf/1',
        ]);
      } finally {
        await log.close();
      }

      // Reopened, the log still names each stream with its own offset and appends after it.
      const again = new EmbeddedLog(file, { pageSize: 4 });
      try {
        const more = await again.publishAs('__proto__', tagged(2, ['t']));
        assert.deepEqual(
          more.map((p) => p.offset),
          [9, 10],
        );
        assertOffsets(
          await again.presentOffsets(),
          highest([...published, ...more]),
          'present offsets after reopening',
        );
      } finally {
        await again.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

const SETTINGS: DataflowSettings = {
  batchSize: 7,
  catchUpBatchSize: 11,
  batchMs: 5,
  maxInFlight: 3,
  retentionMicros: null,
  onError: 'skip',
};

/** One row per event handed to the sink (a multiset table, so a duplicate is a second row). */
const SEEN: TableSpec = {
  name: 'seen',
  mode: 'multiset',
  columns: [
    { name: 'stream', type: 'text not null', value: { path: 'stream' } },
    { name: 'event_offset', type: 'bigint not null', value: { path: 'offset' } },
  ],
};

function members(log: EmbeddedLog, db: SqliteDatabase): DataflowMember[] {
  return [
    sourceMember('src', "FROM 't'", log),
    operatorMember('ids', ['src'], { fn: 'stream and offset' }, ([s]) => {
      if (s?.kind !== 'collection') throw new Error('expected an ungrouped input');
      return {
        kind: 'collection',
        collection: s.collection.map(
          (v) => {
            const e = v as unknown as ActyxEvent;
            return { stream: e.stream, offset: e.offset };
          },
          { name: 'ids' },
        ),
      } satisfies Stage;
    }),
    sinkMember('sink', ['ids'], db, SEEN),
  ];
}

function tableRows(file: string): { stream: string; offset: number }[] {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    return (
      db.prepare('SELECT stream, event_offset FROM seen').all() as { stream: string; event_offset: number }[]
    ).map((r) => ({ stream: r.stream, offset: Number(r.event_offset) }));
  } finally {
    db.close();
  }
}

function storedOffsets(file: string): [string, number][] {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    return (db.prepare('SELECT stream, "offset" FROM seen_offsets').all() as { stream: string; offset: number }[]).map(
      (r) => [r.stream, Number(r.offset)],
    );
  } finally {
    db.close();
  }
}

test(
  'dataflow into SQLite: prototype-named streams are written exactly once, stored with their own offsets, and resumed after a restart',
  { timeout: 60_000 },
  async () => {
    const dir = tempDir('deltaflow-names-');
    const logFile = join(dir, 'log.sqlite');
    const viewFile = join(dir, 'views.sqlite');
    // Everything opened, closed at the end however the test ends (stop and close are idempotent).
    const open: { stop?(): Promise<void>; close?(): Promise<void> }[] = [];
    const opened = <T extends { stop?(): Promise<void>; close?(): Promise<void> }>(x: T): T => (open.unshift(x), x);
    try {
      let log = opened(new EmbeddedLog(logFile, { pageSize: 5 }));
      let db = opened(new SqliteDatabase({ filename: viewFile }));
      const published = await publishRounds(log, 4);
      const check = (what: string): void => {
        assert.deepEqual(ids(tableRows(viewFile)), ids(published), `${what}: every event is in the table exactly once`);
        const stored = storedOffsets(viewFile).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
        assert.deepEqual(
          stored,
          entries(mapOf(highest(published))),
          `${what}: the stored offsets name each stream with its own offset`,
        );
      };

      // First run: catch up, then live events.
      const listener = recordingListener();
      const run = opened(startDataflow({ source: log, members: members(log, db), settings: SETTINGS }, listener));
      await run.live;
      assertOffsets(run.stats().committedOffsets, highest(published), 'committed offsets after catching up');
      published.push(...(await publishRounds(log, 2, 2)));
      await waitCommitted(run, mapOf(highest(published)));
      await run.stop();
      assert.deepEqual(listener.recorded.errors, []);
      assertOffsets(run.stats().committedOffsets, highest(published), 'committed offsets live');
      const last = listener.recorded.commits.filter((c) => c.id === 'sink').at(-1);
      assert.ok(last?.offsets);
      assertOffsets(last.offsets, highest(published), 'the offsets of the last commit message');
      check('first run');
      await db.close();
      await log.close();

      // Restart with everything reopened, after more events arrived meanwhile.
      log = opened(new EmbeddedLog(logFile, { pageSize: 5 }));
      db = opened(new SqliteDatabase({ filename: viewFile }));
      published.push(...(await publishRounds(log, 1)));
      const second = recordingListener();
      const again = opened(startDataflow({ source: log, members: members(log, db), settings: SETTINGS }, second));
      await again.live;
      published.push(...(await publishRounds(log, 1, 1)));
      await waitCommitted(again, mapOf(highest(published)));
      await again.stop();
      assert.deepEqual(again.stats().rebuilt, [], 'the table is kept');
      assert.deepEqual(second.recorded.errors, []);
      assertOffsets(again.stats().committedOffsets, highest(published), 'committed offsets after the restart');
      check('after the restart');
    } finally {
      for (const x of open) await (x.stop ?? x.close)?.call(x);
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

test(
  'SQLite sink state: offsets of prototype-named streams are written, changed, removed and read back as own entries',
  { timeout: 60_000 },
  async () => {
    const dir = tempDir('deltaflow-names-');
    const file = join(dir, 'views.sqlite');
    const state = (offsets: OffsetMap) => ({ offsets, fingerprint: 'f', watermark: null });
    try {
      let db = new SqliteDatabase({ filename: file });
      try {
        await db.transaction(async (tx) => {
          await tx.ensureTable(SEEN);
          await tx.writeState(
            SEEN,
            state(
              mapOf([
                ['__proto__', 1],
                ['constructor', 2],
                ['toString', 3],
                [NORMAL, 4],
              ]),
            ),
          );
        });
        assertOffsets(
          (await db.transaction((tx) => tx.readState(SEEN))).offsets,
          [
            ['__proto__', 1],
            ['constructor', 2],
            ['toString', 3],
            [NORMAL, 4],
          ],
          'read back',
        );
        // Written from the cached state: only what changed, and a stream no longer named is removed.
        await db.transaction((tx) =>
          tx.writeState(
            SEEN,
            state(
              mapOf([
                ['__proto__', 5],
                ['toString', 3],
                ['valueOf', 0],
              ]),
            ),
          ),
        );
        assert.deepEqual(storedOffsets(file).sort(), [
          ['__proto__', 5],
          ['toString', 3],
          ['valueOf', 0],
        ]);
      } finally {
        await db.close();
      }
      db = new SqliteDatabase({ filename: file });
      try {
        assertOffsets(
          (await db.transaction((tx) => tx.readState(SEEN))).offsets,
          [
            ['__proto__', 5],
            ['toString', 3],
            ['valueOf', 0],
          ],
          'read back after reopening',
        );
        await db.transaction((tx) => tx.writeState(SEEN, state(mapOf([['toString', 4]]))));
        assert.deepEqual(storedOffsets(file), [['toString', 4]]);
      } finally {
        await db.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

const manifest = { appId: 'com.example.deltaflow-test', displayName: 'DeltaFlow tests', version: '1.0.0' };

test(
  'Actyx client: prototype-named streams survive reconnects without loss or repeats, and bound queries',
  { timeout: 60_000 },
  async () => {
    const fake = await FakeActyx.start({ keepAliveMs: 50 });
    const client = new ActyxClient({
      baseUrl: fake.baseUrl,
      manifest,
      idleTimeoutMs: 3000,
      requestTimeoutMs: 2000,
      backoff: { initialMs: 2, maxMs: 40 },
    });
    try {
      const published: { stream: string; offset: number }[] = [];
      for (let r = 0; r < 3; r++) {
        for (const stream of STREAMS)
          for (const p of fake.replicate(stream, tagged(3, ['t'])))
            published.push({ stream: p.stream, offset: p.offset });
      }
      // Broken responses: each reconnect resumes from the offsets of the events handed on.
      fake.streamFaults.push(
        { kind: 'drop', afterEvents: 5 },
        { kind: 'drop', afterEvents: 9 },
        { kind: 'end', afterEvents: 13 },
      );
      const c = new Collector(client, "FROM 't'");
      await waitFor(() => c.caughtUp, 'caughtUp');
      await c.stop();
      assert.equal(c.error, null);
      assert.ok(fake.streamRequests.length >= 4, 'the subscription was re-opened after each fault');
      assert.deepEqual(ids(c.events), ids(published));
      assert.deepEqual(
        c.diagnostics.filter((d) => d.message.includes('delivered twice')),
        [],
      );
      const resumed = fake.streamRequests[fake.streamRequests.length - 1]!.lowerBound;
      assert.ok(Object.keys(resumed).length > 0);
      for (const [s, o] of Object.entries(resumed))
        assert.ok(
          published.some((e) => e.stream === s && e.offset === o),
          `resumed after ${s}/${o}`,
        );
      assertOffsets(await client.presentOffsets(), highest(published), 'present offsets');

      // A bounded query (with a drop) yields exactly the events between the bounds.
      fake.streamFaults.push({ kind: 'drop', afterEvents: 4 });
      const lower = mapOf([
        ['__proto__', 2],
        ['constructor', 1],
      ]);
      const upper = mapOf([
        ['__proto__', 7],
        ['constructor', 8],
        ['toString', 3],
      ]);
      const got = await collectQuery(client, lower, upper);
      const want = published.filter(
        (e) =>
          (e.stream === '__proto__' && e.offset > 2 && e.offset <= 7) ||
          (e.stream === 'constructor' && e.offset > 1) ||
          (e.stream === 'toString' && e.offset <= 3),
      );
      assert.deepEqual(ids(got), ids(want));
    } finally {
      await client.close();
      await fake.close();
    }
  },
);
