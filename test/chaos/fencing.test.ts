/**
 * One writer per dataflow, hot standby (issue 14), with real processes on one SQLite file (two
 * instances) and on PostgreSQL (three instances: a takeover has two candidates) of the same
 * dataflow under a lease while events keep arriving. Over more than ten takeovers the active
 * instance is SIGKILLed, SIGSTOPped past its lease and resumed (the zombie must fail to commit and
 * go to standby), stopped cleanly (it hands over at once), or, on PostgreSQL, loses its database
 * connection (its sessions ended by pg_terminate_backend and kept from reconnecting past the lease:
 * a standby takes over, the old active commits nothing more and finds its lease lost); a new standby
 * replaces the one that died. Then a rolling redeploy under the same load: the active one stopped
 * cleanly and started again as a standby, in turn, four times. At the end every table equals the
 * from-scratch result, and a trigger that logs every committed insert into `applied` (one row per
 * event) shows no event applied twice and every event applied once.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { createServer, connect, type Server, type Socket } from 'node:net';
import Database from 'better-sqlite3';
import { SqliteDatabase } from '../../src/sinks/sqlite-database';
import { PostgresDatabase } from '../../src/sinks/postgres-database';
import type { SinkDatabase } from '../../src/sinks/types';
import { EmbeddedLog } from '../../src/sources/embedded-log';
import {
  allEvents,
  appendEvents,
  assertSameRows,
  drillEvents,
  fromScratch,
  pgClient,
  pgExec,
  pgOffsets,
  pgRows,
  seeded,
  sqliteOffsets,
  sqliteRows,
  tempDir,
  uniqueName,
  unusedDatabase,
} from '../dataflow/support';
import { appliedTable, fencingMembers } from './fencing-members';
import { offsetsEqual, type OffsetMap } from '../../src/core/offset-map';

const worker = join(__dirname, 'fencing-worker.ts');
const LEASE_MS = 3000;
const TAKEOVERS = 10;
const INITIAL = 4000;
/** More than the rounds take (≈ 650 events/s are appended until the takeovers are done). */
const LIVE = 100_000;
/** Clean stops of the rolling redeploy (each instance in turn, then started again). */
const REDEPLOYS = 4;

interface Instance {
  readonly name: string;
  readonly proc: ChildProcess;
  /**
   * Resolves when a line matching `pred` arrives (also one that arrived before `since`); rejects
   * when the process ends first (a wait on an instance that exited by itself says so at once).
   */
  when(pred: (line: Line) => boolean, since?: number): Promise<Line>;
  lines: Line[];
  readonly exited: Promise<number | null>;
  stderr(): string;
}

interface Line {
  readonly started?: boolean;
  readonly live?: boolean;
  readonly status?: string;
  readonly commit?: number;
  readonly took?: string;
  readonly lost?: string;
  readonly at: number;
  /** Order of arrival over every instance's lines. */
  readonly seq: number;
}

let arrivals = 0;

/** The environment of a worker that reaches PostgreSQL through a proxy on `port` (no DATABASE_URL: it would win). */
function proxied(port: number): NodeJS.ProcessEnv {
  const { DATABASE_URL: _url, ...env } = process.env;
  return { ...env, PGHOST: '127.0.0.1', PGPORT: String(port) };
}

function spawnInstance(kind: string, logFile: string, target: string, name: string, pgPort?: number): Instance {
  const proc = spawn(process.execPath, ['--import', 'tsx', worker, kind, logFile, target, name, String(LEASE_MS)], {
    stdio: ['ignore', 'pipe', 'pipe'],
    // Only this worker reaches PostgreSQL through its own proxy (the test's PG* settings otherwise).
    env: pgPort === undefined ? process.env : proxied(pgPort),
  });
  let stderr = '';
  proc.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const lines: Line[] = [];
  const waiters: {
    pred: (l: Line) => boolean;
    since: number;
    resolve: (l: Line) => void;
    reject: (e: Error) => void;
  }[] = [];
  /** Why no more lines come (set when the process and its output have ended). */
  let ended: Error | null = null;
  createInterface({ input: proc.stdout as NodeJS.ReadableStream }).on('line', (text) => {
    const line = { ...(JSON.parse(text) as object), at: lines.length, seq: ++arrivals } as Line;
    lines.push(line);
    for (const w of [...waiters])
      if (line.at >= w.since && w.pred(line)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(line);
      }
  });
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
  // 'close': after the exit and the last line of its output.
  proc.on('close', (code, signal) => {
    ended = new Error(
      `${name} ended (exit code ${code}, signal ${signal}) before the line waited for; its stderr ends: ${stderr.slice(-500)}`,
    );
    for (const w of waiters.splice(0)) w.reject(ended);
  });
  return {
    name,
    proc,
    lines,
    exited,
    stderr: () => stderr,
    when: (pred, since = 0) => {
      const found = lines.find((l) => l.at >= since && pred(l));
      if (found) return Promise.resolve(found);
      if (ended !== null) return Promise.reject(ended);
      return new Promise((resolve, reject) => waiters.push({ pred, since, resolve, reject }));
    },
  };
}

/**
 * One worker's way to PostgreSQL: forwards its connections, knows their ports on the server's side
 * (`client_port` in pg_stat_activity), and can refuse new ones for a while (a network partition).
 */
class PartitionProxy {
  private readonly server: Server;
  private readonly pairs = new Set<[Socket, Socket]>();
  private refusing = false;

  private constructor(server: Server) {
    this.server = server;
    server.on('connection', (client) => {
      client.on('error', () => undefined);
      if (this.refusing) return void client.destroy();
      const upstream = connect(Number(process.env.PGPORT ?? 5432), process.env.PGHOST ?? '127.0.0.1');
      upstream.on('error', () => undefined);
      const pair: [Socket, Socket] = [client, upstream];
      this.pairs.add(pair);
      const end = (): void => {
        this.pairs.delete(pair);
        client.destroy();
        upstream.destroy();
      };
      client.on('close', end);
      upstream.on('close', end);
      client.pipe(upstream);
      upstream.pipe(client);
    });
  }

  static async open(): Promise<PartitionProxy> {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return new PartitionProxy(server);
  }

  get port(): number {
    return (this.server.address() as { port: number }).port;
  }

  /** The worker's sessions as the server sees them: the proxy's local ports. */
  clientPorts(): number[] {
    return [...this.pairs].map(([, up]) => up.localPort).filter((p): p is number => p !== undefined);
  }

  refuse(on: boolean): void {
    this.refusing = on;
  }

  close(): void {
    this.refusing = true;
    for (const [c, u] of this.pairs) (c.destroy(), u.destroy());
    this.server.close();
  }
}

const took = (l: Line): boolean => l.took !== undefined;
const committed = (l: Line): boolean => l.commit !== undefined;

/** Rejects after `ms` with `what` (a test that cannot finish says where it stuck, instead of hanging). */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout;
  return Promise.race([
    p
      .finally(() => clearTimeout(t))
      .catch((e: unknown) => {
        throw new Error(`${what}: ${e instanceof Error ? e.message : String(e)}`);
      }),
    new Promise<T>((_, reject) => (t = setTimeout(() => reject(new Error(`timed out: ${what}`)), ms))),
  ]);
}

interface Target {
  readonly kind: 'sqlite' | 'postgres';
  /** SQLite file or PostgreSQL table prefix (what the worker takes). */
  readonly target: string;
  readonly prefix: string;
  readonly db: () => SinkDatabase;
  exec(sql: string): Promise<void>;
  query(sql: string): Promise<Record<string, unknown>[]>;
  rows(table: ReturnType<typeof appliedTable>): Promise<string[]>;
  offsets(table: string): Promise<OffsetMap>;
}

type Action = 'kill' | 'stop' | 'term' | 'drop';

const alive = (i: Instance): boolean => i.proc.exitCode === null && i.proc.signalCode === null;

/**
 * `perTick`: events appended every 60 ms (fewer on PostgreSQL, whose takeovers replay slower);
 * `count`: instances running at once; `cycle`: the takeover actions, in turn.
 */
async function takeovers(
  t: Target,
  dir: string,
  seed: number,
  perTick: number,
  count: number,
  cycle: readonly Action[],
): Promise<void> {
  const rnd = seeded(seed);
  const logFile = join(dir, 'log.sqlite');
  const log = new EmbeddedLog(logFile);
  const events = drillEvents({ machines: 40, events: INITIAL + LIVE, seed });
  appendEvents(log, events.slice(0, INITIAL), 2000);
  // The applied table exists before the dataflow runs, with a trigger logging every insert.
  const setup = t.db();
  const applied = appliedTable(`${t.prefix}applied`);
  await setup.transaction((tx) => tx.ensureTable(applied));
  await setup.close();
  const logTable = `${t.prefix}applied_log`;
  if (t.kind === 'sqlite') {
    await t.exec(`CREATE TABLE "${logTable}" (stream text, event_offset bigint)`);
    await t.exec(
      `CREATE TRIGGER "${t.prefix}applied_logged" AFTER INSERT ON "${applied.name}" BEGIN INSERT INTO "${logTable}" VALUES (NEW.stream, NEW.event_offset); END`,
    );
  } else {
    await t.exec(`CREATE TABLE "${logTable}" (stream text, event_offset bigint)`);
    await t.exec(
      `CREATE FUNCTION "${t.prefix}applied_fn"() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO "${logTable}" VALUES (NEW.stream, NEW.event_offset); RETURN NULL; END $$`,
    );
    await t.exec(
      `CREATE TRIGGER "${t.prefix}applied_logged" AFTER INSERT ON "${applied.name}" FOR EACH ROW EXECUTE FUNCTION "${t.prefix}applied_fn"()`,
    );
  }

  let serial = 0;
  const instances: Instance[] = [];
  const proxies = new Map<Instance, PartitionProxy>();
  /** A new instance (`name`: a redeploy of that one). Each gets its own proxy where connections are dropped. */
  const start = async (name = `${t.kind}-instance-${++serial}`): Promise<Instance> => {
    const proxy = cycle.includes('drop') ? await PartitionProxy.open() : undefined;
    const i = spawnInstance(t.kind, logFile, t.target, name, proxy?.port);
    if (proxy) proxies.set(i, proxy);
    instances.push(i);
    return i;
  };
  const showsStandby = (s: Instance, holder: Instance, since = 0): Promise<Line> =>
    within(
      s.when((l) => l.status === `standby (held by ${holder.name})`, since),
      30_000,
      `${s.name} shows standby (held by ${holder.name})`,
    );
  // Events keep arriving while the instances take over from each other.
  let appended = INITIAL;
  const appender = setInterval(() => {
    const next = Math.min(events.length, appended + perTick);
    if (next > appended) appendEvents(log, events.slice(appended, next), 2000);
    appended = next;
  }, 60);
  const actions: string[] = [];
  try {
    let active = await start();
    await within(active.when(took), 30_000, 'the first instance takes the lease');
    let standbys: Instance[] = [];
    for (let k = 1; k < count; k++) standbys.push(await start());
    for (const s of standbys) await showsStandby(s, active);
    /** The standby that takes the lease first after `marks` (its line counts before the action). */
    const tookOver = (marks: Map<Instance, number>): Promise<[Instance, Line]> =>
      Promise.race(standbys.map((s) => s.when(took, marks.get(s)).then((l): [Instance, Line] => [s, l])));
    const markAll = (): Map<Instance, number> => new Map(standbys.map((s) => [s, s.lines.length]));
    let done = 0;
    /** The running instance that took the lease last (as its lines say). */
    const holder = (): Instance => {
      const lastTook = (i: Instance): number => Math.max(-1, ...i.lines.filter(took).map((l) => l.seq));
      return instances.filter(alive).reduce((a, b) => (lastTook(b) > lastTook(a) ? b : a));
    };
    for (let round = 0; done < TAKEOVERS; round++) {
      assert.ok(round < TAKEOVERS * 3, `${done} takeovers in ${round} rounds: ${actions.join(', ')}`);
      // Let the holder commit a little before it goes.
      await within(active.when(committed, active.lines.length), 30_000, `${active.name} commits`);
      await new Promise((r) => setTimeout(r, Math.floor(rnd() * 40)));
      const action = cycle[round % cycle.length] as Action;
      const marks = markAll();
      if (action === 'kill' || action === 'term') {
        active.proc.kill(action === 'kill' ? 'SIGKILL' : 'SIGTERM');
        const code = await active.exited;
        if (action === 'term') assert.equal(code, 0, 'a clean stop exits normally');
        const [next] = await within(
          tookOver(marks),
          30_000,
          `a standby takes over from ${active.name} after ${action}`,
        );
        actions.push(action);
        active = next;
        standbys = [...standbys.filter((s) => s !== next), await start()];
        for (const s of standbys) await showsStandby(s, active, marks.get(s));
      } else if (action === 'drop') {
        // The active instance loses its database connection: its sessions are ended on the server
        // (pg_terminate_backend, found by their client ports) and its proxy refuses new ones past the
        // lease (a connection back at once would renew the lease: no takeover, which is right too).
        // On SQLite there is no connection to drop (the file is opened in the process).
        const old = active;
        const proxy = proxies.get(old) as PartitionProxy;
        const oldMark = old.lines.length;
        proxy.refuse(true);
        const ports = proxy.clientPorts();
        assert.ok(ports.length > 0, `${old.name} has sessions to end`);
        const ended = await t.query(
          `SELECT pg_terminate_backend(pid) AS ended FROM pg_stat_activity
            WHERE application_name = 'deltaflow' AND client_port IN (${ports.map(Number).join(', ')})`,
        );
        assert.ok(
          ended.some((r) => r.ended === true),
          `${old.name}'s sessions were ended: ${JSON.stringify(ended)}`,
        );
        const [next, tookLine] = await within(
          tookOver(marks),
          30_000,
          `a standby takes over from ${old.name} after its connection was lost`,
        );
        await within(next.when(committed, marks.get(next)), 30_000, `${next.name} commits after taking over`);
        proxy.refuse(false);
        // Back online, the old active either finds its lease lost or (were it not fenced) commits.
        const lateCommit = (l: Line): boolean => committed(l) && l.seq > tookLine.seq;
        await within(
          old.when((l) => l.lost !== undefined || lateCommit(l), oldMark),
          30_000,
          `${old.name} finds its lease lost after its connection was back`,
        );
        const late = old.lines.filter(lateCommit);
        assert.deepEqual(late, [], `${old.name} commits nothing after ${next.name} took over (fenced)`);
        const lost = old.lines.find((l) => l.at >= oldMark && l.lost !== undefined);
        assert.match(String(lost?.lost), /no longer held by/);
        actions.push('drop');
        active = next;
        standbys = [...standbys.filter((s) => s !== next), old];
        for (const s of standbys) await showsStandby(s, active, s === old ? oldMark : marks.get(s));
        assert.deepEqual(old.lines.filter(lateCommit), [], `${old.name} commits nothing after ${next.name} took over`);
      } else {
        // A zombie: stopped past its lease. Paused inside a transaction, it holds the lock that a
        // takeover needs (SQLite's write lock, the PostgreSQL lease row): then no takeover happens
        // until it resumes, and it may continue as the holder.
        const zombie = active;
        const zombieMark = zombie.lines.length;
        zombie.proc.kill('SIGSTOP');
        const outcome = await Promise.race([
          tookOver(marks),
          new Promise((r) => setTimeout(r, LEASE_MS * 5)).then(() => 'held' as const),
        ]);
        if (outcome !== 'held') {
          // The new holder commits while the zombie is stopped, then the zombie wakes up.
          const [next] = outcome;
          await within(next.when(committed, marks.get(next)), 30_000, `${next.name} commits after taking over`);
          zombie.proc.kill('SIGCONT');
          const lost = await within(
            zombie.when((l) => l.lost !== undefined, zombieMark),
            30_000,
            `the zombie ${zombie.name} finds its lease lost`,
          );
          assert.match(lost.lost as string, /no longer held by .*: taken over by/);
          actions.push('stop');
        } else {
          zombie.proc.kill('SIGCONT');
          actions.push('stop (paused inside a transaction)');
          await new Promise((r) => setTimeout(r, LEASE_MS * 3));
        }
        // Whoever holds the lease now is active; the others show standby.
        const now = holder();
        if (now !== zombie) done++;
        active = now;
        standbys = instances.filter((i) => alive(i) && i !== now);
        for (const s of standbys) await showsStandby(s, active);
        continue;
      }
      done++;
    }
    // A rolling redeploy under the same load: the active instance stops cleanly (a standby takes
    // over at once: the lease is released), and starts again (the same instance name) as a standby.
    for (let r = 0; r < REDEPLOYS; r++) {
      await within(active.when(committed, active.lines.length), 30_000, `${active.name} commits`);
      const marks = markAll();
      const name = active.name;
      const stopped = Date.now();
      active.proc.kill('SIGTERM');
      assert.equal(await active.exited, 0, 'a clean stop exits normally');
      const [next] = await within(tookOver(marks), 30_000, `a standby takes over from ${name} (redeploy)`);
      actions.push(`redeploy ${name} (${Date.now() - stopped} ms)`);
      active = next;
      standbys = [...standbys.filter((s) => s !== next), await start(name)];
      for (const s of standbys) await showsStandby(s, active, marks.get(s));
    }
    clearInterval(appender);
    // The active instance catches up with every event; the standby never wrote.
    const present = await log.presentOffsets();
    await within(
      (async () => {
        while (!offsetsEqual(await t.offsets(applied.name), present)) await new Promise((r) => setTimeout(r, 100));
      })(),
      120_000,
      'the active instance commits every event',
    );
    for (const i of instances) if (i.proc.exitCode === null) i.proc.kill('SIGTERM');
    for (const i of instances) await i.exited;
    const members = fencingMembers(log, unusedDatabase, t.prefix);
    const expected = await fromScratch(members, await allEvents(log));
    for (const m of members) {
      if (m.role !== 'sink') continue;
      assertSameRows(await t.rows(m.table), expected.get(m.id), `${m.table.name} equals the from-scratch result`);
      assert.deepEqual(await t.offsets(m.table.name), present, `${m.table.name} offsets equal the present`);
    }
    const twice = await t.query(
      `SELECT stream, event_offset, count(*) AS n FROM "${logTable}" GROUP BY stream, event_offset HAVING count(*) > 1`,
    );
    assert.deepEqual(twice, [], 'no event applied twice');
    const [total] = await t.query(`SELECT count(*) AS n FROM "${logTable}"`);
    assert.equal(Number(total?.n), appended, 'every event applied once');
    assert.ok(
      actions.filter((a) => a === 'stop').length >= 1,
      `a zombie was fenced at least once: ${actions.join(', ')}`,
    );
    if (cycle.includes('drop'))
      assert.ok(actions.includes('drop'), `a lost connection was fenced at least once: ${actions.join(', ')}`);
    if (process.env.FENCING_DEBUG) console.log(`# ${t.kind}: ${actions.join(', ')}`);
  } catch (e) {
    for (const i of instances) process.stderr.write(`--- ${i.name}\n${i.stderr().slice(-3000)}\n`);
    throw e;
  } finally {
    clearInterval(appender);
    for (const i of instances) {
      i.proc.kill('SIGCONT');
      i.proc.kill('SIGKILL');
    }
    for (const p of proxies.values()) p.close();
    await log.close();
  }
}

test('SQLite: two instances, SIGKILL / SIGSTOP (zombie) / clean stop of the active one, ≥ 10 takeovers, then a rolling redeploy: exact tables, every event applied once', async () => {
  const dir = tempDir('deltaflow-fencing-');
  const file = join(dir, 'views.sqlite');
  const withDb = <T>(fn: (d: Database.Database) => T): T => {
    const d = new Database(file);
    try {
      d.pragma('busy_timeout = 10000');
      return fn(d);
    } finally {
      d.close();
    }
  };
  try {
    await takeovers(
      {
        kind: 'sqlite',
        target: file,
        prefix: '',
        db: () => new SqliteDatabase({ filename: file }),
        exec: async (sql) => withDb((d) => void d.exec(sql)),
        query: async (sql) => withDb((d) => d.prepare(sql).all() as Record<string, unknown>[]),
        rows: async (table) => sqliteRows(file, table),
        offsets: async (table) => {
          try {
            return sqliteOffsets(file, table);
          } catch {
            return {};
          }
        },
      },
      dir,
      11,
      40,
      2,
      // No lost connection on SQLite: the file is opened in the process, there is none to drop.
      ['kill', 'stop', 'term'],
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('PostgreSQL: three instances, SIGKILL / SIGSTOP (zombie) / clean stop / lost connection of the active one, ≥ 10 takeovers, then a rolling redeploy: exact tables, every event applied once', async () => {
  const dir = tempDir('deltaflow-fencing-');
  const prefix = `${uniqueName('fence')}_`;
  try {
    await takeovers(
      {
        kind: 'postgres',
        target: prefix,
        prefix,
        db: () => new PostgresDatabase({}),
        exec: (sql) => pgExec(sql),
        query: async (sql) => {
          const c = await pgClient();
          try {
            return (await c.query(sql)).rows as Record<string, unknown>[];
          } finally {
            await c.end();
          }
        },
        rows: (table) => pgRows(table),
        offsets: async (table) => {
          try {
            return await pgOffsets(table);
          } catch {
            return {};
          }
        },
      },
      dir,
      12,
      10,
      3,
      ['kill', 'stop', 'term', 'drop'],
    );
  } finally {
    for (const t of ['dashboard', 'usage', 'applied'])
      await pgExec(`drop table if exists "${prefix}${t}", "${prefix}${t}_offsets"`).catch(() => undefined);
    await pgExec(`drop table if exists "${prefix}applied_log"`).catch(() => undefined);
    await pgExec(`drop function if exists "${prefix}applied_fn"`).catch(() => undefined);
    await pgExec(`delete from deltaflow_meta where table_name like '${prefix}%'`).catch(() => undefined);
    await pgExec(`delete from deltaflow_lease where dataflow like '${prefix}%'`).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }
});
