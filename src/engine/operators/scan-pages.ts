/**
 * A `scan` group in a state store as a header and pages (docs/durable-state.md, "Pages"), so that
 * a step writes only what it changed and a group in memory holds only the pages a step needs:
 * events in causal order need the last page; a late event needs the pages from its place on.
 *
 * - The **header**, at the group key's encoding `G`: `[tail, maxTime, pendingCutoff]`, its time
 *   `maxTime`.
 * - A **page** per checkpoint of the fold (the inputs from that checkpoint to the next one): its
 *   **base** at `G + 'a'` for the group's first page, else `G + encodeKey([sort key, value])` of the
 *   page's first input — page keys sort as the pages' places, and the page holding an input's place
 *   is the last one whose key is at most the input's. The base's data: `[start state, values, sort
 *   keys, multiplicities, times, emitted]`, its time the greatest of its inputs' times. A
 *   checkpoint with no inputs after it (possible after retractions) has no page.
 * - **Deltas** (state format 3): inputs appended to the group's last page after all its stored
 *   inputs (events in causal order) are written as a delta entry at `base key + '~' + 6 hex
 *   digits (the first appended input's offset in the page) + '~'`, data `[values, sort keys,
 *   multiplicities, times, emitted]`, its time the greatest of its inputs' times, instead of
 *   rewriting the page: a live step writes O(appended) bytes, not O(page). A base key ends with
 *   `a` or `!` (an encoded array), a delta key with `~`; both sort after the base and before the
 *   next page's key (the encoding is prefix-free), so a page is its base and the deltas that follow
 *   it in key order. When the page stops being the last one (the fold laid a checkpoint after it),
 *   it is **sealed**: written whole as its base, its deltas deleted (once per `checkpointEvery`
 *   inputs). Any rewrite of a page (a late event, a retraction, a compaction) writes it whole and
 *   deletes its deltas.
 *
 * In memory a group's fold holds a **suffix** of the group: the pages from `cover` on (every
 * stored page with a key at or above `cover` is in memory, changed or not), or the whole group.
 * Indices in the fold are relative to the suffix; the header's `maxTime` is the whole group's.
 * Updates at or after the suffix's first input only need the suffix; an earlier one loads the
 * pages from its place to `cover`; retractions and compaction load the whole group (the group's
 * greatest time, and a refold from the initial state, need every input).
 */
import { checkpointAfter, type Checkpoint, type Emission, type FoldState } from '../fold';
import { then, type PageReader } from '../operator';
import { compareInputs } from '../sorted-inputs';
import { encodeKey } from '../state-key';
import type { MaybePromise, StateEntry, Value } from '../types';

/** The first page's key after the group prefix: below every encoded `[sort key, value]` (tag `f`). */
const FIRST = 'a';
/** Above every page key after the group prefix (encoded values start with a tag a–g). */
const END = '~';
/** A delta key is its page's base key + DELTA + 6 hex digits (the offset in the page) + DELTA. */
const DELTA = '~';
const DELTA_SUFFIX = 8;
/** Deltas at offsets this far into a page are not written (the page is rewritten whole instead). */
const MAX_DELTA_OFFSET = 0x1000000;
/** The deltas of a page without any (shared, never changed). */
const NO_DELTAS: readonly string[] = Object.freeze([]);

/** Whether a stored key is a delta's (a base key ends with `a` or `!`). */
function isDelta(key: string): boolean {
  return key.charCodeAt(key.length - 1) === 0x7e;
}

/** The base key of the page a stored key (a base or a delta) belongs to. */
function pageOf(key: string): string {
  return isDelta(key) ? key.slice(0, -DELTA_SUFFIX) : key;
}

function deltaKey(page: string, offset: number): string {
  return page + DELTA + offset.toString(16).padStart(6, '0') + DELTA;
}

/** What a group's fold in memory holds of its stored entries. */
export interface PageInfo {
  /** The group key's encoding: the header's key and the prefix of its pages' keys. */
  readonly prefix: string;
  /** The fold starts at the group's first input (else at the page `cover`; earlier pages are only stored). */
  whole: boolean;
  /** The key of the fold's first page when not whole: stored pages below it are not in memory. */
  cover: string;
  /**
   * Per checkpoint of the fold, its page's base key ('' for a checkpoint without inputs, or whose
   * base retention forgot), its deltas' keys, and the text length of both, as last saved or loaded.
   */
  keys: string[];
  deltas: (readonly string[])[];
  sizes: number[];
  /** How many of the fold's inputs (its first ones) are stored: those after them were appended since the last save. */
  stored: number;
  headerBytes: number;
  /** The first input index (in the fold) changed since the last save; Infinity: none. */
  dirtyFrom: number;
  /** Loaded under a pending compaction: stored pages may be missing (forgotten), so compaction refolds everything. */
  refoldAll: boolean;
}

export function newPageInfo(prefix: string): PageInfo {
  return {
    prefix,
    whole: true,
    cover: prefix + FIRST,
    keys: [],
    deltas: [],
    sizes: [],
    stored: 0,
    headerBytes: 0,
    dirtyFrom: 0,
    refoldAll: false,
  };
}

export interface LoadedGroup {
  readonly fold: FoldState;
  readonly info: PageInfo;
  /** The stored pending cutoff, or the cutoff the entries must be compacted to (the greater). */
  readonly pendingCutoff: number | null;
}

/** A page's or delta's inputs: values, sort keys, multiplicities, times, emitted. */
type Inputs = readonly [Value[], Value[], number[], number[], Emission[]];
type Page = readonly [Value, ...Inputs];
type Delta = Inputs;

/** The fold's inputs from `from` to `to` as a page or delta stores them. */
function inputsOf(fold: FoldState, from: number, to: number): Inputs {
  return [
    fold.values.slice(from, to),
    fold.orders.slice(from, to),
    fold.mults.slice(from, to),
    fold.times.slice(from, to),
    fold.emitted.slice(from, to),
  ];
}

const maxCutoff = (a: number | null, b: number | null): number | null =>
  a === null ? b : b === null ? a : Math.max(a, b);

/** Reads a group's header and last page; null when the store holds no header for it. */
export function loadGroup(reader: PageReader, prefix: string): MaybePromise<LoadedGroup | null> {
  return then(reader.get([prefix]), ([text]) => {
    if (text === undefined) return null;
    const header = reader.open(prefix, text);
    const [tail, maxTime, stored] = header.data as [Value, number, number | null];
    const pendingCutoff = maxCutoff(stored, header.compactTo);
    return then(reader.seek(prefix + FIRST, prefix + END, true), (last) => {
      const fold: FoldState = {
        values: [],
        orders: [],
        mults: [],
        times: [],
        maxTime,
        emitted: [],
        checkpoints: [],
        tail,
      };
      const info: PageInfo = {
        prefix,
        whole: false,
        cover: last === undefined ? prefix + FIRST : pageOf(last[0]),
        keys: [],
        deltas: [],
        sizes: [],
        stored: 0,
        headerBytes: text.length,
        dirtyFrom: Infinity,
        refoldAll: false,
      };
      const g = { fold, info, pendingCutoff };
      if (last === undefined) {
        // Retention forgot every page (the header's time can be above its inputs' after an
        // insertion consolidated a retraction away): the pending compaction refolds from the
        // initial state.
        if (pendingCutoff === null) throw new Error(`state: the group ${prefix} has a header and no page`);
        info.whole = true;
        info.refoldAll = true;
        return g;
      }
      const page = pageOf(last[0]);
      // The last entry is a delta: its page is its base and every delta after it.
      const pages = page === last[0] ? [last] : reader.range(page, prefix + END);
      return then(pages, (ps) => {
        prepend(reader, g, ps, page === prefix + FIRST);
        return g;
      });
    });
  });
}

/**
 * Loads what the updates need that the fold does not hold: nothing when the fold is whole or the
 * first update is at or after its first input (the fold then holds its place and everything
 * after); the pages from the first update's place otherwise; the whole group with `whole` (a
 * retraction, a pending compaction). Synchronous unless the store is.
 */
export function loadFor(
  reader: PageReader,
  g: { fold: FoldState; info: PageInfo; pendingCutoff: number | null },
  first: readonly [order: Value, value: Value] | null,
): MaybePromise<void> {
  const { info, fold } = g;
  if (info.whole) return;
  // NB: a fold that is not whole is empty only when a step consolidated its inputs away (an
  // insertion meeting an earlier retraction); its group goes on in the pages before it.
  if (
    first !== null &&
    fold.values.length > 0 &&
    compareInputs(fold.orders[0], fold.values[0], first[0], first[1]) <= 0
  )
    return;
  const lowest = info.prefix + FIRST;
  let from: MaybePromise<string> = lowest;
  if (first !== null) {
    const place = info.prefix + encodeKey([first[0], first[1]]) + '!'; // NB: above the place's own key, below any greater one
    // The entry found may be one of its page's deltas: the page starts at its base. (Only sealed
    // pages precede the group's last page, so this finds a base; a delta is mapped all the same.)
    from = then(reader.seek(lowest, place < info.cover ? place : info.cover, true), (found) =>
      found === undefined ? lowest : pageOf(found[0]),
    );
  }
  return then(from, (start) =>
    then(reader.range(start, info.cover), (pages) => prepend(reader, g, pages, start === lowest)),
  );
}

/**
 * Puts stored pages (bases and deltas in key order, ending below the fold's first page) before the
 * fold's inputs.
 */
function prepend(
  reader: PageReader,
  g: { fold: FoldState; info: PageInfo; pendingCutoff: number | null },
  pages: readonly (readonly [string, string])[],
  whole: boolean,
): void {
  const { info } = g;
  const old = g.fold;
  const values: Value[] = [];
  const orders: Value[] = [];
  const mults: number[] = [];
  const times: number[] = [];
  const emitted: Emission[] = [];
  const checkpoints: Checkpoint[] = [];
  const keys: string[] = [];
  const deltas: string[][] = [];
  const sizes: number[] = [];
  /** The page of the last checkpoint pushed (its base key, also when its base is gone). */
  let page = '';
  for (const [key, text] of pages) {
    const { data, compactTo } = reader.open(key, text);
    g.pendingCutoff = maxCutoff(g.pendingCutoff, compactTo);
    let vs: Value[], os: Value[], ms: number[], ts: number[], es: Emission[];
    if (!isDelta(key)) {
      let state: Value;
      [state, vs, os, ms, ts, es] = data as Page;
      checkpoints.push({ index: values.length, state });
      keys.push(key);
      deltas.push([]);
      sizes.push(0);
      page = key;
    } else {
      [vs, os, ms, ts, es] = data as Delta;
      if (pageOf(key) !== page) {
        // NB: a delta without its base: retention forgot the base (all its inputs older than the
        // cutoff), so a compaction is pending and refolds the group from the initial state (its
        // checkpoints are not used); a placeholder checkpoint keeps the delta's key to delete.
        if (g.pendingCutoff === null)
          throw new Error(`state: the group ${info.prefix} has a delta ${key} without its page`);
        checkpoints.push({ index: values.length, state: null });
        keys.push('');
        deltas.push([]);
        sizes.push(0);
        page = pageOf(key);
      }
      deltas[deltas.length - 1].push(key);
    }
    sizes[sizes.length - 1] += text.length;
    for (let i = 0; i < vs.length; i++) {
      values.push(vs[i]);
      orders.push(os[i]);
      mults.push(ms[i]);
      times.push(ts[i]);
      emitted.push(es[i]);
    }
  }
  const n = values.length;
  for (let i = 0; i < old.values.length; i++) {
    values.push(old.values[i]);
    orders.push(old.orders[i]);
    mults.push(old.mults[i]);
    times.push(old.times[i]);
    emitted.push(old.emitted[i]);
  }
  for (const c of old.checkpoints) checkpoints.push(n === 0 ? c : { index: c.index + n, state: c.state });
  g.fold = { values, orders, mults, times, maxTime: old.maxTime, emitted, checkpoints, tail: old.tail };
  info.keys = keys.concat(info.keys);
  info.deltas = (deltas as (readonly string[])[]).concat(info.deltas);
  info.sizes = sizes.concat(info.sizes);
  info.stored += n;
  if (info.dirtyFrom !== Infinity) info.dirtyFrom += n;
  if (pages.length > 0) info.cover = pages[0][0];
  // NB: under a pending compaction, retention may have forgotten stored pages anywhere.
  if (g.pendingCutoff !== null) info.refoldAll = true;
  if (!whole) return;
  info.whole = true;
  if (info.cover !== info.prefix + FIRST) {
    // The group's first pages are gone: retention forgot them (all their inputs are older than the
    // cutoff). The pending compaction refolds the group from its initial state.
    if (g.pendingCutoff === null) throw new Error(`state: the group ${info.prefix} has lost its first page`);
    info.refoldAll = true;
  }
}

/** The entries a step changed (new deltas, dirty pages, gone pages, the header), and the group's size in memory. */
export function savePages(
  reader: PageReader,
  fold: FoldState,
  info: PageInfo,
  pendingCutoff: number | null,
): { entries: Map<string, StateEntry | null>; bytes: number } {
  const out = new Map<string, StateEntry | null>();
  if (info.dirtyFrom !== Infinity) {
    if (!appendPages(reader, fold, info, out)) rewritePages(reader, fold, info, out);
    const header = reader.text([fold.tail, fold.maxTime, pendingCutoff]);
    out.set(info.prefix, { v: header, t: fold.maxTime });
    info.headerBytes = header.length;
    info.stored = fold.values.length;
    info.dirtyFrom = Infinity;
  }
  return { entries: out, bytes: sizeOf(info) };
}

/** The greatest time of the fold's inputs [from, to). */
function maxTimeOf(fold: FoldState, from: number, to: number): number {
  let t = -Infinity;
  for (let i = from; i < to; i++) if (fold.times[i] > t) t = fold.times[i];
  return t;
}

/** Checkpoint c's page written whole at `key` (its base): sets `out`, returns its text length. */
function writeBase(
  reader: PageReader,
  fold: FoldState,
  c: number,
  key: string,
  out: Map<string, StateEntry | null>,
): number {
  const cps = fold.checkpoints;
  const from = cps[c].index;
  const to = c + 1 < cps.length ? cps[c + 1].index : fold.values.length;
  const page: Page = [cps[c].state, ...inputsOf(fold, from, to)];
  const v = reader.text(page);
  out.set(key, { v, t: maxTimeOf(fold, from, to) });
  return v.length;
}

/** Checkpoint c's page key when written whole (its first input's place; the group's first page: FIRST). */
function baseKey(fold: FoldState, info: PageInfo, c: number): string {
  const from = fold.checkpoints[c].index;
  return info.prefix + (info.whole && from === 0 ? FIRST : encodeKey([fold.orders[from], fold.values[from]]));
}

/**
 * The step only appended inputs after every stored one (events in causal order): the stored
 * inputs and checkpoints are unchanged, so the last stored page gets a delta with the appended
 * inputs that belong to it (or is sealed, written whole, when a checkpoint now follows it), and
 * the checkpoints after it get new pages. False (nothing written) when the step changed more.
 */
function appendPages(
  reader: PageReader,
  fold: FoldState,
  info: PageInfo,
  out: Map<string, StateEntry | null>,
): boolean {
  const cps = fold.checkpoints;
  const k = info.keys.length;
  const stored = info.stored;
  const n = fold.values.length;
  // NB: dirtyFrom is the first input or emission changed and a refold keeps every checkpoint at or
  // before it, so dirtyFrom ≥ stored means an append (patch.start = the old length); every other
  // change (a late event, a retraction, a compaction, a retry one by one) has dirtyFrom < stored.
  // The checks below only guard the bookkeeping: failing one rewrites the pages whole, which is
  // always right.
  if (stored === 0 || k === 0 || info.dirtyFrom < stored || cps.length < k || info.refoldAll) return false;
  const j = k - 1;
  const first = cps[j].index;
  if (first > stored || stored - first >= MAX_DELTA_OFFSET) return false;
  const end = k < cps.length ? cps[k].index : n;
  if (info.keys[j] === '') {
    // The last stored checkpoint had no inputs (after retractions): its page is new.
    if (end > first) {
      const key = baseKey(fold, info, j);
      info.keys[j] = key;
      info.sizes[j] = writeBase(reader, fold, j, key, out);
    }
  } else if (k === cps.length) {
    // Still the last page: its appended inputs as a delta.
    const key = deltaKey(info.keys[j], stored - first);
    const delta: Delta = inputsOf(fold, stored, n);
    const v = reader.text(delta);
    out.set(key, { v, t: maxTimeOf(fold, stored, n) });
    info.deltas[j] = info.deltas[j].concat(key);
    info.sizes[j] += v.length;
  } else if (end > stored || info.deltas[j].length > 0) {
    // Sealed: a checkpoint follows the page now, so it is written whole and its deltas go.
    for (const d of info.deltas[j]) out.set(d, null);
    info.deltas[j] = NO_DELTAS;
    info.sizes[j] = writeBase(reader, fold, j, info.keys[j], out);
  }
  for (let c = k; c < cps.length; c++) {
    const from = cps[c].index;
    const to = c + 1 < cps.length ? cps[c + 1].index : n;
    info.deltas.push(NO_DELTAS);
    if (from >= to) {
      info.keys.push('');
      info.sizes.push(0);
      continue;
    }
    const key = baseKey(fold, info, c);
    info.keys.push(key);
    info.sizes.push(writeBase(reader, fold, c, key, out));
  }
  return true;
}

/** Rewrites the pages from the one before the first change to the end whole; deletes the keys that went. */
function rewritePages(reader: PageReader, fold: FoldState, info: PageInfo, out: Map<string, StateEntry | null>): void {
  const cps = fold.checkpoints;
  // The page holding the input before the first change is rewritten too: a change at a
  // checkpoint's index can empty the page before it (its inputs retracted).
  const s0 = Math.max(0, checkpointAfter(cps, info.dirtyFrom - 1) - 1);
  const keys = info.keys.slice(0, s0);
  const deltas = info.deltas.slice(0, s0);
  const sizes = info.sizes.slice(0, s0);
  const gone = new Set<string>();
  for (let c = s0; c < info.keys.length; c++) {
    if (info.keys[c] !== '') gone.add(info.keys[c]);
    for (const d of info.deltas[c]) gone.add(d);
  }
  for (let c = s0; c < cps.length; c++) {
    const from = cps[c].index;
    const to = c + 1 < cps.length ? cps[c + 1].index : fold.values.length;
    deltas.push(NO_DELTAS);
    if (from >= to) {
      keys.push('');
      sizes.push(0);
      continue;
    }
    const key = baseKey(fold, info, c);
    gone.delete(key);
    keys.push(key);
    sizes.push(writeBase(reader, fold, c, key, out));
  }
  for (const k of gone) out.set(k, null);
  info.keys = keys;
  info.deltas = deltas;
  info.sizes = sizes;
}

/** The deletions of a group that is gone (its inputs all retracted: the fold was whole). */
export function dropPages(info: PageInfo): Map<string, StateEntry | null> {
  const out = new Map<string, StateEntry | null>([[info.prefix, null]]);
  for (const k of info.keys) if (k !== '') out.set(k, null);
  for (const ds of info.deltas) for (const d of ds) out.set(d, null);
  return out;
}

/** Every stored key of a group: its header, its pages' bases and deltas (one range read). */
export function storedKeys(reader: PageReader, prefix: string): MaybePromise<string[]> {
  return then(reader.range(prefix + FIRST, prefix + END), (entries) => [prefix, ...entries.map(([k]) => k)]);
}

function sizeOf(info: PageInfo): number {
  let n = info.headerBytes;
  for (const s of info.sizes) n += s;
  return n;
}

/**
 * Keeps only the fold's last page (with inputs) in memory: the group is clean (saved and
 * committed). Returns the group's new fold (the same when there is nothing to drop).
 */
export function trimPages(fold: FoldState, info: PageInfo): FoldState {
  const cps = fold.checkpoints;
  let c = cps.length - 1;
  while (c > 0 && cps[c].index >= fold.values.length) c--;
  const at = cps[c].index;
  if (at === 0 || info.dirtyFrom !== Infinity) return fold;
  info.keys = info.keys.slice(c);
  info.deltas = info.deltas.slice(c);
  info.sizes = info.sizes.slice(c);
  info.stored -= at;
  info.whole = false;
  info.cover = info.keys[0];
  const checkpoints: Checkpoint[] = [];
  for (let k = c; k < cps.length; k++) checkpoints.push({ index: cps[k].index - at, state: cps[k].state });
  return {
    values: fold.values.slice(at),
    orders: fold.orders.slice(at),
    mults: fold.mults.slice(at),
    times: fold.times.slice(at),
    maxTime: fold.maxTime,
    emitted: fold.emitted.slice(at),
    checkpoints,
    tail: fold.tail,
  };
}

export { sizeOf as pagesSize };
