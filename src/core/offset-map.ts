/**
 * Offset maps: `{stream: highest offset}`, what a source has, what a sink's table reflects, what
 * a commit stores. Sources, sinks and the dataflow all use them, so they live here, below all three.
 *
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

/** `{streamId: highest offset}`; a missing stream means "nothing of it yet" (Actyx offsets start at 0). */
export type OffsetMap = Readonly<Record<string, number>>;

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

/** The table's offsets as a plain object. */
export function toOffsetMap(table: OffsetTable): Record<string, number> {
  return copyOffsets(table as unknown as OffsetMap);
}

/**
 * A copy of `map` as a plain object, with an own property for every stream (`__proto__` included).
 * A loop over the keys: spreading an object of many streams (a device per stream: 100,000 machines)
 * cost 2–3× as much, and the dataflow copies its offsets per step and the sinks per commit.
 */
export function copyOffsets(map: OffsetMap): Record<string, number> {
  const out: Record<string, number> = {};
  const streams = Object.keys(map);
  for (let i = 0; i < streams.length; i++) {
    const s = streams[i] as string;
    setOffset(out, s, map[s] as number);
  }
  return out;
}

/**
 * How an offset map came about from an earlier one: `base` with the streams of `raised` raised to
 * the offsets given there (every other stream as in `base`; none removed). The dataflow hands it
 * with each commit's offsets (OffsetTracker.offsetsAfter: `base` is the previous commit's), which
 * are frozen and never change, so that a sink that stored `base` itself (the same object) writes
 * only `raised` instead of comparing every stream: with a stream per device, the maps hold many
 * streams and a commit raises few of them.
 *
 * @example
 *   // base {a: 3, b: 7}, a step reads a/4 and c/0:
 *   const delta: OffsetDelta = { base, raised: new Map([['a', 4], ['c', 0]]) }; // offsets {a: 4, b: 7, c: 0}
 */
export interface OffsetDelta {
  /** The earlier snapshot (frozen); null when there is none to refer to. */
  readonly base: OffsetMap | null;
  /** The streams raised since `base`, with their offsets now. */
  readonly raised: ReadonlyMap<string, number>;
}

/** A stream that one offset map (`have`) does not reach up to the offset another one needs. */
export interface ShortStream {
  readonly stream: string;
  readonly need: number;
  /** The offset `have` names, or undefined when it names none. */
  readonly have: number | undefined;
}

/** The streams of `need` that `have` does not reach (an empty list when `have` covers `need`). */
export function shortStreams(need: OffsetMap, have: OffsetMap): ShortStream[] {
  const out: ShortStream[] = [];
  for (const stream of Object.keys(need)) {
    const n = need[stream] as number;
    const h = offsetOf(have, stream);
    if (h === undefined || h < n) out.push({ stream, need: n, have: h });
  }
  return out;
}

/** `s up to 12 (has 9), t up to 3 (has none), and 4 more streams`, for messages. */
export function describeShortStreams(short: readonly ShortStream[], limit = 3): string {
  const named = short
    .slice(0, limit)
    .map((s) => `${s.stream} up to ${s.need} (has ${s.have === undefined ? 'none' : s.have})`);
  const more = short.length - limit;
  return named.join(', ') + (more > 0 ? `, and ${more} more stream${more === 1 ? '' : 's'}` : '');
}

/** True when `a` covers every event `b` covers (per stream a ≥ b). */
export function covers(a: OffsetMap, b: OffsetMap): boolean {
  for (const stream of Object.keys(b)) {
    const ob = b[stream];
    if (ob === undefined) continue;
    const oa = offsetOf(a, stream);
    if (oa === undefined || oa < ob) return false;
  }
  return true;
}

export function offsetsEqual(a: OffsetMap, b: OffsetMap): boolean {
  return covers(a, b) && covers(b, a);
}

/** Per-stream maximum of two offset maps. */
export function mergeOffsets(a: OffsetMap, b: OffsetMap): OffsetMap {
  const out: Record<string, number> = { ...a };
  for (const stream of Object.keys(b)) {
    const o = b[stream];
    if (o === undefined) continue;
    const cur = offsetOf(out, stream);
    if (cur === undefined || cur < o) setOffset(out, stream, o);
  }
  return out;
}

/** Number of events `upper` covers that `lower` does not (offsets count every event of a stream). */
export function eventsBetween(lower: OffsetMap, upper: OffsetMap): number {
  let n = 0;
  for (const stream of Object.keys(upper)) {
    const u = upper[stream];
    if (u === undefined) continue;
    const l = offsetOf(lower, stream) ?? -1;
    if (u > l) n += u - l;
  }
  return n;
}

/**
 * `eventsBetween(lower, upper)` for `lower` = `base` with the streams of `raised` raised (an
 * OffsetDelta), given `count` = `eventsBetween(base, upper)`: counted over the raised streams
 * alone, not over every stream of `upper`.
 *
 * @example
 *   // base {a: 1}, upper {a: 5, b: 2}: 4 + 3 = 7 events between; a raised to 3: 2 + 3 = 5
 *   eventsBetweenRaised(7, { a: 1 }, new Map([['a', 3]]), { a: 5, b: 2 }); // 5
 */
export function eventsBetweenRaised(
  count: number,
  base: OffsetMap,
  raised: ReadonlyMap<string, number>,
  upper: OffsetMap,
): number {
  let n = count;
  for (const [stream, offset] of raised) {
    const u = offsetOf(upper, stream);
    if (u === undefined) continue; // a stream `upper` does not name counts nothing, before or after
    const before = offsetOf(base, stream) ?? -1;
    n -= Math.max(0, u - before) - Math.max(0, u - offset);
  }
  return n;
}

/** Sum of (offset + 1) over streams: a total order consistent with `covers`, for sorting. */
export function offsetsWeight(a: OffsetMap): number {
  return eventsBetween({}, a);
}

/**
 * What changed from `before` to `next`: the streams whose offset is new or different, and the
 * streams of `before` that `next` no longer has.
 *
 * @example offsetDiff({ a: 1, b: 2 }, { a: 1, b: 3, c: 0 }) // { changed: [['b', 3], ['c', 0]], removed: [] }
 */
export function offsetDiff(before: OffsetMap, next: OffsetMap): { changed: [string, number][]; removed: string[] } {
  // Loops, not entries/filter: with a stream per device the maps hold many streams, per table and commit.
  const changed: [string, number][] = [];
  const streams = Object.keys(next);
  let added = 0;
  for (let i = 0; i < streams.length; i++) {
    const s = streams[i] as string;
    const o = next[s] as number;
    const b = offsetOf(before, s);
    if (b === o) continue;
    changed.push([s, o]);
    if (b === undefined) added++;
  }
  // Streams of `before` missing now: as many as `before` has beyond the streams both share.
  const beforeStreams = Object.keys(before);
  const removed =
    beforeStreams.length === streams.length - added ? [] : beforeStreams.filter((s) => offsetOf(next, s) === undefined);
  return { changed, removed };
}
