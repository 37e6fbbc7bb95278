/**
 * A fast structural hash of values: deep-equal values hash alike (object key order, -0/0 and
 * `undefined` properties do not matter). Unlike `canonicalKey` it builds no strings and sorts no
 * keys (object fields are combined by addition, which is order-independent), so hash maps of
 * records stay cheap; equal hashes are confirmed with `valueEquals`.
 */
import type { Value } from './types';
import { isPlainObject } from './value-check';

const floats = new Float64Array(1);
const words = new Uint32Array(floats.buffer);

function mix(h: number): number {
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) | 0;
}

/**
 * Hash of a string from its length and its code units: all of them up to HASHED_CHARS, beyond that
 * the first and the last HASHED_CHARS / 2. (Only the first and last 8 used to count: every ISO
 * timestamp of the same minute of the hour, `2026-01-05T06:00:00.000Z` … `2026-01-28T17:00:00.000Z`,
 * had the same hash, and a map keyed by `[machine, hour]` searched one bucket per machine.)
 */
function hashString(s: string): number {
  const n = s.length;
  let h = n ^ 0x9e3779b9;
  if (n <= HASHED_CHARS) {
    for (let i = 0; i < n; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  } else {
    for (let i = 0; i < HASHED_CHARS / 2; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
    for (let i = n - HASHED_CHARS / 2; i < n; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  }
  return mix(h);
}

/** Characters of a string that its hash reads (see hashString). */
const HASHED_CHARS = 256;

function hashNumber(x: number): number {
  if ((x | 0) === x) return mix(x ^ 0x27d4eb2f); // integers in int32 (and -0, which becomes 0)
  if (!Number.isFinite(x)) throw new TypeError(`${String(x)} is not a value (only finite numbers are)`);
  floats[0] = x;
  return mix(words[0] ^ mix(words[1]));
}

/** A 32-bit hash such that `valueEquals(a, b)` implies `hashValue(a) === hashValue(b)`. */
export function hashValue(v: Value): number {
  switch (typeof v) {
    case 'string':
      return hashString(v);
    case 'number':
      return hashNumber(v);
    case 'boolean':
      return v ? 0x1b873593 : 0x2f6b7a1d;
    case 'object': {
      if (v === null) return 0x3c6ef372;
      if (Array.isArray(v)) {
        let h = 0x5be0cd19 ^ v.length;
        for (let i = 0; i < v.length; i++) h = mix(h + hashValue(v[i]));
        return h;
      }
      if (!isPlainObject(v)) break;
      let sum = 0x6a09e667;
      const o = v as Readonly<Record<string, Value>>;
      for (const k in o) {
        const x = o[k];
        if (x !== undefined) sum = (sum + mix(hashString(k) ^ hashValue(x))) | 0;
      }
      return mix(sum);
    }
  }
  throw new TypeError(`not a JSON value: ${typeof v === 'object' ? 'non-plain object' : String(v)}`);
}
