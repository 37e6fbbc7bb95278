/**
 * dd-join in a Node-RED runtime (node-red-node-test-helper with the real nodes, an embedded log and
 * a SQLite file): the erp-bookings example's dataflow, as shipped, books the seed's audit trail as
 * the seed says (4711 | hole drilling | Fred 35 | Drill1 31 | 40 chair legs), and a parts report
 * that arrives after the step was booked replaces the booking through the join; a join whose left
 * input is not wired in says so at deploy.
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
import ddMap from '../../src/nodes/dd-map';
import ddGroupby from '../../src/nodes/dd-groupby';
import ddScan from '../../src/nodes/dd-scan';
import ddJoin from '../../src/nodes/dd-join';
import ddAggregate from '../../src/nodes/dd-aggregate';
import { openSharedEmbeddedLog } from '../../src/sources/shared-embedded-log';
import { AUDIT_EXPECTED, auditTime, publishAuditTrail } from '../../src/simulator/audit-trail';
import { deviceStream, workerTags } from '../../src/simulator/event-model';
import { errorsOf, eventually, helper, statusesOf, table, testFolder, type FlowNode } from './dd-helper';

const NODES = [
  actyxConfig,
  actyxSubscribe,
  dbConfig,
  dbSink,
  ddDataflow,
  ddMap,
  ddGroupby,
  ddScan,
  ddJoin,
  ddAggregate,
];
const folder = testFolder('deltaflow-dd-join-');

afterEach(async () => {
  await helper.unload();
});
after(() => folder.remove());

/** The dataflow part of examples/erp-bookings.json (its own nodes, unchanged), on the given files. */
function bookingsDataflow(logFile: string, dbFile: string): FlowNode[] {
  const flow = JSON.parse(
    readFileSync(join(__dirname, '..', '..', 'examples', 'erp-bookings.json'), 'utf8'),
  ) as FlowNode[];
  const kept = flow.filter((n) => n.type === 'tab' || /^(actyx-|dd-|db-config$|db-sink$)/.test(n.type));
  const ids = new Set(kept.map((n) => n.id));
  return kept.map((n) => {
    const copy: FlowNode = { ...n };
    if (n.type === 'actyx-config') copy.file = logFile;
    if (n.type === 'db-config') copy.filename = dbFile;
    if (Array.isArray(n.wires)) copy.wires = (n.wires as string[][]).map((port) => port.filter((id) => ids.has(id)));
    return copy;
  });
}

const { booking } = AUDIT_EXPECTED;
const expected = (parts: number) => ({
  manufacturing_order: booking.order,
  step: booking.step,
  workers: booking.worker,
  worker_minutes: booking.workerMinutes,
  machines: booking.machine,
  machine_minutes: booking.machineMinutes,
  parts,
  part: booking.part,
});

test("the erp-bookings example (dd-join) books the seed's audit trail, and a late parts report replaces the booking", async () => {
  const { logFile, dbFile } = folder.files();
  const handle = openSharedEmbeddedLog(logFile);
  try {
    await publishAuditTrail(handle.log);
  } finally {
    await handle.release();
  }
  const flow = bookingsDataflow(logFile, dbFile);
  const joinNode = flow.find((n) => n.type === 'dd-join') as FlowNode;
  assert.equal(joinNode.kind, 'left');
  await helper.load(NODES, flow);
  const rows = () => table(dbFile, 'SELECT * FROM erp_bookings ORDER BY manufacturing_order, step');
  await eventually(() => rows().length > 0, 'the booking', 20_000);
  assert.deepEqual(rows(), [expected(booking.parts)]);
  const outboxKeys = () => table(dbFile, 'SELECT idempotency_key FROM erp_outbox').map((r) => r.idempotency_key);
  const [firstKey] = outboxKeys();
  assert.match(String(firstKey), /^4711\/hole drilling\/[0-9a-f]{8}$/);

  // Fred reports 5 more chair legs after the step was booked: the booking is replaced (keyed table),
  // and its outbox entry by the corrected booking's, under a new idempotency key.
  const again = openSharedEmbeddedLog(logFile);
  try {
    await again.log.publishAs(deviceStream('Fred'), [
      {
        tags: workerTags('Fred', booking.order),
        payload: { type: 'partsReported', order: booking.order, count: 5, part: booking.part },
        timestamp: auditTime('9:28'),
      },
    ]);
  } finally {
    await again.release();
  }
  await eventually(() => rows()[0]?.parts === booking.parts + 5, 'the corrected booking', 20_000);
  assert.deepEqual(rows(), [expected(booking.parts + 5)]);
  assert.equal(outboxKeys().length, 1);
  assert.notEqual(outboxKeys()[0], firstKey);
  for (const n of flow.filter((m) => m.type.startsWith('dd-') && m.type !== 'dd-dataflow'))
    assert.deepEqual(errorsOf(n.id), [], `${n.type} ${n.name as string}`);
});

test('a dd-join whose left input is not wired in says so at deploy, and the rest of the dataflow runs', async () => {
  const { logFile, dbFile } = folder.files();
  const flow = bookingsDataflow(logFile, dbFile);
  const joinNode = flow.find((n) => n.type === 'dd-join') as FlowNode;
  joinNode.left = 'no-such-node';
  await helper.load(NODES, flow);
  await eventually(() => statusesOf(joinNode.id).some((s) => s.fill === 'red'), 'the join to show its problem', 10_000);
  await eventually(
    () => errorsOf(joinNode.id).some((e) => /its left input \(node no-such-node\) is not wired into it/.test(e)),
    'the error naming the left input',
    10_000,
  );
});
