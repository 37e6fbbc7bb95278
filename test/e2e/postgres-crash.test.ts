/**
 * Issue 19 at the level where it hurt: a real Node-RED process runs a dataflow with two PostgreSQL
 * sinks (the postgres-dashboard example plus a count per machine) catching up over 60,000 events
 * of the embedded log. The test's own PostgreSQL server is SIGKILLed (the postmaster, as an OOM kill
 * does) three times while a sink transaction is open, and started again on the same data directory.
 * Node-RED must stay up (an `error` event of a checked-out pg client with no listener was an
 * uncaught exception that ended the process), the dataflow must retry, and in the end both tables
 * equal a plain computation over the log, their offsets the log's present, and the example's
 * db-query endpoint answers from the same server.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type pg from 'pg';
import { DEFAULT_LOG_FILE } from '../../src/nodes/actyx-config';
import type { OffsetMap } from '../../src/core/offset-map';
import { EmbeddedLog } from '../../src/sources/embedded-log';
import { appendEvents, drillEvents, type DrillEvent } from '../dataflow/support';
import { PostgresServer, postgresServerUnavailable } from '../support/postgres-server';
import { startNodeRed, waitFor, type NodeRedProcess } from './node-red-process';

const EVENTS = 60_000;
const KILLS = 3;
/** Events appended right before each kill (the rest are in the log when Node-RED starts). */
const KILL_CHUNK = 10_000;
const userDir = mkdtempSync(join(tmpdir(), 'deltaflow-pgcrash-'));
let nodeRed: NodeRedProcess | null = null;
let server: PostgresServer | null = null;

after(async () => {
  await nodeRed?.stop('SIGKILL');
  await server?.destroy();
  rmSync(userDir, { recursive: true, force: true });
});

type Node = Record<string, unknown> & { id: string; type: string };

/**
 * The postgres-dashboard example pointed at `server`, with a second sink (events per machine) and a
 * second db-query endpoint whose statement takes 5 s (a query the kill interrupts).
 */
function flows(s: PostgresServer): Node[] {
  const nodes = JSON.parse(readFileSync(join(__dirname, '..', '..', 'examples', 'postgres-dashboard.json'), 'utf8'));
  const byType = (t: string): Node => nodes.find((n: Node) => n.type === t);
  Object.assign(byType('db-config'), {
    host: '127.0.0.1',
    port: String(s.port),
    database: 'postgres',
    user: 'postgres',
    connectTimeout: '5',
  });
  // Smaller commits than the example's, so that the catch-up spans many transactions.
  Object.assign(byType('dd-dataflow'), { batchSize: '1000', maxInFlight: '2' });
  const group = byType('dd-groupby');
  const tab = group.z;
  const dataflow = group.dataflow;
  (group.wires as string[][])[0]!.push('c0a7e5a1c0a7e5a1');
  nodes.push(
    {
      id: 'c0a7e5a1c0a7e5a1',
      type: 'dd-aggregate',
      z: tab,
      dataflow,
      aggregate: 'count',
      wires: [['c0a7e5a1c0a7e5a2']],
    },
    {
      id: 'c0a7e5a1c0a7e5a2',
      type: 'db-sink',
      z: tab,
      name: 'events per machine',
      dataflow,
      database: byType('db-config').id,
      table: 'machine_events',
      mode: 'keyed',
      version: '1',
      columns: [
        { name: 'machine', type: 'text not null', source: 'path', value: 'key', key: true },
        { name: 'events', type: 'bigint not null', source: 'path', value: 'count' },
      ],
      wires: [[]],
    },
    { id: 'c0a7e5a1c0a7e5a3', type: 'http in', z: tab, url: '/pg-sleep', method: 'get', wires: [['c0a7e5a1c0a7e5a4']] },
    {
      id: 'c0a7e5a1c0a7e5a4',
      type: 'db-query',
      z: tab,
      name: 'slow query',
      database: byType('db-config').id,
      sql: 'SELECT pg_sleep(5) AS slept',
      wires: [['c0a7e5a1c0a7e5a5']],
    },
    { id: 'c0a7e5a1c0a7e5a5', type: 'http response', z: tab, statusCode: '', headers: {} },
  );
  return nodes;
}

const machineOf = (e: DrillEvent): string => e.tags.find((t) => t.startsWith('machine:'))!.slice('machine:'.length);

/** The dashboard as the example defines it, computed plainly: per machine the latest event by (time, Lamport). */
function expectedDashboard(events: readonly DrillEvent[]): string[] {
  const latest = new Map<string, DrillEvent>();
  for (const e of events) {
    const cur = latest.get(machineOf(e));
    if (!cur || e.timestamp > cur.timestamp || (e.timestamp === cur.timestamp && e.lamport > cur.lamport))
      latest.set(machineOf(e), e);
  }
  return [...latest]
    .map(([machine, e]) =>
      JSON.stringify([
        machine,
        e.payload.type === 'started' ? `working on order ${e.payload.order}` : 'idle',
        new Date(Math.floor(e.timestamp / 1000)).toISOString(),
      ]),
    )
    .sort();
}

function expectedCounts(events: readonly DrillEvent[]): string[] {
  const n = new Map<string, number>();
  for (const e of events) n.set(machineOf(e), (n.get(machineOf(e)) ?? 0) + 1);
  return [...n].map(([m, c]) => JSON.stringify([m, String(c)])).sort();
}

const sameOffsets = (a: OffsetMap, b: OffsetMap): boolean =>
  Object.keys(a).length === Object.keys(b).length && Object.entries(a).every(([s, o]) => b[s] === o);

const alive = (p: NodeRedProcess): boolean => p.child.exitCode === null && p.child.signalCode === null;

function assertAlive(p: NodeRedProcess, when: string): void {
  if (alive(p)) return;
  assert.fail(
    `Node-RED exited (code ${p.child.exitCode}, signal ${p.child.signalCode}) ${when}; its last output:\n${p.output().slice(-2500)}`,
  );
}

/**
 * Polls until a sink transaction is open on the server (a `deltaflow` session inside a transaction)
 * while db-query's slow statement runs (a `deltaflow-query` session).
 */
// NB: a sink's commit, not any transaction of the dataflow: its lease look and the instance
// heartbeat (issue 14) are transactions too, and a kill inside one of those is reported as a lease
// problem, not as a commit retried (a full run on 313a467 failed that way under load). The last
// statement of the open transaction names one of the sink tables (or its _offsets).
async function sinkTransactionOpen(s: PostgresServer): Promise<void> {
  const until = Date.now() + 60_000;
  for (;;) {
    try {
      const found = await s.withClient(async (c: pg.Client) => {
        for (let i = 0; i < 2000; i++) {
          const r = await c.query(
            `SELECT 1 FROM pg_stat_activity
              WHERE application_name = 'deltaflow' AND xact_start IS NOT NULL
                AND (query LIKE '%"dashboard%' OR query LIKE '%"machine_events%')
                AND EXISTS (SELECT 1 FROM pg_stat_activity
                             WHERE application_name = 'deltaflow-query' AND query LIKE '%pg_sleep%' AND state = 'active')`,
          );
          if (r.rowCount) return true;
          await new Promise((r) => setTimeout(r, 2));
        }
        return false;
      });
      if (found) return;
    } catch {
      // not up yet
    }
    if (Date.now() > until) throw new Error('no sink transaction was seen within 60 s');
  }
}

async function tableText(s: PostgresServer, sql: string): Promise<string[]> {
  try {
    return (await s.query(sql))
      .map((r) => JSON.stringify(Object.values(r).map((v) => (v instanceof Date ? v.toISOString() : String(v)))))
      .sort();
  } catch {
    return [];
  }
}

async function offsets(s: PostgresServer, table: string): Promise<OffsetMap> {
  const out: Record<string, number> = {};
  try {
    for (const r of await s.query(`SELECT stream, "offset" FROM "${table}_offsets"`))
      out[String(r.stream)] = Number(r.offset);
  } catch {
    // not created yet
  }
  return out;
}

test(
  'Node-RED stays up when its PostgreSQL is SIGKILLed while committing; the dataflow retries and the tables end exact',
  { skip: postgresServerUnavailable() ?? false },
  async () => {
    server = await PostgresServer.create();
    await server.start();
    const events = drillEvents({ machines: 50, events: EVENTS, seed: 19 });
    const logFile = join(userDir, DEFAULT_LOG_FILE);
    // NB: every kill must find a sink commit under way, so each kill first appends a chunk of the
    // events (the running Node-RED sees foreign writes to its log within 500 ms): a catch-up that
    // finished before a kill would leave no commit to kill (a full run under load timed out so).
    const first = EVENTS - KILLS * KILL_CHUNK;
    const append = async (from: number, to: number): Promise<void> => {
      const log = new EmbeddedLog(logFile);
      appendEvents(log, events.slice(from, to), 20_000);
      await log.close();
    };
    await append(0, first);
    writeFileSync(join(userDir, 'flows.json'), JSON.stringify(flows(server), null, 2));

    nodeRed = await startNodeRed(userDir, ['--no-simulator', '--no-audit-trail']);
    const requests = new AbortController();
    for (let kill = 1; kill <= KILLS; kill++) {
      await append(first + (kill - 1) * KILL_CHUNK, first + kill * KILL_CHUNK);
      // A db-query statement under way when the server dies (its answer never comes: no response).
      void fetch(`${nodeRed.base}/pg-sleep`, { signal: requests.signal }).catch(() => undefined);
      await sinkTransactionOpen(server);
      await server.kill();
      // The pg client of the open transaction gets its error event now (ECONNRESET or "terminating
      // connection due to unexpected postmaster exit"); give an uncaught exception time to end the process.
      await new Promise((r) => setTimeout(r, 1500));
      assertAlive(nodeRed, `after PostgreSQL was killed while a sink transaction was open (kill ${kill})`);
      await server.start();
    }
    requests.abort();
    const log = new EmbeddedLog(logFile);
    const present = await log.presentOffsets();
    await log.close();
    const node = nodeRed;
    const s = server;
    await waitFor(
      'both tables to reach the present offsets',
      async () => [await offsets(s, 'dashboard'), await offsets(s, 'machine_events')],
      (o) => o.every((x) => sameOffsets(x, present)) || !alive(node),
      120_000,
    );
    assertAlive(nodeRed, 'while catching up after the kills');
    assert.match(nodeRed.output(), /retrying/, 'the dataflow reported the failed commits and retried');
    assert.deepEqual(
      await tableText(server, `SELECT machine, doing_what, since FROM dashboard`),
      expectedDashboard(events),
    );
    assert.deepEqual(await tableText(server, `SELECT machine, events FROM machine_events`), expectedCounts(events));

    // db-query (its own pool, whose connections died with the server, one in the middle of a statement) answers again.
    const rows = (await (await fetch(`${nodeRed.base}/pg-dashboard/status`)).json()) as Record<string, unknown>[];
    assert.equal(rows.length, 50);
    assertAlive(nodeRed, 'at the end');
  },
);
