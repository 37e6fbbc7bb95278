/**
 * A Bloom filter of strings (the state cache's evicted keys, docs/durable-state.md, "Loading"):
 * `mayHave(s)` is false only for a string never added, so a key it rules out is new and needs no
 * read from the store. A fixed 2^24 bits (2 MB, allocated at the first `add`) and three probes:
 * about 0.4 % false positives after a million keys, 23 % after five million — a false positive
 * only costs a read.
 */
const LOG2_BITS = 24;
const MASK = (1 << LOG2_BITS) - 1;

export class Bloom {
  private bits: Uint32Array | null = null;

  add(s: string): void {
    const bits = (this.bits ??= new Uint32Array(1 << (LOG2_BITS - 5)));
    const [a, b] = hashes(s);
    for (let k = 0; k < 3; k++) {
      const i = (a + k * b) & MASK;
      bits[i >>> 5] |= 1 << (i & 31);
    }
  }

  mayHave(s: string): boolean {
    const bits = this.bits;
    if (bits === null) return false;
    const [a, b] = hashes(s);
    for (let k = 0; k < 3; k++) {
      const i = (a + k * b) & MASK;
      if ((bits[i >>> 5] & (1 << (i & 31))) === 0) return false;
    }
    return true;
  }
}

/** Two 32-bit hashes of the string's code units (FNV-1a, and a multiplicative one; the second odd). */
function hashes(s: string): [number, number] {
  let a = 0x811c9dc5;
  let b = 0x9747b28c;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x5bd1e995);
    b ^= b >>> 15;
  }
  return [a >>> 0, (b | 1) >>> 0];
}
