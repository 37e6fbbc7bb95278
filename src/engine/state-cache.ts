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
import { Bloom } from './bloom';
import type { Columns } from './columns';
import type { DurableState, PageReader } from './operator';
import { isThenable } from './step-context';
import type {
  HotUnit,
  MaybePromise,
  StateEntry,
  StateStats,
  StateStore,
  StepState,
  StoreOptions,
  Value,
  WarmResult,
} from './types';

interface Meta {
  readonly op: number;
  readonly unit: Value;
  /** Text length of the entry (0 for a deleted one). */
  bytes: number;
  /** The step whose commit holds the entry's newest text (0: committed, or loaded from the store). */
  pin: number;
  /** Deleted by that step: kept (as a tombstone) until released, so the store is not read for it. */
  deleted: boolean;
  /** Steps that touched the unit since it came into memory (a warmed unit keeps its hint's count): `hot`. */
  hits: number;
}

/**
 * What an entry in memory costs beyond its text, in the cache's count (its key, the cache's
 * record, the operator's structures): measured about 600 bytes of heap for a `distinct` entry of
 * a two-field record, whose text is 15 characters. Without it, many small entries (one per
 * distinct value) would grow the heap far beyond the bound.
 */
const ENTRY_OVERHEAD = 600;

/** Keys per `get` of a warm-up, per operator that is not paged. */
const WARM_BATCH = 256;

export interface DurableOp {
  readonly index: number;
  readonly id: string;
  readonly durable: DurableState;
}

export class StateCache {
  /** Entries in memory by `op index + ' ' + key`, least recently used first. */
  private readonly metas = new Map<string, Meta>();
  /**
   * Per operator index: whether the store may hold entries this graph never had in memory (it
   * started over stored state); else only the keys it evicted may be stored (`evicted`).
   */
  private readonly mayBeStored: boolean[] = [];
  /** Per operator index: the keys evicted (a Bloom filter: a key it rules out is new). */
  private readonly evicted: Bloom[] = [];
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
  /** Units of paged operators saved by a step, to trim once that step is released (in step order). */
  private readonly trims: { step: number; op: DurableOp; id: string; unit: Value }[] = [];
  private trimsFrom = 0;

  constructor(
    private readonly store: StateStore,
    private readonly options: StoreOptions,
    private readonly ops: readonly DurableOp[],
  ) {
    this.cutoff = options.cutoff ?? null;
    for (const op of ops) {
      this.mayBeStored[op.index] = options.stored;
      this.evicted[op.index] = new Bloom();
      this.ids[op.index] = op.id;
      op.durable.paged?.attach(this.reader(op));
    }
  }

  /** What a paged operator reads its entries through (docs/durable-state.md, "Pages"). */
  private reader(op: DurableOp): PageReader {
    return {
      mayLoad: (unit) => !this.metas.has(op.index + ' ' + unit) && this.mayHold(op.index, unit),
      get: (keys) => this.store.get(op.id, keys),
      seek: (from, to, last) => this.store.seek(op.id, from, to, last),
      range: (from, to) => this.store.range(op.id, from, to),
      open: (key, text) => {
        const { saved, data } = this.parse(op, key, text);
        this.loads++;
        return {
          data,
          compactTo: this.cutoff !== null && (saved === null || saved < this.cutoff) ? this.cutoff : null,
        };
      },
      text: (data) => JSON.stringify([this.cutoff, data]),
    };
  }

  /** Whether the store may hold the key (it is not known to be new). */
  private mayHold(op: number, key: string): boolean {
    return this.mayBeStored[op] || this.evicted[op].mayHave(key);
  }

  /** An entry's text as `[cutoff, data]`. */
  private parse(op: DurableOp, key: string, text: string): { saved: number | null; data: unknown } {
    let entry: unknown;
    try {
      entry = JSON.parse(text);
    } catch (error) {
      throw new Error(`state of ${op.id}: the entry ${key} is not JSON (${String(error)})`, { cause: error });
    }
    if (!Array.isArray(entry) || entry.length !== 2 || !(entry[0] === null || typeof entry[0] === 'number'))
      throw new Error(`state of ${op.id}: the entry ${key} is not [cutoff, data]`);
    return { saved: entry[0] as number | null, data: entry[1] };
  }

  /** Before operator `op` runs: loads the units its inputs touch that are missing (awaited only then). */
  prepare(op: DurableOp, inputs: readonly (Columns | null)[]): MaybePromise<void> {
    const touched = new Map<string, Value>();
    op.durable.touched(inputs, touched);
    this.touched[op.index] = touched;
    // A paged operator reads what it needs itself, during run (through `reader`).
    if (op.durable.paged !== undefined) return;
    const keys: string[] = [];
    const units: Value[] = [];
    for (const [key, unit] of touched) {
      // NB: an entry known here is current in memory, or was dropped by compaction (then the
      // operator treats the unit as new, which is what compaction means), or is a tombstone: the
      // store is never read for it, since its stored text may be older than the pending one. And
      // `touched` must name every unit `run` reads: the durable property tests (cache bound 0)
      // fail when either is not so.
      if (this.metas.has(op.index + ' ' + key)) continue;
      if (!this.mayHold(op.index, key)) continue; // new: never stored
      keys.push(key);
      units.push(unit);
    }
    if (keys.length === 0) return;
    return this.read(op, keys, units, null);
  }

  /**
   * Reads the stored entries of the keys (units not in memory) of an operator that is not paged and
   * puts them in memory, clean; `hits` (a warm-up) their counts from the hint (else 0).
   */
  private read(
    op: DurableOp,
    keys: readonly string[],
    units: readonly Value[],
    hits: readonly number[] | null,
  ): MaybePromise<void> {
    const texts = this.store.get(op.id, keys);
    const load = (found: readonly (string | undefined)[]): void => {
      if (found.length !== keys.length)
        throw new Error(`state store: get returned ${found.length} entries for ${keys.length} keys of ${op.id}`);
      for (let j = 0; j < keys.length; j++) {
        const text = found[j];
        if (text === undefined) continue;
        const { saved, data } = this.parse(op, keys[j], text);
        const compactTo = this.cutoff !== null && (saved === null || saved < this.cutoff) ? this.cutoff : null;
        op.durable.load(units[j], data, compactTo);
        this.loads++;
        const bytes = text.length + ENTRY_OVERHEAD;
        const meta: Meta = { op: op.index, unit: units[j], bytes, pin: 0, deleted: false, hits: hits?.[j] ?? 0 };
        this.metas.set(op.index + ' ' + keys[j], meta);
        this.bytes += bytes;
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
      const paged = op.durable.paged;
      for (const [key, unit] of touched) {
        const id = op.index + ' ' + key;
        if (paged !== undefined) {
          const saved = paged.save(unit);
          if (saved === null) continue;
          const written = saved.entries;
          const bytes = saved.bytes === 0 ? 0 : saved.bytes + ENTRY_OVERHEAD;
          const old = this.metas.get(id);
          if (old !== undefined) {
            this.bytes -= old.bytes;
            this.metas.delete(id);
          }
          for (const [k, e] of written) changed.set(k, e);
          const hits = (old?.hits ?? 0) + 1;
          this.metas.set(id, { op: op.index, unit, bytes, pin: step, deleted: bytes === 0, hits });
          this.bytes += bytes;
          if (bytes > 0) this.trims.push({ step, op, id, unit });
          continue;
        }
        const saved = op.durable.save(unit);
        const old = this.metas.get(id);
        if (old !== undefined) {
          this.bytes -= old.bytes;
          this.metas.delete(id); // re-inserted last: most recently used
        } else if (saved === null && !this.mayHold(op.index, key)) continue; // never stored: nothing to delete
        const entry: StateEntry | null =
          saved === null ? null : { v: JSON.stringify([this.cutoff, saved.data]), t: saved.t };
        changed.set(key, entry);
        const bytes = entry === null ? 0 : entry.v.length + ENTRY_OVERHEAD;
        const hits = (old?.hits ?? 0) + 1;
        this.metas.set(id, { op: op.index, unit, bytes, pin: step, deleted: entry === null, hits });
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

  /**
   * Trims the paged units of released steps (what they hold beyond what a next step is likely to
   * need: their entries are committed), then evicts clean, released entries while the total is
   * beyond the bound; drops released tombstones.
   */
  private evict(): void {
    while (this.trimsFrom < this.trims.length && this.trims[this.trimsFrom].step <= this.released) {
      const t = this.trims[this.trimsFrom++];
      const m = this.metas.get(t.id);
      // NB: a unit saved again by a later step is trimmed when that step is released.
      if (m === undefined || m.deleted || m.pin !== t.step) continue;
      const trimmed = t.op.durable.paged!.trim(t.unit);
      const bytes = trimmed === 0 ? 0 : trimmed + ENTRY_OVERHEAD;
      this.bytes += bytes - m.bytes;
      m.bytes = bytes;
    }
    if (this.trimsFrom > 1024 && this.trimsFrom * 2 > this.trims.length) {
      this.trims.splice(0, this.trimsFrom);
      this.trimsFrom = 0;
    }
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
      this.evicted[m.op].add(id.slice(id.indexOf(' ') + 1));
    }
  }

  /** The units in memory (not deleted), the most touched first, then the most recently used. */
  hot(): HotUnit[] {
    const out: (HotUnit & { at: number })[] = [];
    let at = 0;
    for (const [id, m] of this.metas) {
      at++;
      if (m.deleted) continue;
      out.push({
        id: this.ids[m.op]!,
        key: id.slice(id.indexOf(' ') + 1),
        unit: m.unit,
        bytes: m.bytes,
        hits: m.hits,
        at,
      });
    }
    out.sort((a, b) => b.hits - a.hits || b.at - a.at);
    return out.map(({ id, key, unit, bytes, hits }) => ({ id, key, unit, bytes, hits }));
  }

  /**
   * Reads the listed units that are not in memory (and may be stored), in the list's order, while
   * they fit in the cache bound (by the size the list gives) and until the deadline; the units of
   * operators that are not paged in batches per operator. Between steps only: what it reads is
   * committed and current, as for a step's load (pinning: an entry not in memory has no newer text
   * in flight). Afterwards the warmed units are the most recently used, the list's first last.
   */
  async warm(units: readonly HotUnit[], deadline: number): Promise<WarmResult> {
    const byId = new Map(this.ops.map((o) => [o.id, o]));
    const before = { bytes: this.bytes, size: this.metas.size };
    const warmed: string[] = [];
    const queued = new Map<DurableOp, { keys: string[]; units: Value[]; hits: number[] }>();
    const queuedIds = new Set<string>();
    let queuedBytes = 0;
    let skipped = 0;
    const flush = async (): Promise<void> => {
      for (const [op, q] of queued) {
        const r = this.read(op, q.keys, q.units, q.hits);
        if (r !== undefined) await r;
        for (const key of q.keys) if (this.metas.has(op.index + ' ' + key)) warmed.push(op.index + ' ' + key);
      }
      queued.clear();
      queuedIds.clear();
      queuedBytes = 0;
    };
    let i = 0;
    for (; i < units.length; i++) {
      if (Date.now() >= deadline) break;
      const u = units[i]!;
      const op = byId.get(u.id);
      if (op === undefined) {
        skipped++;
        continue;
      }
      const id = op.index + ' ' + u.key;
      if (this.metas.has(id) || queuedIds.has(id) || !this.mayHold(op.index, u.key)) continue;
      if (this.bytes + queuedBytes + u.bytes > this.options.cacheBytes) {
        skipped++;
        continue;
      }
      const paged = op.durable.paged;
      if (paged === undefined) {
        let q = queued.get(op);
        if (q === undefined) queued.set(op, (q = { keys: [], units: [], hits: [] }));
        q.keys.push(u.key);
        q.units.push(u.unit);
        q.hits.push(u.hits);
        queuedIds.add(id);
        queuedBytes += u.bytes;
        if (q.keys.length >= WARM_BATCH) await flush();
        continue;
      }
      let size = paged.warm(u.unit);
      if (isThenable(size)) size = await size;
      if (size === 0) continue;
      const bytes = size + ENTRY_OVERHEAD;
      this.metas.set(id, { op: op.index, unit: u.unit, bytes, pin: 0, deleted: false, hits: u.hits });
      this.bytes += bytes;
      warmed.push(id);
    }
    await flush();
    skipped += units.length - i;
    // The list's first unit the most recently used: evicted last.
    for (let j = warmed.length - 1; j >= 0; j--) {
      const m = this.metas.get(warmed[j]!)!;
      this.metas.delete(warmed[j]!);
      this.metas.set(warmed[j]!, m);
    }
    this.evict();
    return { units: this.metas.size - before.size, bytes: this.bytes - before.bytes, skipped };
  }

  stats(): StateStats {
    return { entries: this.metas.size, bytes: this.bytes, loads: this.loads, evictions: this.evictions };
  }
}
