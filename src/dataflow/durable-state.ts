/**
 * Durable operator state, the dataflow's side (docs/durable-state.md): where the state lives (the
 * state database H and the scope), whether a stored scope can be continued, and the state a commit
 * writes (the engine's step states merged, with the level the commit reaches).
 */
import { createHash } from 'node:crypto';
import { getHeapStatistics } from 'node:v8';
import { covers, type OffsetMap } from '../core/offset-map';
import type { Graph, HotUnit, StateEntry, StateStore, StepState, Value } from '../engine/types';
import type { SinkDatabase, StateChanges, StateReader, StateScope } from '../sinks/types';
import { canonicalJson } from './fingerprint';
import type { DataflowDefinition, DataflowMember, SinkMember } from './types';

/**
 * The stored state's format version: a scope of another format is rebuilt from the events. 1:
 * every group whole; 2: `scan` in pages, multiset `maxBy`/`minBy` an entry per element; 3: `scan`
 * pages with an append-only tail of deltas; 4: `reduce` a header and parts of its inputs.
 */
export const STATE_FORMAT = 4;

/** Default of DataflowSettings.stateCacheBytes: 64 MB of entry text in memory. */
export const DEFAULT_STATE_CACHE_BYTES = 64 * 1024 * 1024;

/**
 * A catch-up commit with durable state is queued once the state texts it holds reach this many
 * characters (besides the step bound of maxInFlight steps; DataflowSettings.commitStateChars).
 * What a commit holds — the texts, the row changes, the entries pinned until it is durable — lives
 * through many young-generation collections and is promoted; V8 then lets the old generation grow
 * to up to 4× what survives a full collection. The example flows hold about 600 characters of
 * state per event, so 16 steps of 2,500 events held about 24 MB of texts (BENCHMARKS.md, "Durable
 * state: where the peak RSS comes from").
 */
export const COMMIT_STATE_CHARS = 4 * 1024 * 1024;

/**
 * The warm-up after a restart (docs/durable-state.md, "Warm-up after a restart"): the dataflow
 * stores which units its state cache holds (a hint, `warmUpHint`) at a clean stop and, live, with a
 * commit every STATE_HINT_MS; the next start reads them back before it goes live, the most touched
 * first, within the cache bound and for at most this long (what is left is read when an event
 * touches it, as without a hint).
 */
export const WARM_UP_MS = 400;
/** At most this many units in a hint (the most touched first). */
export const HINT_MAX_UNITS = 20_000;
/**
 * At most this many characters of hint text (besides HINT_MAX_UNITS): a live commit writes the hint
 * in its transaction as one statement, which must fit MariaDB's `max_allowed_packet` (16 MiB by
 * default; a statement's values may take half of it, counted at 3 bytes a character: 2.79 M). Where
 * even this does not fit (a smaller `max_allowed_packet`), the hint is not written
 * (sql-database.ts): only a cache. The example flows' units take about 120 characters each (1M
 * events: 18,000–19,700 units in the usage dataflow's cache), so HINT_MAX_UNITS binds first there.
 */
export const HINT_MAX_CHARS = 2_700_000;
/**
 * Live, a commit also writes the hint when this long (ms) has passed since the dataflow went live
 * or since the last hint was built (DataflowSettings.stateHintMs), and the units it names are not
 * those of the last hint written (`WarmUpHint.names`): a start after a crash, a power cut or a
 * SIGKILL then warms from a hint at most this old (plus the time without events), not from the
 * last clean stop's. Building it costs a walk of the cache and its JSON text (20–28 ms for
 * 18,000–19,600 units, 2.2–2.4 M characters, at 1M events of the example flows), writing it one
 * row in a transaction that runs anyway (7 ms); once a minute that is 0.05 % of a core and of the
 * live events' time (BENCHMARKS.md, "warm-up hint while running": once a second it showed in the
 * live p99), and a plant's working set (its machines, the orders they work on) changes over hours,
 * so a minute-old hint names nearly the same groups. A hint naming the same units is not written
 * again: at a low event rate (flash storage) the hint would otherwise be most of what is written.
 * Catch-up commits write none: their cache holds the history's groups in the log's order, and a
 * crash while catching up keeps the last live run's hint, which names the live working set.
 */
export const STATE_HINT_MS = 60_000;
/** The hint's own version: a hint of another version is ignored. */
const HINT_VERSION = 1;

/** A hint's text, and which units it names (not their order or counts): equal names, same units. */
export interface WarmUpHint {
  readonly text: string;
  readonly names: string;
}

/**
 * The stored hint: `{ v, units: [[state id, key, unit, bytes, hits]…] }`, the most touched first,
 * within `cacheBytes` (their size as the cache counted it), HINT_MAX_UNITS and HINT_MAX_CHARS.
 */
export function warmUpHint(units: readonly HotUnit[], cacheBytes: number): WarmUpHint {
  const out: string[] = [];
  let bytes = 0;
  let chars = 0;
  // Which units: an order-free sum and xor of their (state id, key)'s FNV-1a hashes. A collision
  // only skips writing a hint.
  let sum = 0;
  let xor = 0;
  for (const u of units) {
    if (out.length >= HINT_MAX_UNITS) break;
    if (bytes + u.bytes > cacheBytes) continue;
    const text = JSON.stringify([u.id, u.key, u.unit, u.bytes, u.hits]);
    if (chars + text.length + 1 > HINT_MAX_CHARS) continue;
    bytes += u.bytes;
    chars += text.length + 1;
    out.push(text);
    const h = fnv1a(u.key, fnv1a(u.id, 0x811c9dc5) ^ 0xff);
    sum = (sum + h) >>> 0;
    xor = (xor ^ h) >>> 0;
  }
  return { text: `{"v":${HINT_VERSION},"units":[${out.join(',')}]}`, names: `${out.length}:${sum}:${xor}` };
}

/** 32-bit FNV-1a of a text's UTF-16 code units, from `h`. */
function fnv1a(text: string, h: number): number {
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

/** The units of a stored hint; [] for a hint of another version or shape (it is only a hint). */
export function warmUpUnits(text: string | undefined): HotUnit[] {
  if (text === undefined) return [];
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return [];
  }
  const { v, units } = (parsed ?? {}) as { v?: unknown; units?: unknown };
  if (v !== HINT_VERSION || !Array.isArray(units)) return [];
  const out: HotUnit[] = [];
  for (const u of units as unknown[]) {
    if (!Array.isArray(u) || u.length !== 5) return [];
    const [id, key, unit, bytes, hits] = u as [unknown, unknown, Value, unknown, unknown];
    if (typeof id !== 'string' || typeof key !== 'string' || typeof bytes !== 'number' || typeof hits !== 'number')
      return [];
    out.push({ id, key, unit, bytes, hits });
  }
  return out;
}

/**
 * While V8's heap in use is at least this share of its limit (`heap_size_limit`: with
 * `node --max-old-space-size=256`, 304 MB), a catch-up commit with durable state is queued at
 * HEAP_PRESSURE_COMMIT_SHARE of its state bound: what the commits hold then stays small where it
 * counts, and a heap with room keeps the larger commits (fewer transactions). A commit of the
 * example flows' 1M catch-up held 4.3 M characters of state, 5,500 entries and 5,300 row changes
 * (10,000 events), per dataflow, and lives through many young-generation collections; with a
 * quarter of the bound (2,500 events) V8's committed heap peaked at 225 MB instead of 241 MB
 * under a 256 MB cap (one probe each; BENCHMARKS.md, 2026-12-07, "one read-ahead worker").
 */
export const HEAP_PRESSURE_SHARE = 0.4;
/** The share of the state bound a commit holds while the heap is near its limit. */
export const HEAP_PRESSURE_COMMIT_SHARE = 0.25;

type HeapInUse = () => { readonly used: number; readonly limit: number };

/** V8's heap in use and its limit. */
const v8HeapInUse: HeapInUse = () => {
  const h = getHeapStatistics();
  return { used: h.used_heap_size, limit: h.heap_size_limit };
};

let heapInUse: HeapInUse = v8HeapInUse;

/** A test hook: what commitStateBound reads of the heap (null: V8's statistics again). */
export function heapInUseForTests(f: HeapInUse | null): void {
  heapInUse = f ?? v8HeapInUse;
}

/**
 * The characters of state text at which a catch-up commit with durable state is queued:
 * `commitStateChars` (default COMMIT_STATE_CHARS), a quarter of it while the heap is near its limit.
 */
export function commitStateBound(commitStateChars: number | undefined): number {
  const bound = commitStateChars ?? COMMIT_STATE_CHARS;
  const { used, limit } = heapInUse();
  return used >= HEAP_PRESSURE_SHARE * limit ? Math.ceil(bound * HEAP_PRESSURE_COMMIT_SHARE) : bound;
}

/** Where a dataflow's operator state is stored. */
export interface DurableHost {
  /** The state database H (the one database of the dataflow's sinks). */
  readonly db: SinkDatabase;
  /** The scope: the dd-dataflow node's id, else a hash of its sink ids. */
  readonly scope: string;
  /** Fingerprint of what computes the state (everything but the sinks, the retention window, the state ids). */
  readonly fingerprint: string;
  readonly reader: StateReader;
}

/**
 * Logged once per start by a dataflow that keeps stateful operators' state in memory without a
 * retention window: memory and the restart's replay then grow with the history.
 */
export const MEMORY_STATE_HINT =
  'operator state in memory and no retention window: every start replays the whole history and memory grows ' +
  'with it; set Operator state to "in the database" to keep both flat (docs/durable-state.md)';

/**
 * The state host of a dataflow, or why its state stays in memory (null: durable state is off).
 * NB: one database only — a commit to several databases runs their transactions in parallel, and
 * the state would need H committed last (docs/durable-state.md, "Sinks in two databases").
 */
export function durableHost(
  definition: DataflowDefinition,
  graph: Graph,
  sinks: readonly SinkMember[],
): DurableHost | string | null {
  if (definition.settings.durableState !== true) return null;
  if (sinks.length === 0) return 'the dataflow has no db-sink to hold its state';
  const dbs = new Set(sinks.map((s) => s.database));
  if (dbs.size > 1) return 'its db-sinks write to more than one database (durable state needs them in one)';
  const db = sinks[0]!.database;
  if (db.stateReader === undefined) return `${db.label} cannot hold operator state`;
  const reader = db.stateReader();
  if (typeof reader === 'string') return reader;
  const scope =
    definition.id ??
    `dataflow-${createHash('sha256')
      .update(
        sinks
          .map((s) => s.id)
          .sort()
          .join('\n'),
      )
      .digest('hex')
      .slice(0, 16)}`;
  return { db, scope, fingerprint: operatorsFingerprint(definition, graph), reader };
}

/** What computes the state: every member but the sinks, the retention window, the state ids. */
export function operatorsFingerprint(definition: DataflowDefinition, graph: Graph): string {
  const members = definition.members
    .filter((m) => m.role !== 'sink')
    .map((m: DataflowMember) => ({
      id: m.id,
      type: m.type,
      inputs: [...m.inputs].sort(),
      definition: m.definition,
      query: m.role === 'source' ? m.query : null,
    }))
    .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return createHash('sha256')
    .update(
      canonicalJson({
        members,
        retention: definition.settings.retentionMicros,
        states: graph.stateIds(),
      }),
    )
    .digest('hex');
}

/**
 * Whether the stored scope can be continued: same format and fingerprint, and a level at or
 * below the lowest kept table's offsets (`lowest`). Else the reason it is rebuilt.
 */
export function scopeProblem(stored: StateScope | null, fingerprint: string, lowest: OffsetMap): string | null {
  if (stored === null) return 'there is no stored operator state';
  if (stored.format !== STATE_FORMAT)
    return `the stored state has format ${stored.format}, this version writes ${STATE_FORMAT}`;
  if (stored.fingerprint !== fingerprint) return 'the operators (or the retention window) changed';
  if (!covers(lowest, stored.offsets)) return 'the stored state is ahead of a table (a table was added or rebuilt)';
  return null;
}

/** The engine's view of the scope's entries: state ids become `scope/state id`. */
export function scopedStore(reader: StateStore, scope: string): StateStore {
  const op = (id: string): string => `${scope}/${id}`;
  return {
    get: (id, keys) => reader.get(op(id), keys),
    seek: (id, from, to, last) => reader.seek(op(id), from, to, last),
    range: (id, from, to) => reader.range(op(id), from, to),
  };
}

/** The state of the steps joined into one commit. */
export class StateWrite {
  /** The newest step in it (`Graph.release` once committed); 0: none. */
  step = 0;
  /** Characters of the entry texts it holds (the newest per key): bounds a commit (COMMIT_STATE_CHARS). */
  chars = 0;
  private readonly entries = new Map<string, Map<string, StateEntry | null>>();
  private forget: { cutoff: number; ops: Set<string> } | null = null;
  cutoff: number | null;

  constructor(
    private readonly scope: string,
    cutoff: number | null,
    /** The dataflow's watermark after the newest step. */
    public watermark: number | null,
  ) {
    this.cutoff = cutoff;
  }

  /** Adds a later step's state: its entries replace earlier texts of the same keys. */
  add(state: StepState | undefined, watermark: number | null): void {
    this.watermark = watermark;
    if (state === undefined) return;
    this.step = state.step;
    this.cutoff = state.cutoff;
    if (state.forget !== null) {
      // Merged forgets delete below the greater cutoff: the entries of earlier steps that this
      // removes carry an older cutoff in their text and are compacted anyway when they load.
      if (this.forget === null) this.forget = { cutoff: state.forget.cutoff, ops: new Set(state.forget.ops) };
      else {
        this.forget.cutoff = Math.max(this.forget.cutoff, state.forget.cutoff);
        for (const op of state.forget.ops) this.forget.ops.add(op);
      }
      // The transaction runs the forget before the entries, so an entry an earlier step of this
      // commit saved below this cutoff would survive it; committed step by step, this step's
      // forget would have deleted it. It becomes a delete: the commit leaves the store exactly
      // as the steps one by one would (no operator has to know that commits are merged).
      const cutoff = state.forget.cutoff;
      for (const id of state.forget.ops) {
        const m = this.entries.get(`${this.scope}/${id}`);
        if (m === undefined) continue;
        for (const [k, e] of m)
          if (e !== null && e.t !== null && e.t < cutoff) {
            this.chars -= e.v.length;
            m.set(k, null);
          }
      }
    }
    for (const [id, changed] of state.entries) {
      const op = `${this.scope}/${id}`;
      let m = this.entries.get(op);
      if (m === undefined) this.entries.set(op, (m = new Map()));
      for (const [k, e] of changed) {
        const before = m.get(k);
        if (before) this.chars -= before.v.length;
        if (e !== null) this.chars += e.v.length;
        m.set(k, e);
      }
    }
  }

  changes(): StateChanges {
    return {
      entries: this.entries,
      forget:
        this.forget === null
          ? null
          : { cutoff: this.forget.cutoff, ops: [...this.forget.ops].map((id) => `${this.scope}/${id}`) },
    };
  }
}
