/**
 * The page cache of the SQLite connections that read (page-cache.ts): SQLite's own 2 MB, not the
 * 16 MB better-sqlite3 builds in, which every reading connection of a long catch-up filled — in
 * malloc, outside the heap `--max-old-space-size` bounds (BENCHMARKS.md, issue 13, 2026-12-07).
 * And the read-ahead worker's young generation: small, not sized from the machine's memory.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { SqliteDatabase } from '../../src/sinks/sqlite-database';
import { EmbeddedLog } from '../../src/sources/embedded-log';
import { EventColumnsDecoder } from '../../src/sources/event-columns';
import { liveReadAheadWorkers, PagePrefetcher, readAheadResourceLimits } from '../../src/sources/page-prefetcher';
import { READER_CACHE_KIB, WRITER_CACHE_KIB } from '../../src/sqlite/page-cache';
import { openInProcessSession } from '../../src/sqlite/sqlite-session';
import { openWorkerSession } from '../../src/sqlite/sqlite-worker-session';

const BOUNDED = -READER_CACHE_KIB; // cache_size in KiB is negative

function tempDir(): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'deltaflow-page-cache-'));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

test('the bound is below better-sqlite3 default (the test would pass vacuously otherwise)', () => {
  const db = new Database(':memory:');
  try {
    assert.ok(BOUNDED > (db.pragma('cache_size', { simple: true }) as number), 'better-sqlite3 keeps more by default');
  } finally {
    db.close();
  }
});

test("a read-ahead worker's connection keeps a bounded page cache, and its young generation is small", async () => {
  const { dir, cleanup } = tempDir();
  try {
    const file = join(dir, 'log.sqlite');
    const log = new EmbeddedLog(file, { foreignWritePollMs: 0, backgroundCheckpoints: false });
    log.appendSync('s', [{ tags: ['t'], payload: 1 }]);
    await log.close();
    // One page whose only "event" is a text that travels whole: its payload is the worker
    // connection's own cache_size. No cursor row: it is the last page.
    const pages = new PagePrefetcher({
      file,
      pageSql: `SELECT '{"payload":' || (SELECT cache_size FROM pragma_cache_size) || '}' WHERE ? IS NOT NULL AND ? IS NOT NULL LIMIT ?`,
      cursorSql: 'SELECT 1 WHERE ? IS NULL AND ? IS NULL AND ? IS NULL',
      cursor: [0],
      bounds: [1],
      pageSize: 10,
    });
    const limits = readAheadResourceLimits();
    const decoder = new EventColumnsDecoder();
    const payloads: unknown[] = [];
    for await (const page of pages) payloads.push(...decoder.decode(page).map((e) => e.payload));
    assert.deepEqual(payloads, [BOUNDED]);
    assert.equal(limits.length, 1);
    assert.ok((limits[0]!.maxYoungGenerationSizeMb ?? Infinity) <= 8, JSON.stringify(limits[0]));
    await pages.stop();
    assert.equal(liveReadAheadWorkers(), 0);
  } finally {
    cleanup();
  }
});

test("the embedded log's connection keeps a bounded page cache", async () => {
  const { dir, cleanup } = tempDir();
  try {
    const log = new EmbeddedLog(join(dir, 'log.sqlite'), { foreignWritePollMs: 0, backgroundCheckpoints: false });
    try {
      const db = (log as unknown as { db: Database.Database }).db;
      assert.equal(db.pragma('cache_size', { simple: true }), BOUNDED);
    } finally {
      await log.close();
    }
  } finally {
    cleanup();
  }
});

test("the SQLite sink's durable-state reader keeps a bounded page cache", async () => {
  const { dir, cleanup } = tempDir();
  const file = join(dir, 'sink.sqlite');
  new Database(file).close();
  class Probe extends SqliteDatabase {
    reader() {
      return this.readConnection();
    }
  }
  const sink = new Probe({ filename: file, backgroundCheckpoints: false });
  try {
    const opened = sink.reader();
    assert.equal(typeof opened, 'function');
    const conn = await (
      opened as () => Promise<{ all(s: unknown): Promise<Record<string, unknown>[]>; close(): Promise<void> }>
    )();
    const rows = await conn.all({ sql: 'SELECT cache_size FROM pragma_cache_size', params: [] });
    assert.deepEqual(rows, [{ cache_size: BOUNDED }]);
    await conn.close();
  } finally {
    await sink.close();
    cleanup();
  }
});

test("the sink's writing connection keeps its own bounded page cache, in this thread and in a worker", async () => {
  const { dir, cleanup } = tempDir();
  try {
    const file = join(dir, 'sink.sqlite');
    assert.ok(-WRITER_CACHE_KIB > -16000, "below better-sqlite3's 16 MB");
    for (const open of [openInProcessSession, openWorkerSession]) {
      const session = await open(file, { backgroundCheckpoints: false });
      try {
        assert.deepEqual(await session.all('SELECT cache_size FROM pragma_cache_size', []), [
          { cache_size: -WRITER_CACHE_KIB },
        ]);
      } finally {
        await session.close();
      }
    }
  } finally {
    cleanup();
  }
});
