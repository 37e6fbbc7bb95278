import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EmbeddedLog } from '../../src/sources/embedded-log';
import type { ActyxEvent } from '../../src/sources/types';
import { FactorySimulator } from '../../src/simulator/factory';
import { AUDIT_TRAIL, auditTime, publishAuditTrail } from '../../src/simulator/audit-trail';
import { deviceStream } from '../../src/simulator/event-model';

/** Everything in the log, in arrival order (subscribe reads by arrival). */
async function readAll(log: EmbeddedLog): Promise<ActyxEvent[]> {
  const out: ActyxEvent[] = [];
  const abort = new AbortController();
  for await (const item of log.subscribe('allEvents', {}, { signal: abort.signal })) {
    if (item.type === 'caughtUp') break;
    out.push(item.event);
  }
  abort.abort();
  return out;
}

function withLog<T>(fn: (log: EmbeddedLog) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'deltaflow-sim-'));
  const log = new EmbeddedLog(join(dir, 'events.sqlite'));
  return fn(log).finally(async () => {
    await log.close();
    rmSync(dir, { recursive: true, force: true });
  });
}

test('the simulator publishes consistent work cycles, and the offline drill delivers older events late', async () => {
  await withLog(async (log) => {
    let offlineMachine: string | null = null;
    const sim = new FactorySimulator({
      log,
      machines: ['Drill1', 'Drill2', 'Drill3'],
      workers: ['Fred', 'Alice'],
      msPerMinute: 4,
      offline: { afterMs: 60, forMs: 250 }, // a machine working at that moment
      onOffline: (machine, isOffline) => {
        if (isOffline) offlineMachine = machine;
      },
    });
    sim.start();
    await new Promise((r) => setTimeout(r, 700));
    await sim.stop();
    const events = await readAll(log);
    assert.ok(events.length > 30, `only ${events.length} events`);

    // Machine streams: started and stopped alternate, for the same order, in offset order.
    for (const machine of ['Drill1', 'Drill2', 'Drill3']) {
      const mine = events.filter((e) => e.tags.includes(`machine:${machine}`)).sort((a, b) => a.offset - b.offset);
      assert.ok(mine.length >= 2, `${machine} never worked`);
      mine.forEach((e, i) => {
        const p = e.payload as { type: string; order: string };
        assert.equal(e.stream, deviceStream(machine));
        assert.equal(p.type, i % 2 === 0 ? 'started' : 'stopped', `${machine} event ${i}`);
        if (i % 2 === 1) assert.equal(p.order, (mine[i - 1]!.payload as { order: string }).order);
      });
      assert.equal(mine.length % 2, 0, `${machine} left running after stop`);
    }

    // Worker events of one order come in the model's sequence, in Lamport order.
    const byOrder = new Map<string, ActyxEvent[]>();
    for (const e of events.filter((x) => x.tags.includes('worker'))) {
      const order = (e.payload as { order: string }).order;
      assert.ok(e.tags.includes(`order:${order}`));
      byOrder.set(order, [...(byOrder.get(order) ?? []), e]);
    }
    for (const [order, list] of byOrder) {
      const types = list.sort((a, b) => a.lamport - b.lamport).map((e) => (e.payload as { type: string }).type);
      assert.equal(types[0], 'setupStarted', `order ${order}`);
      assert.deepEqual(types.slice(1, 3), ['setupFinished', 'workStarted'], `order ${order}: ${types}`);
      assert.deepEqual(types.slice(-2), ['workStopped', 'stepFinished'], `order ${order}: ${types}`);
      assert.ok(types.slice(3, -2).every((t) => t === 'partsReported'));
    }

    // Late delivery: some event of the machine that went offline arrived after an event of another
    // stream with a higher Lamport stamp.
    assert.ok(offlineMachine, 'no machine went offline');
    let maxLamportSoFar = 0;
    let late = 0;
    for (const e of events) {
      if (e.stream === deviceStream(offlineMachine) && e.lamport < maxLamportSoFar) late++;
      maxLamportSoFar = Math.max(maxLamportSoFar, e.lamport);
    }
    assert.ok(late > 0, 'no late events from the offline drill');
  });
});

test('the audit trail is published as the seed describes it', async () => {
  await withLog(async (log) => {
    await publishAuditTrail(log);
    const events = await readAll(log);
    assert.equal(events.length, AUDIT_TRAIL.length);
    const parts = events.filter((e) => (e.payload as { type: string }).type === 'partsReported');
    assert.deepEqual(
      parts.map((e) => (e.payload as { count: number }).count),
      [27, 13],
    );
    assert.equal(events[0]!.timestamp, auditTime('8:52'));
    assert.equal(events.at(-1)!.timestamp, auditTime('9:27'));
    assert.deepEqual(new Set(events.map((e) => e.stream)), new Set([deviceStream('Fred'), deviceStream('Drill1')]));
  });
});
