/**
 * Durable operator state at the dataflow level (docs/durable-state.md): a dataflow restarted from
 * the state stored in its database — random batch sizes, cache bounds, restart points, events
 * arriving live or between runs, late events (out of the streams' order and, with a retention
 * window, up to two windows old) — writes the same tables as one uninterrupted run taking one
 * event per step, and a restart reads no history older than the state. SQLite, PostgreSQL and
 * MariaDB.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import fc from 'fast-check';
import { startDataflow, type RunningDataflow } from '../../src/dataflow/coordinator';
import {
  HEAP_PRESSURE_COMMIT_SHARE,
  heapInUseForTests,
  MEMORY_STATE_HINT,
  STATE_FORMAT,
  warmUpHint,
  warmUpUnits,
} from '../../src/dataflow/durable-state';
import type { HotUnit } from '../../src/engine/types';
import type { DataflowMember, DataflowSettings } from '../../src/dataflow/types';
import { MariadbDatabase } from '../../src/sinks/mariadb-database';
import { PostgresDatabase } from '../../src/sinks/postgres-database';
import { SqliteDatabase } from '../../src/sinks/sqlite-database';
import type { SinkDatabase, SinkTransaction } from '../../src/sinks/types';
import { EmbeddedLog } from '../../src/sources/embedded-log';
import {
  allEvents,
  appendEvents,
  appendInOrder,
  dashboardMembers,
  drillEvents,
  fromScratch,
  mariadbDrop,
  mariadbExec,
  mariadbOffsets,
  mariadbRows,
  oneByOne,
  pgExec,
  pgOffsets,
  pgRows,
  recordingListener,
  sourceMember,
  sqliteOffsets,
  sqliteRows,
  tempDir,
  uniqueName,
  usageMembers,
  waitCommitted,
  type DrillEvent,
} from './support';
import { pagedMembers } from '../crash/members';
import type { OffsetMap } from '../../src/core/offset-map';
import { HINT_KEY, hintOp } from '../../src/sinks/state-sql';

const WINDOW = 40e6; // 40 s of the events' time (≈ 40 events), compacted in steps of 5 s

interface Target {
  readonly db: SinkDatabase;
  /** Table names and the state scope, unique where the database is shared. */
  readonly dashboard: string;
  readonly usage: string;
  readonly scope: string;
  rows(m: DataflowMember): Promise<string[]>;
  /** A table's stored offsets. */
  offsets(table: string): Promise<OffsetMap>;
  /** The same database opened again (as a restarted process opens it). */
  reopen(): SinkDatabase;
  drop(): Promise<void>;
}

interface Kind {
  readonly name: 'sqlite' | 'postgres' | 'mariadb';
  open(dir: string): Target;
}

const sqlite: Kind = {
  name: 'sqlite',
  open(dir) {
    const file = join(dir, 'views.sqlite');
    const db = new SqliteDatabase({ filename: file });
    return {
      db,
      dashboard: 'dashboard',
      usage: 'usage',
      scope: 'flow',
      rows: async (m) => (m.role === 'sink' ? sqliteRows(file, m.table) : []),
      offsets: async (table) => sqliteOffsets(file, table),
      reopen: () => new SqliteDatabase({ filename: file }),
      drop: async () => undefined,
    };
  },
};

const postgres: Kind = {
  name: 'postgres',
  open() {
    const db = new PostgresDatabase({});
    const dashboard = uniqueName('durable_dash');
    const usage = uniqueName('durable_usage');
    const scope = uniqueName('flow');
    return {
      db,
      dashboard,
      usage,
      scope,
      rows: async (m) => (m.role === 'sink' ? pgRows(m.table) : []),
      offsets: (table) => pgOffsets(table),
      reopen: () => new PostgresDatabase({}),
      drop: () =>
        pgExec(
          `drop table if exists ${[dashboard, usage].flatMap((t) => [`"${t}"`, `"${t}_offsets"`]).join(', ')}; delete from deltaflow_meta where table_name in ('${dashboard}', '${usage}'); delete from deltaflow_state where op like '${scope}/%'; delete from deltaflow_state_offsets where scope = '${scope}'; delete from deltaflow_state_scope where scope = '${scope}'`,
        ),
    };
  },
};

const mariadb: Kind = {
  name: 'mariadb',
  open() {
    const db = new MariadbDatabase();
    const dashboard = uniqueName('durable_dash');
    const usage = uniqueName('durable_usage');
    const scope = uniqueName('flow');
    return {
      db,
      dashboard,
      usage,
      scope,
      rows: async (m) => (m.role === 'sink' ? mariadbRows(m.table) : []),
      offsets: (table) => mariadbOffsets(table),
      reopen: () => new MariadbDatabase(),
      drop: async () => {
        await mariadbDrop([dashboard, usage]);
        // (The state tables exist: the dataflow created them.)
        await mariadbExec(`delete from deltaflow_state where op like '${scope}/%'`);
        await mariadbExec(`delete from deltaflow_state_offsets where scope = '${scope}'`);
        await mariadbExec(`delete from deltaflow_state_scope where scope = '${scope}'`);
      },
    };
  },
};

/** Every 7th event late: its timestamp up to two windows before its predecessor's. */
function withLateEvents(events: DrillEvent[], seed: number): DrillEvent[] {
  return events.map((e, i) =>
    i % 7 === 3 ? { ...e, timestamp: e.timestamp - Math.floor((((seed * (i + 1)) % 97) / 97) * 2 * WINDOW) } : e,
  );
}

async function property(
  kind: Kind,
  numRuns: number,
  examples: [number, number[], boolean[], number, boolean, number, boolean][] = [],
): Promise<void> {
  // Entries read back from the database over all runs: the read connection must have served some.
  let loads = 0;
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 1, max: 60 }),
      fc.array(fc.integer({ min: 1, max: 99 }), { minLength: 1, maxLength: 4 }),
      fc.array(fc.boolean(), { minLength: 3, maxLength: 3 }),
      fc.constantFrom(0, 300, 5_000, 64 * 1024 * 1024),
      fc.boolean(),
      fc.integer({ min: 1, max: 1000 }),
      // Live commits write the warm-up hint with their state (every one of them), or only the stops.
      fc.boolean(),
      async (batchSize, cuts, live, cacheBytes, retention, seed, hints) => {
        const dir = tempDir('deltaflow-durable-');
        const log = new EmbeddedLog(join(dir, 'log.sqlite'));
        const target = kind.open(dir);
        try {
          const events = withLateEvents(drillEvents({ machines: 4, events: 240, seed }), seed);
          const points = [...new Set(cuts.map((c) => Math.floor((c / 100) * events.length)))].sort((a, b) => a - b);
          const members: DataflowMember[] = [
            sourceMember('src', "'machine'", log),
            ...dashboardMembers('src', target.db, target.dashboard),
            ...usageMembers('src', target.db, target.usage),
          ];
          const settings: DataflowSettings = {
            batchSize,
            catchUpBatchSize: batchSize,
            batchMs: 1,
            maxInFlight: 2,
            retentionMicros: retention ? WINDOW : null,
            onError: 'skip',
            durableState: true,
            stateCacheBytes: cacheBytes,
            stateHintMs: hints ? 0 : undefined,
          };
          let from = 0;
          for (const [i, p] of [...points, events.length].entries()) {
            const chunk = events.slice(from, p);
            from = p;
            const isLive = live[i % live.length] as boolean;
            // With retention, appended in Lamport order (the reference computes in that order);
            // without, stream by stream, so that events of one stream arrive late for the others.
            const append = (): void => (retention ? appendInOrder(log, chunk) : appendEvents(log, chunk));
            if (!isLive) append();
            const before = (await allEvents(log)).length - (isLive ? 0 : chunk.length);
            const run = startDataflow({ id: target.scope, source: log, members, settings }, recordingListener());
            await run.live;
            if (isLive) append();
            await waitCommitted(run, await log.presentOffsets());
            await run.stop();
            const stats = run.stats();
            assert.equal(stats.error, null);
            assert.equal(stats.durableState, true);
            // A restart reads no history: only the events after the committed state.
            assert.equal(stats.eventsReplayed, 0, `run ${i} replayed history`);
            assert.equal(stats.eventsRead, (await allEvents(log)).length - before, `run ${i} read history`);
            loads += stats.stateLoads;
          }
          const stored = await allEvents(log);
          const expected = retention ? await oneByOne(members, stored, WINDOW) : await fromScratch(members, stored);
          for (const m of members) if (m.role === 'sink') assert.deepEqual(await target.rows(m), expected.get(m.id));
        } finally {
          await target.db.close();
          await log.close();
          await target.drop();
          rmSync(dir, { recursive: true, force: true });
        }
      },
    ),
    { numRuns, examples },
  );
  assert.ok(loads > 0, `groups were read back from ${kind.name} (${loads} entries)`);
}

test('SQLite: restarted from durable state equals one uninterrupted run one event per step, reading no history', async () => {
  await property(sqlite, 15);
});

test('PostgreSQL: restarted from durable state equals one uninterrupted run one event per step, reading no history', async () => {
  await property(postgres, 6);
});

test('MariaDB: restarted from durable state equals one uninterrupted run one event per step, reading no history', async () => {
  await property(mariadb, 6);
});

test('SQLite: a dataflow that kept its state in memory builds the state once, then reads no history; a changed operator rebuilds it', async () => {
  const dir = tempDir('deltaflow-durable-upgrade-');
  const log = new EmbeddedLog(join(dir, 'log.sqlite'));
  const file = join(dir, 'views.sqlite');
  const db = new SqliteDatabase({ filename: file });
  try {
    const events = drillEvents({ machines: 3, events: 200, seed: 7 });
    const members = (variant: string): DataflowMember[] => [
      sourceMember('src', "'machine'", log),
      ...dashboardMembers('src', db, 'dashboard'),
      ...usageMembers('src', db, 'usage', { variant }),
    ];
    const base = { batchSize: 20, batchMs: 1, maxInFlight: 2, retentionMicros: null, onError: 'skip' as const };
    const runOnce = async (settings: DataflowSettings, variant = '') => {
      const listener = recordingListener();
      const run = startDataflow({ id: 'flow', source: log, members: members(variant), settings }, listener);
      await run.live;
      await waitCommitted(run, await log.presentOffsets());
      await run.stop();
      return { stats: run.stats(), logs: listener.recorded.logs.map((l) => l.message) };
    };
    appendInOrder(log, events.slice(0, 120));
    const memory = await runOnce(base);
    assert.equal(memory.stats.durableState, false);
    // In memory without a window: the start says once that the state grows with the history.
    assert.equal(memory.logs.filter((l) => l === MEMORY_STATE_HINT).length, 1, memory.logs.join('\n'));
    appendInOrder(log, events.slice(120, 150));
    // First start with durable state: the operators' state is built from the history, tables kept.
    const first = await runOnce({ ...base, durableState: true, stateCacheBytes: 1000 });
    assert.equal(first.stats.eventsReplayed, 120);
    assert.ok(first.logs.some((l) => /building the operator state/.test(l)));
    assert.ok(!first.logs.includes(MEMORY_STATE_HINT));
    appendInOrder(log, events.slice(150));
    const second = await runOnce({ ...base, durableState: true, stateCacheBytes: 1000 });
    assert.equal(second.stats.eventsReplayed, 0);
    assert.equal(second.stats.eventsRead, 50);
    assert.ok(second.stats.stateLoads > 0, 'groups were loaded from the database');
    const expected = await fromScratch(members(''), await allEvents(log));
    for (const m of members('')) if (m.role === 'sink') assert.deepEqual(sqliteRows(file, m.table), expected.get(m.id));
    const check = new Database(file, { readonly: true });
    const scope = check.prepare('SELECT format FROM deltaflow_state_scope WHERE scope = ?').get('flow') as
      { format: number } | undefined;
    check.close();
    assert.equal(scope?.format, STATE_FORMAT);
    // A changed operator: its table is rebuilt and the state with it.
    const changed = await runOnce({ ...base, durableState: true }, 'v2');
    assert.ok(changed.stats.rebuilt.some((r) => r.id === 'usage-sink'));
    assert.ok(changed.logs.some((l) => /building the operator state/.test(l)));
    const again = await runOnce({ ...base, durableState: true }, 'v2');
    assert.equal(again.stats.eventsReplayed, 0);
    // State of an older format (the one before this version's: src/dataflow/durable-state.ts says
    // what each stored): built again from the events, the tables kept; then continued.
    const previous = STATE_FORMAT - 1;
    const old = new Database(file);
    old.prepare('UPDATE deltaflow_state_scope SET format = ? WHERE scope = ?').run(previous, 'flow');
    old.close();
    const upgraded = await runOnce({ ...base, durableState: true }, 'v2');
    assert.ok(
      upgraded.logs.some((l) => l.includes('building the operator state') && l.includes(`format ${previous},`)),
      upgraded.logs.join('\n'),
    );
    assert.equal(upgraded.stats.eventsReplayed, events.length);
    const expectedV2 = await fromScratch(members('v2'), await allEvents(log));
    for (const m of members('v2'))
      if (m.role === 'sink') assert.deepEqual(sqliteRows(file, m.table), expectedV2.get(m.id));
    const afterUpgrade = await runOnce({ ...base, durableState: true }, 'v2');
    assert.equal(afterUpgrade.stats.eventsReplayed, 0);
  } finally {
    await db.close();
    await log.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('SQLite: state in memory says so once at start without a retention window, not with one', async () => {
  const dir = tempDir('deltaflow-durable-hint-');
  const log = new EmbeddedLog(join(dir, 'log.sqlite'));
  const db = new SqliteDatabase({ filename: join(dir, 'views.sqlite') });
  try {
    appendInOrder(log, drillEvents({ machines: 2, events: 20, seed: 3 }));
    const settings = { batchSize: 20, batchMs: 1, maxInFlight: 2, retentionMicros: null, onError: 'skip' as const };
    const logsOf = async (members: DataflowMember[], s: DataflowSettings): Promise<string[]> => {
      const listener = recordingListener();
      const run = startDataflow({ id: 'hint', source: log, members, settings: s }, listener);
      await run.live;
      await run.stop();
      return listener.recorded.logs.map((l) => l.message);
    };
    const dashboard = [sourceMember('src', "'machine'", log), ...dashboardMembers('src', db, 'dashboard')];
    const windowed = await logsOf(dashboard, { ...settings, retentionMicros: WINDOW });
    assert.ok(!windowed.includes(MEMORY_STATE_HINT), windowed.join('\n'));
    const unwindowed = await logsOf(dashboard, settings);
    assert.ok(unwindowed.includes(MEMORY_STATE_HINT), unwindowed.join('\n'));
  } finally {
    await db.close();
    await log.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

for (const nearLimit of [false, true])
  test(`SQLite, durable state, catching up: a commit is queued once the state texts it holds reach ${nearLimit ? 'a quarter of commitStateChars while the heap is near its limit' : 'commitStateChars'}`, async () => {
    // Near its limit: V8's heap in use at half of heap_size_limit (HEAP_PRESSURE_SHARE is less).
    heapInUseForTests(() => ({ used: nearLimit ? 150e6 : 10e6, limit: 300e6 }));
    const dir = tempDir('deltaflow-durable-commit-chars-');
    const log = new EmbeddedLog(join(dir, 'log.sqlite'));
    const file = join(dir, 'views.sqlite');
    // Per commit, the characters of the state texts it writes (the newest text per key).
    const written: number[] = [];
    class Counting extends SqliteDatabase {
      override transaction<T>(fn: (tx: SinkTransaction) => Promise<T>): Promise<T> {
        return super.transaction((tx) =>
          fn({
            ...tx,
            writeScope: async (scope, level, changes) => {
              let chars = 0;
              for (const entries of changes.entries.values())
                for (const e of entries.values()) chars += e?.v.length ?? 0;
              written.push(chars);
              await tx.writeScope!(scope, level, changes);
            },
          }),
        );
      }
    }
    const db = new Counting({ filename: file });
    try {
      const events = drillEvents({ machines: 3, events: 1500, seed: 5 });
      appendInOrder(log, events);
      // A scan (paged) and a multiset minBy (an entry per element): texts that grow with the events.
      const members: DataflowMember[] = [sourceMember('src', "'machine'", log), ...pagedMembers('src', db, 'c')];
      // One step of 25 events holds about 10,000 characters, far less than the bound (near the
      // heap's limit: a quarter of it); 16 steps' worth (400 events) far more.
      const bound = nearLimit ? 80_000 : 20_000;
      const settings: DataflowSettings = {
        batchSize: 25,
        catchUpBatchSize: 25,
        batchMs: 1,
        maxInFlight: 16,
        retentionMicros: null,
        onError: 'skip',
        durableState: true,
        commitStateChars: bound,
      };
      const run = startDataflow({ id: 'flow', source: log, members, settings }, recordingListener());
      await run.live;
      await waitCommitted(run, await log.presentOffsets());
      await run.stop();
      const effective = nearLimit ? bound * HEAP_PRESSURE_COMMIT_SHARE : bound;
      const total = written.reduce((a, b) => a + b, 0);
      assert.ok(total > 5 * effective, `the catch-up wrote ${total} characters of state, more than 5 commits' worth`);
      const largest = Math.max(...written);
      assert.ok(
        largest < 2 * effective,
        `the largest commit held ${largest} characters of state (bound ${effective}): ${written}`,
      );
      // With room, commits do fill up to the bound (the quarter above is not the usual size).
      if (!nearLimit) assert.ok(largest >= bound, `largest ${largest}`);
      const expected = await fromScratch(members, await allEvents(log));
      for (const m of members) if (m.role === 'sink') assert.deepEqual(sqliteRows(file, m.table), expected.get(m.id));
    } finally {
      heapInUseForTests(null);
      await db.close();
      await log.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

test('SQLite: a clean stop stores the state cache warm-up hint; the next start reads those groups back before it is live, and its live events read no state', async () => {
  const dir = tempDir('deltaflow-durable-warm-');
  const log = new EmbeddedLog(join(dir, 'log.sqlite'));
  const file = join(dir, 'views.sqlite');
  const db = new SqliteDatabase({ filename: file });
  try {
    const events = drillEvents({ machines: 3, events: 400, seed: 11 });
    const members: DataflowMember[] = [
      sourceMember('src', "'machine'", log),
      ...dashboardMembers('src', db, 'dashboard'),
      ...usageMembers('src', db, 'usage'),
    ];
    const settings: DataflowSettings = {
      batchSize: 20,
      batchMs: 1,
      maxInFlight: 2,
      retentionMicros: null,
      onError: 'skip',
      durableState: true,
    };
    /** One run: the events after `from` appended live, one by one; the state loads at live and at the end. */
    const runOnce = async (from: number, to: number, warmUpMs?: number) => {
      const listener = recordingListener();
      const run = startDataflow({ id: 'flow', source: log, members, settings: { ...settings, warmUpMs } }, listener);
      await run.live;
      const atLive = run.stats().stateLoads;
      for (const e of events.slice(from, to)) {
        appendInOrder(log, [e]);
        await waitCommitted(run, await log.presentOffsets());
      }
      await run.stop();
      const logs = listener.recorded.logs.map((l) => l.message);
      return { atLive, loads: run.stats().stateLoads, logs, error: run.stats().error };
    };
    const hint = (): string | undefined => {
      const check = new Database(file, { readonly: true });
      try {
        return (check.prepare("SELECT v FROM deltaflow_state WHERE op = 'flow/' AND k = ''").get() as { v: string })?.v;
      } finally {
        check.close();
      }
    };
    appendInOrder(log, events.slice(0, 300));
    const first = await runOnce(300, 300);
    assert.equal(first.error, null);
    assert.ok(
      first.logs.every((l) => !l.includes('state cache warmed')),
      'no hint at the first start',
    );
    const stored = JSON.parse(hint()!) as { v: number; units: unknown[] };
    assert.equal(stored.v, 1);
    assert.ok(stored.units.length > 0, 'the stop stored the units the cache held');

    // The next start reads them back before it is live; live events of the same machines read nothing.
    const warm = await runOnce(300, 340);
    assert.equal(warm.error, null);
    assert.ok(warm.atLive > 0, 'groups were read back before live');
    assert.ok(
      warm.logs.some((l) => /state cache warmed: \d+ groups/.test(l)),
      warm.logs.join('\n'),
    );
    assert.equal(warm.loads, warm.atLive, 'the live events read no state');

    // dd-dataflow's Warm-up 0: none, though the stop stored a hint again.
    assert.ok(hint() !== undefined);
    const none = await runOnce(340, 350, 0);
    assert.equal(none.atLive, 0);
    assert.ok(
      none.logs.every((l) => !l.includes('state cache warmed')),
      none.logs.join('\n'),
    );

    // Without the hint (deleted), the same kind of live events read their groups on first touch.
    const rw = new Database(file);
    rw.prepare("DELETE FROM deltaflow_state WHERE op = 'flow/'").run();
    rw.close();
    const cold = await runOnce(350, 380);
    assert.equal(cold.atLive, 0);
    assert.ok(cold.loads > 0, 'without a hint the live events read their groups');

    // A hint that is not JSON (or of another version) is ignored.
    const bad = new Database(file);
    bad.prepare("UPDATE deltaflow_state SET v = 'not json' WHERE op = 'flow/'").run();
    bad.close();
    const ignored = await runOnce(380, 400);
    assert.equal(ignored.error, null);
    const expected = await fromScratch(members, await allEvents(log));
    for (const m of members) if (m.role === 'sink') assert.deepEqual(sqliteRows(file, m.table), expected.get(m.id));
  } finally {
    await db.close();
    await log.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

/**
 * The database as a SIGKILLed process leaves it: from `kill()` on, no transaction of this process
 * reaches it, the stop hook's included (a clean stop's hint is never written).
 */
function killable(db: SinkDatabase): { db: SinkDatabase; kill(): void } {
  let killed = false;
  const proxy = new Proxy(db, {
    get(target, p) {
      if (p === 'transaction')
        return <T>(fn: (tx: SinkTransaction) => Promise<T>): Promise<T> =>
          killed ? Promise.reject(new Error('the process was killed')) : target.transaction(fn);
      const v: unknown = Reflect.get(target, p, target);
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
  return { db: proxy, kill: () => (killed = true) };
}

/** The stored warm-up hint of a scope, read as a start reads it. */
async function storedHint(db: SinkDatabase, scope: string): Promise<string | undefined> {
  const reader = db.stateReader!();
  if (typeof reader === 'string') throw new Error(reader);
  try {
    return (await reader.get(hintOp(scope), [HINT_KEY]))[0];
  } finally {
    await reader.close();
  }
}

async function hintAfterCrash(kind: Kind): Promise<void> {
  const dir = tempDir('deltaflow-durable-crash-hint-');
  const log = new EmbeddedLog(join(dir, 'log.sqlite'));
  const target = kind.open(dir);
  const first = killable(target.db);
  const second = target.reopen();
  // Runs not stopped yet (a failed assertion must not leave one following the log).
  const running = new Set<RunningDataflow>();
  const start = (db: SinkDatabase, listener: ReturnType<typeof recordingListener>): RunningDataflow => {
    const run = startDataflow({ id: target.scope, source: log, members: members(db), settings }, listener);
    running.add(run);
    return run;
  };
  const stop = async (run: RunningDataflow): Promise<void> => {
    running.delete(run);
    await run.stop();
  };
  const members = (db: SinkDatabase): DataflowMember[] => [
    sourceMember('src', "'machine'", log),
    ...dashboardMembers('src', db, target.dashboard),
    ...usageMembers('src', db, target.usage),
  ];
  // Every live commit writes the hint (the default is once a minute of live running).
  const settings: DataflowSettings = {
    batchSize: 20,
    batchMs: 1,
    maxInFlight: 2,
    retentionMicros: null,
    onError: 'skip',
    durableState: true,
    stateHintMs: 0,
  };
  try {
    const events = drillEvents({ machines: 3, events: 360, seed: 13 });
    appendInOrder(log, events.slice(0, 300));
    const crashed = recordingListener();
    const run = start(first.db, crashed);
    await run.live;
    assert.equal(await storedHint(first.db, target.scope), undefined, 'the catch-up commits wrote no hint');
    for (const e of events.slice(300, 320)) {
      appendInOrder(log, [e]);
      await waitCommitted(run, await log.presentOffsets());
    }
    const written = await storedHint(first.db, target.scope);
    assert.ok(written !== undefined, 'the live commits wrote the hint');
    assert.ok((JSON.parse(written) as { units: unknown[] }).units.length > 0);
    // Killed: the stop hook (a clean stop's hint) reaches the database no more.
    first.kill();
    await stop(run);
    assert.ok(
      crashed.recorded.logs.some((l) => l.message.includes("storing the state cache's warm-up hint failed")),
      'the stop wrote nothing',
    );
    assert.equal(await storedHint(second, target.scope), written);

    // The restart (another process) reads those groups back before it is live; its live events of
    // the same machines read no state.
    const listener = recordingListener();
    const restarted = start(second, listener);
    await restarted.live;
    const atLive = restarted.stats().stateLoads;
    assert.ok(atLive > 0, 'groups were read back before live');
    const logs = listener.recorded.logs.map((l) => l.message);
    assert.ok(
      logs.some((l) => /state cache warmed: \d+ groups/.test(l)),
      logs.join('\n'),
    );
    for (const e of events.slice(320)) {
      appendInOrder(log, [e]);
      await waitCommitted(restarted, await log.presentOffsets());
    }
    assert.equal(restarted.stats().stateLoads, atLive, 'the live events read no state');
    await stop(restarted);
    assert.equal(restarted.stats().error, null);
    // The hints written in the commits changed no table and no offsets.
    const expected = await fromScratch(members(second), await allEvents(log));
    const present = await log.presentOffsets();
    for (const m of members(second))
      if (m.role === 'sink') {
        assert.deepEqual(await target.rows(m), expected.get(m.id), m.table.name);
        assert.deepEqual(await target.offsets(m.table.name), present, `${m.table.name} offsets`);
      }
  } finally {
    for (const run of running) await run.stop();
    await first.db.close();
    await second.close();
    await log.close();
    await target.drop();
    rmSync(dir, { recursive: true, force: true });
  }
}

for (const [label, kind] of [
  ['SQLite', sqlite],
  ['PostgreSQL', postgres],
  ['MariaDB', mariadb],
] as const)
  test(`${label}: live commits write the warm-up hint; a start after a crash (no clean stop) reads those groups back before it is live, and its live events read no state`, async () => {
    await hintAfterCrash(kind);
  });

test('warm-up hint: the units it names decide whether a live commit writes it again, not their order or touch counts', () => {
  const unit = (id: string, key: string, hits: number): HotUnit => ({ id, key, unit: [key], bytes: 700, hits });
  const a = warmUpHint([unit('count', 'm1', 5), unit('count', 'm2', 3), unit('scan', 'm1', 1)], 1e9);
  assert.deepEqual(
    warmUpUnits(a.text).map((u) => `${u.id} ${u.key} ${u.hits}`),
    ['count m1 5', 'count m2 3', 'scan m1 1'],
  );
  // The same units, touched more and in another order: the same names (not written again).
  const b = warmUpHint([unit('scan', 'm1', 9), unit('count', 'm2', 4), unit('count', 'm1', 6)], 1e9);
  assert.equal(b.names, a.names);
  assert.notEqual(b.text, a.text);
  // Another unit, or one less, or the same key of another operator: other names.
  assert.notEqual(
    warmUpHint([unit('count', 'm1', 5), unit('count', 'm3', 3), unit('scan', 'm1', 1)], 1e9).names,
    a.names,
  );
  assert.notEqual(warmUpHint([unit('count', 'm1', 5), unit('count', 'm2', 3)], 1e9).names, a.names);
  assert.notEqual(
    warmUpHint([unit('count', 'm1', 5), unit('count', 'm2', 3), unit('distinct', 'm1', 1)], 1e9).names,
    a.names,
  );
  // Within the cache bound: the units that fit, the most touched first.
  assert.equal(warmUpUnits(warmUpHint([unit('count', 'm1', 5), unit('count', 'm2', 3)], 1000).text).length, 1);
});
