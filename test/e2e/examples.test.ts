/**
 * End to end: a real Node-RED (the demo script, embedded RED.init/RED.start, temporary user
 * directory) runs every example flow over the seed's audit trail in the embedded event log; the
 * tables must hold exactly the rows the issue names. The ERP delivery must survive a crash between
 * the commit of a booking and its delivery, to the stand-in through a link call (no ERP_URL) and
 * over HTTP (ERP_URL).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import { withMariadb } from '../dataflow/support';
import { EmbeddedLog } from '../../src/sources/embedded-log';
import { DEFAULT_LOG_FILE } from '../../src/nodes/actyx-config';
import { AUDIT_EXPECTED, publishAuditTrail } from '../../src/simulator/audit-trail';
import net from 'node:net';
import { startNodeRed, waitFor, type NodeRedProcess } from './node-red-process';

const userDir = mkdtempSync(join(tmpdir(), 'deltaflow-e2e-'));
const schema = `e2e_${process.pid}_${Date.now() % 100000}`;
/** The PostgreSQL example's tables in a schema of this run, the MariaDB example's in a database of this run. */
const pgEnv = { PGOPTIONS: `-c search_path=${schema}`, MYSQL_DATABASE: schema };
let nodeRed: NodeRedProcess | null = null;

function rows(file: string, sql: string): Record<string, unknown>[] {
  const db = new Database(join(userDir, file), { readonly: true, fileMustExist: true });
  try {
    return db.prepare(sql).all() as Record<string, unknown>[];
  } finally {
    db.close();
  }
}

/** Rows of a table, or [] while the dataflow has not created it yet. */
function tableRows(file: string, table: string, orderBy: string): Record<string, unknown>[] {
  try {
    return rows(file, `SELECT * FROM "${table}" ORDER BY ${orderBy}`);
  } catch {
    return [];
  }
}

/** The SQLite examples share one database (their db-config "factory database"). */
const FACTORY = 'factory.sqlite';

const { dashboard, usage, booking } = AUDIT_EXPECTED;
const expectedDashboard = [{ machine: dashboard.machine, doing_what: dashboard.doing, since: dashboard.since }];
// The drill dashboard's table also names the order a machine works on (none: it is idle).
const expectedDrillDashboard = [{ ...expectedDashboard[0], manufacturing_order: null }];
// …and its timeline: the order Drill1 worked on, from start to stop.
const expectedTimeline = [
  { machine: usage.machine, manufacturing_order: usage.order, started: usage.started, stopped: dashboard.since },
];
const expectedUsage = [
  {
    machine: usage.machine,
    manufacturing_order: usage.order,
    started: usage.started,
    duration_minutes: usage.durationMinutes,
  },
];
const expectedBooking = {
  manufacturing_order: booking.order,
  step: booking.step,
  workers: booking.worker,
  worker_minutes: booking.workerMinutes,
  machines: booking.machine,
  machine_minutes: booking.machineMinutes,
  parts: booking.parts,
  part: booking.part,
};

before(async () => {
  const client = new pg.Client();
  await client.connect();
  await client.query(`CREATE SCHEMA ${schema}`);
  await client.end();
  await withMariadb((c) => c.query(`CREATE DATABASE \`${schema}\``));
  // The seed's audit trail, with its 2020 times, in the log the examples' actyx-config nodes use.
  const log = new EmbeddedLog(join(userDir, DEFAULT_LOG_FILE));
  await publishAuditTrail(log);
  await log.close();
});

after(async () => {
  await nodeRed?.stop('SIGKILL');
  const client = new pg.Client();
  await client.connect();
  await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  await client.end();
  await withMariadb((c) => c.query(`DROP DATABASE IF EXISTS \`${schema}\``));
  rmSync(userDir, { recursive: true, force: true });
});

test('every example deployed in a real Node-RED turns the seed audit trail into the expected rows; ERP delivery survives a crash', async () => {
  // Run 1: the ERP endpoint is unreachable, so committed bookings stay undelivered; then a crash.
  nodeRed = await startNodeRed(userDir, ['--examples', 'all', '--no-simulator', '--no-audit-trail'], {
    ...pgEnv,
    ERP_URL: 'http://127.0.0.1:9/erp/bookings',
  });

  const flows = (await (await fetch(`${nodeRed.base}/flows`)).json()) as { type: string }[];
  const types = new Set(flows.map((n) => n.type));
  for (const t of [
    'dd-filter',
    'dd-map',
    'dd-flatmap',
    'dd-distinct',
    'dd-groupby',
    'dd-maxby',
    'dd-minby',
    'dd-reduce',
    'dd-scan',
    'dd-aggregate',
    'dd-window',
    'dd-topk',
    'db-sink',
    'db-query',
    'actyx-subscribe',
    'actyx-publish',
  ]) {
    assert.ok(types.has(t), `no ${t} deployed`);
  }

  assert.deepEqual(
    await waitFor(
      'dashboard row',
      () => tableRows(FACTORY, 'dashboard', 'machine'),
      (r) => r.length > 0,
    ),
    expectedDrillDashboard,
  );
  assert.deepEqual(
    await waitFor(
      'timeline row',
      () => tableRows(FACTORY, 'machine_timeline', 'started'),
      (r) => r.length > 0,
    ),
    expectedTimeline,
  );
  assert.deepEqual(
    await waitFor(
      'usage row',
      () => tableRows(FACTORY, 'machine_usage', 'started'),
      (r) => r.length > 0,
    ),
    expectedUsage,
  );
  assert.deepEqual(tableRows(FACTORY, 'machine_totals', 'machine'), [{ machine: 'Drill1', minutes: 31 }]);
  // The median (a dd-reduce) of Drill1's one timespan.
  assert.deepEqual(tableRows(FACTORY, 'machine_median', 'machine'), [
    { machine: 'Drill1', median_minutes: 31, timespans: 1 },
  ]);
  assert.deepEqual(tableRows(FACTORY, 'machine_first_use', 'machine'), [
    { machine: 'Drill1', manufacturing_order: '4711', started: usage.started },
  ]);
  // 8:56–9:27 split into the hours it touches; the orders each machine worked on.
  assert.deepEqual(tableRows(FACTORY, 'machine_hourly', 'hour'), [
    { machine: 'Drill1', hour: '2020-06-24T08:00:00.000Z', minutes: 4 },
    { machine: 'Drill1', hour: '2020-06-24T09:00:00.000Z', minutes: 27 },
  ]);
  // 8:56–9:27 UTC is 10:56–11:27 in Berlin (summer time): the early shift, 06:00–14:00 local (dd-window).
  assert.deepEqual(tableRows(FACTORY, 'machine_shifts', 'shift'), [
    { machine: 'Drill1', shift: '2020-06-24T06:00:00+02:00', minutes: 31, utilisation: 0.065 },
  ]);
  // One run and no stop before it: no idle time yet, so the top-5 downtime (dd-topk) is empty.
  assert.deepEqual(tableRows(FACTORY, 'downtime_top', 'machine'), []);
  assert.deepEqual(tableRows(FACTORY, 'machine_orders', 'machine'), [
    { machine: 'Drill1', manufacturing_order: '4711' },
  ]);
  assert.deepEqual(
    await waitFor(
      'booking row',
      () => tableRows(FACTORY, 'erp_bookings', 'step'),
      (r) => r.length > 0,
    ),
    [expectedBooking],
  );
  const outbox = await waitFor(
    'outbox row',
    () => tableRows(FACTORY, 'erp_outbox', 'idempotency_key'),
    (r) => r.length > 0,
  );
  assert.equal(outbox.length, 1);
  const key = outbox[0]!.idempotency_key as string;
  assert.match(key, /^4711\/hole drilling\/[0-9a-f]{8}$/);
  assert.deepEqual(JSON.parse(outbox[0]!.body as string), {
    machine_minutes: 31,
    machines: 'Drill1',
    order: '4711',
    part: 'chair leg',
    parts: 40,
    step: 'hole drilling',
    worker_minutes: 35,
    workers: 'Fred',
  });

  // PostgreSQL variant: the same dashboard row, `since` as timestamptz.
  const client = new pg.Client();
  await client.connect();
  try {
    const pgRows = await waitFor(
      'PostgreSQL dashboard row',
      async () =>
        (await client.query(`SELECT machine, doing_what, since FROM ${schema}.dashboard ORDER BY machine`)).rows,
      (r) => r.length > 0,
    );
    assert.deepEqual(pgRows, [{ machine: 'Drill1', doing_what: 'idle', since: new Date(dashboard.since) }]);
  } finally {
    await client.end();
  }

  // The PostgreSQL dashboard's JSON endpoint (a db-query node).
  const json = async (path: string) => (await fetch(`${nodeRed!.base}${path}`)).json();
  assert.deepEqual(await json('/pg-dashboard/status'), expectedDashboard);

  // MariaDB variant: the dashboard row and the timeline, `since`, `started`, `stopped` as DATETIME(6) in UTC.
  const mariadbRows = await waitFor(
    'MariaDB dashboard and timeline rows',
    () =>
      withMariadb(async (c) => {
        const [d] = await c.query(
          `SELECT machine, doing_what, since, manufacturing_order FROM \`${schema}\`.dashboard ORDER BY machine`,
        );
        const [t] = await c.query(
          `SELECT machine, manufacturing_order, started, stopped FROM \`${schema}\`.machine_timeline ORDER BY started`,
        );
        return { dashboard: d as unknown[], timeline: t as unknown[] };
      }).catch(() => ({ dashboard: [], timeline: [] })),
    (r) => r.dashboard.length > 0 && r.timeline.length > 0,
  );
  assert.deepEqual(mariadbRows, {
    dashboard: [{ ...expectedDashboard[0], since: new Date(dashboard.since), manufacturing_order: null }],
    timeline: expectedTimeline.map((r) => ({ ...r, started: new Date(r.started), stopped: new Date(r.stopped) })),
  });
  // Its JSON endpoints (db-query nodes on the same db-config).
  assert.deepEqual(await json('/mariadb-dashboard/status'), expectedDrillDashboard);
  assert.deepEqual(await json('/mariadb-dashboard/timeline'), expectedTimeline);
  const page = await fetch(`${nodeRed.base}/drill-dashboard`);
  assert.match(page.headers.get('content-type') ?? '', /text\/html/);
  assert.match(await page.text(), /<title>Drill dashboard<\/title>/);

  // The delivery was attempted and failed: nothing is marked delivered.
  await waitFor(
    'a failed delivery attempt',
    () => nodeRed!.errors().some((l) => l.includes('POST booking')),
    (x) => x,
  );
  assert.deepEqual(tableRows(FACTORY, 'erp_delivered', 'idempotency_key'), []);
  await nodeRed.stop('SIGKILL');

  // Run 2: restart without ERP_URL: the booking goes to the stand-in ERP through a link call, once marked.
  nodeRed = await startNodeRed(userDir, ['--examples', 'all', '--no-simulator', '--no-audit-trail'], pgEnv);
  const delivered = await waitFor(
    'delivery',
    () => tableRows(FACTORY, 'erp_delivered', 'idempotency_key'),
    (r) => r.length > 0,
  );
  assert.deepEqual(
    delivered.map((r) => [r.idempotency_key, r.http_status]),
    [[key, 201]],
  );
  const received = (await (await fetch(`${nodeRed.base}/erp/bookings`)).json()) as Record<string, { booking: unknown }>;
  assert.deepEqual(Object.keys(received), [key]);
  assert.equal((received[key]!.booking as { parts: number }).parts, 40);

  // The restart replayed without writing again: still exactly the same rows.
  assert.deepEqual(tableRows(FACTORY, 'dashboard', 'machine'), expectedDrillDashboard);
  assert.deepEqual(tableRows(FACTORY, 'machine_timeline', 'started'), expectedTimeline);
  assert.deepEqual(tableRows(FACTORY, 'machine_usage', 'started'), expectedUsage);
  assert.deepEqual(tableRows(FACTORY, 'erp_bookings', 'step'), [expectedBooking]);
  assert.deepEqual(nodeRed.errors(), []);
  await nodeRed.stop('SIGKILL');

  // Run 3: as if the crash had come after the delivery but before it was marked: the booking is
  // delivered again with the same key, now over HTTP (ERP_URL, the stand-in's own endpoint on a
  // port chosen here), and the ERP side books it once (it answers 200, a repeat).
  const erp = new Database(join(userDir, FACTORY));
  erp.prepare('DELETE FROM erp_delivered').run();
  erp.close();
  const port = await freePort();
  nodeRed = await startNodeRed(
    userDir,
    ['--examples', 'all', '--no-simulator', '--no-audit-trail', '--port', String(port)],
    { ...pgEnv, ERP_URL: `http://127.0.0.1:${port}/erp/bookings` },
  );
  const redelivered = await waitFor(
    'redelivery',
    () => tableRows(FACTORY, 'erp_delivered', 'idempotency_key'),
    (r) => r.length > 0,
  );
  assert.deepEqual(
    redelivered.map((r) => [r.idempotency_key, r.http_status]),
    [[key, 200]],
  );
  assert.deepEqual(Object.keys((await (await fetch(`${nodeRed.base}/erp/bookings`)).json()) as object), [key]);
  assert.deepEqual(nodeRed.errors(), []);
  await nodeRed.stop('SIGTERM');
  nodeRed = null;
});

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}
