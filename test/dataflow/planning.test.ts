import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { readInBatches } from '../../src/dataflow/batcher';
import { buildDataflow } from '../../src/dataflow/build-graph';
import { canonicalJson, sinkFingerprint } from '../../src/dataflow/fingerprint';
import { covers, eventsBetween, mergeOffsets, offsetsEqual } from '../../src/core/offset-map';
import { PendingCommit } from '../../src/dataflow/pending-commit';
import { planRestart } from '../../src/dataflow/restart-plan';
import { retentionCutoff, retentionSegments, windowMicros } from '../../src/dataflow/retention';
import type { DataflowMember, SinkMember } from '../../src/dataflow/types';
import type { SinkDatabase } from '../../src/sinks/types';
import type { EventSource } from '../../src/sources/types';
import { dashboardMembers, operatorMember, sinkMember, sourceMember, usageMembers, usageTable } from './support';

const offsetMap = fc.dictionary(fc.constantFrom('a-0', 'b-0', 'c-0', 'd-0'), fc.integer({ min: 0, max: 20 }));

test('offset maps: covers is a partial order, merge is the least upper bound', () => {
  fc.assert(
    fc.property(offsetMap, offsetMap, (a, b) => {
      const m = mergeOffsets(a, b);
      assert.ok(covers(m, a) && covers(m, b));
      assert.ok(covers(a, a));
      if (covers(a, b) && covers(b, a)) assert.ok(offsetsEqual(a, b));
      assert.equal(eventsBetween(a, m) >= 0, true);
      if (covers(a, b)) assert.equal(eventsBetween(a, b), 0);
    }),
  );
  assert.equal(eventsBetween({ 'a-0': 3 }, { 'a-0': 5, 'b-0': 0 }), 3);
});

test('restart plan: chains become levels, incomparable offsets and changed fingerprints are rebuilt', () => {
  const state = (offsets: Record<string, number>, fingerprint: string | null = 'f', watermark: number | null = 1) => ({
    offsets,
    fingerprint,
    watermark,
  });
  const plan = planRestart([
    { id: 'high', state: state({ a: 5, b: 5 }, 'f', 9), fingerprint: 'f' },
    { id: 'low', state: state({ a: 2 }), fingerprint: 'f' },
    { id: 'same', state: state({ a: 5, b: 5 }), fingerprint: 'f' },
    { id: 'new', state: state({}, null, null), fingerprint: 'f' },
    { id: 'changed', state: state({ a: 5, b: 5 }, 'old'), fingerprint: 'f' },
    { id: 'odd', state: state({ a: 1, c: 3 }), fingerprint: 'f' },
  ]);
  assert.deepEqual(plan.rebuild.map((r) => r.id).sort(), ['changed', 'odd']);
  assert.match(plan.rebuild.find((r) => r.id === 'changed')?.reason ?? '', /definition/);
  assert.deepEqual(
    plan.levels.map((l) => [l.offsets, [...l.sinkIds].sort()]),
    [
      [{}, ['changed', 'new', 'odd']],
      [{ a: 2 }, ['low']],
      [{ a: 5, b: 5 }, ['high', 'same']],
    ],
  );
  assert.equal(plan.watermark, 9);
  // Levels always form a chain.
  fc.assert(
    fc.property(fc.array(offsetMap, { maxLength: 6 }), (maps) => {
      const p = planRestart(
        maps.map((offsets, i) => ({
          id: `s${i}`,
          state: { offsets, fingerprint: 'f', watermark: null },
          fingerprint: 'f',
        })),
      );
      for (let i = 1; i < p.levels.length; i++)
        assert.ok(
          covers(p.levels[i]!.offsets, p.levels[i - 1]!.offsets) &&
            !offsetsEqual(p.levels[i]!.offsets, p.levels[i - 1]!.offsets),
        );
      assert.equal(
        p.levels.reduce((n, l) => n + l.sinkIds.length, 0),
        maps.length,
      );
    }),
  );
});

test('restart plan: streams named like Object.prototype properties are compared as streams', () => {
  // JSON.parse gives an own `__proto__` property, as offsets read back from a table or a message do.
  const offsets = (json: string): Record<string, number> => JSON.parse(json) as Record<string, number>;
  const sink = (id: string, json: string) => ({
    id,
    state: { offsets: offsets(json), fingerprint: 'f', watermark: null },
    fingerprint: 'f',
  });
  const chain = planRestart([
    sink('low', '{"__proto__": 2}'),
    sink('high', '{"__proto__": 5, "toString": 1}'),
    sink('same', '{"toString": 1, "__proto__": 5}'),
  ]);
  assert.deepEqual(chain.rebuild, []);
  assert.deepEqual(
    chain.levels.map((l) => [Object.entries(l.offsets).sort(), [...l.sinkIds].sort()]),
    [
      [[['__proto__', 2]], ['low']],
      [
        [
          ['__proto__', 5],
          ['toString', 1],
        ],
        ['high', 'same'],
      ],
    ],
  );
  // {constructor: 3} and {'a-0': 0} are incomparable: neither table reflects the other's events.
  const apart = planRestart([sink('ctor', '{"constructor": 3}'), sink('other', '{"a-0": 0}')]);
  assert.equal(apart.rebuild.length, 1);
  assert.match(apart.rebuild[0]?.reason ?? '', /not comparable/);
  assert.equal(covers({ 'a-0': 0 }, offsets('{"constructor": 0}')), false);
  assert.equal(covers({}, offsets('{"__proto__": 0}')), false);
  assert.equal(eventsBetween({}, offsets('{"constructor": 3, "__proto__": 1, "valueOf": 0}')), 4 + 2 + 1);
});

test('batcher: batches by size, flushes on marker items, ends with a final batch, keeps order', async () => {
  async function* chunks(): AsyncGenerator<readonly number[]> {
    yield [1, 2, 3];
    yield [4, 5, 6, 7, 8];
    yield [9, -1, 10];
  }
  const seen: [number[], boolean][] = [];
  await readInBatches(
    chunks(),
    { batchSize: 4, batchMs: 1000, signal: new AbortController().signal, flushesBatch: (i) => i < 0 },
    async (b, end) => {
      seen.push([b, end]);
    },
  );
  assert.deepEqual(seen, [
    [[1, 2, 3, 4], false],
    [[5, 6, 7, 8], false],
    [[9, -1], false],
    [[10], true],
  ]);
});

test('batcher: a batch closes after batchMs; reading waits for a slow consumer (back-pressure)', async () => {
  let pulled = 0;
  let release!: () => void;
  const blocked = new Promise<void>((r) => (release = r));
  async function* slowSource(): AsyncGenerator<readonly number[]> {
    for (let i = 0; i < 6; i++) {
      pulled++;
      yield [i];
      if (i === 1) await new Promise((r) => setTimeout(r, 300)); // a pause: the first batch closes by time
    }
  }
  const batches: number[][] = [];
  const done = readInBatches(
    slowSource(),
    { batchSize: 100, batchMs: 10, signal: new AbortController().signal },
    async (b) => {
      batches.push(b);
      if (batches.length === 1) await blocked;
    },
  );
  while (batches.length === 0) await new Promise((r) => setTimeout(r, 5));
  await new Promise((r) => setTimeout(r, 350)); // the source could deliver everything by now
  assert.deepEqual(batches, [[0, 1]]);
  assert.ok(pulled <= 4, `reading paused while the consumer was busy (pulled ${pulled})`);
  release();
  await done;
  assert.deepEqual(batches.flat(), [0, 1, 2, 3, 4, 5]);
});

test('batcher: items read before a source error are handed on, then the error is rethrown', async () => {
  async function* failing(): AsyncGenerator<readonly number[]> {
    yield [1, 2];
    throw new Error('connection lost');
  }
  const batches: number[][] = [];
  await assert.rejects(
    readInBatches(failing(), { batchSize: 10, batchMs: 1000, signal: new AbortController().signal }, async (b) => {
      batches.push(b);
    }),
    /connection lost/,
  );
  assert.deepEqual(batches, [[1, 2]]);
});

const fakeSource = {} as EventSource;
const fakeDb = { kind: 'sqlite', label: 'x' } as SinkDatabase;

test('fingerprints: canonical JSON ignores key order; a change upstream changes only the sinks below it', () => {
  assert.equal(canonicalJson({ b: 1, a: [1, { d: 2, c: null }] }), canonicalJson({ a: [1, { c: null, d: 2 }], b: 1 }));
  const base: DataflowMember[] = [
    sourceMember('src', "'machine'", fakeSource),
    ...dashboardMembers('src', fakeDb, 'dashboard'),
    ...usageMembers('src', fakeDb, 'usage'),
  ];
  const changed: DataflowMember[] = [
    sourceMember('src', "'machine'", fakeSource),
    ...dashboardMembers('src', fakeDb, 'dashboard'),
    ...usageMembers('src', fakeDb, 'usage', { variant: 'x' }),
  ];
  const fp = (ms: DataflowMember[], id: string): string => {
    const byId = new Map(ms.map((m) => [m.id, m]));
    const sink = byId.get(id);
    if (sink?.role !== 'sink') throw new Error('no sink');
    return sinkFingerprint(sink, byId);
  };
  assert.equal(fp(base, 'dash-sink'), fp(changed, 'dash-sink'));
  assert.notEqual(fp(base, 'usage-sink'), fp(changed, 'usage-sink'));
  const requeried: DataflowMember[] = [sourceMember('src', "'machine' & 'x'", fakeSource), ...base.slice(1)];
  assert.notEqual(fp(base, 'dash-sink'), fp(requeried, 'dash-sink'));
  const versioned = base.map((m) => (m.id === 'usage-sink' && m.role === 'sink' ? { ...m, version: '2' } : m));
  assert.notEqual(fp(base, 'usage-sink'), fp(versioned, 'usage-sink'));
});

test('graph building: clear errors name the members (cycle, grouped into a sink, missing input, two actyx-configs)', () => {
  const grouped = operatorMember('grp', ['src'], null, ([s]) => {
    if (s?.kind !== 'collection') throw new Error('x');
    return { kind: 'grouped', grouped: s.collection.groupBy(() => 1) };
  });
  const pass = (id: string, inputs: string[]): DataflowMember => operatorMember(id, inputs, null, ([s]) => s!);
  const built = buildDataflow([
    sourceMember('src', "'machine'", fakeSource),
    grouped,
    sinkMember('bad-sink', ['grp'], fakeDb, usageTable('t1')),
    pass('loop-a', ['loop-b']),
    pass('loop-b', ['loop-a']),
    sinkMember('loop-sink', ['loop-b'], fakeDb, usageTable('t2')),
    sinkMember('orphan', ['nowhere'], fakeDb, usageTable('t3')),
    pass('ok', ['src']),
    sinkMember('good', ['ok'], fakeDb, usageTable('t4')),
  ]);
  const msg = (id: string): string => built.failures.find((f) => f.memberId === id)?.message ?? '';
  assert.match(msg('bad-sink'), /bad-sink.*ungrouped input.*grp/);
  assert.match(msg('loop-a'), /cycle/);
  assert.match(msg('loop-b'), /cycle/);
  assert.match(msg('loop-sink'), /cycle|input .*failed/);
  assert.match(msg('orphan'), /nowhere/);
  assert.deepEqual(
    built.sinks.map((s) => s.id),
    ['good'],
  );
  assert.deepEqual(
    built.sources.map((s) => s.member.id),
    ['src'],
  );

  const two = buildDataflow([
    sourceMember('s1', 'a', fakeSource, 'cfg1'),
    sourceMember('s2', 'b', fakeSource, 'cfg2'),
    sinkMember('k', ['s1'], fakeDb, usageTable('t5')),
  ]);
  assert.match(two.failures.find((f) => f.memberId === 's1')?.message ?? '', /same actyx-config.*s1.*cfg1.*s2.*cfg2/);
  assert.equal(two.sinks.length, 0);
});

test('retention: window units; cutoffs a function of the watermark in steps of an eighth of the window', () => {
  assert.equal(windowMicros(2, 'days'), 2 * 86400e6);
  assert.equal(windowMicros(null, 'days'), null);
  assert.equal(windowMicros(0, 'hours'), null);
  assert.equal(retentionCutoff(1000, null), null);
  assert.equal(retentionCutoff(null, 80), null);
  assert.equal(retentionCutoff(1000, 80), 920); // 1000 − 80 = 920, a multiple of 10
  assert.equal(retentionCutoff(1009, 80), 920);
  assert.equal(retentionCutoff(1010, 80), 930);
  assert.equal(retentionCutoff(5, 80), -80); // before the epoch: still rounded down
  assert.deepEqual(retentionSegments([{ timestamp: 1 }, { timestamp: 2 }], 10, 0, null), [
    { from: 0, to: 2, compactTo: null },
  ]);
});

test('retention segments: every event is computed with the cutoff of the watermark it arrived at', () => {
  fc.assert(
    fc.property(
      fc.array(fc.integer({ min: 0, max: 2000 }), { maxLength: 60 }),
      fc.option(fc.integer({ min: 0, max: 1000 }), { nil: null }),
      fc.integer({ min: 1, max: 400 }),
      fc.option(fc.integer({ min: 0, max: 2000 }), { nil: null }),
      (times, start, window, clockBound) => {
        const events = times.map((timestamp) => ({ timestamp }));
        const cutoff0 = retentionCutoff(start, window);
        // The clock bound: events beyond it are computed but move no watermark (null: no bound).
        const bound = clockBound ?? Infinity;
        const segments = retentionSegments(events, start, cutoff0, window, bound);
        // Contiguous, non-empty (but for an empty batch), covering the batch.
        assert.equal(segments[0]?.from, 0);
        assert.equal(segments.at(-1)?.to, events.length);
        for (let k = 1; k < segments.length; k++) assert.equal(segments[k]?.from, segments[k - 1]?.to);
        for (const s of segments) if (events.length > 0) assert.ok(s.to > s.from);
        // The model: one event at a time, the cutoff moved by each event's watermark.
        let w = start;
        let model = cutoff0;
        let current = cutoff0;
        for (const s of segments) {
          if (s.compactTo !== null) {
            assert.ok(current === null || s.compactTo > current, 'a segment compacts only when the cutoff moved');
            current = s.compactTo;
          }
          for (let i = s.from; i < s.to; i++) {
            const t = (events[i] as { timestamp: number }).timestamp;
            if (t <= bound && (w === null || t > w)) w = t;
            model = retentionCutoff(w, window);
            assert.equal(
              current,
              model,
              `event ${i} (t ${t}) is computed with cutoff ${String(current)}, its watermark's is ${String(model)}`,
            );
          }
        }
      },
    ),
    { numRuns: 500 },
  );
});

test('a waiting commit joins later batches: changes appended in order, the newest state and offsets, taps consolidated', () => {
  const db = {
    kind: 'sqlite',
    label: 'db',
    transaction: () => Promise.reject(new Error('unused')),
    close: async () => undefined,
  } as SinkDatabase;
  const [sink] = dashboardMembers('src', db, 'dash').filter((m) => m.role === 'sink') as SinkMember[];
  const state = (n: number) => ({ offsets: { 'a-0': n }, fingerprint: 'f', watermark: n });
  const commit = new PendingCommit(
    'catching up',
    [
      [
        db,
        [
          {
            sink: sink as SinkMember,
            table: (sink as SinkMember).table,
            changes: [[{ m: 1, v: 'x' }, 1, 1]],
            state: state(1),
          },
        ],
      ],
    ],
    [['tap', [['t1', 1, 1]]]],
    { 'a-0': 1 },
    10,
  );
  commit.join(
    [
      [
        db,
        [
          {
            sink: sink as SinkMember,
            table: (sink as SinkMember).table,
            changes: [
              [{ m: 1, v: 'x' }, -1, 2],
              [{ m: 1, v: 'y' }, 1, 2],
            ],
            state: state(2),
          },
        ],
      ],
    ],
    [
      [
        'tap',
        [
          ['t1', -1, 2],
          ['t2', 1, 2],
        ],
      ],
    ],
    { 'a-0': 2 },
    5,
  );
  assert.equal(commit.events, 15);
  assert.deepEqual(commit.offsets, { 'a-0': 2 });
  const [[joinedDb, writes]] = commit.writes() as unknown as [[SinkDatabase, { changes: unknown; state: unknown }[]]];
  assert.equal(joinedDb, db);
  assert.deepEqual(writes[0]?.changes, [
    [{ m: 1, v: 'x' }, 1, 1],
    [{ m: 1, v: 'x' }, -1, 2],
    [{ m: 1, v: 'y' }, 1, 2],
  ]);
  assert.deepEqual(writes[0]?.state, state(2));
  assert.deepEqual(commit.taps(), [['tap', [['t2', 1, 2]]]]);
  commit.started = true;
  assert.throws(() => commit.join([], [], { 'a-0': 3 }, 1), /started commit/);
});
