/**
 * Reading and writing offset maps by stream name. An `OffsetMap` is a plain object (it is stored
 * and sent as JSON), and a stream may have any name, also that of an Object.prototype property:
 * `map[stream]` would find `toString` or `constructor` on the prototype, `stream in map` likewise,
 * and `map['__proto__'] = 5` sets no property at all. So:
 *
 * - look-ups go through `offsetOf` (own properties only) and writes through `setOffset` (an own
 *   data property for every name, `__proto__` included);
 * - hot loops (per event) work on an `OffsetTable`, a copy without prototype, where plain
 *   `t[stream]` reads and writes are exact and cost no more than on a plain object (`offsetOf`
 *   costs a call of hasOwnProperty each); `toOffsetMap` turns it back into a plain object.
 *
 * Safe as they are: `Object.keys`/`Object.entries` (own properties), reading `map[key]` for a key
 * those returned, `{ ...map }`, and `JSON.parse`/`JSON.stringify` (they create and list an own
 * `__proto__` property like any other).
 */
import type { OffsetMap } from './types';

const hasOwn = Object.prototype.hasOwnProperty;

/** The offset `map` names for `stream`, or undefined when it names none ("nothing of it yet"). */
export function offsetOf(map: OffsetMap, stream: string): number | undefined {
  return hasOwn.call(map, stream) ? map[stream] : undefined;
}

/** Sets `map[stream] = offset` as an own enumerable property, also for `__proto__`. */
export function setOffset(map: Record<string, number>, stream: string, offset: number): void {
  if (stream === '__proto__')
    Object.defineProperty(map, stream, { value: offset, writable: true, enumerable: true, configurable: true });
  else map[stream] = offset;
}

declare const withoutPrototype: unique symbol;

/**
 * A mutable offset map without a prototype, for code that looks streams up per event: there
 * `t[stream]` is the stream's offset or undefined, and `t[stream] = offset` sets an own property,
 * for every name. Internal only: hand out `toOffsetMap(t)`. (The brand keeps plain objects out.)
 */
export type OffsetTable = { [stream: string]: number | undefined } & { readonly [withoutPrototype]: true };

/** A new table holding the offsets of `map` (own properties only). */
export function offsetTable(map: OffsetMap = {}): OffsetTable {
  const table = Object.create(null) as OffsetTable;
  for (const stream of Object.keys(map)) table[stream] = map[stream];
  return table;
}

/** The table's offsets as a plain object (spread defines an own property for every name). */
export function toOffsetMap(table: OffsetTable): Record<string, number> {
  return { ...table } as Record<string, number>;
}
