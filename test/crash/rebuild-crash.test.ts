/**
 * Issue 12, point 7: SIGKILL during a rebuild built aside and inside its swap (SQLite, PostgreSQL).
 * A worker process rebuilds a keyed table (a changed variant: every row changes) over 10,000
 * events and is killed at random moments — right at start, after a random number of the rebuild's
 * commits, and inside the transaction that swaps the rebuilt table in (held open 300 ms) — then
 * restarted; once a rebuild completes, the next rounds rebuild back. Meanwhile a reader in this
 * process polls the table and its offsets in one statement and must only ever see all events' rows
 * of one variant with the present offsets, never an empty, partial or mixed table. At the end the
 * table equals the from-scratch result of the last variant, the offsets equal the present and no
 * shadow table is left.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import Database from 'better-sqlite3';
import type pg from 'pg';
import { EmbeddedLog } from '../../src/sources/embedded-log';
import type { OffsetMap } from '../../src/core/offset-map';
import { appendEvents, drillEvents, pgClient, pgExec, seeded, tempDir, uniqueName } from '../dataflow/support';

const EVENTS = 10_000;
const KILLS = 8;
const worker = join(__dirname, 'rebuild-worker.ts');

interface Child {
  readonly proc: ChildProcess;
  readonly started: Promise<void>;
  readonly live: Promise<void>;
  readonly swapOpen: Promise<void>;
  /** The last swap line: 'open' while the swap transaction has done its work and not committed. */
  swap(): 'open' | 'done' | null;
  commits(n: number): Promise<void>;
  readonly exited: Promise<number | null>;
}

function spawnWorker(args: readonly string[]): Child {
  const proc = spawn(process.execPath, ['--import', 'tsx', worker, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: process.env,
  });
  let stderr = '';
  proc.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  let onStarted!: () => void;
  let onLive!: () => void;
  let onSwap!: () => void;
  const started = new Promise<void>((r) => (onStarted = r));
  const live = new Promise<void>((r) => (onLive = r));
  const swapOpen = new Promise<void>((r) => (onSwap = r));
  let swap: 'open' | 'done' | null = null;
  let commitCount = 0;
  const waiters: { n: number; resolve: () => void }[] = [];
  createInterface({ input: proc.stdout as NodeJS.ReadableStream }).on('line', (l) => {
    const msg = JSON.parse(l) as { started?: boolean; live?: boolean; commit?: number; swap?: 'open' | 'done' };
    if (msg.started) onStarted();
    if (msg.live) onLive();
    if (msg.swap !== undefined) swap = msg.swap;
    if (msg.swap === 'open') onSwap();
    if (msg.commit !== undefined) {
      commitCount = msg.commit;
      for (const w of waiters.filter((x) => x.n <= commitCount)) w.resolve();
    }
  });
  const exited = new Promise<number | null>((resolve) =>
    proc.on('exit', (code, signal) => {
      if (code !== null && code !== 0) process.stderr.write(stderr);
      resolve(code ?? (signal === 'SIGKILL' ? null : -1));
    }),
  );
  return {
    proc,
    started,
    live,
    swapOpen,
    swap: () => swap,
    commits: (n) => (commitCount >= n ? Promise.resolve() : new Promise((resolve) => waiters.push({ n, resolve }))),
    exited,
  };
}

/** One statement: the row count per `v` and the offsets (a consistent read at every isolation level). */
const readSql = (t: string): string =>
  `SELECT 'row' AS kind, "v" AS a, COUNT(*) AS n FROM "${t}" GROUP BY "v" ` +
  `UNION ALL SELECT 'offset', "stream", "offset" FROM "${t}_offsets"`;

function summary(rows: readonly Record<string, unknown>[]): { contents: string; offsets: OffsetMap } {
  const counts = rows.filter((r) => r.kind === 'row').map((r) => `${Number(r.n)}×${String(r.a)}`);
  const offsets: Record<string, number> = {};
  for (const r of rows) if (r.kind === 'offset') offsets[String(r.a)] = Number(r.n);
  return { contents: counts.sort().join(', ') || 'empty', offsets };
}

const sortedJson = (o: OffsetMap): string =>
  JSON.stringify(
    Object.keys(o)
      .sort()
      .map((k) => [k, o[k]]),
  );

interface Kind {
  readonly name: 'sqlite' | 'postgres';
  /** Reads the table (rows per variant and offsets) in one statement. */
  reader(dbFile: string, table: string): { read(): Promise<Record<string, unknown>[]>; close(): Promise<void> };
  keys(dbFile: string, table: string): Promise<string[]>;
  drop(table: string): Promise<void>;
}

const kinds: Kind[] = [
  {
    name: 'sqlite',
    reader: (dbFile, table) => ({
      read: async () => {
        const c = new Database(dbFile, { readonly: true, fileMustExist: true });
        try {
          return c.prepare(readSql(table)).all() as Record<string, unknown>[];
        } finally {
          c.close();
        }
      },
      close: async () => undefined,
    }),
    keys: async (dbFile, table) => {
      const c = new Database(dbFile, { readonly: true });
      try {
        return (c.prepare(`SELECT "stream", "off" FROM "${table}"`).all() as { stream: string; off: number }[])
          .map((r) => `${r.stream}@${Number(r.off)}`)
          .sort();
      } finally {
        c.close();
      }
    },
    drop: async () => undefined,
  },
  {
    name: 'postgres',
    reader: (_dbFile, table) => {
      let client: Promise<pg.Client> | null = null;
      return {
        read: async () => (await (client ??= pgClient()).then((c) => c.query(readSql(table)))).rows,
        close: async () => void (await (await client)?.end()),
      };
    },
    keys: async (_dbFile, table) => {
      const c = await pgClient();
      try {
        return (await c.query(`SELECT "stream", "off" FROM "${table}"`)).rows
          .map((r: { stream: string; off: string }) => `${r.stream}@${Number(r.off)}`)
          .sort();
      } finally {
        await c.end();
      }
    },
    drop: (t) =>
      pgExec(
        `drop table if exists "${t}", "${t}_offsets", "${t}__deltaflow_new", "${t}__deltaflow_new_offsets"; delete from deltaflow_meta where table_name like '${t}%'`,
      ),
  },
];

for (const kind of kinds) {
  test(`${kind.name}: SIGKILL during a rebuild built aside and inside its swap; readers only ever see a whole table, the end equals the from-scratch result`, async () => {
    const dir = tempDir('deltaflow-rebuild-crash-');
    const logFile = join(dir, 'log.sqlite');
    const dbFile = join(dir, 'views.sqlite');
    const table = uniqueName('rebuilt');
    const log = new EmbeddedLog(logFile);
    appendEvents(log, drillEvents({ machines: 7, events: EVENTS, seed: 31 }));
    const present = await log.presentOffsets();
    const reader = kind.reader(dbFile, table);
    const rnd = seeded(7);
    let polling = true;
    const seen = new Set<string>();
    const violations: string[] = [];
    let reads = 0;
    const poll = async (): Promise<void> => {
      while (polling) {
        try {
          const { contents, offsets } = summary(await reader.read());
          reads++;
          seen.add(contents);
          const whole = contents === `${EVENTS}×a` || contents === `${EVENTS}×b`;
          if (!whole || sortedJson(offsets) !== sortedJson(present))
            violations.push(`${contents} at ${JSON.stringify(offsets)}`);
        } catch (e) {
          violations.push(`read failed: ${e instanceof Error ? e.message : String(e)}`);
        }
        await new Promise((r) => setTimeout(r, 5));
      }
    };
    const run = async (variant: string, mode: string): Promise<Child> =>
      spawnWorker([kind.name, logFile, dbFile, table, variant, mode]);
    try {
      // The table as it was: variant a, complete.
      const first = await run('a', '-');
      await Promise.race([first.live, first.exited.then((c) => assert.fail(`first worker exited with ${c}`))]);
      first.proc.kill('SIGTERM');
      assert.equal(await first.exited, 0);
      const polled = poll();
      let target = 'b';
      let insideSwap = 0;
      let midRebuild = 0;
      for (let i = 0; i < KILLS; i++) {
        const mode = i % 4 === 1 ? 'swap' : i % 4 === 3 ? 'slow' : '-';
        const child = await run(target, mode);
        const due =
          mode === 'swap'
            ? child.swapOpen
            : i % 4 === 2
              ? child.started.then(() => new Promise((r) => setTimeout(r, Math.floor(rnd() * 40))))
              : child.commits(1 + Math.floor(rnd() * 4));
        const outcome = await Promise.race([
          due.then(() => 'due'),
          child.live.then(() => 'live'),
          child.exited.then(() => 'exited'),
        ]);
        if (outcome === 'exited') assert.fail(`worker exited by itself in round ${i}`);
        if (mode !== 'swap' && outcome === 'due') await new Promise((r) => setTimeout(r, Math.floor(rnd() * 10)));
        child.proc.kill('SIGKILL');
        await child.exited;
        if (mode === 'swap' && outcome === 'due' && child.swap() === 'open') insideSwap++;
        if (mode !== 'swap' && outcome === 'due') midRebuild++;
        // Whichever table is in place now is the one the next round rebuilds away from.
        const now = summary(await reader.read()).contents;
        if (now === `${EVENTS}×${target}`) target = target === 'a' ? 'b' : 'a';
      }
      const last = await run(target, '-');
      await Promise.race([last.live, last.exited.then((c) => assert.fail(`final worker exited with ${c}`))]);
      last.proc.kill('SIGTERM');
      assert.equal(await last.exited, 0);
      polling = false;
      await polled;
      assert.deepEqual(violations.slice(0, 5), [], `reads that saw no whole table (of ${reads})`);
      assert.ok(insideSwap >= 2, `kills inside the swap transaction: ${insideSwap}`);
      assert.ok(midRebuild >= 3, `kills during a rebuild: ${midRebuild}`);
      assert.ok(seen.has(`${EVENTS}×a`) && seen.has(`${EVENTS}×b`), `both tables were read: ${[...seen].join('; ')}`);
      const end = summary(await reader.read());
      assert.equal(end.contents, `${EVENTS}×${target}`);
      assert.equal(sortedJson(end.offsets), sortedJson(present), 'the offsets equal the present');
      const expectedKeys: string[] = [];
      for await (const e of log.query("'machine'", {}, present)) expectedKeys.push(`${e.stream}@${e.offset}`);
      assert.deepEqual(await kind.keys(dbFile, table), expectedKeys.sort(), 'a row per event: the from-scratch result');
      await assert.rejects(kind.keys(dbFile, `${table}__deltaflow_new`), 'no shadow table is left');
    } finally {
      polling = false;
      await reader.close();
      await log.close();
      await kind.drop(table);
      rmSync(dir, { recursive: true, force: true });
    }
  });
}
