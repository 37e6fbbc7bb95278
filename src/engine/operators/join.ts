/**
 * `join`: the equi-join of two grouped collections by their group keys, inner or left outer.
 * Each side keeps an index: per key, its records with their multiplicities. A batch joins each
 * side's changes with the other side's records of the same key (Δ(L ⋈ R) = ΔL ⋈ R_old + L_new ⋈
 * ΔR, each pair once), so a change costs work in proportion to the records it matches, never to
 * the size of the inputs. Retractions on either side retract exactly the joined
 * rows they had produced (multiplicities multiply: a row of two records present twice and three
 * times is there six times).
 *
 * Left outer: a left record whose key has no right record (none with a non-zero multiplicity)
 * is output once per its multiplicity as `{key, left, right: null}`. When a key's right side
 * becomes empty or stops being empty, its left records' rows switch between the two forms, which
 * again costs the records of that key.
 *
 * Outputs are `{key, left, right}` records (grouped by the same key), with the greater time of the
 * two records and the greater order key (the later of the two places; the left record's for an
 * unmatched row). A record of either side is (value, order key) where order keys are tracked: the
 * same value at two places joins as two records.
 *
 * Compaction forgets records older than the cutoff from both indexes, silently: the rows they
 * joined into stay where they were written, and later changes are joined with what is retained.
 *
 * State per key and side (what a durable copy must keep to continue): the group key and, per
 * record, its value, order key (null unless tracked), multiplicity and time.
 *
 * ```ts
 * const steps = workerEvents.groupBy((e) => e.order);
 * const machines = machineSpans.groupBy((s) => s.order);
 * steps.join(machines, { kind: 'left' }).ungroup(); // {key: order, left: step, right: span | null}
 * ```
 */
import type { Columns } from '../columns';
import { emptyColumns, pushGrouped } from '../columns';
import type { DurableState, Operator } from '../operator';
import { encodeKey } from '../state-key';
import { RecordList, type ListedRecord } from '../record-list';
import type { JoinRow, Value } from '../types';
import { ValueMap } from '../value-map';
import { compareValues } from '../value-order';

export type JoinKind = 'inner' | 'left';

/** One record of one side. */
interface SideRecord extends ListedRecord {
  mult: number;
  time: number;
  /** This step's change of the record, while the step joins (else null). */
  pending: Change | null;
}

/** The records of one key on one side (identity: value, and order key where tracked). */
interface SideKey {
  readonly key: Value;
  readonly records: RecordList<SideRecord>;
}

/** One side's changes of one key within a batch, consolidated per record. */
interface KeyChange {
  readonly key: Value;
  readonly changes: RecordList<Change>;
  /** The changes with a non-zero diff. */
  list: Change[];
  /** The side's records of the key before the batch (found once). */
  side: SideKey | undefined;
}
interface Change extends ListedRecord {
  diff: number;
  time: number;
  /** The side's record before the change, or null for a record new with it (once applied: the record). */
  existing: SideRecord | null;
}

export class JoinOperator implements Operator {
  readonly inputs: readonly number[];
  private readonly left = new ValueMap<SideKey>();
  private readonly right = new ValueMap<SideKey>();
  private ordered = false;

  constructor(
    readonly name: string,
    leftInput: number,
    rightInput: number,
    private readonly kind: JoinKind,
  ) {
    this.inputs = [leftInput, rightInput];
  }

  planOrder(outputOrdered: boolean): boolean {
    this.ordered = outputOrdered;
    return outputOrdered;
  }

  run([leftBatch, rightBatch]: readonly (Columns | null)[]): Columns | null {
    const dl = leftBatch ? this.changesOf(leftBatch, this.left) : null;
    const dr = rightBatch ? this.changesOf(rightBatch, this.right) : null;
    const out = emptyColumns(true, this.ordered);
    if (dl !== null) for (const cl of dl.values()) this.joinKey(out, cl.key, cl, dr?.get(cl.key));
    if (dr !== null)
      for (const cr of dr.values()) if (dl?.get(cr.key) === undefined) this.joinKey(out, cr.key, undefined, cr);
    if (out.values.length === 0) return null;
    // Rows hold their key and their records, and each pair is emitted once (joinKey): without
    // order keys every row is unique.
    return this.ordered ? out : { ...out, consolidated: true };
  }

  /**
   * One key's changes on either side: for every pair of a left record a and a right record b,
   * L_new[a]·R_new[b] − L_old[a]·R_old[b] — pairs with an unchanged right record are ΔL[a]·R[b],
   * pairs with a changed one are computed over the left records before and after — so each pair
   * is emitted once (no pair comes from two terms). Then (left outer) the unmatched rows.
   */
  private joinKey(out: Columns, key: Value, cl: KeyChange | undefined, cr: KeyChange | undefined): void {
    const leftBefore = cl !== undefined ? cl.side : this.left.get(key);
    const rightBefore = cr !== undefined ? cr.side : this.right.get(key);
    if (cl !== undefined && rightBefore !== undefined) {
      for (const b of rightBefore.records.items) {
        if (b.pending !== null && b.pending.diff !== 0) continue; // a changed b: below
        for (const a of cl.list) this.emit(out, key, a, b, a.diff * b.mult);
      }
    }
    if (cr !== undefined) {
      for (const b of cr.list) {
        const bOld = b.existing?.mult ?? 0;
        const bNew = bOld + b.diff;
        for (const a of leftBefore?.records.items ?? []) {
          const aNew = a.mult + (a.pending?.diff ?? 0);
          this.emit(out, key, a, b, aNew * bNew - a.mult * bOld);
        }
        // Left records new with this batch (none before it).
        for (const c of cl?.list ?? []) if (c.existing === null) this.emit(out, key, c, b, c.diff * bNew);
      }
    }
    if (cl !== undefined) this.apply(this.left, cl);
    if (cr !== undefined) this.apply(this.right, cr);
    if (this.kind === 'left') this.unmatched(out, key, rightBefore === undefined, cl, this.left.get(key));
    for (const c of cl?.changes.items ?? []) if (c.existing !== null) c.existing.pending = null;
    for (const c of cr?.changes.items ?? []) if (c.existing !== null) c.existing.pending = null;
  }

  /**
   * Left outer: a key's unmatched rows `{key, left, right: null}` change with its left records
   * while it has no right record; all of them switch when its right side empties or fills.
   */
  private unmatched(
    out: Columns,
    key: Value,
    unmatchedBefore: boolean,
    cl: KeyChange | undefined,
    leftNow: SideKey | undefined,
  ): void {
    const unmatchedAfter = this.right.get(key) === undefined;
    if (unmatchedBefore && unmatchedAfter) {
      for (const c of cl?.list ?? []) this.emitAlone(out, key, c, c.diff);
    } else if (!unmatchedBefore && unmatchedAfter) {
      for (const r of leftNow?.records.items ?? []) this.emitAlone(out, key, r, r.mult);
    } else if (unmatchedBefore && !unmatchedAfter) {
      // Retract the rows of the left records as they were before this batch's changes.
      for (const r of leftNow?.records.items ?? []) this.emitAlone(out, key, r, -(r.mult - (r.pending?.diff ?? 0)));
      // …including those the changes took to zero (no longer in the index).
      for (const c of cl?.list ?? [])
        if (c.existing !== null && c.existing.mult === 0) this.emitAlone(out, key, c, c.diff);
    }
  }

  /**
   * The batch's updates per key, consolidated per record, each linked with the side's record it
   * changes (both ways: the links stand in for look-ups while the key is joined).
   */
  private changesOf(batch: Columns, side: ValueMap<SideKey>): ValueMap<KeyChange> {
    const keys = batch.keys!;
    const orders = this.ordered ? batch.orders : null;
    const byKey = new ValueMap<KeyChange>();
    for (let i = 0; i < keys.length; i++) {
      const diff = batch.diffs[i];
      if (diff === 0) continue;
      let k = byKey.get(keys[i]);
      if (k === undefined) {
        k = { key: keys[i], changes: new RecordList(this.ordered), list: [], side: undefined };
        byKey.set(keys[i], k);
      }
      const value = batch.values[i];
      const order = orders === null ? null : orders[i];
      const present = k.changes.find(value, order);
      if (present === undefined) k.changes.add({ value, order, diff, time: batch.times[i], at: 0, existing: null });
      else {
        present.diff += diff;
        if (batch.times[i] > present.time) present.time = batch.times[i];
      }
    }
    // Records whose updates cancel out change nothing (and join with nothing).
    for (const k of byKey.values()) {
      const all = k.changes.items;
      let cancelled = false;
      for (const c of all) if (c.diff === 0) cancelled = true;
      k.list = cancelled ? all.filter((c) => c.diff !== 0) : all;
      k.side = side.get(k.key);
      if (k.side === undefined) continue;
      for (const c of all) {
        const r = k.side.records.find(c.value, c.order) ?? null;
        c.existing = r;
        if (r !== null) r.pending = c;
      }
    }
    return byKey;
  }

  /** Adds a key's changes to one side's index. */
  private apply(side: ValueMap<SideKey>, c: KeyChange): void {
    if (c.list.length === 0) return;
    let s = c.side;
    if (s === undefined) {
      s = { key: c.key, records: new RecordList(this.ordered) };
      side.set(c.key, s);
    }
    for (const ch of c.list) {
      const r = ch.existing;
      if (r === null) {
        // Linked like the others until the key is joined (a new record's mult is all change).
        const fresh: SideRecord = {
          value: ch.value,
          order: ch.order,
          mult: ch.diff,
          time: ch.time,
          at: 0,
          pending: ch,
        };
        s.records.add(fresh);
        ch.existing = fresh;
        continue;
      }
      r.mult += ch.diff;
      if (ch.time > r.time) r.time = ch.time;
      if (r.mult === 0) s.records.remove(r);
    }
    if (s.records.length === 0) side.delete(c.key);
  }

  private emit(
    out: Columns,
    key: Value,
    a: { value: Value; order: Value; time: number },
    b: { value: Value; order: Value; time: number },
    diff: number,
  ): void {
    if (diff === 0) return;
    const row: JoinRow = { key, left: a.value, right: b.value };
    const order = out.orders === null ? null : later(a.order, b.order);
    pushGrouped(out, key, row, diff, a.time > b.time ? a.time : b.time, order);
  }

  private emitAlone(out: Columns, key: Value, a: { value: Value; order: Value; time: number }, diff: number): void {
    if (diff === 0) return;
    pushGrouped(out, key, { key, left: a.value, right: null } satisfies JoinRow, diff, a.time, a.order);
  }

  compact(cutoff: number): void {
    for (const side of [this.left, this.right]) {
      const emptied: Value[] = [];
      side.forEach((s, key) => {
        if (compactSide(s, cutoff)) emptied.push(key);
      });
      for (const key of emptied) side.delete(key);
    }
  }

  /**
   * One entry per (key, side), key = group key ⧺ `l` or `r`: the side's records of the key as
   * `[value, order, multiplicity, time]`; its time is the greatest record time. A change of
   * either side's key reads both sides of it.
   */
  readonly durable: DurableState = {
    timed: true,
    touched: (inputs, into) => {
      for (const batch of inputs) {
        if (batch === null) continue;
        const keys = batch.keys!;
        for (let i = 0; i < keys.length; i++) {
          const k = encodeKey(keys[i]);
          into.set(k + 'l', [0, keys[i]]);
          into.set(k + 'r', [1, keys[i]]);
        }
      }
    },
    load: (unit, data, cutoff) => {
      const [side, key] = unit as [number, Value];
      const s: SideKey = { key, records: new RecordList(this.ordered) };
      for (const [value, order, mult, time] of data as [Value, Value, number, number][])
        s.records.add({ value, order, mult, time, at: 0, pending: null });
      if (cutoff !== null && compactSide(s, cutoff)) return;
      (side === 0 ? this.left : this.right).set(key, s);
    },
    save: (unit) => {
      const [side, key] = unit as [number, Value];
      const s = (side === 0 ? this.left : this.right).get(key);
      if (s === undefined) return null;
      let t = -Infinity;
      const records = s.records.items.map((r) => {
        if (r.time > t) t = r.time;
        return [r.value, r.order, r.mult, r.time];
      });
      return { data: records, t };
    },
    evict: (unit) => {
      const [side, key] = unit as [number, Value];
      (side === 0 ? this.left : this.right).delete(key);
    },
  };

  stateSize(): number {
    let n = 0;
    for (const side of [this.left, this.right]) for (const s of side.values()) n += s.records.length;
    return n;
  }
}

/** Forgets the side's records of a key older than `cutoff`; true when none is left. */
function compactSide(s: SideKey, cutoff: number): boolean {
  const old = s.records.items.filter((r) => r.time < cutoff);
  for (const r of old) s.records.remove(r);
  return s.records.length === 0;
}

/** The greater of two order keys (a joined row happens where the later of its records does). */
function later(a: Value, b: Value): Value {
  return compareValues(a, b) >= 0 ? a : b;
}
