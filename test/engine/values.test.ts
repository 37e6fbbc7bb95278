/** Value order, structural identity, hashing and consolidation. */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { assertValue, canonicalKey, compareValues, consolidate, valueEquals, type Value } from '../../src/engine';
import { hashValue } from '../../src/engine/value-hash';
import { ValueMap } from '../../src/engine/value-map';
import { RUNS } from './harness';
import { refCompare, refKey } from './reference';

/** Arbitrary values, with -0, unicode (incl. astral and lone surrogates), nesting and undefined properties. */
const value: fc.Arbitrary<Value> = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    fc.constant(null),
    fc.boolean(),
    fc.constantFrom(0, -0, 1, -1, 0.5, 1e21, -1e-7, 2 ** 53),
    fc.integer(),
    fc.double({ noNaN: true, noDefaultInfinity: true }),
    fc.constantFrom('', 'a', 'b', 'ab', 'é', 'e\u0301', '\u{1F600}', '\uFFFF', '\uD800'),
    fc.string({ maxLength: 4 }),
    fc.array(tie('value'), { maxLength: 3 }),
    fc.dictionary(
      fc.constantFrom('a', 'b', 'c', 'lamport', 'B', '__proto'),
      fc.option(tie('value'), { nil: undefined }),
      { maxKeys: 3 },
    ),
  ),
})).value as fc.Arbitrary<Value>;

/** The same value rebuilt with object keys in reverse order and -0 for 0. */
function scramble(v: Value): Value {
  if (typeof v === 'number') return v === 0 ? -0 : v;
  if (v === null || typeof v !== 'object') return v;
  if (Array.isArray(v)) return v.map(scramble);
  const out: Record<string, Value> = {};
  for (const k of Object.keys(v).reverse()) out[k] = scramble((v as Record<string, Value>)[k]);
  return out;
}

describe('compareValues', () => {
  test('orders types null < false < true < numbers < strings < arrays < objects', () => {
    const ascending: Value[] = [
      null,
      false,
      true,
      -1,
      0,
      2,
      '',
      'a',
      'b',
      [],
      [0],
      [0, 0],
      [1],
      {},
      { a: 1 },
      { a: 2 },
      { a: 1, b: 0 },
      { b: 0 },
    ];
    for (let i = 0; i < ascending.length; i++) {
      for (let j = 0; j < ascending.length; j++) {
        assert.equal(
          Math.sign(compareValues(ascending[i], ascending[j])),
          Math.sign(i - j),
          `${JSON.stringify(ascending[i])} vs ${JSON.stringify(ascending[j])}`,
        );
      }
    }
  });

  test('numbers numerically, -0 equals 0; strings by UTF-16 code unit', () => {
    assert.equal(compareValues(-0, 0), 0);
    assert.ok(compareValues(9, 10) < 0);
    assert.ok(compareValues('Z', 'a') < 0);
    assert.ok(compareValues('\uFFFF', '\u{1F600}') > 0, 'code units: U+FFFF > high surrogate D83D');
    assert.ok(compareValues('a', 'ab') < 0);
  });

  test('objects by sorted keys then values; undefined properties are ignored', () => {
    assert.equal(compareValues({ b: 1, a: 2 }, { a: 2, b: 1 }), 0);
    assert.equal(compareValues({ a: 1, x: undefined } as unknown as Value, { a: 1 }), 0);
    assert.ok(compareValues({ a: 9 }, { b: 0 }) < 0, 'key lists first');
    assert.ok(compareValues({ a: 1 }, { a: 1, b: 0 }) < 0, 'a shorter key list first');
    assert.ok(
      compareValues({ lamport: 1, machine: 'z' }, { lamport: 2, machine: 'a' }) < 0,
      'the first sorted key decides first',
    );
  });

  test('NaN and non-values are rejected', () => {
    assert.throws(() => compareValues(NaN, 1), TypeError);
    assert.throws(() => compareValues([NaN], [1]), TypeError);
    assert.throws(() => compareValues(new Date(0) as unknown as Value, {}), TypeError);
    assert.throws(() => compareValues(undefined as unknown as Value, null), TypeError);
  });

  test('agrees with the naive reference order, is antisymmetric and transitive', () => {
    fc.assert(
      fc.property(value, value, value, (a, b, c) => {
        const ab = compareValues(a, b);
        assert.equal(Math.sign(ab) + 0, refCompare(a, b) + 0);
        assert.equal(Math.sign(compareValues(b, a)) + 0, -Math.sign(ab) + 0);
        if (ab <= 0 && compareValues(b, c) <= 0) assert.ok(compareValues(a, c) <= 0);
      }),
      { numRuns: RUNS * 5 },
    );
  });
});

describe('structural identity', () => {
  test('canonicalKey: sorted keys, -0 as 0, undefined dropped, parseable', () => {
    assert.equal(canonicalKey({ b: [1, -0], a: 'x', c: undefined } as unknown as Value), '{"a":"x","b":[1,0]}');
    assert.equal(canonicalKey(-0), '0');
    assert.equal(canonicalKey('é"\n'), JSON.stringify('é"\n'));
    assert.notEqual(canonicalKey('1'), canonicalKey(1));
    assert.notEqual(canonicalKey([1]), canonicalKey('[1]'));
  });

  test('canonicalKey rejects what is not a value', () => {
    for (const bad of [
      NaN,
      Infinity,
      -Infinity,
      undefined,
      () => 1,
      new Date(0),
      new Map(),
      { a: NaN },
      [undefined],
      10n,
    ]) {
      assert.throws(() => canonicalKey(bad as unknown as Value), TypeError, String(bad));
      assert.throws(() => assertValue(bad), TypeError, String(bad));
    }
  });

  test('compare == 0 ⇔ equal canonical keys ⇔ valueEquals; hashes agree; scrambled copies are the same value', () => {
    fc.assert(
      fc.property(value, value, (a, b) => {
        const same = compareValues(a, b) === 0;
        assert.equal(canonicalKey(a) === canonicalKey(b), same);
        assert.equal(valueEquals(a, b), same);
        assert.equal(refKey(a) === refKey(b), same);
        if (same) assert.equal(hashValue(a), hashValue(b));
        const s = scramble(a);
        assert.equal(compareValues(a, s), 0);
        assert.ok(valueEquals(a, s));
        assert.equal(hashValue(a), hashValue(s));
        assert.equal(canonicalKey(a), canonicalKey(s));
        assert.equal(canonicalKey(JSON.parse(canonicalKey(a)) as Value), canonicalKey(a));
      }),
      { numRuns: RUNS * 5 },
    );
  });

  test('ValueMap keys by structure: composite, primitive, colliding-looking keys', () => {
    const m = new ValueMap<number>();
    m.set({ a: 1, b: [2] }, 1);
    m.set('{"a":1,"b":[2]}', 2);
    m.set(1, 3);
    m.set('1', 4);
    m.set(-0, 5);
    assert.equal(m.get({ b: [2], a: 1 }), 1);
    assert.equal(m.get('{"a":1,"b":[2]}'), 2);
    assert.equal(m.get(0), 5);
    assert.equal(m.get(1), 3);
    assert.equal(m.get('1'), 4);
    assert.equal(m.size, 5);
    assert.ok(m.delete({ b: [2], a: 1 }));
    assert.equal(m.get({ a: 1, b: [2] }), undefined);
    assert.equal(m.size, 4);
    assert.throws(() => m.set(NaN, 0), TypeError);
  });

  test('strings that differ only in the middle hash apart (composite keys with ISO timestamps, ids with a common prefix and suffix)', () => {
    const hours = new Set<number>();
    for (let h = 0; h < 24 * 28; h++) hours.add(hashValue(['Drill1', new Date(Date.UTC(2026, 0, 1, h)).toISOString()]));
    assert.equal(hours.size, 24 * 28, 'every hour of four weeks its own hash');
    const ids = new Set<number>();
    for (let i = 0; i < 1000; i++) ids.add(hashValue({ id: `order-0000${String(i).padStart(4, '0')}-2026-suffix` }));
    assert.equal(ids.size, 1000);
  });

  test('ValueMap with colliding hashes (one slot, then two or more) == a Map by canonical key', () => {
    const keys = collidingKeys(4);
    const h = hashValue(keys[0]);
    assert.ok(
      keys.every((k) => hashValue(k) === h),
      'NB: the keys collide (else this test misses the bucket arrays)',
    );
    const pool: Value[] = [...keys, ['other'], { a: 1 }, 'p'];
    const op = fc.record({
      kind: fc.constantFrom('set', 'add', 'delete'),
      key: fc.nat(pool.length - 1),
      value: fc.nat(99),
    });
    fc.assert(
      fc.property(fc.array(op, { maxLength: 40 }), (ops) => {
        const m = new ValueMap<number>();
        const ref = new Map<string, number>();
        for (const { kind, key, value } of ops) {
          const k = pool[key];
          const c = canonicalKey(k);
          if (kind === 'set') {
            m.set(k, value);
            ref.set(c, value);
          } else if (kind === 'add')
            assert.equal(m.addIfAbsent(k, value), ref.get(c) ?? (ref.set(c, value), undefined));
          else assert.equal(m.delete(k), ref.delete(c));
          assert.equal(m.size, ref.size);
          for (const p of pool) assert.equal(m.get(p), ref.get(canonicalKey(p)));
          const seen = new Map<string, number>();
          m.forEach((v, k2) => seen.set(canonicalKey(k2), v));
          assert.deepEqual(seen, ref);
          assert.deepEqual([...m.values()].sort(), [...ref.values()].sort());
        }
      }),
      { numRuns: RUNS * 5 },
    );
  });

  test('ValueMap.addIfAbsent adds a missing key and returns the present value of a key it has (by structure)', () => {
    const m = new ValueMap<string>();
    assert.equal(m.addIfAbsent({ a: 1, b: [2] }, 'first'), undefined);
    assert.equal(m.addIfAbsent({ b: [2], a: 1 }, 'second'), 'first');
    assert.equal(m.addIfAbsent('k', 'p1'), undefined);
    assert.equal(m.addIfAbsent('k', 'p2'), 'p1');
    assert.equal(m.addIfAbsent(-0, 'zero'), undefined);
    assert.equal(m.addIfAbsent(0, 'again'), 'zero');
    assert.equal(m.size, 3);
    assert.equal(m.get({ a: 1, b: [2] }), 'first');
    assert.equal(m.get('k'), 'p1');
    assert.throws(() => m.addIfAbsent(Infinity, 'x'), TypeError);
  });
});

describe('consolidate', () => {
  test('sums diffs of deep-equal values, drops zeros, keeps the newest time and first-appearance order', () => {
    const out = consolidate<Value>([
      [{ a: 1, b: 2 }, 1, 5],
      ['x', 1, 1],
      [{ b: 2, a: 1 }, 2, 7],
      ['x', -1, 9],
      [0, 1, 3],
      [-0, 1, 2],
    ]);
    assert.deepEqual(out, [
      [{ a: 1, b: 2 }, 3, 7],
      [0, 2, 3],
    ]);
  });

  test('matches the reference on random batches', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(value, fc.integer({ min: -2, max: 2 }), fc.nat(9))), (batch) => {
        const out = consolidate(batch);
        const expected = new Map<string, number>();
        for (const [v, d] of batch) expected.set(refKey(v), (expected.get(refKey(v)) ?? 0) + d);
        for (const [k, d] of expected) if (d === 0) expected.delete(k);
        assert.equal(out.length, expected.size);
        for (const [v, d] of out) assert.equal(expected.get(refKey(v)), d);
      }),
      { numRuns: RUNS },
    );
  });
});

/**
 * `n` arrays `[x]` of non-integer numbers with one hash: a number's hash is `mix(low word ^
 * mix(high word))`, so for any high word the low word can be chosen to give the same inner value.
 */
function collidingKeys(n: number): Value[] {
  const mix = (h: number): number => {
    h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
    h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
    return (h ^ (h >>> 16)) | 0;
  };
  const floats = new Float64Array(1);
  const words = new Uint32Array(floats.buffer);
  const keys: Value[] = [];
  for (let k = 0; keys.length < n; k++) {
    words[1] = 0x3ff00000 + k; // 1 ≤ x < 2
    words[0] = (0x12345678 ^ mix(words[1])) >>> 0;
    if (!Number.isInteger(floats[0])) keys.push([floats[0]]);
  }
  return keys;
}
