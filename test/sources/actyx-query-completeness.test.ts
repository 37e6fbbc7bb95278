/**
 * A bounded Actyx query ends only when it has delivered everything up to its upper bound: the
 * node's closing offsets line says so, or every stream was read up to its bound. Servers that cut
 * responses as proxies and load balancers do (empty 200s, a cut mid-stream or mid-line, no offsets
 * line, streams interleaved in any order) cost retries, never events: the query keeps asking from
 * the last event received, says that it is incomplete, and hands on every event exactly once.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ActyxClient } from '../../src/sources/actyx-client';
import type { OffsetMap } from '../../src/core/offset-map';
import type { ActyxEvent, SourceDiagnostic } from '../../src/sources/types';
import { FakeActyx, type QueryInterleaving, type StreamFault } from '../support/fake-actyx';
import { eventId, streamOrderProblem, tagged, waitFor } from '../support/actyx-helpers';

const manifest = { appId: 'com.example.deltaflow-test', displayName: 'DeltaFlow tests', version: '1.0.0' };

/** A query running in the background, recording what it delivers. */
class RunningQuery {
  readonly events: ActyxEvent[] = [];
  readonly diagnostics: SourceDiagnostic[] = [];
  done = false;
  readonly finished: Promise<void>;
  private readonly abort = new AbortController();

  constructor(client: ActyxClient, query: string, lower: OffsetMap, upper: OffsetMap) {
    const options = { signal: this.abort.signal, onDiagnostic: (d: SourceDiagnostic) => this.diagnostics.push(d) };
    this.finished = (async () => {
      for await (const batch of client.queryBatches(query, lower, upper, options)) this.events.push(...batch);
      this.done = true;
    })();
  }

  stop(): Promise<void> {
    this.abort.abort();
    return this.finished.catch(() => undefined);
  }
}

async function withFake(body: (fake: FakeActyx, client: ActyxClient) => Promise<void>): Promise<void> {
  const fake = await FakeActyx.start({ keepAliveMs: 50 });
  const client = new ActyxClient({
    baseUrl: fake.baseUrl,
    manifest,
    idleTimeoutMs: 3000,
    requestTimeoutMs: 2000,
    backoff: { initialMs: 2, maxMs: 20 },
  });
  try {
    await body(fake, client);
  } finally {
    await client.close();
    await fake.close();
  }
}

const queryRequests = (fake: FakeActyx): number => fake.streamRequests.filter((r) => r.path === '/events/query').length;

/** What the query must deliver: the log's own answer (Lamport order). */
async function expected(fake: FakeActyx, query: string, lower: OffsetMap, upper: OffsetMap): Promise<string[]> {
  const out: string[] = [];
  for await (const e of fake.log.query(query, lower, upper)) out.push(eventId(e));
  return out;
}

function assertExactlyOnce(events: readonly ActyxEvent[], want: readonly string[]): void {
  const got = events.map(eventId);
  assert.equal(new Set(got).size, got.length, `no event twice: ${got.join(' ')}`);
  assert.deepEqual([...got].sort(), [...want].sort());
  assert.equal(streamOrderProblem(events), null);
}

test('empty 200 responses: the query keeps asking with backoff, says it is incomplete, and ends only once the node delivers', () =>
  withFake(async (fake, client) => {
    fake.publish(tagged(10, ['q']));
    const upper = await client.presentOffsets();
    fake.queryAnswer = 'empty';
    const q = new RunningQuery(client, "FROM 'q'", {}, upper);
    try {
      await waitFor(() => queryRequests(fake) >= 4 || q.done, 'four empty responses');
      assert.equal(q.done, false, 'a query that received none of its 10 events must not end');
      assert.equal(q.events.length, 0);
      assert.ok(
        q.diagnostics.some(
          (d) => d.severity === 'warning' && /^query incomplete, retrying: .*offsets line/.test(d.message),
        ),
        JSON.stringify(q.diagnostics),
      );
      fake.queryAnswer = 'complete';
      await q.finished;
      assertExactlyOnce(q.events, await expected(fake, "FROM 'q'", {}, upper));
      assert.equal(q.events.length, 10);
    } finally {
      await q.stop();
    }
  }));

test('responses cut mid-stream, mid-line and before the first line: every event once, no early end', () =>
  withFake(async (fake, client) => {
    fake.publish(tagged(12, ['q']));
    fake.replicate('dev-0', tagged(6, ['q']), { lamport: 3 });
    const upper = await client.presentOffsets();
    const faults: StreamFault[] = [
      { kind: 'drop', afterEvents: 3 },
      { kind: 'cutLine', afterEvents: 2 },
      { kind: 'cutLine', afterEvents: 0 },
      { kind: 'end', afterEvents: 0 },
      { kind: 'end', afterEvents: 0 },
      { kind: 'cutLine', afterEvents: 0 },
      { kind: 'end', afterEvents: 4 },
    ];
    fake.streamFaults.push(...faults);
    const q = new RunningQuery(client, "FROM 'q'", {}, upper);
    await q.finished;
    assert.equal(fake.streamFaults.length, 0, 'every cut response was followed by another request');
    assertExactlyOnce(q.events, await expected(fake, "FROM 'q'", {}, upper));
    assert.equal(q.events.length, 18);
    assert.ok(
      q.diagnostics.some((d) => d.message.includes('malformed')),
      'the cut line is reported',
    );
    assert.equal(queryRequests(fake), faults.length + 1);
  }));

test('no closing offsets line: a filtered query is not complete until the node says so; an unfiltered one is when every stream reached its bound', () =>
  withFake(async (fake, client) => {
    // Each stream ends with events the query filters out: only the offsets line can say "done".
    for (let i = 0; i < 4; i++) {
      fake.publish(tagged(3, ['q'], i * 3));
      fake.publish(tagged(2, ['noise']));
      fake.replicate('dev-0', tagged(2, ['q'], 100 + i * 2));
      fake.replicate('dev-0', tagged(1, ['noise']));
    }
    const upper = await client.presentOffsets();
    fake.queryAnswer = 'noOffsets';
    const q = new RunningQuery(client, "FROM 'q'", {}, upper);
    try {
      await waitFor(() => queryRequests(fake) >= 4 || q.done, 'four responses without offsets line');
      assert.equal(q.done, false, 'without the offsets line the query cannot know that nothing is missing');
      assert.ok(q.diagnostics.some((d) => /ended without the closing offsets line/.test(d.message)));
      assert.deepEqual(fake.streamRequests.at(-1)?.lowerBound, {
        [fake.localStream]: 17,
        'dev-0': 10,
      });
      fake.queryAnswer = 'complete';
      await q.finished;
      assertExactlyOnce(q.events, await expected(fake, "FROM 'q'", {}, upper));
      assert.equal(q.events.length, 20);

      // Unfiltered: the last event of every stream is delivered, so nothing can be missing.
      fake.queryAnswer = 'noOffsets';
      const before = queryRequests(fake);
      const all = new RunningQuery(client, 'allEvents', {}, upper);
      await all.finished;
      assert.equal(queryRequests(fake) - before, 1);
      assertExactlyOnce(all.events, await expected(fake, 'allEvents', {}, upper));
    } finally {
      await q.stop();
    }
  }));

for (const interleaving of ['byStream', 'shuffled'] as const) {
  test(`streams interleaved ${interleaving === 'byStream' ? 'one after the other' : 'at random'}, with cuts: every event once, per stream in order`, () =>
    withFake(async (fake, client) => {
      fake.queryInterleaving = interleaving;
      for (let d = 0; d < 4; d++)
        fake.replicate(`dev${d}-0`, tagged(8, d % 2 === 0 ? ['q'] : ['q', 'x']), { lamport: 1 + d });
      fake.publish(tagged(5, ['q']));
      const upper = await client.presentOffsets();
      const lower = { 'dev1-0': 2, 'dev3-0': 7 };
      fake.streamFaults.push(
        { kind: 'drop', afterEvents: 5 },
        { kind: 'cutLine', afterEvents: 7 },
        { kind: 'end', afterEvents: 0 },
        { kind: 'end', afterEvents: 0 },
        { kind: 'noOffsets', afterEvents: 0 },
        { kind: 'end', afterEvents: 3 },
      );
      const q = new RunningQuery(client, "FROM 'q'", lower, upper);
      await q.finished;
      assertExactlyOnce(q.events, await expected(fake, "FROM 'q'", lower, upper));
      assert.equal(q.events.length, 8 + 5 + 8 + 0 + 5);
    }));
}

test('property: any sequence of cut, empty and offsets-less responses in any interleaving delivers exactly the events of the range', async () => {
  const fault = fc.oneof(
    fc.record({
      kind: fc.constantFrom('drop', 'end', 'cutLine') as fc.Arbitrary<StreamFault['kind']>,
      afterEvents: fc.nat({ max: 12 }),
    }),
    fc.constant<StreamFault>({ kind: 'end', afterEvents: 0 }), // an empty 200
    fc.constant<StreamFault>({ kind: 'noOffsets', afterEvents: 0 }),
  );
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.array(fc.constantFrom('q', 'noise'), { maxLength: 12 }), { minLength: 1, maxLength: 4 }),
      fc.array(fault, { maxLength: 8 }),
      fc.constantFrom<QueryInterleaving>('asc', 'byStream', 'shuffled'),
      fc.array(fc.nat({ max: 6 }), { maxLength: 4 }),
      async (streams, faults, interleaving, lowers) => {
        await withFake(async (fake, client) => {
          fake.queryInterleaving = interleaving;
          streams.forEach((tags, s) => {
            tags.forEach((tag, i) => fake.replicate(`s${s}-0`, tagged(1, [tag], i), { lamport: 1 + i * 3 + s }));
          });
          const upper = await client.presentOffsets();
          const lower: Record<string, number> = {};
          lowers.forEach((o, s) => {
            if (s < streams.length && o < (streams[s] as string[]).length) lower[`s${s}-0`] = o;
          });
          fake.streamFaults.push(...faults);
          const q = new RunningQuery(client, "FROM 'q'", lower, upper);
          await q.finished;
          assertExactlyOnce(q.events, await expected(fake, "FROM 'q'", lower, upper));
        });
      },
    ),
    { numRuns: 25, seed: 12 },
  );
});
