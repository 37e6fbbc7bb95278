/**
 * A small set of records identified by (value, order key), kept as a list for iteration and
 * searched by structural identity: by scanning while the list is short (comparing records costs
 * less than hashing them, and a retraction usually carries the very object it retracts), through
 * a hash map once it has grown. Removal moves the last record into the gap.
 */
import type { Value } from './types';
import { valueEquals } from './value-identity';
import { ValueMap } from './value-map';

export interface ListedRecord {
  readonly value: Value;
  readonly order: Value;
  /** Index in the list (maintained by RecordList). */
  at: number;
}

/** Beyond this many records the list keeps a hash map beside it. */
export const SCAN_LIMIT = 16;

export class RecordList<R extends ListedRecord> {
  readonly items: R[] = [];
  private byId: ValueMap<R> | null = null;

  /** `ordered`: order keys are part of the identity (else only values are). */
  constructor(private readonly ordered: boolean) {}

  get length(): number {
    return this.items.length;
  }

  find(value: Value, order: Value): R | undefined {
    if (this.byId !== null) return this.byId.get(this.idOf(value, order));
    for (const r of this.items) {
      if (r.value !== value && !valueEquals(r.value, value)) continue;
      if (!this.ordered || r.order === order || valueEquals(r.order, order)) return r;
    }
    return undefined;
  }

  /** Adds a record that `find` does not know. */
  add(r: R): void {
    r.at = this.items.length;
    this.items.push(r);
    if (this.byId !== null) this.byId.set(this.idOf(r.value, r.order), r);
    else if (this.items.length > SCAN_LIMIT) {
      this.byId = new ValueMap();
      for (const x of this.items) this.byId.set(this.idOf(x.value, x.order), x);
    }
  }

  remove(r: R): void {
    this.byId?.delete(this.idOf(r.value, r.order));
    const last = this.items.pop()!;
    if (last === r) return;
    this.items[r.at] = last;
    last.at = r.at;
  }

  private idOf(value: Value, order: Value): Value {
    return this.ordered ? [value, order] : value;
  }
}
