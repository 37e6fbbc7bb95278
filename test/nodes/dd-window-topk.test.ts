/**
 * dd-window and dd-topk in a Node-RED runtime (node-red-node-test-helper with the real nodes, an
 * embedded log and a SQLite file), as the examples ship them:
 * - machine-usage's utilisation per shift: a run from 13:00 to 15:30 Berlin time counts 60 minutes
 *   for the early shift and 90 for the late one; a night run across the change back to winter time
 *   falls into a 9-hour night shift; a run that arrives late (another device's stream, earlier
 *   timestamps) updates its shift.
 * - drill-dashboard's top 5 downtime: seven machines with different idle minutes give the five
 *   longest; a machine idling longer later pushes the fifth out.
 */
import { after, afterEach, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import actyxConfig from '../../src/nodes/actyx-config';
import actyxSubscribe from '../../src/nodes/actyx-subscribe';
import dbConfig from '../../src/nodes/db-config';
import dbSink from '../../src/nodes/db-sink';
import ddDataflow from '../../src/nodes/dd-dataflow';
import ddFilter from '../../src/nodes/dd-filter';
import ddMap from '../../src/nodes/dd-map';
import ddGroupby from '../../src/nodes/dd-groupby';
import ddScan from '../../src/nodes/dd-scan';
import ddReduce from '../../src/nodes/dd-reduce';
import ddMaxby from '../../src/nodes/dd-maxby';
import ddMinby from '../../src/nodes/dd-minby';
import ddFlatmap from '../../src/nodes/dd-flatmap';
import ddDistinct from '../../src/nodes/dd-distinct';
import ddAggregate from '../../src/nodes/dd-aggregate';
import ddWindow from '../../src/nodes/dd-window';
import ddTopk from '../../src/nodes/dd-topk';
import { openSharedEmbeddedLog } from '../../src/sources/shared-embedded-log';
import { machineTags } from '../../src/simulator/event-model';
import { errorsOf, eventually, helper, table, testFolder, type FlowNode } from './dd-helper';

const NODES = [
  actyxConfig,
  actyxSubscribe,
  dbConfig,
  dbSink,
  ddDataflow,
  ddFilter,
  ddMap,
  ddGroupby,
  ddScan,
  ddReduce,
  ddMaxby,
  ddMinby,
  ddFlatmap,
  ddDistinct,
  ddAggregate,
  ddWindow,
  ddTopk,
];
const folder = testFolder('deltaflow-dd-window-');

afterEach(async () => {
  await helper.unload();
});
after(() => folder.remove());

/** The dataflow part of an example (its own nodes, unchanged), on the given files. */
function exampleDataflow(name: string, logFile: string, dbFile: string): FlowNode[] {
  const flow = JSON.parse(readFileSync(join(__dirname, '..', '..', 'examples', `${name}.json`), 'utf8')) as FlowNode[];
  const kept = flow.filter(
    (n) => n.type === 'tab' || /^(actyx-config|actyx-subscribe|dd-|db-config$|db-sink$)/.test(n.type),
  );
  const ids = new Set(kept.map((n) => n.id));
  return kept.map((n) => {
    const copy: FlowNode = { ...n };
    if (n.type === 'actyx-config') copy.file = logFile;
    if (n.type === 'db-config') copy.filename = dbFile;
    if (Array.isArray(n.wires)) copy.wires = (n.wires as string[][]).map((port) => port.filter((id) => ids.has(id)));
    return copy;
  });
}

const at = (iso: string): number => Date.parse(iso) * 1000;
type Run = { machine: string; order: string; from: string; to: string };

/** Publishes started/stopped pairs, each machine on its own stream (`stream` overrides it). */
async function publishRuns(logFile: string, runs: readonly Run[], stream?: string): Promise<void> {
  const handle = openSharedEmbeddedLog(logFile);
  try {
    for (const r of runs) {
      const tags = machineTags(r.machine);
      await handle.log.publishAs(stream ?? `${r.machine.toLowerCase()}-0`, [
        { tags, payload: { type: 'started', order: r.order }, timestamp: at(r.from) },
        { tags, payload: { type: 'stopped', order: r.order }, timestamp: at(r.to) },
      ]);
    }
  } finally {
    await handle.release();
  }
}

test('machine-usage: minutes and utilisation per machine and Berlin shift (dd-window), split at 14:00, 9-hour night, late run', async () => {
  const { logFile, dbFile } = folder.files();
  await publishRuns(logFile, [
    // 13:00–15:30 CEST
    { machine: 'Drill1', order: '1', from: '2026-06-01T11:00:00Z', to: '2026-06-01T13:30:00Z' },
    // 01:00 CEST to 04:00 CET on the night the clocks go back: 4 hours in the 9-hour night shift
    { machine: 'Drill2', order: '2', from: '2026-10-24T23:00:00Z', to: '2026-10-25T03:00:00Z' },
  ]);
  const flow = exampleDataflow('machine-usage', logFile, dbFile);
  await helper.load(NODES, flow);
  const rows = () => table(dbFile, 'SELECT * FROM machine_shifts ORDER BY machine, shift');
  await eventually(() => rows().length === 3, 'the shift rows', 20_000);
  assert.deepEqual(rows(), [
    { machine: 'Drill1', shift: '2026-06-01T06:00:00+02:00', minutes: 60, utilisation: 0.125 },
    { machine: 'Drill1', shift: '2026-06-01T14:00:00+02:00', minutes: 90, utilisation: 0.188 },
    { machine: 'Drill2', shift: '2026-10-24T22:00:00+02:00', minutes: 240, utilisation: 0.444 },
  ]);
  // A run of Drill1 from an offline device, earlier than what the log has of Drill1: it lands in
  // the early shift it belongs to.
  await publishRuns(
    logFile,
    [{ machine: 'Drill1', order: '3', from: '2026-06-01T05:00:00Z', to: '2026-06-01T06:00:00Z' }],
    'offline-0',
  );
  await eventually(() => rows()[0]?.minutes === 120, 'the late run in its shift', 20_000);
  assert.deepEqual(rows()[0], {
    machine: 'Drill1',
    shift: '2026-06-01T06:00:00+02:00',
    minutes: 120,
    utilisation: 0.25,
  });
  for (const n of flow.filter((m) => m.type.startsWith('dd-') && m.type !== 'dd-dataflow'))
    assert.deepEqual(errorsOf(n.id), [], `${n.type} ${n.name as string}`);
});

test('drill-dashboard: the top 5 machines by idle minutes (dd-topk); a longer idle time pushes the fifth out', async () => {
  const { logFile, dbFile } = folder.files();
  // Machine i works twice with (i + 1) × 10 idle minutes between, recently (the dataflow keeps 2 days).
  const base = Date.now() - 6 * 3600_000;
  const iso = (ms: number) => new Date(ms).toISOString();
  const runs: Run[] = [];
  for (let i = 0; i < 7; i++) {
    const m = `M${i + 1}`;
    runs.push({ machine: m, order: 'a', from: iso(base), to: iso(base + 600_000) });
    const again = base + 600_000 + (i + 1) * 600_000;
    runs.push({ machine: m, order: 'b', from: iso(again), to: iso(again + 600_000) });
  }
  await publishRuns(logFile, runs);
  const flow = exampleDataflow('drill-dashboard', logFile, dbFile);
  await helper.load(NODES, flow);
  const rows = () => table(dbFile, 'SELECT machine, downtime_minutes FROM downtime_top ORDER BY downtime_minutes DESC');
  const expected = (list: [string, number][]) =>
    list.map(([machine, downtime_minutes]) => ({ machine, downtime_minutes }));
  await eventually(() => rows().length === 5, 'the top 5', 20_000);
  assert.deepEqual(
    rows(),
    expected([
      ['M7', 70],
      ['M6', 60],
      ['M5', 50],
      ['M4', 40],
      ['M3', 30],
    ]),
  );
  // M1 idles 150 more minutes (160 in all): it leads, and M3 drops out.
  const later = base + 3 * 3600_000;
  await publishRuns(logFile, [{ machine: 'M1', order: 'c', from: iso(later), to: iso(later + 60_000) }]);
  // (M1 stopped at base + 20 min after order b; its next start is `later`.)
  const idle = (later - (base + 600_000 + 600_000 + 600_000)) / 60_000;
  await eventually(() => rows().some((r) => r.machine === 'M1'), 'M1 in the top 5', 20_000);
  assert.deepEqual(
    rows(),
    expected([
      ['M1', 10 + idle],
      ['M7', 70],
      ['M6', 60],
      ['M5', 50],
      ['M4', 40],
    ]),
  );
  for (const n of flow.filter((m) => m.type.startsWith('dd-') && m.type !== 'dd-dataflow'))
    assert.deepEqual(errorsOf(n.id), [], `${n.type} ${n.name as string}`);
});
