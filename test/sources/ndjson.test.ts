import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ndjsonLineBatches } from '../../src/sources/ndjson';
import { parseLine } from '../../src/sources/actyx-client';
import { Backoff } from '../../src/sources/backoff';

function streamOf(chunks: Uint8Array[]): ReadableStream<Uint8Array> {
  return new ReadableStream({
    start(controller) {
      for (const c of chunks) controller.enqueue(c);
      controller.close();
    },
  });
}

async function lines(chunks: Uint8Array[]): Promise<string[][]> {
  const out: string[][] = [];
  for await (const batch of ndjsonLineBatches(streamOf(chunks))) out.push(batch);
  return out;
}

test('lines split across chunks, multi-byte characters split across chunks, CRLF, keep-alives, a cut last line', async () => {
  const bytes = new TextEncoder().encode('{"a":"Bohrmaschine – Ü"}\r\n\n{"b":2}\n{"c":');
  // Split inside the multi-byte "–" and "Ü" and inside the second line.
  const cuts = [5, 19, 22, 30, bytes.length];
  const chunks: Uint8Array[] = [];
  let from = 0;
  for (const to of cuts) {
    chunks.push(bytes.slice(from, to));
    from = to;
  }
  const batches = await lines(chunks);
  assert.deepEqual(batches.flat(), ['{"a":"Bohrmaschine – Ü"}', '', '{"b":2}', '{"c":']);
});

test('parseLine classifies events, offsets, diagnostics, error objects, keep-alives, unknown and malformed lines', () => {
  assert.deepEqual(parseLine(''), { kind: 'keepAlive' });
  assert.deepEqual(parseLine('   '), { kind: 'keepAlive' });
  const event = parseLine(
    '{"type":"event","lamport":1,"stream":"s-0","offset":0,"timestamp":5,"tags":["a"],"appId":"x","payload":"text"}',
  );
  assert.deepEqual(event, {
    kind: 'event',
    event: { lamport: 1, stream: 's-0', offset: 0, timestamp: 5, tags: ['a'], appId: 'x', payload: 'text' },
  });
  assert.deepEqual(parseLine('{"type":"offsets","offsets":{"s-0":3}}'), { kind: 'offsets', offsets: { 's-0': 3 } });
  assert.deepEqual(parseLine('{"type":"diagnostic","severity":"error","message":"boom"}'), {
    kind: 'diagnostic',
    severity: 'error',
    message: 'boom',
  });
  assert.deepEqual(parseLine('{"code":"ERR_X","message":"y"}'), {
    kind: 'diagnostic',
    severity: 'error',
    message: 'ERR_X: y',
  });
  assert.deepEqual(parseLine('{"type":"antiEvent"}'), { kind: 'ignored' });
  assert.equal(
    parseLine('{"type":"event","lamport":-1,"stream":"s","offset":0,"timestamp":0,"tags":[],"appId":"x"}').kind,
    'malformed',
  );
  assert.equal(
    parseLine('{"type":"event","lamport":1,"stream":"s","offset":0,"timestamp":0,"tags":[1],"appId":"x"}').kind,
    'malformed',
  );
  assert.equal(parseLine('{"type":"offsets","offsets":{"s":"x"}}').kind, 'malformed');
  assert.equal(parseLine('nonsense').kind, 'malformed');
  assert.equal(parseLine('"a string"').kind, 'malformed');
  assert.equal(parseLine('{}').kind, 'malformed');
});

test('backoff grows exponentially with jitter up to the cap and starts again after reset', () => {
  const low = new Backoff({ initialMs: 100, maxMs: 1000, random: () => 0 });
  assert.deepEqual(
    [1, 2, 3, 4, 5, 6].map(() => low.next()),
    [50, 100, 200, 400, 500, 500],
  );
  const high = new Backoff({ initialMs: 100, maxMs: 1000, random: () => 0.999999 });
  assert.deepEqual(
    [1, 2, 3, 4, 5].map(() => high.next()),
    [100, 200, 400, 800, 1000],
  );
  high.reset();
  assert.equal(high.next(), 100);
  assert.equal(high.failures, 1);
});
