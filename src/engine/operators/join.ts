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
import type { DurableState, Operator } from '../operator';
import { encodeKey } from '../state-key';
import type { JoinRow, Value } from '../types';
import { valueEquals } from '../value-identity';
import { ValueMap } from '../value-map';
import { compareValues } from '../value-order';

export type JoinKind = 'inner' | 'left';

/**
 * The records of one key on one side, flat: per record `value, multiplicity, time` and, where order
 * keys are tracked, its order key (a stride of 3 or 4; `MULT`, `TIME`, `ORDER` are offsets within
 * a record). A record is addressed by the offset of its first slot. Never empty: a side drops the
 * key when its last record goes.
 *
 * NB: one array per key and side instead of an object per record: the join's state is what stays
 * alive (every record until it is retracted or compacted), and fewer, flatter objects cost the
 * garbage collector less to copy and mark.
 */
type Records = Value[];
const MULT = 1;
const TIME = 2;
const ORDER = 3;

/**
 * Beyond this many records a key's side is also indexed by record identity (found by hashing);
 * up to it, a search scans (comparing records costs less than hashing them, and a retraction
 * usually carries the very object it retracts). Batch changes of one key are consolidated the same way.
 */
export const SCAN_LIMIT = 16;

/**
 * One side's changes within a batch, consolidated per record and grouped by key, as columns that
 * are reused from batch to batch. Change `c` of group `g` (`from[g] <= c < to[g]`) is the record of
 * batch update `at[c]` (its first update in the batch) with the summed `diff[c]` (never 0), the
 * greatest `time[c]` of its updates, and `existing[c]`: the offset of the side's record it changes,
 * or -1 for a record new with this batch.
 */
class SideChanges {
  values: Value[] = [];
  orders: Value[] | null = null;
  /** Per batch update: its group (-1: a zero diff). */
  group: number[] = [];
  at: number[] = [];
  diff: number[] = [];
  time: number[] = [];
  existing: number[] = [];
  from: number[] = [];
  to: number[] = [];
  /** Per group: the side's records of the key before the batch. */
  records: (Records | undefined)[] = [];
  /** Per record offset of the key being joined: 1 + the change of that record, or 0 (reset after each key). */
  flags = new Int32Array(64);
}

const NONE: Value[] = [];
/** At most this many output rows are allocated ahead (larger arrays made by `new Array(n)` may not be fast arrays). */
const PREALLOCATED_ROWS = 8192;

export class JoinOperator implements Operator {
  readonly inputs: readonly number[];
  private readonly left = new ValueMap<Records>();
  private readonly right = new ValueMap<Records>();
  /** The identity index of each key's side longer than SCAN_LIMIT records (and only of those), by its records array. */
  private readonly indexes = new Map<Records, ValueMap<number>>();
  private ordered = false;
  private stride = 3;
  /** The batch's keys (group numbers, shared by both sides) while a batch is joined. */
  private readonly groups = new ValueMap<number>();
  private readonly groupKeys: Value[] = [];
  private readonly dl = new SideChanges();
  private readonly dr = new SideChanges();
  private readonly removals: number[] = [];
  /** Rows emitted so far in this batch (written by position into the output columns). */
  private rows = 0;
  /** Rows of the previous batch: the next batch's columns are allocated for about as many. */
  private expected = 0;

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
    this.stride = outputOrdered ? 4 : 3;
    return outputOrdered;
  }

  run([leftBatch, rightBatch]: readonly (Columns | null)[]): Columns | null {
    const keys = this.groupKeys;
    if (leftBatch) this.assignGroups(leftBatch, this.dl);
    if (rightBatch) this.assignGroups(rightBatch, this.dr);
    const n = keys.length;
    const { dl, dr } = this;
    for (let g = 0; g < n; g++) {
      dl.records[g] = this.left.get(keys[g]);
      dr.records[g] = this.right.get(keys[g]);
    }
    this.gather(leftBatch, dl, n);
    this.gather(rightBatch, dr, n);
    this.rows = 0;
    const out = this.outputColumns();
    try {
      for (let g = 0; g < n; g++) this.joinKey(out, g);
    } finally {
      // Nothing of the batch stays referenced.
      this.groups.clear();
      keys.length = 0;
      dl.records.length = 0;
      dr.records.length = 0;
      dl.values = dr.values = NONE;
      dl.orders = dr.orders = null;
    }
    const rows = this.rows;
    this.expected = rows;
    if (rows < out.values.length) {
      out.keys!.length = out.values.length = out.diffs.length = out.times.length = rows;
      if (out.orders !== null) out.orders.length = rows;
    }
    if (rows === 0) return null;
    // Rows hold their key and their records, and each pair is emitted once (joinKey): without
    // order keys every row is unique.
    return this.ordered ? out : { ...out, consolidated: true };
  }

  /**
   * Output columns allocated for about as many rows as the previous batch had (NB: rows are written
   * by position, `rows` counts them, and `run` trims the columns to it; a batch with more rows
   * appends). Growing arrays by pushing from empty allocated a multiple of the rows again as garbage.
   */
  private outputColumns(): Columns {
    const n = Math.min(PREALLOCATED_ROWS, this.expected + (this.expected >> 2));
    return {
      values: new Array<Value>(n),
      diffs: new Array<number>(n),
      times: new Array<number>(n),
      keys: new Array<Value>(n),
      orders: this.ordered ? new Array<Value>(n) : null,
    };
  }

  /** Numbers the batch's keys (shared with the other side's) and notes each update's group. */
  private assignGroups(batch: Columns, d: SideChanges): void {
    const keys = batch.keys!;
    const diffs = batch.diffs;
    const group = d.group;
    for (let k = group.length; k < keys.length; k++) group.push(-1);
    for (let i = 0; i < keys.length; i++) {
      if (diffs[i] === 0) {
        group[i] = -1;
        continue;
      }
      const next = this.groupKeys.length;
      const g = this.groups.addIfAbsent(keys[i], next);
      if (g === undefined) {
        this.groupKeys.push(keys[i]);
        group[i] = next;
      } else group[i] = g;
    }
  }

  /**
   * One side's changes per group (a counting sort by group, stable), consolidated per record
   * (cancelled ones dropped), each with the offset of the side's record it changes.
   */
  private gather(batch: Columns | null, d: SideChanges, groups: number): void {
    const { from, to } = d;
    for (let g = 0; g < groups; g++) from[g] = to[g] = 0;
    if (batch === null) return;
    const n = batch.values.length;
    const { group, at, diff, time, existing } = d;
    // NB: written by position below: as long as the batch first (no holes).
    for (let k = at.length; k < n; k++) (at.push(0), diff.push(0), time.push(0), existing.push(0));
    const values = (d.values = batch.values);
    const orders = (d.orders = this.ordered ? batch.orders : null);
    const diffs = batch.diffs;
    const times = batch.times;
    // Counting sort of the updates by group: to[g] counts, then from[g] is where g starts.
    for (let i = 0; i < n; i++) if (group[i] >= 0) to[group[i]]++;
    let start = 0;
    for (let g = 0; g < groups; g++) {
      from[g] = start;
      start += to[g];
      to[g] = from[g];
    }
    for (let i = 0; i < n; i++) {
      const g = group[i];
      if (g >= 0) at[to[g]++] = i;
    }
    for (let g = 0; g < groups; g++) {
      const f = from[g];
      const t = to[g];
      if (f === t) continue;
      // Consolidate in place: at[f..w) are the distinct records so far.
      let w = f;
      const byId = t - f > SCAN_LIMIT ? new ValueMap<number>() : null;
      for (let p = f; p < t; p++) {
        const i = at[p];
        const v = values[i];
        const o = orders === null ? null : orders[i];
        let q = -1;
        if (byId !== null) q = byId.addIfAbsent(orders === null ? v : [v, o], w) ?? -1;
        else
          for (let r = f; r < w; r++) {
            const j = at[r];
            if (values[j] !== v && !valueEquals(values[j], v)) continue;
            if (orders === null || orders[j] === o || valueEquals(orders[j], o)) {
              q = r;
              break;
            }
          }
        if (q < 0) {
          at[w] = i;
          diff[w] = diffs[i];
          time[w] = times[i];
          w++;
        } else {
          diff[q] += diffs[i];
          if (times[i] > time[q]) time[q] = times[i];
        }
      }
      // Records whose updates cancel out change nothing (and join with nothing).
      let e = f;
      for (let c = f; c < w; c++) {
        if (diff[c] === 0) continue;
        at[e] = at[c];
        diff[e] = diff[c];
        time[e] = time[c];
        e++;
      }
      to[g] = e;
      const records = d.records[g];
      for (let c = f; c < e; c++)
        existing[c] =
          records === undefined ? -1 : this.find(records, values[at[c]], orders === null ? null : orders[at[c]]);
    }
  }

  /** The offset of the record (value, order) among a key's records, or -1. */
  private find(records: Records, value: Value, order: Value): number {
    const s = this.stride;
    if (records.length > SCAN_LIMIT * s) return this.indexes.get(records)!.get(this.idOf(value, order)) ?? -1;
    for (let j = 0; j < records.length; j += s) {
      const v = records[j];
      if (v !== value && !valueEquals(v, value)) continue;
      if (!this.ordered || records[j + ORDER] === order || valueEquals(records[j + ORDER], order)) return j;
    }
    return -1;
  }

  private idOf(value: Value, order: Value): Value {
    return this.ordered ? [value, order] : value;
  }

  /**
   * One key's changes on either side: for every pair of a left record a and a right record b,
   * L_new[a]·R_new[b] − L_old[a]·R_old[b] — pairs with an unchanged right record are ΔL[a]·R[b],
   * pairs with a changed one are computed over the left records before and after — so each pair
   * is emitted once (no pair comes from two terms). Then (left outer) the unmatched rows, and the
   * changes go into the indexes.
   */
  private joinKey(out: Columns, g: number): void {
    const { dl, dr, stride: s, ordered } = this;
    const lf = dl.from[g];
    const lt = dl.to[g];
    const rf = dr.from[g];
    const rt = dr.to[g];
    if (lf === lt && rf === rt) return; // every change cancelled
    const key = this.groupKeys[g];
    const L = dl.records[g];
    const R = dr.records[g];
    const nL = L === undefined ? 0 : L.length;
    const nR = R === undefined ? 0 : R.length;
    // The side's records this batch changes: flags[offset] = 1 + change.
    const lChanged = markChanged(dl, lf, lt, nL);
    const rChanged = markChanged(dr, rf, rt, nR);
    const lFlags = dl.flags;
    const rFlags = dr.flags;
    const lValues = dl.values;
    const rValues = dr.values;
    const lOrders = dl.orders;
    const rOrders = dr.orders;
    // ΔL ⋈ R_old over the unchanged right records.
    if (lf < lt && R !== undefined) {
      for (let j = 0; j < nR; j += s) {
        if (rChanged && rFlags[j] !== 0) continue; // a changed b: below
        const bm = R[j + MULT] as number;
        const bt = R[j + TIME] as number;
        for (let c = lf; c < lt; c++) {
          const ct = dl.time[c];
          this.emit(
            out,
            key,
            lValues[dl.at[c]],
            R[j],
            dl.diff[c] * bm,
            ct > bt ? ct : bt,
            lOrders === null ? null : lOrders[dl.at[c]],
            ordered ? R[j + ORDER] : null,
          );
        }
      }
    }
    // Every pair with a changed right record b: L_new·R_new − L_old·R_old.
    for (let c = rf; c < rt; c++) {
      const e = dr.existing[c];
      const db = dr.diff[c];
      const bOld = e < 0 ? 0 : (R![e + MULT] as number);
      const bNew = bOld + db;
      const bv = rValues[dr.at[c]];
      const bt = dr.time[c];
      const bo = rOrders === null ? null : rOrders[dr.at[c]];
      if (L !== undefined) {
        for (let j = 0; j < nL; j += s) {
          if (lChanged && lFlags[j] !== 0) continue; // a changed a: below
          const at = L[j + TIME] as number;
          const ao = ordered ? L[j + ORDER] : null;
          this.emit(out, key, L[j], bv, (L[j + MULT] as number) * db, at > bt ? at : bt, ao, bo);
        }
      }
      for (let c2 = lf; c2 < lt; c2++) {
        const e2 = dl.existing[c2];
        if (e2 >= 0) {
          const aOld = L![e2 + MULT] as number;
          const at = L![e2 + TIME] as number;
          const diff = (aOld + dl.diff[c2]) * bNew - aOld * bOld;
          this.emit(out, key, L![e2], bv, diff, at > bt ? at : bt, ordered ? L![e2 + ORDER] : null, bo);
        } else {
          const at = dl.time[c2];
          const ao = lOrders === null ? null : lOrders[dl.at[c2]];
          this.emit(out, key, lValues[dl.at[c2]], bv, dl.diff[c2] * bNew, at > bt ? at : bt, ao, bo);
        }
      }
    }
    if (this.kind === 'left') this.unmatched(out, key, g, L, lChanged, nR === 0, rightEmptyAfter(dr, rf, rt, R, s));
    if (lChanged) for (let c = lf; c < lt; c++) if (dl.existing[c] >= 0) lFlags[dl.existing[c]] = 0;
    if (rChanged) for (let c = rf; c < rt; c++) if (dr.existing[c] >= 0) rFlags[dr.existing[c]] = 0;
    if (lf < lt) this.apply(this.left, dl, g, key, L);
    if (rf < rt) this.apply(this.right, dr, g, key, R);
  }

  /**
   * Left outer: a key's unmatched rows `{key, left, right: null}` change with its left records
   * while it has no right record; all of them switch when its right side empties or fills. Runs
   * before the left changes are applied (`L`: the left records before the batch, changed ones flagged).
   */
  private unmatched(
    out: Columns,
    key: Value,
    g: number,
    L: Records | undefined,
    lChanged: boolean,
    unmatchedBefore: boolean,
    unmatchedAfter: boolean,
  ): void {
    const { dl, stride: s, ordered } = this;
    const lf = dl.from[g];
    const lt = dl.to[g];
    const { values, orders, at } = dl;
    if (unmatchedBefore && unmatchedAfter) {
      for (let c = lf; c < lt; c++)
        this.emitAlone(out, key, values[at[c]], dl.diff[c], dl.time[c], orders === null ? null : orders[at[c]]);
      return;
    }
    if (unmatchedBefore === unmatchedAfter) return;
    // The left records as they are before (unmatchedBefore) or after the batch's changes.
    const sign = unmatchedAfter ? 1 : -1;
    const nL = L === undefined ? 0 : L.length;
    for (let j = 0; j < nL; j += s) {
      const m = L![j + MULT] as number;
      const t = L![j + TIME] as number;
      const o = ordered ? L![j + ORDER] : null;
      const flag = lChanged ? dl.flags[j] : 0;
      if (flag === 0) {
        this.emitAlone(out, key, L![j], sign * m, t, o);
        continue;
      }
      const c = flag - 1;
      const ct = dl.time[c];
      const mNew = m + dl.diff[c];
      if (mNew !== 0) this.emitAlone(out, key, L![j], unmatchedAfter ? mNew : -m, ct > t ? ct : t, o);
      // A record the batch takes to zero: its row is retracted as the change's record.
      else if (!unmatchedAfter) this.emitAlone(out, key, values[at[c]], -m, ct, orders === null ? null : orders[at[c]]);
    }
    // Left records new with this batch.
    if (unmatchedAfter)
      for (let c = lf; c < lt; c++)
        if (dl.existing[c] < 0)
          this.emitAlone(out, key, values[at[c]], dl.diff[c], dl.time[c], orders === null ? null : orders[at[c]]);
  }

  /** Adds a key's changes of one side to that side's index (`records`: its records before the batch). */
  private apply(side: ValueMap<Records>, d: SideChanges, g: number, key: Value, records: Records | undefined): void {
    const s = this.stride;
    const ordered = this.ordered;
    let index = records !== undefined && records.length > SCAN_LIMIT * s ? this.indexes.get(records)! : null;
    const removals = this.removals;
    removals.length = 0;
    let r = records;
    for (let c = d.from[g]; c < d.to[g]; c++) {
      const e = d.existing[c];
      if (e >= 0) {
        const m = (r![e + MULT] as number) + d.diff[c];
        r![e + MULT] = m;
        if (d.time[c] > (r![e + TIME] as number)) r![e + TIME] = d.time[c];
        if (m === 0) removals.push(e);
        continue;
      }
      const i = d.at[c];
      if (r === undefined) {
        r = [];
        side.set(key, r);
      }
      const offset = r.length;
      if (ordered) r.push(d.values[i], d.diff[c], d.time[c], d.orders![i]);
      else r.push(d.values[i], d.diff[c], d.time[c]);
      index?.set(this.idOf(d.values[i], ordered ? d.orders![i] : null), offset);
    }
    if (r === undefined) return;
    if (removals.length > 0) {
      // Highest offset first: the last record, moved into a gap, is never one still to be removed.
      if (removals.length > 1) sortDescending(removals);
      for (const e of removals) {
        const last = r.length - s;
        index?.delete(this.idOf(r[e], ordered ? r[e + ORDER] : null));
        if (e !== last) {
          for (let k = 0; k < s; k++) r[e + k] = r[last + k];
          index?.set(this.idOf(r[e], ordered ? r[e + ORDER] : null), e);
        }
        r.length = last;
      }
    }
    this.reindex(side, key, r, index);
  }

  /** Keeps the invariant: a key's side is indexed iff it has more than SCAN_LIMIT records; an empty side is dropped. */
  private reindex(side: ValueMap<Records>, key: Value, r: Records, index: ValueMap<number> | null): void {
    const s = this.stride;
    if (r.length === 0) {
      side.delete(key);
      if (index !== null) this.indexes.delete(r);
    } else if (r.length > SCAN_LIMIT * s) {
      if (index === null) {
        const fresh = new ValueMap<number>();
        for (let j = 0; j < r.length; j += s) fresh.set(this.idOf(r[j], this.ordered ? r[j + ORDER] : null), j);
        this.indexes.set(r, fresh);
      }
    } else if (index !== null) this.indexes.delete(r);
  }

  private emit(
    out: Columns,
    key: Value,
    left: Value,
    right: Value,
    diff: number,
    time: number,
    leftOrder: Value,
    rightOrder: Value,
  ): void {
    if (diff === 0) return;
    const k = this.rows++;
    out.keys![k] = key;
    out.values[k] = { key, left, right } satisfies JoinRow;
    out.diffs[k] = diff;
    out.times[k] = time;
    if (out.orders !== null) out.orders[k] = later(leftOrder, rightOrder);
  }

  private emitAlone(out: Columns, key: Value, left: Value, diff: number, time: number, order: Value): void {
    if (diff === 0) return;
    const k = this.rows++;
    out.keys![k] = key;
    out.values[k] = { key, left, right: null } satisfies JoinRow;
    out.diffs[k] = diff;
    out.times[k] = time;
    if (out.orders !== null) out.orders[k] = order;
  }

  compact(cutoff: number): void {
    for (const side of [this.left, this.right]) {
      const emptied: Value[] = [];
      side.forEach((r, key) => {
        if (this.compactRecords(r, cutoff)) emptied.push(key);
      });
      for (const key of emptied) side.delete(key);
    }
  }

  /** Forgets a key side's records older than `cutoff` (re-indexing it); true when none is left. */
  private compactRecords(r: Records, cutoff: number): boolean {
    const s = this.stride;
    let w = 0;
    for (let j = 0; j < r.length; j += s) {
      if ((r[j + TIME] as number) < cutoff) continue;
      if (w !== j) for (let k = 0; k < s; k++) r[w + k] = r[j + k];
      w += s;
    }
    if (w === r.length) return false;
    r.length = w;
    this.indexes.delete(r);
    if (w > SCAN_LIMIT * s) {
      const fresh = new ValueMap<number>();
      for (let j = 0; j < w; j += s) fresh.set(this.idOf(r[j], this.ordered ? r[j + ORDER] : null), j);
      this.indexes.set(r, fresh);
    }
    return w === 0;
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
      const r: Records = [];
      for (const [value, order, mult, time] of data as [Value, Value, number, number][]) {
        if (this.ordered) r.push(value, mult, time, order);
        else r.push(value, mult, time);
      }
      if (cutoff !== null && this.compactRecords(r, cutoff)) return;
      const map = side === 0 ? this.left : this.right;
      map.set(key, r);
      this.reindex(map, key, r, this.indexes.get(r) ?? null);
    },
    save: (unit) => {
      const [side, key] = unit as [number, Value];
      const r = (side === 0 ? this.left : this.right).get(key);
      if (r === undefined) return null;
      const s = this.stride;
      let t = -Infinity;
      const records: Value[] = [];
      for (let j = 0; j < r.length; j += s) {
        const time = r[j + TIME] as number;
        if (time > t) t = time;
        records.push([r[j], this.ordered ? r[j + ORDER] : null, r[j + MULT], time]);
      }
      return { data: records, t };
    },
    evict: (unit) => {
      const [side, key] = unit as [number, Value];
      const map = side === 0 ? this.left : this.right;
      const r = map.get(key);
      if (r === undefined) return;
      map.delete(key);
      this.indexes.delete(r);
    },
  };

  stateSize(): number {
    let n = 0;
    for (const side of [this.left, this.right]) for (const r of side.values()) n += r.length / this.stride;
    return n;
  }
}

/** Flags the key's records that changes [f, t) change (`d.flags[offset] = 1 + change`); true when there is one. */
function markChanged(d: SideChanges, f: number, t: number, n: number): boolean {
  let any = false;
  for (let c = f; c < t; c++) {
    const e = d.existing[c];
    if (e < 0) continue;
    if (!any && d.flags.length < n) d.flags = new Int32Array(Math.max(n, 2 * d.flags.length));
    d.flags[e] = c + 1;
    any = true;
  }
  return any;
}

/** Whether a key's right side has no record after its changes [f, t) (records before: `R`). */
function rightEmptyAfter(d: SideChanges, f: number, t: number, R: Records | undefined, s: number): boolean {
  let n = R === undefined ? 0 : R.length / s;
  for (let c = f; c < t; c++) {
    const e = d.existing[c];
    if (e < 0) n++;
    else if ((R![e + MULT] as number) + d.diff[c] === 0) n--;
  }
  return n === 0;
}

/** Sorts numbers greatest first (a short list by insertion: no allocation). */
function sortDescending(xs: number[]): void {
  if (xs.length > 32) {
    xs.sort((a, b) => b - a);
    return;
  }
  for (let i = 1; i < xs.length; i++) {
    const x = xs[i];
    let j = i - 1;
    while (j >= 0 && xs[j] < x) {
      xs[j + 1] = xs[j];
      j--;
    }
    xs[j + 1] = x;
  }
}

/** The greater of two order keys (a joined row happens where the later of its records does). */
function later(a: Value, b: Value): Value {
  return compareValues(a, b) >= 0 ? a : b;
}
