/**
 * The graph's side of durable operator state (docs/durable-state.md, "Engine API"): which
 * entries are in memory, loading the missing ones a step touches (one `get` per operator and
 * step), the step's changed entries, pinning until their commit is durable, and eviction of
 * clean entries beyond the cache bound, least recently used first.
 *
 * An entry's text is `[cutoff, data]` as JSON: `data` is the operator's (`DurableState.save`),
 * `cutoff` the retention cutoff the graph had compacted to when it was saved (null: none). A
 * loaded entry is compacted to the graph's cutoff when that is greater: retention forgets what
 * was older than the cutoff at the moment of `compact`, not inputs that arrive later with older
 * times, so an entry saved after a compaction is not compacted again by the same cutoff.
 */
import type { Columns } from './columns';
import type { DurableState } from './operator';
import { isThenable } from './step-context';
import type { MaybePromise, StateEntry, StateStats, StateStore, StepState, StoreOptions, Value } from './types';

interface Meta {
  readonly op: number;
  readonly unit: Value;
  /** Text length of the entry (0 for a deleted one). */
  bytes: number;
  /** The step whose commit holds the entry's newest text (0: committed, or loaded from the store). */
  pin: number;
  /** Deleted by that step: kept (as a tombstone) until released, so the store is not read for it. */
  deleted: boolean;
}

export interface DurableOp {
  readonly index: number;
  readonly id: string;
  readonly durable: DurableState;
}

export class StateCache {
  /** Entries in memory by `op index + ' ' + key`, least recently used first. */
  private readonly metas = new Map<string, Meta>();
  /** Per operator index: whether the store may hold entries that are not in memory. */
  private readonly mayBeStored: boolean[] = [];
  private readonly ids: string[] = [];
  /** Per operator index: the units the running step touches, by key. */
  private readonly touched: (Map<string, Value> | null)[] = [];
  private step = 0;
  private released = 0;
  private cutoff: number | null = null;
  private forgetPending = false;
  private bytes = 0;
  private loads = 0;
  private evictions = 0;

  constructor(
    private readonly store: StateStore,
    private readonly options: StoreOptions,
    private readonly ops: readonly DurableOp[],
  ) {
    this.cutoff = options.cutoff ?? null;
    for (const op of ops) {
      this.mayBeStored[op.index] = options.stored;
      this.ids[op.index] = op.id;
    }
  }

  /** Before operator `op` runs: loads the units its inputs touch that are missing (awaited only then). */
  prepare(op: DurableOp, inputs: readonly (Columns | null)[]): MaybePromise<void> {
    const touched = new Map<string, Value>();
    op.durable.touched(inputs, touched);
    this.touched[op.index] = touched;
    if (!this.mayBeStored[op.index]) return;
    const keys: string[] = [];
    const units: Value[] = [];
    for (const [key, unit] of touched) {
      // NB: an entry known here is current in memory, or was dropped by compaction (then the
      // operator treats the unit as new, which is what compaction means), or is a tombstone: the
      // store is never read for it, since its stored text may be older than the pending one. And
      // `touched` must name every unit `run` reads: the durable property tests (cache bound 0)
      // fail when either is not so.
      if (this.metas.has(op.index + ' ' + key)) continue;
      keys.push(key);
      units.push(unit);
    }
    if (keys.length === 0) return;
    const texts = this.store.get(op.id, keys);
    const load = (found: readonly (string | undefined)[]): void => {
      if (found.length !== keys.length)
        throw new Error(`state store: get returned ${found.length} entries for ${keys.length} keys of ${op.id}`);
      for (let j = 0; j < keys.length; j++) {
        const text = found[j];
        if (text === undefined) continue;
        let entry: unknown;
        try {
          entry = JSON.parse(text);
        } catch (error) {
          throw new Error(`state of ${op.id}: the entry ${keys[j]} is not JSON (${String(error)})`, { cause: error });
        }
        if (!Array.isArray(entry) || entry.length !== 2 || !(entry[0] === null || typeof entry[0] === 'number'))
          throw new Error(`state of ${op.id}: the entry ${keys[j]} is not [cutoff, data]`);
        const saved = entry[0] as number | null;
        const compactTo = this.cutoff !== null && (saved === null || saved < this.cutoff) ? this.cutoff : null;
        op.durable.load(units[j], entry[1], compactTo);
        this.loads++;
        this.metas.set(op.index + ' ' + keys[j], {
          op: op.index,
          unit: units[j],
          bytes: text.length,
          pin: 0,
          deleted: false,
        });
        this.bytes += text.length;
      }
    };
    if (isThenable(texts)) return Promise.resolve(texts).then(load);
    load(texts);
  }

  /** After the step: its changed entries (pinned with the step's number), then eviction. */
  finish(): StepState {
    const step = ++this.step;
    const entries = new Map<string, Map<string, StateEntry | null>>();
    for (const op of this.ops) {
      const touched = this.touched[op.index];
      if (touched === null || touched === undefined) continue;
      this.touched[op.index] = null;
      const changed = new Map<string, StateEntry | null>();
      for (const [key, unit] of touched) {
        const saved = op.durable.save(unit);
        const id = op.index + ' ' + key;
        const old = this.metas.get(id);
        if (old !== undefined) {
          this.bytes -= old.bytes;
          this.metas.delete(id); // re-inserted last: most recently used
        } else if (saved === null && !this.mayBeStored[op.index]) continue; // never stored: nothing to delete
        const entry: StateEntry | null =
          saved === null ? null : { v: JSON.stringify([this.cutoff, saved.data]), t: saved.t };
        changed.set(key, entry);
        const bytes = entry === null ? 0 : entry.v.length;
        this.metas.set(id, { op: op.index, unit, bytes, pin: step, deleted: entry === null });
        this.bytes += bytes;
      }
      if (changed.size > 0) entries.set(op.id, changed);
    }
    let forget: StepState['forget'] = null;
    if (this.forgetPending && this.cutoff !== null) {
      forget = { cutoff: this.cutoff, ops: this.ops.filter((o) => o.durable.timed).map((o) => o.id) };
      this.forgetPending = false;
    }
    this.evict();
    return { step, entries, forget, cutoff: this.cutoff };
  }

  /** The step's outcome is lost (the graph is broken): nothing to do but forget the touched units. */
  abandon(): void {
    this.touched.fill(null);
  }

  /** Steps ≤ `step` are committed; `evictNow` false while a step runs (its finish() evicts). */
  release(step: number, evictNow = true): void {
    if (step > this.released) this.released = Math.min(step, this.step);
    if (evictNow) this.evict();
  }

  compacted(cutoff: number): void {
    if (this.cutoff !== null && cutoff <= this.cutoff) return;
    this.cutoff = cutoff;
    this.forgetPending = true;
  }

  /** Evicts clean, released entries while the total is beyond the bound; drops released tombstones. */
  private evict(): void {
    if (this.bytes <= this.options.cacheBytes) return;
    for (const [id, m] of this.metas) {
      if (this.bytes <= this.options.cacheBytes) break;
      if (m.pin > this.released) continue;
      this.metas.delete(id);
      this.bytes -= m.bytes;
      if (m.deleted) continue;
      const op = this.ops.find((o) => o.index === m.op)!;
      op.durable.evict(m.unit);
      this.evictions++;
      this.mayBeStored[m.op] = true;
    }
  }

  stats(): StateStats {
    return { entries: this.metas.size, bytes: this.bytes, loads: this.loads, evictions: this.evictions };
  }
}
