/**
 * Issue 12, point 7: a rebuild is built aside and swapped in atomically with its offsets and meta.
 * 50,000 events fill a keyed table (primary key and an index); a changed definition rebuilds it.
 * After every transaction of the rebuilding dataflow a reader reads the table and its offsets in
 * one statement: it must see the old contents or the new, each complete with the present offsets,
 * never an empty or partial table. On SQLite, PostgreSQL and MariaDB. A third start with the new
 * definition rebuilds nothing (the meta went with the swap) and a fourth with the old definition
 * rebuilds again (the index and key names were freed). On 34efe75 the reader sees a partial table
 * after the rebuild's first commit (the table was dropped and refilled in place).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { rmSync } from 'node:fs';
import Database from 'better-sqlite3';
import { startDataflow } from '../../src/dataflow/coordinator';
import { MariadbDatabase } from '../../src/sinks/mariadb-database';
import { PostgresDatabase } from '../../src/sinks/postgres-database';
import { SqliteDatabase } from '../../src/sinks/sqlite-database';
import type { SinkDatabase } from '../../src/sinks/types';
import { EmbeddedLog } from '../../src/sources/embedded-log';
import type { OffsetMap } from '../../src/core/offset-map';
import {
  appendEvents,
  drillEvents,
  mariadbDrop,
  pgClient,
  pgExec,
  recordingListener,
  sinkMember,
  tempDir,
  uniqueName,
  withMariadb,
} from './support';
import { REBUILD_SETTINGS as SETTINGS, rebuildMembers as members, rebuildTable as table } from './rebuild-members';

const EVENTS = 50_000;

/** One statement: the row count per `v` and the offsets (a consistent read at every isolation level). */
const readSql = (q: (n: string) => string, t: string): string =>
  `SELECT 'row' AS kind, ${q('v')} AS a, COUNT(*) AS n FROM ${q(t)} GROUP BY ${q('v')} ` +
  `UNION ALL SELECT 'offset', ${q('stream')}, ${q('offset')} FROM ${q(t + '_offsets')}`;

interface Kind {
  readonly name: string;
  open(dir: string): SinkDatabase;
  read(dir: string, t: string): Promise<Record<string, unknown>[]>;
  drop(t: string): Promise<void>;
}

const dq = (n: string): string => `"${n}"`;
const kinds: Kind[] = [
  {
    name: 'SQLite',
    open: (dir) => new SqliteDatabase({ filename: join(dir, 'views.sqlite') }),
    read: async (dir, t) => {
      const c = new Database(join(dir, 'views.sqlite'), { readonly: true });
      try {
        return c.prepare(readSql(dq, t)).all() as Record<string, unknown>[];
      } finally {
        c.close();
      }
    },
    drop: async () => undefined,
  },
  {
    name: 'PostgreSQL',
    open: () => new PostgresDatabase({}),
    read: async (_dir, t) => {
      const c = await pgClient();
      try {
        return (await c.query(readSql(dq, t))).rows;
      } finally {
        await c.end();
      }
    },
    drop: (t) => pgExec(`drop table if exists "${t}"; drop table if exists "${t}_offsets"`),
  },
  {
    name: 'MariaDB',
    open: () => new MariadbDatabase(),
    read: (_dir, t) =>
      withMariadb(async (c) => (await c.query(readSql((n) => `\`${n}\``, t)))[0] as Record<string, unknown>[]),
    drop: (t) => mariadbDrop([t]),
  },
];

/** What a read shows: the variant all rows have (or a description of a mixed/partial table) and the offsets. */
function summary(rows: readonly Record<string, unknown>[]): { contents: string; offsets: OffsetMap } {
  const counts = rows.filter((r) => r.kind === 'row').map((r) => `${Number(r.n)}×${String(r.a)}`);
  const offsets: Record<string, number> = {};
  for (const r of rows) if (r.kind === 'offset') offsets[String(r.a)] = Number(r.n);
  return { contents: counts.sort().join(', ') || 'empty', offsets };
}

for (const kind of kinds) {
  test(`${kind.name}: a reader polling during a rebuild of ${EVENTS.toLocaleString('en-US')} events sees the old or the new table, never an empty or partial one`, async () => {
    const dir = tempDir('deltaflow-aside-');
    const log = new EmbeddedLog(join(dir, 'log.sqlite'));
    const name = uniqueName('aside');
    appendEvents(log, drillEvents({ machines: 7, events: EVENTS, seed: 12 }));
    const present = await log.presentOffsets();
    const db = kind.open(dir);
    const seen: string[] = [];
    let polling = false;
    // After every transaction of the dataflow (while `polling`), the reader reads the table.
    const watched: SinkDatabase = {
      kind: db.kind,
      label: db.label,
      transaction: async (fn) => {
        const result = await db.transaction(fn);
        if (polling) {
          const { contents, offsets } = summary(await kind.read(dir, name));
          seen.push(contents);
          assert.ok(
            contents === `${EVENTS}×old` || contents === `${EVENTS}×new`,
            `a reader saw ${contents} during the rebuild`,
          );
          assert.deepEqual(offsets, present, `the offsets beside ${contents}`);
        }
        return result;
      },
      close: () => db.close(),
    };
    const run = async (variant: string): Promise<readonly { id: string; reason: string }[]> => {
      const r = startDataflow(
        { source: log, members: members(log, watched, name, variant), settings: SETTINGS },
        recordingListener(),
      );
      await Promise.race([r.live, r.finished]);
      const stats = r.stats();
      await r.stop();
      assert.equal(stats.error, null);
      return stats.rebuilt;
    };
    try {
      assert.deepEqual(await run('old'), []);
      polling = true;
      assert.equal((await run('new')).length, 1, 'the changed definition rebuilds the table');
      assert.ok(seen.includes(`${EVENTS}×old`), `the old table was read during the rebuild: ${seen.join('; ')}`);
      assert.equal(seen[seen.length - 1], `${EVENTS}×new`);
      assert.deepEqual(await run('new'), [], 'the swapped-in table has its fingerprint');
      assert.equal((await run('old')).length, 1, 'a second rebuild swaps in again');
      assert.equal(seen[seen.length - 1], `${EVENTS}×old`);
      // No table is left aside.
      const { contents } = summary(await kind.read(dir, name));
      assert.equal(contents, `${EVENTS}×old`);
      await assert.rejects(kind.read(dir, `${name}__deltaflow_new`));
    } finally {
      await db.close();
      await log.close();
      await kind.drop(name);
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

/**
 * A kept table brought forward from its own offsets behind another table of its dataflow (it was
 * left out of a run while 30,000 events arrived) is caught up aside too. After every transaction
 * the reader reads both tables: each must show its old contents with its old offsets or its new
 * contents with the present offsets, nothing in between. A table behind only the present is
 * brought forward in place, and a restart with nothing to bring forward copies no table.
 * On d847aa8 (brought forward in place) the reader sees the table part-way through.
 */
const BEFORE = 5_000;
const LAG = 30_000;

function twoSinks(log: EmbeddedLog, db: SinkDatabase, names: Record<'a' | 'b', string>, which: ('a' | 'b')[]) {
  const all = members(log, db, names.a, 'v');
  const sinks = which.map((w) => sinkMember(w, ['row'], db, table(names[w])));
  return [...all.filter((m) => m.role !== 'sink'), ...sinks];
}

for (const kind of kinds) {
  test(`${kind.name}: a reader polling while a kept table behind another is brought forward by ${LAG.toLocaleString('en-US')} events sees the old or the new contents`, async () => {
    const dir = tempDir('deltaflow-forward-');
    const log = new EmbeddedLog(join(dir, 'log.sqlite'));
    const names = { a: uniqueName('fwd_a'), b: uniqueName('fwd_b') };
    const events = drillEvents({ machines: 7, events: BEFORE + LAG, seed: 21 });
    appendEvents(log, events.slice(0, BEFORE));
    const before = await log.presentOffsets();
    const db = kind.open(dir);
    /** What each table may show while polling: its contents and offsets. */
    const allowed = new Map<string, { contents: string; offsets: OffsetMap }[]>();
    const seen = new Map<string, string[]>();
    const violations: string[] = [];
    let copies = 0;
    const watched: SinkDatabase = {
      kind: db.kind,
      label: db.label,
      transaction: async (fn) => {
        const result = await db.transaction((tx) =>
          fn({
            ...tx,
            copyTable: async (spec, shadow) => {
              copies++;
              await tx.copyTable(spec, shadow);
            },
          }),
        );
        for (const [t, states] of allowed) {
          const read = summary(await kind.read(dir, t));
          (seen.get(t) ?? seen.set(t, []).get(t))?.push(read.contents);
          if (
            !states.some(
              (s) => s.contents === read.contents && JSON.stringify(s.offsets) === JSON.stringify(sorted(read.offsets)),
            )
          )
            violations.push(`${t}: ${read.contents} at ${JSON.stringify(read.offsets)}`);
        }
        return result;
      },
      close: () => db.close(),
    };
    const run = async (which: ('a' | 'b')[]): Promise<void> => {
      copies = 0;
      const r = startDataflow(
        { source: log, members: twoSinks(log, watched, names, which), settings: SETTINGS },
        recordingListener(),
      );
      await Promise.race([r.live, r.finished]);
      const stats = r.stats();
      await r.stop();
      assert.equal(stats.error, null);
      assert.deepEqual(stats.rebuilt, [], 'nothing is rebuilt');
    };
    try {
      await run(['a', 'b']);
      appendEvents(log, events.slice(BEFORE));
      const present = await log.presentOffsets();
      const old = { contents: `${BEFORE}×v`, offsets: sorted(before) };
      const now = { contents: `${BEFORE + LAG}×v`, offsets: sorted(present) };
      await run(['a']);
      assert.equal(copies, 0, 'a table behind only the present is brought forward in place');
      // b is behind a: the restart's bounded read brings it forward to a's offsets.
      allowed.set(names.a, [now]);
      allowed.set(names.b, [old, now]);
      seen.clear();
      await run(['a', 'b']);
      assert.deepEqual(violations, [], 'what the reader saw while the table behind another was brought forward');
      assert.equal(copies, 1, 'only the table behind is copied aside');
      assert.equal(seen.get(names.b)?.[0], old.contents, 'the reader saw the old table during the catch-up');
      assert.equal(seen.get(names.b)?.at(-1), now.contents);
      // Nothing to bring forward: no copy.
      allowed.set(names.b, [now]);
      seen.clear();
      await run(['a', 'b']);
      assert.equal(copies, 0, 'a restart with the tables at the present copies nothing');
      assert.deepEqual(violations, []);
      // Not vacuous: the reader read both tables after the restart's transactions.
      for (const t of [names.a, names.b])
        assert.ok((seen.get(t)?.length ?? 0) > 0, `the reader read ${t} during the restart at the present`);
      assert.deepEqual([...new Set(seen.get(names.b))], [now.contents]);
      allowed.clear();
      for (const t of [names.a, names.b]) await assert.rejects(kind.read(dir, `${t}__deltaflow_new`));
    } finally {
      await db.close();
      await log.close();
      for (const t of [names.a, names.b]) await kind.drop(t);
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

function sorted(o: OffsetMap): OffsetMap {
  return Object.fromEntries(
    Object.keys(o)
      .sort()
      .map((k) => [k, o[k] as number]),
  );
}
