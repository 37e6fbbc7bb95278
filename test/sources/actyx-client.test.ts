import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ActyxClient } from '../../src/sources/actyx-client';
import { AqlSyntaxError } from '../../src/sources/aql';
import type { ActyxEvent } from '../../src/sources/types';
import { FakeActyx } from '../support/fake-actyx';
import { Collector, eventId, freePort, streamOrderProblem, tagged, waitFor } from '../support/actyx-helpers';

const manifest = { appId: 'com.example.deltaflow-test', displayName: 'DeltaFlow tests', version: '1.0.0' };

function clientFor(fake: FakeActyx, idleTimeoutMs = 3000): ActyxClient {
  return new ActyxClient({
    baseUrl: fake.baseUrl,
    manifest,
    idleTimeoutMs,
    requestTimeoutMs: 2000,
    backoff: { initialMs: 2, maxMs: 40 },
  });
}

/** Runs `body` with a fresh fake Actyx node and a client of it; closes both however it ends. */
async function withClient(
  options: { keepAliveMs: number; idleTimeoutMs?: number },
  body: (fake: FakeActyx, client: ActyxClient) => Promise<void>,
): Promise<void> {
  const fake = await FakeActyx.start({ keepAliveMs: options.keepAliveMs });
  const client = clientFor(fake, options.idleTimeoutMs);
  try {
    await body(fake, client);
  } finally {
    await client.close();
    await fake.close();
  }
}

test('subscribe: stored events, caughtUp with the whole present, then live events; tags filter', () =>
  withClient({ keepAliveMs: 50 }, async (fake, client) => {
    fake.publish(tagged(5, ['machine', 'machine:Drill1']));
    fake.publish(tagged(3, ['other']));
    const c = new Collector(client, "FROM 'machine' & 'machine:Drill1'");
    await waitFor(() => c.caughtUp, 'caughtUp');
    assert.equal(c.events.length, 5);
    const caught = c.items.find((i) => i.type === 'caughtUp');
    assert.deepEqual(caught, { type: 'caughtUp', offsets: { [fake.localStream]: 7 } });
    fake.publish(tagged(2, ['machine:Drill1', 'machine'], 5));
    await waitFor(() => c.events.length === 7, 'live events');
    assert.deepEqual(
      c.events.map((e) => (e.payload as { n: number }).n),
      [0, 1, 2, 3, 4, 5, 6],
    );
    assert.deepEqual(c.events[0]!.tags, ['machine', 'machine:Drill1']);
    assert.equal(c.events[0]!.appId, 'com.example.fake');
    await c.stop();
    assert.equal(c.error, null);
  }));

test('a plain tag expression is sent as AQL; a bad query throws AqlSyntaxError before any request', () =>
  withClient({ keepAliveMs: 50 }, async (fake, client) => {
    fake.publish(tagged(2, ['machine:Drill1']));
    const c = new Collector(client, 'machine:Drill1');
    await waitFor(() => c.caughtUp, 'caughtUp');
    assert.equal(fake.streamRequests[0]!.query, "FROM 'machine:Drill1'");
    assert.equal(c.events.length, 2);
    await c.stop();
    assert.throws(() => client.subscribe("FROM 'a' &", {}), AqlSyntaxError);
    assert.equal(fake.streamRequests.length, 1);
  }));

test('a drop mid-stream re-subscribes from the offsets of the last event handed on', () =>
  withClient({ keepAliveMs: 50 }, async (fake, client) => {
    fake.publish(tagged(10, ['a']));
    fake.replicate('device2-0', tagged(4, ['a']), { lamport: 1 });
    fake.streamFaults.push({ kind: 'drop', afterEvents: 6 });
    const c = new Collector(client, "FROM 'a'", { 'device2-0': 1 });
    await waitFor(() => c.caughtUp, 'caughtUp');
    assert.equal(fake.streamRequests.length, 2);
    assert.deepEqual(fake.streamRequests[0]!.lowerBound, { 'device2-0': 1 });
    // The second request starts exactly after the events handed on from the first one.
    const second = fake.streamRequests[1]!.lowerBound;
    const handedOn: Record<string, number> = { 'device2-0': 1 };
    let prefix = 0;
    while (JSON.stringify(Object.entries(handedOn).sort()) !== JSON.stringify(Object.entries(second).sort())) {
      const e = c.events[prefix++];
      assert.ok(e, `lower bound ${JSON.stringify(second)} is not the offsets of a prefix of the delivered events`);
      handedOn[e.stream] = e.offset;
    }
    assert.ok(prefix >= 1, 'the first response handed events on before it broke');
    assert.ok(prefix <= 6);
    assert.equal(c.events.length, 12);
    assert.equal(new Set(c.events.map(eventId)).size, 12);
    assert.equal(streamOrderProblem(c.events), null);
    assert.ok(c.diagnostics.some((d) => /retrying|reconnect/.test(d.message)));
    await c.stop();
  }));

test('malformed lines are reported with their text and skipped; warnings and unknown types do not stop the stream', () =>
  withClient({ keepAliveMs: 50 }, async (fake, client) => {
    fake.publish(tagged(6, ['a']));
    const injected = [
      '{"type":"event","lamport": oops',
      '{"type":"timeTravel","newStart":{}}',
      '{"type":"diagnostic","severity":"warning","message":"slow disk"}',
      '{"type":"event","lamport":1,"stream":"x-0"}',
      '[1,2]',
    ];
    fake.streamFaults.push({ kind: 'malformed', afterEvents: 2, text: injected.join('\n') });
    const c = new Collector(client, "FROM 'a'");
    await waitFor(() => c.caughtUp, 'caughtUp');
    assert.deepEqual(
      c.events.map((e) => e.offset),
      [0, 1, 2, 3, 4, 5],
    );
    const bad = c.diagnostics.filter((d) => d.message.includes('malformed'));
    assert.deepEqual(
      bad.map((d) => d.detail),
      [injected[0], injected[3], injected[4]],
      'each malformed line reported with its text',
    );
    assert.match(bad[1]!.message, /without valid lamport, stream, offset and timestamp/);
    assert.ok(c.diagnostics.some((d) => d.severity === 'warning' && d.message === 'Actyx node: slow disk'));
    assert.ok(!c.diagnostics.some((d) => d.message.includes('timeTravel')), 'unknown types are ignored silently');
    assert.equal(fake.streamRequests.length, 1, 'a malformed line does not cost a reconnect');
    await c.stop();
  }));

test('an error diagnostic is surfaced and the subscription reconnects without loss', () =>
  withClient({ keepAliveMs: 50 }, async (fake, client) => {
    fake.publish(tagged(8, ['a']));
    fake.streamFaults.push({ kind: 'error', afterEvents: 3 }, { kind: 'errorObject', afterEvents: 2 });
    const c = new Collector(client, "FROM 'a'");
    await waitFor(() => c.caughtUp, 'caughtUp');
    assert.deepEqual(
      c.events.map((e) => e.offset),
      [0, 1, 2, 3, 4, 5, 6, 7],
    );
    assert.ok(c.diagnostics.some((d) => d.severity === 'error' && d.message.includes('injected error')));
    assert.ok(c.diagnostics.some((d) => d.severity === 'error' && d.message.includes('ERR_INTERNAL')));
    assert.equal(fake.streamRequests.length, 3);
    await c.stop();
  }));

test('silence longer than the idle timeout reconnects', () =>
  withClient({ keepAliveMs: 20, idleTimeoutMs: 150 }, async (fake, client) => {
    fake.publish(tagged(3, ['a']));
    const c = new Collector(client, "FROM 'a'");
    await waitFor(() => c.caughtUp, 'caughtUp');
    fake.interruptStreams('hang');
    fake.publish(tagged(2, ['a'], 3));
    await waitFor(() => c.events.length === 5, 'events after the silent connection was replaced');
    assert.ok(c.diagnostics.some((d) => d.message.includes('no data from the Actyx node')));
    assert.equal(fake.streamRequests.length, 2);
    await c.stop();
  }));

test('a consumer that holds an event longer than the idle timeout does not cause a reconnect', () =>
  withClient({ keepAliveMs: 30, idleTimeoutMs: 300 }, async (fake, client) => {
    fake.publish(tagged(3, ['a']));
    const seen: number[] = [];
    const abort = new AbortController();
    for await (const item of client.subscribe("FROM 'a'", {}, { signal: abort.signal })) {
      if (item.type !== 'event') continue;
      seen.push(item.event.offset);
      if (seen.length === 1) await new Promise((r) => setTimeout(r, 1000)); // busy, e.g. a slow commit
      if (seen.length === 3) break;
    }
    assert.deepEqual(seen, [0, 1, 2]);
    assert.equal(fake.streamRequests.length, 1);
  }));

test('stopping a subscription whose connection already broke ends at once', { timeout: 5000 }, async () => {
  const fake = await FakeActyx.start({ keepAliveMs: 30 });
  const client = clientFor(fake);
  try {
    fake.publish(tagged(3, ['a']));
    const seen: number[] = [];
    for await (const item of client.subscribe("FROM 'a'", {})) {
      if (item.type !== 'event') continue;
      seen.push(item.event.offset);
      if (seen.length === 1) {
        fake.interruptStreams('drop'); // the connection breaks while this batch is being consumed
        await new Promise((r) => setTimeout(r, 50));
      }
      if (seen.length === 2) break;
    }
    assert.deepEqual(seen, [0, 1]);
  } finally {
    await client.close();
    await fake.close();
  }
});

test('close() ends live subscriptions and retry waits at once', { timeout: 5000 }, async () => {
  const fake = await FakeActyx.start({ keepAliveMs: 30 });
  const client = new ActyxClient({ baseUrl: fake.baseUrl, manifest, backoff: { initialMs: 60_000, maxMs: 60_000 } });
  try {
    fake.publish(tagged(2, ['a']));
    const live = new Collector(client, "FROM 'a'");
    await waitFor(() => live.caughtUp, 'caughtUp');
    fake.streamFaults.push({ kind: 'drop', afterEvents: 0 });
    const retrying = new Collector(client, "FROM 'a'"); // its first response breaks: it waits a minute to retry
    await waitFor(() => retrying.diagnostics.length > 0, 'the second subscription is waiting to retry');
    await client.close();
    await Promise.all([live.done, retrying.done]);
    assert.equal(live.error, null);
    assert.equal(retrying.error, null);
    assert.equal(live.events.length, 2);
  } finally {
    await fake.close();
  }
});

test('no event lost or duplicated across 25+ injected faults (drops, clean ends, silence, 401, 503, restarts), late events delivered', async () => {
  const fake = await FakeActyx.start({ keepAliveMs: 25 });
  const client = clientFor(fake, 200);
  const published: string[] = [];
  const record = (events: readonly { stream: string; offset: number }[]): void => {
    for (const e of events) published.push(eventId(e));
  };
  try {
    record(fake.publish(tagged(50, ['chaos'])));
    fake.publish(tagged(10, ['noise']));
    const c = new Collector(client, "FROM 'chaos' | 'late'");
    await waitFor(() => c.caughtUp, 'caughtUp');
    let faults = 0;
    let offlineLamport = 1;
    const kinds = [
      'drop',
      'end',
      'midDrop',
      'expire',
      'overload',
      'restart',
      'hang',
      'midEnd',
      'malformed',
      'errorDiag',
    ] as const;
    for (let round = 0; round < 30; round++) {
      const kind = kinds[round % kinds.length]!;
      switch (kind) {
        case 'drop':
        case 'end':
          faults += fake.interruptStreams(kind) > 0 ? 1 : 0;
          break;
        case 'midDrop':
        case 'midEnd':
          // The next response breaks after 3 events, while it still has stored events to deliver.
          fake.streamFaults.push({ kind: kind === 'midDrop' ? 'drop' : 'end', afterEvents: 3 });
          fake.interruptStreams('drop');
          faults += 1;
          break;
        case 'expire':
          fake.expireTokens();
          fake.authFaults.push({ status: 503, code: 'ERR_SERVICE_OVERLOADED' }); // and the first re-auth is refused
          fake.interruptStreams('end');
          faults += 2;
          break;
        case 'overload':
          fake.requestFaults.push(
            { status: 503, code: 'ERR_SERVICE_OVERLOADED' },
            { status: 401, code: 'ERR_TOKEN_EXPIRED' },
          );
          fake.interruptStreams('drop');
          faults += 2;
          break;
        case 'restart':
          await fake.restart(30);
          faults += 1;
          break;
        case 'hang':
          fake.interruptStreams('hang');
          faults += 1;
          break;
        case 'malformed':
          fake.streamFaults.push({ kind: 'malformed', afterEvents: 1 });
          fake.interruptStreams('end');
          faults += 1;
          break;
        case 'errorDiag':
          fake.streamFaults.push({ kind: 'error', afterEvents: 2 });
          fake.interruptStreams('drop');
          faults += 1;
          break;
      }
      // Events keep coming while the client reconnects: local ones, and a device that was offline
      // delivering events with old Lamport stamps.
      record(fake.publish(tagged(7, ['chaos'], round * 7)));
      fake.publish(tagged(2, ['noise']));
      if (round % 3 === 0) {
        record(fake.replicate('offline-0', tagged(3, ['late']), { lamport: offlineLamport }));
        offlineLamport += 3;
      }
      if (round % 2 === 0) await waitFor(() => c.events.length >= published.length, `all events after round ${round}`);
    }
    await waitFor(() => c.events.length >= published.length, 'all events at the end');
    await new Promise((r) => setTimeout(r, 50));
    const received = c.events.map(eventId);
    assert.equal(new Set(received).size, received.length, 'no duplicates');
    assert.deepEqual([...received].sort(), [...published].sort(), 'exactly the published chaos/late events');
    assert.ok(faults >= 20, `injected ${faults} faults`);
    assert.ok(fake.streamRequests.length >= 20, `reconnected ${fake.streamRequests.length} times`);
    assert.equal(streamOrderProblem(c.events), null);
    // Late events: some event arrived after an event with a higher Lamport stamp.
    const lateOnes = c.events.filter((e) => e.stream === 'offline-0');
    assert.ok(lateOnes.length > 0);
    const firstLateIndex = c.events.indexOf(lateOnes[0]!);
    assert.ok(
      c.events.slice(0, firstLateIndex).some((e: ActyxEvent) => e.lamport > lateOnes[0]!.lamport),
      'an older-Lamport event was delivered after newer ones',
    );
    assert.ok(fake.authCount >= 3, 're-authenticated after expiry and restarts');
    assert.ok(c.diagnostics.some((d) => d.detail !== undefined && d.message.includes('malformed')));
    await c.stop();
    assert.equal(c.error, null);
  } finally {
    await client.close();
    await fake.close();
  }
});

test('bounded query: asc order, upper bound clamped to present, resumes after a drop without loss', () =>
  withClient({ keepAliveMs: 50 }, async (fake, client) => {
    fake.publish(tagged(10, ['q']));
    fake.replicate('dev-0', tagged(5, ['q']), { lamport: 3 });
    fake.streamFaults.push({ kind: 'drop', afterEvents: 4 });
    const upper = { [fake.localStream]: 1000, 'dev-0': 3, 'unknown-0': 5 };
    const events: ActyxEvent[] = [];
    for await (const e of client.query("FROM 'q'", { [fake.localStream]: 1 }, upper)) events.push(e);
    assert.equal(events.length, 8 + 4);
    const keys = events.map((e) => [e.lamport, e.stream, e.offset] as const);
    const sorted = [...keys].sort((a, b) => a[0] - b[0] || (a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0) || a[2] - b[2]);
    assert.deepEqual(keys, sorted, 'event key order');
    assert.ok(events.every((e) => !(e.stream === fake.localStream && e.offset <= 1)));
    assert.ok(events.every((e) => !(e.stream === 'dev-0' && e.offset > 3)));
    assert.equal(fake.streamRequests.length, 2);
    assert.deepEqual(fake.streamRequests[0]!.upperBound, { [fake.localStream]: 9, 'dev-0': 3 });
    assert.equal(new Set(events.map(eventId)).size, events.length);
  }));

test('publish returns lamport/stream/offset; an expired token is renewed; presentOffsets and nodeId work', () =>
  withClient({ keepAliveMs: 50 }, async (fake, client) => {
    const first = await client.publish([{ tags: ['p'], payload: { a: 1 } }]);
    assert.equal(first[0]!.stream, fake.localStream);
    assert.equal(first[0]!.offset, 0);
    fake.expireTokens();
    fake.requestFaults.push({ status: 503, code: 'ERR_SERVICE_OVERLOADED' });
    const second = await client.publish([
      { tags: ['p'], payload: { a: 2 } },
      { tags: ['p'], payload: { a: 3 } },
    ]);
    assert.deepEqual(
      second.map((p) => p.offset),
      [1, 2],
    );
    assert.ok(second[1]!.lamport > second[0]!.lamport);
    assert.equal(fake.authCount, 2);
    assert.deepEqual(await client.presentOffsets(), { [fake.localStream]: 2 });
    assert.equal(await client.nodeId(), fake.nodeId);
    const context = await client.matchContext();
    assert.equal(context.isLocalStream?.(fake.localStream), true);
    assert.equal(context.isLocalStream?.('other-0'), false);
    assert.equal(context.appId, manifest.appId);
    await assert.rejects(client.publish([{ tags: [''], payload: {} }]), /tags must be/);
  }));

test('an unreachable node: clear errors, the subscription keeps retrying until aborted', async () => {
  const port = await freePort();
  const client = new ActyxClient({ host: '127.0.0.1', port, manifest, backoff: { initialMs: 2, maxMs: 10 } });
  try {
    await assert.rejects(
      client.presentOffsets(),
      new RegExp(`cannot reach the Actyx node at http://127.0.0.1:${port}/api/v2: ECONNREFUSED`),
    );
    const c = new Collector(client, "FROM 'a'");
    await waitFor(() => c.diagnostics.filter((d) => d.severity === 'error').length >= 3, 'repeated error diagnostics');
    assert.match(c.diagnostics[0]!.message, /ECONNREFUSED/);
    await c.stop();
    assert.equal(c.error, null);
    assert.equal(c.events.length, 0);
  } finally {
    await client.close();
  }
});

test('a rejected manifest is reported with the node error code', async () => {
  const fake = await FakeActyx.start({ keepAliveMs: 50 });
  const client = new ActyxClient({
    baseUrl: fake.baseUrl,
    manifest: { appId: 'com.acme.app', displayName: 'x', version: '1' },
    backoff: { initialMs: 2, maxMs: 10 },
  });
  try {
    await assert.rejects(client.presentOffsets(), /ERR_MANIFEST_INVALID/);
    assert.throws(
      () => new ActyxClient({ baseUrl: fake.baseUrl, manifest: { appId: 'bad id', displayName: 'x', version: '1' } }),
      /reverse domain/,
    );
    assert.throws(() => new ActyxClient({ port: 70000, manifest }), /port/);
  } finally {
    await client.close();
    await fake.close();
  }
});
