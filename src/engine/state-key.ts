/**
 * The order-preserving text encoding of values for the keys of durable operator state
 * (docs/durable-state.md, "Key encoding"). `encodeKey(a) < encodeKey(b)`, compared as strings
 * (byte-wise: every character is printable ASCII, 0x21–0x7e), exactly when
 * `compareValues(a, b) < 0`; the encoding is injective (up to the identity of values: -0 is 0)
 * and prefix-free, so the concatenation of encodings orders like the tuple of the values: a
 * group's entries share its key's encoding as a prefix, and a range of keys is a range of values.
 *
 * Tags follow the ranks of `compareValues`: `a` null, `b` false, `c` true, `d` number (16 hex
 * digits of the IEEE-754 bits: the sign bit flipped for positive numbers, every bit for negative
 * ones), `e` string (code units 0x23–0x7d as themselves, below as `"` + 2 hex digits, above as
 * `~` + 4 hex digits; then `!`), `f` array (the elements, then `!`), `g` object (its keys, sorted
 * by code unit, as strings, then `!`, then the values in key order, then `!`: key lists first,
 * then values, as `compareValues` orders objects). `!` is below every tag and every encoded code
 * unit, so a shorter string, array or key list sorts first.
 */
import type { Value } from './types';
import { isPlainObject } from './value-check';
import { sortedDefinedKeys } from './value-order';

const HEX = '0123456789abcdef';
const view = new DataView(new ArrayBuffer(8));

export function encodeKey(v: Value): string {
  return encode(v, '');
}

function encode(v: Value, out: string): string {
  if (v === null) return out + 'a';
  switch (typeof v) {
    case 'boolean':
      return out + (v ? 'c' : 'b');
    case 'number':
      return out + 'd' + encodeNumber(v);
    case 'string':
      return encodeString(v, out + 'e');
    case 'object': {
      if (Array.isArray(v)) {
        out += 'f';
        for (let i = 0; i < v.length; i++) out = encode(v[i] as Value, out);
        return out + '!';
      }
      if (isPlainObject(v)) {
        const o = v as Readonly<Record<string, Value>>;
        const keys = sortedDefinedKeys(o);
        out += 'g';
        for (const k of keys) out = encodeString(k, out + 'e');
        out += '!';
        for (const k of keys) out = encode(o[k] as Value, out);
        return out + '!';
      }
    }
  }
  throw new TypeError(`not a JSON value: ${typeof v === 'object' ? 'non-plain object' : String(v)}`);
}

function encodeNumber(n: number): string {
  if (!Number.isFinite(n)) throw new TypeError(`${String(n)} is not a value (only finite numbers are)`);
  view.setFloat64(0, n === 0 ? 0 : n); // -0 is 0
  let hi = view.getUint32(0);
  let lo = view.getUint32(4);
  if (hi >>> 31 === 0) hi = (hi | 0x80000000) >>> 0;
  else {
    hi = ~hi >>> 0;
    lo = ~lo >>> 0;
  }
  return hex(hi, 8) + hex(lo, 8);
}

function hex(n: number, digits: number): string {
  let s = '';
  for (let i = digits - 1; i >= 0; i--) s += HEX[(n >>> (i * 4)) & 15];
  return s;
}

function encodeString(s: string, out: string): string {
  let from = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x23 && c <= 0x7d) continue;
    out += s.slice(from, i) + (c < 0x23 ? '"' + hex(c, 2) : '~' + hex(c, 4));
    from = i + 1;
  }
  return out + s.slice(from) + '!';
}

/** The value of an encoding (`encodeKey`'s inverse); throws a TypeError for a text that is not one. */
export function decodeKey(text: string): Value {
  const r = new Reader(text);
  const v = r.value();
  if (r.at !== text.length) throw new TypeError(`not a state key: trailing text at ${r.at}`);
  return v;
}

/** Decodes the values encoded one after another in `text` (a composite key). */
export function decodeKeys(text: string): Value[] {
  const r = new Reader(text);
  const out: Value[] = [];
  while (r.at < text.length) out.push(r.value());
  return out;
}

class Reader {
  at = 0;
  constructor(private readonly text: string) {}

  private fail(): never {
    throw new TypeError(`not a state key: ${JSON.stringify(this.text.slice(0, 80))} at ${this.at}`);
  }

  value(): Value {
    const tag = this.text[this.at++];
    switch (tag) {
      case 'a':
        return null;
      case 'b':
        return false;
      case 'c':
        return true;
      case 'd':
        return this.number();
      case 'e':
        return this.string();
      case 'f': {
        const items: Value[] = [];
        while (this.text[this.at] !== '!') {
          if (this.at >= this.text.length) this.fail();
          items.push(this.value());
        }
        this.at++;
        return items;
      }
      case 'g': {
        const keys: string[] = [];
        while (this.text[this.at] !== '!') {
          if (this.text[this.at++] !== 'e') this.fail();
          keys.push(this.string());
        }
        this.at++;
        const o: Record<string, Value> = {};
        for (const k of keys) o[k] = this.value();
        if (this.text[this.at++] !== '!') this.fail();
        return o;
      }
    }
    return this.fail();
  }

  private number(): number {
    const digits = this.text.slice(this.at, this.at + 16);
    if (!/^[0-9a-f]{16}$/.test(digits)) this.fail();
    this.at += 16;
    let hi = parseInt(digits.slice(0, 8), 16);
    let lo = parseInt(digits.slice(8), 16);
    if (hi >>> 31 === 1) hi = (hi & 0x7fffffff) >>> 0;
    else {
      hi = ~hi >>> 0;
      lo = ~lo >>> 0;
    }
    view.setUint32(0, hi);
    view.setUint32(4, lo);
    return view.getFloat64(0);
  }

  private string(): string {
    let s = '';
    for (;;) {
      const ch = this.text[this.at];
      if (ch === undefined) this.fail();
      if (ch === '!') {
        this.at++;
        return s;
      }
      if (ch === '"' || ch === '~') {
        const n = ch === '"' ? 2 : 4;
        const digits = this.text.slice(this.at + 1, this.at + 1 + n);
        if (digits.length !== n || !/^[0-9a-f]+$/.test(digits)) this.fail();
        s += String.fromCharCode(parseInt(digits, 16));
        this.at += 1 + n;
      } else {
        s += ch;
        this.at++;
      }
    }
  }
}
