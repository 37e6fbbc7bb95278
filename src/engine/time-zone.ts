/**
 * A time zone (an IANA name such as `Europe/Berlin`, through the JavaScript runtime's Intl): the
 * local wall clock at an instant, the instant at which a local wall-clock time begins, and local
 * ISO 8601 texts. Wall-clock times are "naive" milliseconds: the local date and time read as if
 * they were UTC (so calendar arithmetic on them is plain arithmetic).
 *
 * DST: a local time that does not exist (skipped when the clocks go forward) begins at the moment
 * of the change; a local time that occurs twice (clocks go back) begins at its first occurrence.
 * Both follow from one definition, `begin(w)` = the earliest instant whose wall clock is ≥ w, so
 * window boundaries placed with it never go backwards.
 */

const HOUR = 3_600_000;
const DAY = 86_400_000;
/** The span of the cached offset buckets of `wall` (well below the 26 hours of the NB in `begin`). */
const BUCKET = 6 * HOUR;
/** The instants the zone arithmetic accepts: years 1 to 9999 (ms since the epoch). */
export const MIN_MS = -62_135_596_800_000;
export const MAX_MS = 253_402_300_799_999;

/** A UTC "naive" timestamp of a date and time (years below 100 are years, not 1900 + year). */
export function naive(year: number, month: number, day: number, hour = 0, minute = 0, second = 0): number {
  const d = new Date(0);
  d.setUTCFullYear(year, month, day);
  d.setUTCHours(hour, minute, second, 0);
  return d.getTime();
}

export class TimeZone {
  private readonly format: Intl.DateTimeFormat;
  /** begin() results by wall-clock time (bounded: cleared when full). */
  private readonly begins = new Map<number, number>();
  /** The zone's offset (ms) per bucket of BUCKET ms, by bucket number; NaN: it changes inside (bounded: cleared when full). */
  private readonly offsets = new Map<number, number>();
  /** iso() results by instant (bounded: cleared when full). */
  private readonly isos = new Map<number, string>();
  /** The day (since the epoch, wall clock) of the last localText and its 'YYYY-MM-DDT'. */
  private day = NaN;
  private dayText = '';

  /** Throws a RangeError naming the zone when the runtime does not know it. */
  constructor(readonly name: string) {
    try {
      this.format = new Intl.DateTimeFormat('en-US', {
        timeZone: name,
        hourCycle: 'h23',
        era: 'short',
        year: 'numeric',
        month: 'numeric',
        day: 'numeric',
        hour: 'numeric',
        minute: 'numeric',
        second: 'numeric',
      });
    } catch {
      throw new RangeError(
        `unknown time zone ${JSON.stringify(name)} (use an IANA name such as Europe/Berlin, or UTC)`,
      );
    }
  }

  /**
   * The local wall-clock time at instant `ms`, as naive ms. Intl's formatToParts costs microseconds,
   * and dd-window asks for every record, so the offset is looked up once per bucket of 6 hours.
   */
  wall(ms: number): number {
    const bucket = Math.floor(ms / BUCKET);
    let offset = this.offsets.get(bucket);
    if (offset === undefined) {
      const first = bucket * BUCKET;
      const last = first + BUCKET - 1;
      const a = this.wallByParts(first) - first;
      // NB: the offset changes at most once within 26 hours (see begin), so equal offsets at both
      // ends of a 6-hour bucket hold for every instant between them; a bucket with a change inside
      // is NaN and read part by part. test/engine/time-zone.test.ts compares with Intl instant by instant.
      offset = a === this.wallByParts(last) - last ? a : NaN;
      if (this.offsets.size >= 4096) this.offsets.clear();
      this.offsets.set(bucket, offset);
    }
    return Number.isNaN(offset) ? this.wallByParts(ms) : ms + offset;
  }

  /** `wall` read from Intl's parts (every call formats). */
  private wallByParts(ms: number): number {
    let year = 0;
    let month = 0;
    let day = 0;
    let hour = 0;
    let minute = 0;
    let second = 0;
    let bc = false;
    // Whole ms to Intl: it truncates a fraction towards zero, which before 1970 is the next ms.
    const i = Math.floor(ms);
    for (const p of this.format.formatToParts(i)) {
      switch (p.type) {
        case 'year':
          year = Number(p.value);
          break;
        case 'month':
          month = Number(p.value);
          break;
        case 'day':
          day = Number(p.value);
          break;
        case 'hour':
          hour = Number(p.value);
          break;
        case 'minute':
          minute = Number(p.value);
          break;
        case 'second':
          second = Number(p.value);
          break;
        case 'era':
          bc = p.value.startsWith('B');
          break;
      }
    }
    const whole = Math.floor(i / 1000) * 1000;
    return naive(bc ? 1 - year : year, month - 1, day, hour, minute, second) + (ms - whole);
  }

  /** The zone's offset from UTC at instant `ms`, in ms. */
  offset(ms: number): number {
    return this.wall(ms) - ms;
  }

  /** The earliest instant whose local wall-clock time is ≥ `w` (naive ms). */
  begin(w: number): number {
    const known = this.begins.get(w);
    if (known !== undefined) return known;
    // The instant lies within w − 14 h … w + 12 h (offsets span −12 h … +14 h).
    // NB: the zone's offset changes at most once in those 26 hours — so the probes at both ends and
    // the middle see every offset the local time w can have; checked below on the result.
    const offsets = new Set([this.offset(w - 14 * HOUR), this.offset(w - HOUR), this.offset(w + 12 * HOUR)]);
    let best = Infinity;
    for (const o of offsets) if (this.wall(w - o) === w) best = Math.min(best, w - o);
    if (best === Infinity) {
      // w does not exist (clocks went forward): it begins at the change, where the wall clock
      // jumps past it, between w − (later offset) and w − (earlier offset).
      const sorted = [...offsets].sort((a, b) => a - b);
      let lo = w - sorted[sorted.length - 1]!;
      let hi = w - sorted[0]!;
      while (lo < hi) {
        const mid = Math.floor((lo + hi) / 2);
        if (this.wall(mid) >= w) hi = mid;
        else lo = mid + 1;
      }
      best = lo;
    }
    if (!(this.wall(best) >= w && this.wall(best - 1) < w)) {
      throw new Error(
        `time zone ${this.name}: cannot place the local time ${new Date(w).toISOString().slice(0, 19)} ` +
          '(its offset changes more than once within a day there)',
      );
    }
    if (this.begins.size >= 4096) this.begins.clear();
    this.begins.set(w, best);
    return best;
  }

  /**
   * Instant `ms` as local ISO 8601 with its offset, e.g. `2026-03-29T06:00:00+02:00` (`.123` when
   * not whole seconds). `keep`: the text is kept for the next call with the same instant — for
   * instants that repeat, such as windows' starts and ends; others (a record's own times) are only
   * looked up, so they do not crowd the bounded cache out.
   */
  iso(ms: number, keep = true): string {
    let text = this.isos.get(ms);
    if (text === undefined) {
      text = this.isoOf(ms);
      if (keep) {
        if (this.isos.size >= 4096) this.isos.clear();
        this.isos.set(ms, text);
      }
    }
    return text;
  }

  private isoOf(ms: number): string {
    const w = this.wall(ms);
    return this.localText(w) + offsetText(Math.round((w - ms) / 1000));
  }

  /**
   * Wall-clock time `w` as `YYYY-MM-DDTHH:MM:SS` (`.mmm` when not whole seconds): the date part
   * is kept per day, the time of day is arithmetic (Date.toISOString per record cost 3 % of the
   * example flows' CPU). Years outside 0000–9999 go through toISOString (±YYYYYY).
   */
  private localText(w: number): string {
    if (!(w >= 0 && w <= MAX_MS)) {
      const text = new Date(w).toISOString();
      return text.endsWith('.000Z') ? text.slice(0, -5) : text.slice(0, -1);
    }
    const day = Math.floor(w / DAY);
    if (day !== this.day) {
      this.day = day;
      this.dayText = new Date(day * DAY).toISOString().slice(0, 11); // 'YYYY-MM-DDT'
    }
    const t = w - day * DAY;
    const second = Math.floor(t / 1000) % 60;
    const milli = Math.floor(t % 1000);
    // Three pieces, not seven: each concatenation is a string object of its own until the text is flattened.
    const hms = this.dayText + HOURS_MINUTES[Math.floor(t / 60_000)] + COLON_SECONDS[second];
    return milli === 0 ? hms : `${hms}.${String(milli).padStart(3, '0')}`;
  }
}

/** 0–99 as two digits (texts made once: a text per record and field fed the garbage collector). */
const TWO_DIGITS: readonly string[] = Array.from({ length: 100 }, (_, n) => (n < 10 ? `0${n}` : String(n)));

/** 'HH:MM' for each minute of the day (00:00 … 23:59). */
const HOURS_MINUTES: readonly string[] = Array.from(
  { length: 1440 },
  (_, m) => `${TWO_DIGITS[Math.floor(m / 60)]}:${TWO_DIGITS[m % 60]}`,
);

/** ':SS' for each second of a minute. */
const COLON_SECONDS: readonly string[] = Array.from({ length: 60 }, (_, s) => `:${TWO_DIGITS[s]}`);

/** The texts of offsets (seconds east of UTC) seen so far: a zone has few. */
const offsetTexts = new Map<number, string>();

/** An offset in seconds as `+HH:MM` (`+HH:MM:SS` when not whole minutes), e.g. `+02:00`, `-03:30`. */
function offsetText(off: number): string {
  let text = offsetTexts.get(off);
  if (text === undefined) {
    const sign = off < 0 ? '-' : '+';
    const a = Math.abs(off);
    const hh = String(Math.floor(a / 3600)).padStart(2, '0');
    const mm = String(Math.floor(a / 60) % 60).padStart(2, '0');
    const ss = a % 60 === 0 ? '' : ':' + String(a % 60).padStart(2, '0');
    text = `${sign}${hh}:${mm}${ss}`;
    if (offsetTexts.size >= 4096) offsetTexts.clear();
    offsetTexts.set(off, text);
  }
  return text;
}
