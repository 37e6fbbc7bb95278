/**
 * A `scan` group in a state store as a header and pages (docs/durable-state.md, "Pages"), so that
 * a step writes only the pages it changed and a group in memory holds only the pages a step needs:
 * events in causal order need the last page; a late event needs the pages from its place on.
 *
 * - The **header**, at the group key's encoding `G`: `[tail, maxTime, pendingCutoff]`, its time
 *   `maxTime`.
 * - A **page** per checkpoint of the fold (the inputs from that checkpoint to the next one): at
 *   `G + 'a'` for the group's first page, else `G + encodeKey([sort key, value])` of the page's
 *   first input — page keys sort as the pages' places, and the page holding an input's place is
 *   the last one whose key is at most the input's. Its data: `[start state, values, sort keys,
 *   multiplicities, times, emitted]`, its time the greatest of its inputs' times. A checkpoint
 *   with no inputs after it (possible after retractions) has no page.
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

/** What a group's fold in memory holds of its stored entries. */
export interface PageInfo {
  /** The group key's encoding: the header's key and the prefix of its pages' keys. */
  readonly prefix: string;
  /** The fold starts at the group's first input (else at the page `cover`; earlier pages are only stored). */
  whole: boolean;
  /** The key of the fold's first page when not whole: stored pages below it are not in memory. */
  cover: string;
  /** Per checkpoint of the fold, its page's key ('' for a checkpoint without inputs) and text length, as last saved or loaded. */
  keys: string[];
  sizes: number[];
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
    sizes: [],
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

type Page = readonly [Value, Value[], Value[], number[], number[], Emission[]];

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
        cover: last === undefined ? prefix + FIRST : last[0],
        keys: [],
        sizes: [],
        headerBytes: text.length,
        dirtyFrom: Infinity,
        refoldAll: false,
      };
      const g = { fold, info, pendingCutoff };
      if (last !== undefined) prepend(reader, g, [last], last[0] === prefix + FIRST);
      else {
        // Retention forgot every page (the header's time can be above its inputs' after an
        // insertion consolidated a retraction away): the pending compaction refolds from the
        // initial state.
        if (pendingCutoff === null) throw new Error(`state: the group ${prefix} has a header and no page`);
        info.whole = true;
        info.refoldAll = true;
      }
      return g;
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
    from = then(reader.seek(lowest, place < info.cover ? place : info.cover, true), (found) => found?.[0] ?? lowest);
  }
  return then(from, (start) =>
    then(reader.range(start, info.cover), (pages) => prepend(reader, g, pages, start === lowest)),
  );
}

/** Puts stored pages (in key order, ending below the fold's first page) before the fold's inputs. */
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
  const sizes: number[] = [];
  for (const [key, text] of pages) {
    const { data, compactTo } = reader.open(key, text);
    g.pendingCutoff = maxCutoff(g.pendingCutoff, compactTo);
    const [state, vs, os, ms, ts, es] = data as Page;
    checkpoints.push({ index: values.length, state });
    for (let i = 0; i < vs.length; i++) {
      values.push(vs[i]);
      orders.push(os[i]);
      mults.push(ms[i]);
      times.push(ts[i]);
      emitted.push(es[i]);
    }
    keys.push(key);
    sizes.push(text.length);
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
  info.sizes = sizes.concat(info.sizes);
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

/** The entries a step changed (dirty pages, gone pages, the header), and the group's size in memory. */
export function savePages(
  reader: PageReader,
  fold: FoldState,
  info: PageInfo,
  pendingCutoff: number | null,
): { entries: Map<string, StateEntry | null>; bytes: number } {
  const out = new Map<string, StateEntry | null>();
  if (info.dirtyFrom !== Infinity) {
    const cps = fold.checkpoints;
    // The page holding the input before the first change is rewritten too: a change at a
    // checkpoint's index can empty the page before it (its inputs retracted).
    const s0 = Math.max(0, checkpointAfter(cps, info.dirtyFrom - 1) - 1);
    const keys = info.keys.slice(0, s0);
    const sizes = info.sizes.slice(0, s0);
    const gone = new Set<string>();
    for (let c = s0; c < info.keys.length; c++) if (info.keys[c] !== '') gone.add(info.keys[c]);
    for (let c = s0; c < cps.length; c++) {
      const from = cps[c].index;
      const to = c + 1 < cps.length ? cps[c + 1].index : fold.values.length;
      if (from >= to) {
        keys.push('');
        sizes.push(0);
        continue;
      }
      const key = info.prefix + (info.whole && from === 0 ? FIRST : encodeKey([fold.orders[from], fold.values[from]]));
      let t = -Infinity;
      for (let i = from; i < to; i++) if (fold.times[i] > t) t = fold.times[i];
      const page: Page = [
        cps[c].state,
        fold.values.slice(from, to),
        fold.orders.slice(from, to),
        fold.mults.slice(from, to),
        fold.times.slice(from, to),
        fold.emitted.slice(from, to),
      ];
      const v = reader.text(page);
      out.set(key, { v, t });
      gone.delete(key);
      keys.push(key);
      sizes.push(v.length);
    }
    for (const k of gone) out.set(k, null);
    info.keys = keys;
    info.sizes = sizes;
    const header = reader.text([fold.tail, fold.maxTime, pendingCutoff]);
    out.set(info.prefix, { v: header, t: fold.maxTime });
    info.headerBytes = header.length;
    info.dirtyFrom = Infinity;
  }
  return { entries: out, bytes: sizeOf(info) };
}

/** The deletions of a group that is gone (its inputs all retracted: the fold was whole). */
export function dropPages(info: PageInfo): Map<string, StateEntry | null> {
  const out = new Map<string, StateEntry | null>([[info.prefix, null]]);
  for (const k of info.keys) if (k !== '') out.set(k, null);
  return out;
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
  info.sizes = info.sizes.slice(c);
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
