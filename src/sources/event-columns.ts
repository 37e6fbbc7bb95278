/**
 * The columnar form in which the read-ahead worker sends a page of stored events to the main
 * thread: building the event objects from columns costs the main thread about half of what
 * JSON.parse of the page text does, and the worker does the rest of the work on the other core.
 *
 * Per event three numbers (lamport, offset, timestamp: Float64 is exact for integers up to 2^53)
 * and three indexes into a dictionary of JSON texts (stream, tags, appId), which the worker sends
 * once (only the entries new with a page) and the main thread parses once. Only the payloads are
 * parsed per page, with one JSON.parse of `[p1,p2,…]`. The number and index arrays are
 * transferred, not copied.
 *
 * The worker does not parse the stored events: it cuts each text the writer (`appendSync` in
 * embedded-log.ts) stores, `{"lamport":…,"stream":…,"offset":…,"timestamp":…,"tags":…,"appId":…,"payload":…}`,
 * at its keys. JSON strings hold no unescaped quote, so the first `,"offset":` after the stream is
 * the key itself, and so on. A text is cut only if it has all these keys in this order, the
 * numbers are plain non-negative integers, the stream and app id are JSON strings and the tags an array
 * (parsed once per distinct text); any other text travels whole (in the payload slot) and is
 * parsed as it is.
 */
import type { ActyxEvent } from './types';

/** One page as posted by the worker. */
export interface EventColumnsPage {
  /** Per event: lamport, offset, timestamp. */
  readonly numbers: Float64Array;
  /** Per event: dictionary indexes of stream, tags and appId; stream = WHOLE_EVENT: the payload slot holds the whole event. */
  readonly refs: Uint32Array;
  /** JSON text `[p1,p2,…]`: the payload of each event (or the whole event, see `refs`). */
  readonly payloads: string;
  /** Dictionary entries (JSON texts) new with this page, in index order. */
  readonly strings: readonly string[];
  /** The dictionary starts over with this page (it is bounded). */
  readonly reset: boolean;
  /** Bytes of the arrays plus characters of the texts: what the page counts against read-ahead credit. */
  readonly size: number;
}

/** The stream index of an event that travels whole. */
const WHOLE_EVENT = 0xffffffff;

/**
 * The worker's half, as plain JavaScript for the worker's code string: it defines
 * `createEventColumnsEncoder(maxStrings)`, which returns `encode(texts)` for the stored event
 * texts of a page and gives an EventColumnsPage. The dictionary starts over when it holds more
 * than `maxStrings` entries (streams, tag sets and app ids only, so it rarely does).
 */
export const EVENT_COLUMNS_ENCODER_JS = `
function createEventColumnsEncoder(maxStrings) {
  let ids = new Map(); // JSON text -> index
  let size = 0;
  let fresh = [];
  // The dictionary index of a JSON text that is a string (or with wantArray, an array); -1 if it is not.
  function entry(text, wantArray) {
    let i = ids.get(text);
    if (i !== undefined) return i;
    let value;
    try { value = JSON.parse(text); } catch { return -1; }
    if (wantArray ? !Array.isArray(value) : typeof value !== 'string') return -1;
    i = size++;
    // A copy as the key: the slice would keep its whole event text alive as long as the entry.
    const copy = JSON.parse(JSON.stringify(text));
    ids.set(copy, i);
    fresh.push(copy);
    return i;
  }
  // The non-negative safe integer written in e between from and to as the writer writes it (no
  // sign, no leading zero, no exponent); else NaN. (A digit loop: String(Number(x)) costs 10x more.)
  function integer(e, from, to) {
    if (to <= from || to - from > 16 || (e.charCodeAt(from) === 48 && to - from > 1)) return NaN;
    let n = 0;
    for (let k = from; k < to; k++) {
      const d = e.charCodeAt(k) - 48;
      if (d < 0 || d > 9) return NaN;
      n = n * 10 + d;
    }
    return n <= Number.MAX_SAFE_INTEGER ? n : NaN;
  }
  return function encode(texts) {
    const reset = size > maxStrings;
    if (reset) { ids = new Map(); size = 0; }
    fresh = [];
    const n = texts.length;
    const numbers = new Float64Array(3 * n);
    const refs = new Uint32Array(3 * n);
    const payloads = new Array(n);
    for (let i = 0, j = 0; i < n; i++, j += 3) {
      const e = texts[i];
      const s = e.startsWith('{"lamport":') && e.endsWith('}') ? e.indexOf(',"stream":', 11) : -1;
      const o = s < 0 ? -1 : e.indexOf(',"offset":', s + 10);
      const t = o < 0 ? -1 : e.indexOf(',"timestamp":', o + 10);
      const g = t < 0 ? -1 : e.indexOf(',"tags":', t + 13);
      const a = g < 0 ? -1 : e.indexOf(',"appId":', g + 8);
      const p = a < 0 ? -1 : e.indexOf(',"payload":', a + 9);
      const lamport = p < 0 ? NaN : integer(e, 11, s);
      const offset = lamport !== lamport ? NaN : integer(e, o + 10, t);
      const timestamp = offset !== offset ? NaN : integer(e, t + 13, g);
      const stream = timestamp !== timestamp ? -1 : entry(e.slice(s + 10, o), false);
      const tags = stream < 0 ? -1 : entry(e.slice(g + 8, a), true);
      const appId = tags < 0 ? -1 : entry(e.slice(a + 9, p), false);
      if (appId < 0) {
        refs[j] = ${WHOLE_EVENT};
        payloads[i] = e;
        continue;
      }
      numbers[j] = lamport;
      numbers[j + 1] = offset;
      numbers[j + 2] = timestamp;
      refs[j] = stream;
      refs[j + 1] = tags;
      refs[j + 2] = appId;
      payloads[i] = e.slice(p + 11, e.length - 1);
    }
    const text = '[' + payloads.join(',') + ']';
    let bytes = numbers.byteLength + refs.byteLength + text.length;
    for (const f of fresh) bytes += f.length;
    return { numbers, refs, payloads: text, strings: fresh, reset, size: bytes };
  };
}
`;

/**
 * The main thread's half: builds the events of the pages of one range, in the order they were
 * encoded (the dictionary carries over from page to page).
 */
export class EventColumnsDecoder {
  /** The parsed dictionary entries: streams and app ids (strings), tag sets (arrays, never handed out). */
  private values: Array<string | readonly string[]> = [];

  decode(page: EventColumnsPage): ActyxEvent[] {
    if (page.reset) this.values = [];
    for (const text of page.strings) this.values.push(JSON.parse(text) as string | readonly string[]);
    const payloads = JSON.parse(page.payloads) as unknown[];
    const { numbers, refs } = page;
    if (refs.length !== 3 * payloads.length)
      throw new Error(`a read-ahead page has ${payloads.length} payloads for ${refs.length / 3} events`);
    const values = this.values;
    const events = new Array<ActyxEvent>(payloads.length);
    for (let i = 0, j = 0; i < payloads.length; i++, j += 3) {
      const stream = refs[j]!;
      events[i] =
        stream === WHOLE_EVENT
          ? (payloads[i] as ActyxEvent)
          : {
              lamport: numbers[j]!,
              stream: values[stream] as string,
              offset: numbers[j + 1]!,
              timestamp: numbers[j + 2]!,
              // Each event its own array: consumers may freeze or mutate it.
              tags: (values[refs[j + 1]!] as readonly string[]).slice(),
              appId: values[refs[j + 2]!] as string,
              payload: payloads[i],
            };
    }
    return events;
  }
}
