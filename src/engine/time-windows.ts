/**
 * Event-time windows (`Collection.window`): which windows of a calendar in a time zone an instant
 * or a timespan falls into. A calendar is a sequence of boundaries in local wall-clock time —
 * every n minutes or hours of each local day from a time of day (shifts 06:00, 14:00, 22:00 are
 * 8 hours from 06:00), every n days or weeks (from Monday) at a time of day, every n months from
 * the 1st — and boundary k begins at `TimeZone.begin` of its wall-clock time, so windows follow
 * DST: a night shift across the change to summer time is 7 hours long, one across the change
 * back 9 hours. A tumbling window is the time from one boundary to the next; a sliding window
 * spans size / slide consecutive steps and one begins at every boundary.
 *
 * It is a pure function of the record (the operator is a flatMap), so late events and
 * retractions reach the windows they belong to like any other change.
 */
import { MAX_MS, MIN_MS, naive, TimeZone } from './time-zone';
import type { Value, WindowOptions, WindowRow, WindowUnit } from './types';

const MINUTE = 60_000;
const DAY = 86_400_000;
/** 1970-01-05, a Monday: weeks are counted from it. */
const FIRST_MONDAY = 4 * DAY;
const UNITS: readonly WindowUnit[] = ['minute', 'hour', 'day', 'week', 'month'];
/** A record's windows at most (a timespan of years in minute windows is a mistake, not a workload). */
export const MAX_WINDOWS_PER_RECORD = 10_000;

function positiveInteger(x: unknown, what: string): number {
  if (typeof x !== 'number' || !Number.isInteger(x) || x < 1)
    throw new RangeError(`window: ${what} must be a positive integer, got ${JSON.stringify(x)}`);
  return x;
}

/** 'HH:MM' → ms after midnight. */
function timeOfDay(text: unknown): number {
  const m = typeof text === 'string' ? /^([01]?\d|2[0-3]):([0-5]\d)$/.exec(text.trim()) : null;
  if (m === null) throw new RangeError(`window: start must be a local time of day HH:MM, got ${JSON.stringify(text)}`);
  return (Number(m[1]) * 60 + Number(m[2])) * MINUTE;
}

/** A time in µs as ms, or a clear error (the flatMap reports it with the operator and the record). */
function toMs(t: unknown, what: string): number {
  if (typeof t !== 'number' || !Number.isFinite(t))
    throw new TypeError(`${what} is not a number of µs since the epoch: ${JSON.stringify(t) ?? String(t)}`);
  const ms = Math.floor(t / 1000);
  if (ms < MIN_MS || ms > MAX_MS) throw new RangeError(`${what} ${t} µs is not within the years 1 to 9999`);
  return ms;
}

export class Windowing {
  readonly zone: TimeZone;
  readonly unit: WindowUnit;
  /** Steps (from one boundary to the next) per window: 1 for tumbling windows. */
  readonly span: number;
  /** Units per step. */
  private readonly step: number;
  /** For all units but month: the step in ms and the wall-clock time of boundary 0. */
  private readonly stepMs: number;
  private readonly phase: number;
  /** The time of day of day, week and month boundaries. */
  private readonly startMs: number;
  /** The step last found (instants mostly come close together): boundaries' instants in ms. */
  private last = { k: 0, from: 0, to: -1 };

  constructor(options: Pick<WindowOptions, 'unit' | 'size' | 'slide' | 'start' | 'timeZone'>) {
    this.unit = options.unit;
    if (!UNITS.includes(this.unit))
      throw new RangeError(`window: unit must be one of ${UNITS.join(', ')}, got ${JSON.stringify(options.unit)}`);
    const size = positiveInteger(options.size ?? 1, 'size');
    this.step = positiveInteger(options.slide ?? size, 'slide');
    if (size % this.step !== 0)
      throw new RangeError(`window: size (${size}) must be a multiple of slide (${this.step})`);
    this.span = size / this.step;
    this.startMs = timeOfDay(options.start ?? '00:00');
    this.zone = new TimeZone(options.timeZone ?? 'UTC');
    const unitMs = { minute: MINUTE, hour: 60 * MINUTE, day: DAY, week: 7 * DAY, month: 0 }[this.unit];
    this.stepMs = this.step * unitMs;
    if ((this.unit === 'minute' || this.unit === 'hour') && DAY % this.stepMs !== 0) {
      throw new RangeError(
        `window: ${this.step} ${this.unit}s do not divide a day; use a step such as ` +
          (this.unit === 'hour' ? '1, 2, 3, 4, 6, 8, 12 or 24 hours' : '1, 5, 10, 15, 20, 30 or 60 minutes'),
      );
    }
    this.phase =
      this.unit === 'week' ? FIRST_MONDAY + this.startMs : this.unit === 'month' ? 0 : this.startMs % this.stepMs;
  }

  /** The wall-clock time of boundary k. */
  private boundary(k: number): number {
    if (this.unit !== 'month') return k * this.stepMs + this.phase;
    const m = k * this.step;
    return naive(1970 + Math.floor(m / 12), ((m % 12) + 12) % 12, 1) + this.startMs;
  }

  /** The greatest k whose boundary's wall-clock time is ≤ w. */
  private boundaryBefore(w: number): number {
    if (this.unit !== 'month') return Math.floor((w - this.phase) / this.stepMs);
    const d = new Date(w);
    let m = (d.getUTCFullYear() - 1970) * 12 + d.getUTCMonth();
    if (naive(d.getUTCFullYear(), d.getUTCMonth(), 1) + this.startMs > w) m--;
    return Math.floor(m / this.step);
  }

  /** The instant (ms) at which boundary k begins. */
  private at(k: number): number {
    return this.zone.begin(this.boundary(k));
  }

  /** The step holding instant `ms`: at(k) ≤ ms < at(k + 1). */
  private stepOf(ms: number): number {
    const last = this.last;
    if (last.from <= ms && ms < last.to) return last.k;
    // NB: the wall clock can stand behind an instant's boundary (after the clocks went back, the
    // hour repeats), so the boundary by wall clock is only a start; the instants decide.
    let k = this.boundaryBefore(this.zone.wall(ms));
    while (this.at(k) > ms) k--;
    while (this.at(k + 1) <= ms) k++;
    this.last = { k, from: this.at(k), to: this.at(k + 1) };
    return k;
  }

  /** The windows holding the instant `time` (µs). */
  windowsOf<T extends Value>(value: T, time: number): WindowRow<T>[] {
    const k = this.stepOf(toMs(time, 'time'));
    const out: WindowRow<T>[] = [];
    for (let j = k - this.span + 1; j <= k; j++)
      out.push({ start: this.at(j) * 1000, end: this.at(j + this.span) * 1000, value });
    return out;
  }

  /** The windows a timespan [from, to) (µs) overlaps, each with the part of it inside. */
  split<T extends Value>(value: T, from: number, to: number): WindowRow<T>[] {
    const a = toMs(from, 'time');
    toMs(to, 'end');
    if (to < from) throw new RangeError(`the timespan ends (${to} µs) before it starts (${from} µs)`);
    if (to === from) return [];
    const first = this.stepOf(a) - this.span + 1;
    const lastStep = this.stepOf(Math.floor((to - 1) / 1000));
    if (lastStep - first + 1 > MAX_WINDOWS_PER_RECORD) {
      throw new RangeError(
        `the timespan from ${from} to ${to} µs falls into more than ${MAX_WINDOWS_PER_RECORD} windows`,
      );
    }
    const out: WindowRow<T>[] = [];
    for (let j = first; j <= lastStep; j++) {
      const start = this.at(j) * 1000;
      const end = this.at(j + this.span) * 1000;
      const f = Math.max(from, start);
      const t = Math.min(to, end);
      if (f < t) out.push({ start, end, value, from: f, to: t });
    }
    return out;
  }
}
