/**
 * dd-window: event-time windows. Each record goes out once per window of a calendar in a time
 * zone that holds its time (tumbling or sliding; minutes, hours — shifts —, days, weeks, months),
 * with the window as a field: `{start, end}` as local ISO 8601 texts with their offset. With an
 * end time, a timespan is split over the windows it overlaps, each part with `from`, `to` and
 * `minutes`. The engine's `Collection.window` does the calendar (DST-correct); this node reads the
 * times (µs, ms or s numbers, or ISO 8601 texts with an offset) and writes the field.
 */
import type { Value, WindowRow, WindowUnit } from '../engine/types';
import { Windowing } from '../engine/time-windows';
import type { TimeZone } from '../engine/time-zone';
import type { NodeAPI, NodeDef } from './red';
import { collectionInput, registerOperatorType } from './dd-operator';
import { andThen, compileRecordFunction, UserCodeError, valueFunction } from './user-function';

const UNITS: readonly WindowUnit[] = ['minute', 'hour', 'day', 'week', 'month'];
const SCALE: Readonly<Record<string, number>> = { us: 1, ms: 1000, s: 1_000_000 };
/** ISO 8601 date and time with Z or an offset (a time without one would depend on the server's zone). */
const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:?\d\d)$/i;

function whole(config: NodeDef, field: string, fallback: string): number | undefined {
  const text = String(config[field] ?? fallback).trim();
  if (text === '') return undefined;
  if (!/^\d+$/.test(text) || Number(text) < 1)
    throw new UserCodeError(`${field}: ${JSON.stringify(text)} is not a whole number of at least 1`);
  return Number(text);
}

/** A time read from a record as µs since the epoch, or an Error saying what is wrong. */
function micros(x: Value, scale: number, what: string): number {
  if (typeof x === 'number' && Number.isFinite(x)) return x * scale;
  if (typeof x === 'string' && ISO.test(x.trim())) {
    const ms = Date.parse(x.trim());
    if (!Number.isNaN(ms)) return ms * 1000;
  }
  throw new Error(
    `${what} is ${JSON.stringify(x)}: expected a number or an ISO 8601 text with a time zone offset (such as 2026-06-01T06:00:00Z)`,
  );
}

export default function (RED: NodeAPI): void {
  registerOperatorType(RED, 'dd-window', (node, config, label) => {
    const unit = String(config.unit ?? 'hour') as WindowUnit;
    if (!UNITS.includes(unit))
      throw new UserCodeError(`unit: unknown ${JSON.stringify(config.unit)} (expected ${UNITS.join(', ')})`);
    const size = whole(config, 'size', '1') ?? 1;
    const slide = whole(config, 'slide', '');
    const start = String(config.start ?? '00:00').trim() || '00:00';
    const timeZone = String(config.timeZone ?? 'UTC').trim() || 'UTC';
    const timeUnit = String(config.timeUnit ?? 'us');
    const scale = SCALE[timeUnit];
    if (scale === undefined)
      throw new UserCodeError(`time unit: unknown ${JSON.stringify(timeUnit)} (expected us, ms or s)`);
    const field = String(config.field ?? 'window').trim();
    if (field === '' || field === '__proto__')
      throw new UserCodeError(`window field: ${JSON.stringify(field)} cannot name a field`);
    let zone: TimeZone;
    try {
      zone = new Windowing({ unit, size, slide, start, timeZone }).zone;
    } catch (err) {
      throw new UserCodeError((err as Error).message);
    }
    const read = (name: 'time' | 'end', what: string) =>
      valueFunction(
        compileRecordFunction(
          RED,
          node,
          { language: config[`${name}Type`] ?? 'path', text: config[name] },
          ['path', 'js', 'jsonata'],
          what,
        ),
        `${label}'s ${what}`,
      );
    const time = read('time', 'time');
    const hasEnd = String(config.end ?? '').trim() !== '';
    const end = hasEnd ? read('end', 'end') : null;
    const definition = {
      unit,
      size,
      slide: slide ?? null,
      start,
      timeZone,
      timeUnit,
      field,
      timeType: String(config.timeType ?? 'path'),
      time: String(config.time),
      endType: hasEnd ? String(config.endType ?? 'path') : null,
      end: hasEnd ? String(config.end) : null,
    };
    const row = (w: WindowRow): Value => {
      const record = w.value;
      if (record === null || typeof record !== 'object' || Array.isArray(record))
        throw new Error(`the record is not an object, so it cannot get a ${field} field: ${JSON.stringify(record)}`);
      const window: Record<string, Value> = { start: zone.iso(w.start / 1000), end: zone.iso(w.end / 1000) };
      if (w.from !== undefined && w.to !== undefined) {
        // A part's own ends are mostly the record's times, not repeating bounds: not kept.
        window.from = zone.iso(Math.floor(w.from / 1000), false);
        window.to = zone.iso(Math.floor(w.to / 1000), false);
        window.minutes = (w.to - w.from) / 60e6;
      }
      return { ...record, [field]: window };
    };
    return {
      definition,
      build: (inputs) => {
        // (The converters are made once, not a closure per record.)
        const timeMicros = (x: Value): number => micros(x, scale, 'the time');
        const endMicros = (x: Value): number => micros(x, scale, 'the end');
        const windows = collectionInput(inputs, label, config.id).window({
          time: (r) => andThen(time(r), timeMicros),
          end: end === null ? undefined : (r) => andThen(end(r), endMicros),
          unit,
          size,
          slide,
          start,
          timeZone,
          name: config.id,
        });
        return { kind: 'collection', collection: windows.map(row, { name: config.id }) };
      },
    };
  });
}
