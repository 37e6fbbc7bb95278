/**
 * The WAL of the SQLite sink's database and of the embedded log stays bounded (wal-bound.ts) when
 * the background checkpointer cannot keep up — here it never runs (an interval of an hour), the
 * extreme of a catch-up whose commits follow each other faster than passive checkpoints let the
 * WAL start over — and a reader that holds a snapshot meanwhile makes no commit fail or wait: the
 * WAL grows while it reads and is truncated at the first commit after it. Real files, small limits.
 * The sink's bound is off unless `walLimitBytes` asks for it (it stalled live commits: sqlite-database.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import type { Value } from '../../src/engine/types';
import type { TableSpec } from '../../src/sinks/types';
import { SqliteDatabase } from '../../src/sinks/sqlite-database';
import { EmbeddedLog } from '../../src/sources/embedded-log';

const LIMIT = 256 * 1024;
/** Never within a test: the background checkpointer cannot keep up at all. */
const NEVER_MS = 3_600_000;
/** Each commit writes about 30 kB of WAL (a row with a 20 kB text): 120 commits, about 14× the limit. */
const COMMITS = 120;
const TEXT = 20_000;
/** A hang would be a commit waiting for the reader through a busy handler (the log's is 5 s per attempt). */
const HANG_GUARD = { timeout: 120_000 };

const walSize = (file: string): number => statSync(`${file}-wal`, { throwIfNoEntry: false })?.size ?? 0;

function tempDir(): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'deltaflow-wal-bound-'));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

const spec: TableSpec = {
  name: 'rows',
  mode: 'multiset',
  columns: [
    { name: 'i', type: 'integer', value: { path: 'i' } },
    { name: 't', type: 'text', value: { path: 't' } },
  ],
};
const row = (i: number): readonly [Value, number, number] => [{ i, t: `${i}:${'x'.repeat(TEXT)}` }, 1, 0];

/** The rows as a reader of the file sees them: how many, and the sum of their numbers and text lengths. */
function contents(reader: Database.Database): { n: number; sumI: number; sumLen: number } {
  return reader
    .prepare('SELECT count(*) AS n, coalesce(sum(i), 0) AS sumI, coalesce(sum(length(t)), 0) AS sumLen FROM rows')
    .get() as {
    n: number;
    sumI: number;
    sumLen: number;
  };
}
const expected = (n: number) => ({
  n,
  sumI: (n * (n - 1)) / 2,
  sumLen: Array.from({ length: n }, (_, i) => `${i}:`.length + TEXT).reduce((a, b) => a + b, 0),
});

// The truncation runs in the checkpoint worker; without one (automatic checkpoints as SQLite's default, at
// 1,000 pages) on the session's connection, in this thread or in its worker.
const setups = [
  { worker: false, backgroundCheckpoints: true },
  { worker: true, backgroundCheckpoints: true },
  { worker: false, backgroundCheckpoints: false },
  { worker: true, backgroundCheckpoints: false },
];
for (const { worker, backgroundCheckpoints } of setups) {
  /** The sink with the bound (off by default: sqlite-database.ts) and a checkpointer that never runs. */
  const openSink = (filename: string): SqliteDatabase =>
    new SqliteDatabase({
      filename,
      worker,
      backgroundCheckpoints,
      checkpointIntervalMs: NEVER_MS,
      walLimitBytes: LIMIT,
    });
  const where = `${worker ? 'in a worker thread' : 'in this thread'}, ${backgroundCheckpoints ? 'background' : 'automatic'} checkpoints`;

  test(
    `SQLite sink (${where}): the WAL stays below the bound over many commits${backgroundCheckpoints ? ' while the background checkpointer cannot keep up' : ''}`,
    HANG_GUARD,
    async () => {
      const { dir, cleanup } = tempDir();
      const filename = join(dir, 'views.db');
      const db = openSink(filename);
      try {
        await db.transaction(async (tx) => tx.ensureTable(spec));
        let peak = 0;
        for (let i = 0; i < COMMITS; i++) {
          await db.transaction(async (tx) => void (await tx.apply(spec, [row(i)])));
          peak = Math.max(peak, walSize(filename));
        }
        assert.ok(peak <= 2 * LIMIT, `the WAL stayed below twice the limit of ${LIMIT} bytes (peak ${peak})`);
        const reader = new Database(filename, { readonly: true });
        try {
          assert.deepEqual(contents(reader), expected(COMMITS), 'every row committed, exactly once');
        } finally {
          reader.close();
        }
      } finally {
        await db.close();
        cleanup();
      }
    },
  );

  test(
    `SQLite sink (${where}): a reader holding a snapshot makes no commit fail or wait; the WAL is truncated after it`,
    HANG_GUARD,
    async () => {
      const { dir, cleanup } = tempDir();
      const filename = join(dir, 'views.db');
      const db = openSink(filename);
      await db.transaction(async (tx) => tx.ensureTable(spec));
      const reader = new Database(filename, { readonly: true });
      try {
        await db.transaction(async (tx) => void (await tx.apply(spec, [row(0)])));
        // A dashboard's long read: its snapshot holds the WAL (no checkpoint may reset it under the reader).
        reader.exec('BEGIN');
        assert.deepEqual(contents(reader), expected(1));
        let peak = 0;
        for (let i = 1; i < COMMITS; i++) {
          await db.transaction(async (tx) => void (await tx.apply(spec, [row(i)])));
          peak = Math.max(peak, walSize(filename));
        }
        assert.ok(peak > 2 * LIMIT, `while the reader held its snapshot the WAL could not be reset (peak ${peak})`);
        assert.deepEqual(contents(reader), expected(1), 'the reader still sees its snapshot');
        reader.exec('COMMIT');
        // The truncation that the reader made busy is tried again 100 ms later, at a commit.
        let n = COMMITS;
        for (let tries = 0; walSize(filename) > 2 * LIMIT && tries < 200; tries++) {
          await new Promise((r) => setTimeout(r, 20));
          await db.transaction(async (tx) => void (await tx.apply(spec, [row(n++)])));
        }
        assert.ok(walSize(filename) <= 2 * LIMIT, `truncated once the reader was done (${walSize(filename)} bytes)`);
        assert.deepEqual(contents(reader), expected(n), 'every row committed, exactly once');
      } finally {
        reader.close();
        await db.close();
        cleanup();
      }
    },
  );
}

test(
  'embedded log: the WAL stays below the bound over many appends while the background checkpointer cannot keep up; a reader holding a snapshot makes no append fail or wait',
  HANG_GUARD,
  async () => {
    const { dir, cleanup } = tempDir();
    const file = join(dir, 'log.sqlite');
    const log = new EmbeddedLog(file, { foreignWritePollMs: 0, checkpointIntervalMs: NEVER_MS, walLimitBytes: LIMIT });
    const append = (i: number) =>
      log.appendSync('drill1-0', [{ tags: ['machine'], payload: { i, pad: 'x'.repeat(TEXT) } }]);
    try {
      let peak = 0;
      for (let i = 0; i < COMMITS; i++) {
        append(i);
        peak = Math.max(peak, walSize(file));
      }
      assert.ok(peak <= 2 * LIMIT, `the WAL stayed below twice the limit of ${LIMIT} bytes (peak ${peak})`);
      const reader = new Database(file, { readonly: true });
      try {
        reader.exec('BEGIN');
        const count = () => (reader.prepare('SELECT count(*) AS n FROM deltaflow_log_events').get() as { n: number }).n;
        assert.equal(count(), COMMITS);
        peak = 0;
        for (let i = COMMITS; i < 2 * COMMITS; i++) {
          append(i);
          peak = Math.max(peak, walSize(file));
        }
        assert.ok(peak > 2 * LIMIT, `while the reader held its snapshot the WAL could not be reset (peak ${peak})`);
        assert.equal(count(), COMMITS, 'the reader still sees its snapshot');
        reader.exec('COMMIT');
      } finally {
        reader.close();
      }
      let n = 2 * COMMITS;
      for (let tries = 0; walSize(file) > 2 * LIMIT && tries < 200; tries++) {
        await new Promise((r) => setTimeout(r, 20));
        append(n++);
      }
      assert.ok(walSize(file) <= 2 * LIMIT, `truncated once the reader was done (${walSize(file)} bytes)`);
      const events = [];
      for await (const page of log.query("'machine'", {}, await log.presentOffsets())) events.push(page);
      assert.deepEqual(
        events.map((e) => (e.payload as { i: number }).i),
        Array.from({ length: n }, (_, i) => i),
        'every event appended, exactly once, in order',
      );
    } finally {
      await log.close();
      cleanup();
    }
  },
);

test(
  'SQLite sink by default: no truncating checkpoint holds a commit, however far the WAL grows (its bound stalled live commits)',
  HANG_GUARD,
  async () => {
    const { dir, cleanup } = tempDir();
    const filename = join(dir, 'views.db');
    // No walLimitBytes: the default. The background checkpointer never runs, so only a truncation could shrink the WAL.
    const db = new SqliteDatabase({ filename, checkpointIntervalMs: NEVER_MS });
    try {
      await db.transaction(async (tx) => tx.ensureTable(spec));
      const commits = Math.ceil((40 * 1048576) / TEXT); // past WAL_LIMIT_BYTES (32 MiB), the embedded log's bound
      let shrank = false;
      let last = 0;
      for (let i = 0; i < commits; i++) {
        await db.transaction(async (tx) => void (await tx.apply(spec, [row(i)])));
        const size = walSize(filename);
        if (size < last) shrank = true;
        last = size;
      }
      assert.equal(shrank, false, 'the WAL was never truncated between commits');
      assert.ok(last > 32 * 1048576, `the WAL grew past 32 MiB (${last} bytes)`);
    } finally {
      await db.close();
      cleanup();
    }
  },
);

test(
  'SQLite sink by default: a WAL a burst grew past 32 MiB is cut back to journal_size_limit once it starts over',
  HANG_GUARD,
  async () => {
    const { dir, cleanup } = tempDir();
    const filename = join(dir, 'views.db');
    // The default sink (no walLimitBytes), its checkpointer running often: only journal_size_limit shrinks the file.
    const db = new SqliteDatabase({ filename, checkpointIntervalMs: 50 });
    await db.transaction(async (tx) => tx.ensureTable(spec));
    await db.transaction(async (tx) => void (await tx.apply(spec, [row(0)])));
    const reader = new Database(filename, { readonly: true });
    try {
      // A burst while a dashboard's read holds its snapshot: the WAL cannot start over meanwhile.
      reader.exec('BEGIN');
      assert.deepEqual(contents(reader), expected(1));
      let n = 1;
      while (walSize(filename) <= 40 * 1048576)
        await db.transaction(async (tx) => void (await tx.apply(spec, [row(n++)])));
      reader.exec('COMMIT');
      const burst = walSize(filename);
      // The checkpointer copies the frames; the first commit after it has caught up starts the WAL over,
      // and journal_size_limit (32 MiB) cuts the file back at the end of that commit.
      for (let tries = 0; walSize(filename) > 32 * 1048576 && tries < 200; tries++) {
        await new Promise((r) => setTimeout(r, 25));
        await db.transaction(async (tx) => void (await tx.apply(spec, [row(n++)])));
      }
      const after = walSize(filename);
      assert.ok(after <= 32 * 1048576, `the WAL of ${burst} bytes was cut back to 32 MiB (${after} bytes)`);
      assert.deepEqual(contents(reader), expected(n), 'every row committed, exactly once');
    } finally {
      reader.close();
      await db.close();
      cleanup();
    }
  },
);
