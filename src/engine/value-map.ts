/**
 * A map keyed by values with structural identity: primitives are used as keys directly (a JS Map
 * already treats -0 and 0 alike), arrays and objects by `hashValue`, confirmed with `valueEquals`.
 * Cheap for the common case of string or number group keys, and no strings are built for records.
 */
import type { Value } from './types';
import { hashValue } from './value-hash';
import { valueEquals } from './value-identity';

type Primitive = null | boolean | number | string;

interface Slot<V> {
  readonly key: Value;
  value: V;
}

/**
 * A hash's entry: its one slot (almost always), or the slots of colliding keys (an array, two or
 * more). No array per key: with many composite keys (e.g. `[machine, hour]` groups) each would
 * outlive the young generation for as long as its group lives.
 */
type Bucket<V> = Slot<V> | Slot<V>[];

export class ValueMap<V> {
  private readonly primitives = new Map<Primitive, V>();
  /** Hash → the slot(s) of the composite keys with that hash. */
  private readonly composites = new Map<number, Bucket<V>>();
  private compositeCount = 0;

  get size(): number {
    return this.primitives.size + this.compositeCount;
  }

  get(key: Value): V | undefined {
    if (typeof key !== 'object' || key === null) return this.primitives.get(checkPrimitive(key));
    const bucket = this.composites.get(hashValue(key));
    if (bucket === undefined) return undefined;
    if (!Array.isArray(bucket)) return valueEquals(bucket.key, key) ? bucket.value : undefined;
    for (const slot of bucket) if (valueEquals(slot.key, key)) return slot.value;
    return undefined;
  }

  set(key: Value, value: V): void {
    if (typeof key !== 'object' || key === null) {
      this.primitives.set(checkPrimitive(key), value);
      return;
    }
    const present = this.addComposite(key, value);
    if (present !== undefined) present.value = value;
  }

  /** Adds `value` under `key` unless the key is present: returns the present value, or undefined after adding (one hash, not two). */
  addIfAbsent(key: Value, value: V): V | undefined {
    if (typeof key !== 'object' || key === null) {
      const k = checkPrimitive(key);
      const present = this.primitives.get(k);
      if (present === undefined) this.primitives.set(k, value); // (values are never undefined)
      return present;
    }
    return this.addComposite(key, value)?.value;
  }

  /** The slot of a composite key if present; otherwise adds one with `value` and returns undefined. */
  private addComposite(key: Value, value: V): Slot<V> | undefined {
    const h = hashValue(key);
    const bucket = this.composites.get(h);
    if (bucket === undefined) this.composites.set(h, { key, value });
    else if (!Array.isArray(bucket)) {
      if (valueEquals(bucket.key, key)) return bucket;
      this.composites.set(h, [bucket, { key, value }]);
    } else {
      for (const slot of bucket) if (valueEquals(slot.key, key)) return slot;
      bucket.push({ key, value });
    }
    this.compositeCount++;
    return undefined;
  }

  delete(key: Value): boolean {
    if (typeof key !== 'object' || key === null) return this.primitives.delete(key);
    const h = hashValue(key);
    const bucket = this.composites.get(h);
    if (bucket === undefined) return false;
    if (!Array.isArray(bucket)) {
      if (!valueEquals(bucket.key, key)) return false;
      this.composites.delete(h);
      this.compositeCount--;
      return true;
    }
    for (let i = 0; i < bucket.length; i++) {
      if (!valueEquals(bucket[i].key, key)) continue;
      bucket.splice(i, 1);
      // NB: a bucket array always holds two or more slots (addComposite makes it with two).
      if (bucket.length === 1) this.composites.set(h, bucket[0]);
      this.compositeCount--;
      return true;
    }
    return false;
  }

  /** Visits entries, primitives first, each part in insertion order of its hash bucket. */
  forEach(fn: (value: V, key: Value) => void): void {
    this.primitives.forEach(fn);
    for (const bucket of this.composites.values()) {
      if (!Array.isArray(bucket)) fn(bucket.value, bucket.key);
      else for (const slot of bucket) fn(slot.value, slot.key);
    }
  }

  *values(): IterableIterator<V> {
    yield* this.primitives.values();
    for (const bucket of this.composites.values()) {
      if (!Array.isArray(bucket)) yield bucket.value;
      else for (const slot of bucket) yield slot.value;
    }
  }

  clear(): void {
    this.primitives.clear();
    this.composites.clear();
    this.compositeCount = 0;
  }
}

function checkPrimitive(key: Primitive): Primitive {
  if (typeof key === 'number' && !Number.isFinite(key))
    throw new TypeError(`${String(key)} is not a value (only finite numbers are)`);
  if (key === undefined) throw new TypeError('undefined is not a value');
  return key;
}
