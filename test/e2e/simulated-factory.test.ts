/**
 * End to end under a running factory: the demo (real Node-RED, the drill examples) with the
 * simulator publishing fast, including a drill that goes offline and delivers its events late with
 * old Lamport stamps. Once the simulator has finished, the tables must equal what a from-scratch
 * computation over the whole log gives (an independent, plain implementation of the examples' logic).
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { EmbeddedLog } from '../../src/sources/embedded-log';
import type { ActyxEvent } from '../../src/sources/types';
import { DEFAULT_LOG_FILE } from '../../src/nodes/actyx-config';
import { startNodeRed, waitFor, type NodeRedProcess } from './node-red-process';

const userDir = mkdtempSync(join(tmpdir(), 'deltaflow-factory-'));
let nodeRed: NodeRedProcess | null = null;

after(async () => {
  await nodeRed?.stop('SIGKILL');
  rmSync(userDir, { recursive: true, force: true });
});

type Row = Record<string, unknown>;

function tableRows(file: string, sql: string): Row[] {
  let db: Database.Database | null = null;
  try {
    db = new Database(join(userDir, file), { readonly: true, fileMustExist: true });
    return db.prepare(sql).all() as Row[];
  } catch {
    return [];
  } finally {
    db?.close();
  }
}

/** The whole log in arrival order. */
async function readLog(): Promise<ActyxEvent[]> {
  const log = new EmbeddedLog(join(userDir, DEFAULT_LOG_FILE));
  const out: ActyxEvent[] = [];
  const abort = new AbortController();
  try {
    for await (const item of log.subscribe('allEvents', {}, { signal: abort.signal })) {
      if (item.type === 'caughtUp') break;
      out.push(item.event);
    }
  } finally {
    abort.abort();
    await log.close();
  }
  return out;
}

const iso = (micros: number) => new Date(Math.floor(micros / 1000)).toISOString();
const machineOf = (e: ActyxEvent) => e.tags.find((t) => t.startsWith('machine:'))?.slice('machine:'.length);
const payload = (e: ActyxEvent) => e.payload as { type: string; order: string; count?: number; step?: string };
const sortRows = (rows: Row[]) => [...rows].sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));

/** The SQLite examples share one database (their db-config "factory database"). */
const FACTORY = 'factory.sqlite';

function expectedDashboard(events: ActyxEvent[]): Row[] {
  const latest = new Map<string, ActyxEvent>();
  for (const e of events) {
    const m = machineOf(e);
    if (!m || !['started', 'stopped'].includes(payload(e).type)) continue;
    const cur = latest.get(m);
    if (!cur || e.timestamp > cur.timestamp || (e.timestamp === cur.timestamp && e.lamport > cur.lamport))
      latest.set(m, e);
  }
  return [...latest].map(([machine, e]) => ({
    machine,
    doing_what: payload(e).type === 'started' ? `working on order ${payload(e).order}` : 'idle',
    since: iso(e.timestamp),
    manufacturing_order: payload(e).type === 'started' ? payload(e).order : null,
  }));
}

/** Each machine's started/stopped pairs of one order, in causal order: the usage and timeline rows. */
function expectedUsage(events: ActyxEvent[], timeline = false): Row[] {
  const rows: Row[] = [];
  const byMachine = new Map<string, ActyxEvent[]>();
  for (const e of events) {
    const m = machineOf(e);
    if (m) byMachine.set(m, [...(byMachine.get(m) ?? []), e]);
  }
  for (const [machine, list] of byMachine) {
    const started = new Map<string, ActyxEvent>();
    for (const e of [...list].sort((a, b) => a.lamport - b.lamport)) {
      const p = payload(e);
      if (p.type === 'started') started.set(p.order, e);
      else if (p.type === 'stopped' && started.has(p.order)) {
        const s = started.get(p.order)!;
        started.delete(p.order);
        rows.push({
          machine,
          manufacturing_order: p.order,
          started: iso(s.timestamp),
          ...(timeline
            ? { stopped: iso(e.timestamp) }
            : { duration_minutes: Math.round((e.timestamp - s.timestamp) / 600000) / 100 }),
        });
      }
    }
  }
  return rows;
}

test('with the simulator (and a drill delivering late events), the tables equal a from-scratch computation over the log', async () => {
  nodeRed = await startNodeRed(userDir, ['--no-audit-trail', '--sim-ms-per-minute', '25', '--sim-duration-ms', '3000']);
  await waitFor(
    'the simulator to finish',
    () => nodeRed!.output().includes('Factory simulator finished.'),
    (x) => x,
    30_000,
  );
  const events = await readLog();
  assert.ok(events.length > 50, `only ${events.length} events`);

  // The drill that went offline delivered its events after events with higher Lamport stamps.
  const offline = /Simulator: (\w+) went offline/.exec(nodeRed.output())?.[1];
  assert.ok(offline, 'no machine went offline');
  let highest = 0;
  let late = 0;
  for (const e of events) {
    if (machineOf(e) === offline && e.lamport < highest) late++;
    highest = Math.max(highest, e.lamport);
  }
  assert.ok(late > 0, `no late events from ${offline} in this run`);

  const dashboard = sortRows(expectedDashboard(events));
  const usage = sortRows(expectedUsage(events));
  assert.ok(dashboard.length === 4 && usage.length > 5);
  assert.deepEqual(
    await waitFor(
      'dashboard = from scratch',
      () => sortRows(tableRows(FACTORY, 'SELECT * FROM dashboard')),
      (r) => JSON.stringify(r) === JSON.stringify(dashboard),
    ),
    dashboard,
  );
  assert.deepEqual(
    await waitFor(
      'usage = from scratch',
      () => sortRows(tableRows(FACTORY, 'SELECT * FROM machine_usage')),
      (r) => JSON.stringify(r) === JSON.stringify(usage),
    ),
    usage,
  );
  // The drill dashboard's timeline: the same pairs, with their stop times.
  const timeline = sortRows(expectedUsage(events, true));
  assert.deepEqual(
    await waitFor(
      'timeline = from scratch',
      () => sortRows(tableRows(FACTORY, 'SELECT * FROM machine_timeline')),
      (r) => JSON.stringify(r) === JSON.stringify(timeline),
    ),
    timeline,
  );

  // ERP: one booking per reported-finished step, with the parts reported for its order.
  const finished = events
    .filter((e) => payload(e).type === 'stepFinished')
    .map((e) => `${payload(e).order}|${payload(e).step}`);
  const parts = new Map<string, number>();
  for (const e of events)
    if (payload(e).type === 'partsReported')
      parts.set(payload(e).order, (parts.get(payload(e).order) ?? 0) + (payload(e).count ?? 0));
  const expectedBookings = finished.map((k) => [k, parts.get(k.split('|')[0]!) ?? 0]).sort();
  const bookings = await waitFor(
    'one booking per finished step',
    () =>
      tableRows(FACTORY, 'SELECT manufacturing_order, step, parts FROM erp_bookings')
        .map((r) => [`${r.manufacturing_order}|${r.step}`, r.parts])
        .sort(),
    (r) => JSON.stringify(r) === JSON.stringify(expectedBookings),
  );
  assert.deepEqual(bookings, expectedBookings);
  assert.deepEqual(nodeRed.errors(), []);
  await nodeRed.stop('SIGTERM');
  nodeRed = null;
});
