/**
 * The state key encoding (src/engine/state-key.ts): byte-wise order of the encodings is the order
 * of `compareValues`, equal encodings are equal values, the encoding decodes to the value, and
 * concatenated encodings order like tuples (prefix-free).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { compareValues, decodeKey, decodeKeys, encodeKey, type Value } from '../../src/engine';
import { RUNS } from './harness';

/** Values with many near ties: small numbers (and -0, fractions, extremes), short strings with escapes, nesting. */
const value: fc.Arbitrary<Value> = fc.letrec<{ v: Value }>((tie) => ({
  v: fc.oneof(
    { depthSize: 'small' },
    fc.constant(null),
    fc.boolean(),
    fc.constantFrom(0, -0, 1, -1, 0.5, -0.5, 2 ** 53, -(2 ** 53), Number.MAX_VALUE, -Number.MIN_VALUE, 1e-300),
    fc.double({ noNaN: true, noDefaultInfinity: true }),
    fc.string({ unit: fc.constantFrom('a', 'b', '!', '"', '#', '~', '}', ' ', '\u0000', 'é', '\u{1F600}', '\uffff') }),
    fc.array(tie('v'), { maxLength: 3 }),
    fc.dictionary(fc.constantFrom('a', 'b', 'ab', '', '~'), tie('v'), { maxKeys: 3 }),
  ),
})).v;

const sign = (n: number): number => (n < 0 ? -1 : n > 0 ? 1 : 0);
const cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

describe('state keys (order-preserving encoding)', () => {
  test('byte-wise order of encodings = compareValues; equal encodings exactly for equal values', () => {
    fc.assert(
      fc.property(value, value, (a, b) => {
        assert.equal(cmp(encodeKey(a), encodeKey(b)), sign(compareValues(a, b)));
      }),
      { numRuns: RUNS * 10 },
    );
  });

  test('printable ASCII 0x21–0x7e only, and it decodes to the value', () => {
    fc.assert(
      fc.property(value, (v) => {
        const k = encodeKey(v);
        assert.match(k, /^[\x21-\x7e]+$/);
        assert.equal(compareValues(decodeKey(k), v), 0);
        assert.equal(decodeKey(k) === 0 || !Object.is(decodeKey(k), -0), true, '-0 is encoded as 0');
      }),
      { numRuns: RUNS * 5 },
    );
  });

  test('concatenations order like tuples (prefix-free) and split back into their values', () => {
    fc.assert(
      fc.property(value, value, value, value, (a, b, c, d) => {
        const x = encodeKey(a) + encodeKey(b);
        const y = encodeKey(c) + encodeKey(d);
        assert.equal(cmp(x, y), sign(compareValues([a, b], [c, d])));
        const [a2, b2] = decodeKeys(x);
        assert.equal(compareValues([a2, b2], [a, b]), 0);
      }),
      { numRuns: RUNS * 5 },
    );
  });

  test('examples, and what is not a value or not a key', () => {
    assert.equal(encodeKey(null), 'a');
    assert.equal(encodeKey([false, true]), 'fbc!');
    assert.equal(encodeKey('a b~'), 'ea"20b~007e!');
    assert.equal(encodeKey({ b: 1, a: null }), 'gea!eb!!adbff0000000000000!');
    assert.equal(encodeKey(-0), encodeKey(0));
    assert.throws(() => encodeKey(Infinity), /Infinity is not a value/);
    assert.throws(() => encodeKey(new Date() as unknown as Value), /not a JSON value/);
    assert.throws(() => decodeKey('fa'), /not a state key/);
    assert.throws(() => decodeKey('aa'), /trailing/);
  });
});
