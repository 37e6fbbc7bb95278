/**
 * A state store in memory (docs/durable-state.md): what the database tables hold, for tests and
 * for hosts without a database. `commit(state)` applies one step's (or several merged steps')
 * state as the commit transaction does: first the entries retention forgets, then the changed
 * entries (an entry saved after the compaction that forgets older ones is not deleted by it).
 */
import type { StateEntry, StateStore, StepState } from './types';

export class MemoryStateStore implements StateStore {
  private readonly ops = new Map<string, Map<string, StateEntry>>();
  /** Entries read through `get`, `seek` and `range` (for tests). */
  reads = 0;

  get(op: string, keys: readonly string[]): readonly (string | undefined)[] {
    const m = this.ops.get(op);
    this.reads += keys.length;
    return keys.map((k) => m?.get(k)?.v);
  }

  seek(op: string, from: string, to: string, last: boolean): readonly [string, string] | undefined {
    const all = this.inRange(op, from, to);
    const e = last ? all[all.length - 1] : all[0];
    if (e !== undefined) this.reads++;
    return e;
  }

  range(op: string, from: string, to: string): readonly (readonly [string, string])[] {
    const out = this.inRange(op, from, to);
    this.reads += out.length;
    return out;
  }

  private inRange(op: string, from: string, to: string): [string, string][] {
    const m = this.ops.get(op);
    if (m === undefined) return [];
    const out: [string, string][] = [];
    for (const [k, e] of m) if (k >= from && k < to) out.push([k, e.v]);
    out.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    return out;
  }

  /** Applies a step's state (steps in order), as one commit. */
  commit(state: StepState): void {
    if (state.forget !== null) {
      for (const op of state.forget.ops) {
        const m = this.ops.get(op);
        if (m === undefined) continue;
        for (const [k, e] of m) if (e.t !== null && e.t < state.forget.cutoff) m.delete(k);
      }
    }
    for (const [op, changed] of state.entries) {
      let m = this.ops.get(op);
      if (m === undefined) {
        m = new Map();
        this.ops.set(op, m);
      }
      for (const [k, e] of changed) {
        if (e === null) m.delete(k);
        else m.set(k, e);
      }
    }
  }

  /** Stored entries of all operators. */
  size(): number {
    let n = 0;
    for (const m of this.ops.values()) n += m.size;
    return n;
  }

  /** The stored entries of one operator, by key (for tests). */
  entries(op: string): ReadonlyMap<string, StateEntry> {
    return this.ops.get(op) ?? new Map();
  }
}
