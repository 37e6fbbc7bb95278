/**
 * A map keyed by values with structural identity: primitives are used as keys directly (a JS Map
 * already treats -0 and 0 alike), arrays and objects by their canonical key. Cheap for the common
 * case of string or number group keys, where no canonical key is built at all.
 */
import type { Value } from './types';
import { canonicalKey } from './value-identity';

type Primitive = null | boolean | number | string;

export class ValueMap<V> {
  private readonly primitives = new Map<Primitive, V>();
  private readonly composites = new Map<string, { readonly key: Value; value: V }>();

  get size(): number {
    return this.primitives.size + this.composites.size;
  }

  get(key: Value): V | undefined {
    if (typeof key !== 'object' || key === null) return this.primitives.get(checkPrimitive(key));
    return this.composites.get(canonicalKey(key))?.value;
  }

  set(key: Value, value: V): void {
    if (typeof key !== 'object' || key === null) this.primitives.set(checkPrimitive(key), value);
    else {
      const ck = canonicalKey(key);
      const slot = this.composites.get(ck);
      if (slot) slot.value = value;
      else this.composites.set(ck, { key, value });
    }
  }

  delete(key: Value): boolean {
    if (typeof key !== 'object' || key === null) return this.primitives.delete(key);
    return this.composites.delete(canonicalKey(key));
  }

  /** Visits entries, primitives first, each part in insertion order. */
  forEach(fn: (value: V, key: Value) => void): void {
    this.primitives.forEach(fn);
    this.composites.forEach((slot) => fn(slot.value, slot.key));
  }

  *values(): IterableIterator<V> {
    yield* this.primitives.values();
    for (const slot of this.composites.values()) yield slot.value;
  }

  clear(): void {
    this.primitives.clear();
    this.composites.clear();
  }
}

function checkPrimitive(key: Primitive): Primitive {
  if (typeof key === 'number' && !Number.isFinite(key)) throw new TypeError(`${String(key)} is not a value (only finite numbers are)`);
  if (key === undefined) throw new TypeError('undefined is not a value');
  return key;
}
