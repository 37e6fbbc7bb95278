/**
 * The coordinator against the real MariaDB (MYSQL_* env; the test launcher starts one when none is
 * given): restart without writes, a sink added later, a commit whose acknowledgement is lost (a TCP
 * proxy cuts the connection as COMMIT is sent, once after and once before the server got it), and
 * an unreachable server that appears later.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { join } from 'node:path';
import { rmSync } from 'node:fs';
import { startDataflow } from '../../src/dataflow/coordinator';
import type { DataflowMember, DataflowSettings } from '../../src/dataflow/types';
import { MariadbDatabase } from '../../src/sinks/mariadb-database';
import { EmbeddedLog } from '../../src/sources/embedded-log';
import {
  allEvents,
  appendEvents,
  dashboardMembers,
  drillEvents,
  fromScratch,
  mariadbDrop,
  mariadbOffsets,
  mariadbRows,
  mariadbSettings,
  recordingListener,
  rowText,
  sourceMember,
  tempDir,
  uniqueName,
  usageMembers,
  withMariadb,
} from './support';

const SETTINGS: DataflowSettings = {
  batchSize: 300,
  batchMs: 5,
  maxInFlight: 3,
  retentionMicros: null,
  onError: 'skip',
};

/** Counts the rows written to `tables` (insert, update, delete) with triggers; returns a reader of the count. */
async function countWrites(tables: readonly string[]): Promise<() => Promise<number>> {
  const counter = `${tables[0]}_writes`;
  await withMariadb(async (c) => {
    await c.query(`CREATE TABLE \`${counter}\` (n INT NOT NULL)`);
    await c.query(`INSERT INTO \`${counter}\` VALUES (0)`);
    for (const t of tables)
      for (const op of ['INSERT', 'UPDATE', 'DELETE'])
        await c.query(
          `CREATE TRIGGER \`${t}_${op.toLowerCase()}_count\` AFTER ${op} ON \`${t}\` FOR EACH ROW UPDATE \`${counter}\` SET n = n + 1`,
        );
  });
  return () =>
    withMariadb(async (c) => {
      const [rows] = await c.query(`SELECT n FROM \`${counter}\``);
      return Number((rows as { n: number }[])[0]?.n);
    });
}

async function expectTables(log: EmbeddedLog, ms: readonly DataflowMember[]): Promise<void> {
  const expected = await fromScratch(ms, await allEvents(log));
  for (const m of ms) {
    if (m.role !== 'sink') continue;
    assert.deepEqual(await mariadbRows(m.table), expected.get(m.id), `${m.table.name} equals the from-scratch result`);
    assert.deepEqual(await mariadbOffsets(m.table.name), await log.presentOffsets(), `${m.table.name} offsets`);
  }
}

test('MariaDB: restart writes nothing; a sink added later is filled from the history while the other writes nothing', async () => {
  const dir = tempDir();
  const dash = uniqueName('mdash');
  const usage = uniqueName('musage');
  const log = new EmbeddedLog(join(dir, 'log.sqlite'));
  const db = new MariadbDatabase();
  try {
    appendEvents(log, drillEvents({ machines: 6, events: 2000, seed: 15 }));
    const dashOnly = (): DataflowMember[] => [
      sourceMember('src', "'machine'", log),
      ...dashboardMembers('src', db, dash),
    ];
    const both = (): DataflowMember[] => [...dashOnly(), ...usageMembers('src', db, usage)];

    const first = startDataflow({ source: log, members: dashOnly(), settings: SETTINGS }, recordingListener());
    await first.live;
    await first.stop();
    await expectTables(log, dashOnly());

    // Restart: nothing written.
    const dashWrites = await countWrites([dash, `${dash}_offsets`]);
    const again = startDataflow({ source: log, members: dashOnly(), settings: SETTINGS }, recordingListener());
    await again.live;
    await again.stop();
    assert.equal(await dashWrites(), 0, 'no row or offset written for events the table reflects');

    // The usage sink added later: filled from the whole history; the dashboard still writes nothing.
    const added = startDataflow({ source: log, members: both(), settings: SETTINGS }, recordingListener());
    await added.live;
    await added.stop();
    assert.equal(await dashWrites(), 0, 'the dashboard table was not touched');
    await expectTables(log, both());

    // New events: both tables move on together.
    appendEvents(
      log,
      drillEvents({ machines: 6, events: 600, seed: 16, start: Date.UTC(2025, 0, 1) * 1000 }).map((e) => ({
        ...e,
        lamport: e.lamport + 50_000,
      })),
    );
    const more = startDataflow({ source: log, members: both(), settings: SETTINGS }, recordingListener());
    await more.live;
    await more.stop();
    // (Brought forward aside and swapped in: the write-counting triggers went with the old table.)
    assert.deepEqual(await mariadbOffsets(dash), await log.presentOffsets());
    await expectTables(log, both());
  } finally {
    await db.close();
    await log.close();
    await mariadbDrop([dash, usage]);
    await withMariadb((c) => c.query(`DROP TABLE IF EXISTS \`${dash}_writes\``));
    rmSync(dir, { recursive: true, force: true });
  }
});

/**
 * A TCP proxy to the test MariaDB that cuts the connection when the client sends its n-th COMMIT
 * (a COM_QUERY packet `COMMIT`): `deliver` decides per cut whether the server gets the COMMIT
 * first (it commits, the acknowledgement is lost) or not (it rolls back).
 */
async function commitCutter(
  cutAt: ReadonlySet<number>,
  deliver: (n: number) => boolean,
): Promise<{ port: number; cuts: { n: number; delivered: boolean }[]; close(): Promise<void> }> {
  const settings = mariadbSettings();
  const commit = Buffer.concat([Buffer.from([7, 0, 0, 0, 3]), Buffer.from('COMMIT')]);
  let commits = 0;
  const cuts: { n: number; delivered: boolean }[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect({ host: settings.host, port: Number(settings.port) });
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => undefined);
      s.on('close', () => sockets.delete(s));
    }
    client.on('data', (d) => {
      if (d.includes(commit)) {
        commits++;
        if (cutAt.has(commits)) {
          const delivered = deliver(commits);
          cuts.push({ n: commits, delivered });
          // The server gets the COMMIT (then end of stream) or nothing; the client never hears back.
          if (delivered) upstream.end(d);
          else upstream.destroy();
          client.destroy();
          return;
        }
      }
      upstream.write(d);
    });
    upstream.on('data', (d) => client.write(d));
    client.on('close', () => upstream.end());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    cuts,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

test('MariaDB: a connection cut as COMMIT is sent — the commit applied once, its changes sent once; a COMMIT that never arrived is redone', async () => {
  const dir = tempDir();
  const dash = uniqueName('mlost_dash');
  const usage = uniqueName('mlost_usage');
  const log = new EmbeddedLog(join(dir, 'log.sqlite'));
  // The 3rd COMMIT reaches the server before the cut, the 6th does not.
  const cutter = await commitCutter(new Set([3, 6]), (n) => n === 3);
  const settings = mariadbSettings();
  const db = new MariadbDatabase({ host: '127.0.0.1', port: cutter.port, database: String(settings.database) });
  try {
    appendEvents(log, drillEvents({ machines: 5, events: 1500, seed: 17 }));
    const ms: DataflowMember[] = [
      sourceMember('src', "'machine'", log),
      ...dashboardMembers('src', db, dash),
      ...usageMembers('src', db, usage),
    ];
    const listener = recordingListener();
    const run = startDataflow(
      { source: log, members: ms, settings: { ...SETTINGS, batchSize: 100, catchUpBatchSize: 100, maxInFlight: 1 } },
      listener,
    );
    await run.live;
    await run.stop();
    assert.deepEqual(cutter.cuts, [
      { n: 3, delivered: true },
      { n: 6, delivered: false },
    ]);
    assert.ok(
      listener.recorded.logs.some((l) => /retry|attempt/i.test(l.message)),
      'the cut commits were retried',
    );
    await expectTables(log, ms);
    // The messages add up to the table: every committed change was sent, none twice.
    const sent = new Map<string, number>();
    for (const c of listener.recorded.commits.filter((x) => x.id === 'usage-sink')) {
      for (const change of c.rows ?? []) {
        const key = rowText(change.row);
        sent.set(key, (sent.get(key) ?? 0) + (change.op === 'insert' ? 1 : change.op === 'delete' ? -1 : 0));
      }
    }
    const usageSink = ms.find((m) => m.id === 'usage-sink');
    assert.ok(usageSink?.role === 'sink');
    const table = new Map<string, number>();
    for (const row of await mariadbRows(usageSink.table)) table.set(row, (table.get(row) ?? 0) + 1);
    assert.ok(table.size > 0);
    assert.deepEqual([...sent].filter(([, n]) => n !== 0).sort(), [...table].sort());
  } finally {
    await db.close();
    await cutter.close();
    await log.close();
    await mariadbDrop([dash, usage]);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('an unreachable MariaDB gives the sink a retrying status, reading waits, then it recovers exactly', async () => {
  const dir = tempDir();
  const log = new EmbeddedLog(join(dir, 'log.sqlite'));
  const dash = uniqueName('munreach');
  const probe = net.createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const port = (probe.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  const settings = mariadbSettings();
  const proxy = net.createServer((client) => {
    const upstream = net.connect({ host: settings.host, port: Number(settings.port) });
    client.pipe(upstream).pipe(client);
    const end = (): void => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end);
    upstream.on('error', end);
  });
  const db = new MariadbDatabase({
    host: '127.0.0.1',
    port,
    database: String(settings.database),
    connectionTimeoutMs: 2000,
  });
  let run: ReturnType<typeof startDataflow> | null = null;
  try {
    appendEvents(log, drillEvents({ machines: 5, events: 800, seed: 21 }));
    const ms: DataflowMember[] = [sourceMember('src', "'machine'", log), ...dashboardMembers('src', db, dash)];
    const listener = recordingListener();
    run = startDataflow({ source: log, members: ms, settings: SETTINGS }, listener);
    const retrying = (): boolean =>
      listener.recorded.statuses.some((s) => s.id === 'dash-sink' && s.status.text.startsWith('retrying'));
    for (let i = 0; i < 200 && !retrying(); i++) await new Promise((r) => setTimeout(r, 20));
    assert.ok(
      retrying(),
      `status says retrying: ${JSON.stringify(listener.recorded.statuses.map((s) => s.status.text))}`,
    );
    assert.ok(
      listener.recorded.errors.some((e) => e.id === 'dash-sink' && e.message.includes(`127.0.0.1:${port}`)),
      'the sink reports the unreachable server',
    );
    assert.equal(run.stats().batchesCommitted, 0);
    await new Promise<void>((resolve) => proxy.listen(port, '127.0.0.1', resolve));
    await run.live;
    await run.stop();
    await expectTables(log, ms);
  } finally {
    await run?.stop();
    await db.close();
    await new Promise<void>((resolve) => (proxy.listening ? proxy.close(() => resolve()) : resolve()));
    await mariadbDrop([dash]);
    await log.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
