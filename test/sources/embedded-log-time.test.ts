/**
 * Queries with a `TIME >` condition (how a restart replays the retention window) start at the
 * least Lamport stamp of the events recent enough, found in the log's time index. Whatever the
 * interleaving of streams, late events with old timestamps and recent events with low stamps,
 * they return exactly the events the query without that start returns and then filters by time.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { formatRfc3339Micros } from '../../src/sources/aql';
import { EmbeddedLog } from '../../src/sources/embedded-log';
import type { OffsetMap } from '../../src/core/offset-map';
import type { ActyxEvent } from '../../src/sources/types';

const BASE = 1_700_000_000_000_000; // µs
const id = (e: ActyxEvent) => `${e.stream}/${e.offset}`;

async function all(log: EmbeddedLog, query: string, lower: OffsetMap, upper: OffsetMap): Promise<ActyxEvent[]> {
  const out: ActyxEvent[] = [];
  for await (const batch of log.queryBatches(query, lower, upper)) out.push(...batch);
  return out;
}

const append = fc.record({
  stream: fc.constantFrom('a-0', 'b-0', 'c-0'),
  count: fc.integer({ min: 1, max: 4 }),
  gap: fc.integer({ min: 1, max: 40 }),
  second: fc.integer({ min: 0, max: 12 }), // few distinct times: events at exactly the bound are common
  tag: fc.constantFrom('x', 'y'),
});

test('a TIME-bounded query returns exactly the events of the unbounded one that match the time', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(append, { minLength: 1, maxLength: 40 }),
      fc.integer({ min: -1, max: 13 }),
      fc.constantFrom('>', '>='),
      fc.integer({ min: 0, max: 3 }),
      async (appends, second, op, lowerCut) => {
        const dir = mkdtempSync(join(tmpdir(), 'deltaflow-time-'));
        const log = new EmbeddedLog(join(dir, 'events.sqlite'), { foreignWritePollMs: 0, readAhead: false });
        try {
          const lamports: Record<string, number> = {};
          for (const a of appends) {
            const lamport = (lamports[a.stream] ?? 0) + a.gap;
            lamports[a.stream] = lamport + a.count;
            const events = Array.from({ length: a.count }, (_, i) => ({ tags: [a.tag], payload: { i } }));
            log.appendSync(a.stream, events, { lamport, timestamp: BASE + a.second * 1_000_000 });
          }
          const present = await log.presentOffsets();
          // A lower bound too: the first few events of each stream are behind it.
          const lower: Record<string, number> = {};
          for (const s of Object.keys(present)) if ((present[s] as number) >= lowerCut) lower[s] = lowerCut - 1;
          const t = BASE + second * 1_000_000;
          const bounded = await all(log, `FROM 'x' & TIME ${op} ${formatRfc3339Micros(t)}`, lower, present);
          const everything = await all(log, `FROM 'x'`, lower, present);
          const expected = everything.filter((e) => (op === '>' ? e.timestamp > t : e.timestamp >= t));
          assert.deepEqual(bounded.map(id), expected.map(id));
        } finally {
          await log.close();
          rmSync(dir, { recursive: true, force: true });
        }
      },
    ),
    { numRuns: 60 },
  );
});

test('the log has the time index, and a TIME-bounded count of the window is answered from it', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'deltaflow-time-'));
  const file = join(dir, 'events.sqlite');
  const log = new EmbeddedLog(file, { foreignWritePollMs: 0 });
  try {
    log.appendSync('a-0', [{ tags: ['x'], payload: 1 }], { timestamp: BASE });
    const db = new Database(file, { readonly: true });
    try {
      const plan = db
        .prepare(
          `EXPLAIN QUERY PLAN SELECT min(lamport) FROM deltaflow_log_events INDEXED BY deltaflow_log_events_time WHERE (CASE WHEN json_valid(event) THEN json_extract(event, '$.timestamp') END) >= ?`,
        )
        .all(BASE) as { detail: string }[];
      assert.ok(
        plan.some((p) => /COVERING INDEX deltaflow_log_events_time/.test(p.detail)),
        JSON.stringify(plan),
      );
      assert.equal(
        (
          db
            .prepare(
              `SELECT count(*) AS n FROM deltaflow_log_events WHERE (CASE WHEN json_valid(event) THEN json_extract(event, '$.timestamp') END) = ?`,
            )
            .get(BASE) as { n: number }
        ).n,
        1,
      );
    } finally {
      db.close();
    }
  } finally {
    await log.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a log written before the time index gets it when opened, and TIME queries then use it', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'deltaflow-time-'));
  const file = join(dir, 'events.sqlite');
  try {
    const old = new EmbeddedLog(file, { foreignWritePollMs: 0 });
    old.appendSync(
      'a-0',
      [
        { tags: ['x'], payload: 1 },
        { tags: ['x'], payload: 2 },
      ],
      { timestamp: BASE, lamport: 1 },
    );
    old.appendSync('b-0', [{ tags: ['x'], payload: 3 }], { timestamp: BASE + 5_000_000, lamport: 10 });
    await old.close();
    const raw = new Database(file);
    raw.exec('DROP INDEX deltaflow_log_events_time'); // as an older version left it
    raw.close();
    const log = new EmbeddedLog(file, { foreignWritePollMs: 0 });
    try {
      const check = new Database(file, { readonly: true });
      const names = check.prepare(`SELECT name FROM sqlite_master WHERE type = 'index'`).pluck().all();
      check.close();
      assert.ok(names.includes('deltaflow_log_events_time'), JSON.stringify(names));
      const present = await log.presentOffsets();
      const recent = await all(log, `FROM 'x' & TIME > ${formatRfc3339Micros(BASE + 1)}`, {}, present);
      assert.deepEqual(recent.map(id), ['b-0/0']);
    } finally {
      await log.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a TIME-bounded query does not read the events before its window (a corrupt old row goes unnoticed, unlike in the unbounded query)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'deltaflow-time-'));
  const file = join(dir, 'events.sqlite');
  const log = new EmbeddedLog(file, { foreignWritePollMs: 0, readAhead: false });
  try {
    log.appendSync('a-0', [{ tags: ['x'], payload: 'old' }], { timestamp: BASE, lamport: 1 });
    log.appendSync('a-0', [{ tags: ['x'], payload: 'new' }], { timestamp: BASE + 10_000_000, lamport: 5 });
    const raw = new Database(file);
    raw.prepare(`UPDATE deltaflow_log_events SET event = 'not json' WHERE stream = 'a-0' AND "offset" = 0`).run();
    raw.close();
    const present = await log.presentOffsets();
    const recent = await all(log, `FROM 'x' & TIME > ${formatRfc3339Micros(BASE + 1)}`, {}, present);
    assert.deepEqual(
      recent.map((e) => e.payload),
      ['new'],
    );
    await assert.rejects(all(log, `FROM 'x'`, {}, present), 'the unbounded query reads the corrupt row');
  } finally {
    await log.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
