/**
 * `TimeZone`: the wall clock, read with one offset per 6-hour bucket, equals Intl's parts read
 * instant by instant (an independent formatter here), in zones with DST changes of 1 h and 30 min,
 * north and south, offsets of odd minutes and seconds (historical local mean time), a zone that
 * skipped a whole day (Pacific/Apia, 2011) and UTC — at random instants and at instants close to
 * the changes, also fractional ms (fast-check, 200 runs each); `iso` of those instants has the
 * reference's local text and reads back as the same instant.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { TimeZone } from '../../src/engine/time-zone';
import { RUNS } from './harness';

const ZONES = [
  'Europe/Berlin',
  'America/New_York',
  'Australia/Lord_Howe',
  'America/Santiago',
  'Asia/Kathmandu',
  'Europe/Amsterdam',
  'Africa/Monrovia',
  'Pacific/Apia',
  'UTC',
];
const YEAR = 365.25 * 86_400_000;

/** The wall clock at `ms` from Intl's parts, as naive ms (the reference). */
function reference(zone: string): (ms: number) => number {
  const f = new Intl.DateTimeFormat('en-US', {
    timeZone: zone,
    hourCycle: 'h23',
    era: 'short',
    year: 'numeric',
    month: 'numeric',
    day: 'numeric',
    hour: 'numeric',
    minute: 'numeric',
    second: 'numeric',
  });
  // Intl reads whole ms (it truncates towards zero); the fraction is added back.
  return (ms) => {
    const p = Object.fromEntries(f.formatToParts(Math.floor(ms)).map((x) => [x.type, x.value]));
    const year = p.era!.startsWith('B') ? 1 - Number(p.year) : Number(p.year);
    const d = new Date(0);
    d.setUTCFullYear(year, Number(p.month) - 1, Number(p.day));
    d.setUTCHours(Number(p.hour), Number(p.minute), Number(p.second), 0);
    return d.getTime() + (ms - Math.floor(ms / 1000) * 1000);
  };
}

/** Instants where the offset changes, found by bisection over 1900–2040 (for probes close to them). */
function changes(ref: (ms: number) => number): number[] {
  const out: number[] = [];
  const step = 7 * 86_400_000;
  for (let t = Date.UTC(1900, 0, 1); t < Date.UTC(2040, 0, 1); t += step) {
    if (ref(t) - t === ref(t + step) - (t + step)) continue;
    let lo = t;
    let hi = t + step;
    while (hi - lo > 1) {
      const mid = Math.floor((lo + hi) / 2);
      if (ref(mid) - mid === ref(t) - t) lo = mid;
      else hi = mid;
    }
    out.push(hi);
  }
  return out;
}

describe('TimeZone: the wall clock by cached offsets equals Intl instant by instant', () => {
  for (const name of ZONES) {
    test(name, () => {
      const ref = reference(name);
      const at = changes(ref);
      const instant = fc.oneof(
        fc.integer({ min: Date.UTC(1850, 0, 1), max: Date.UTC(2100, 0, 1) }),
        fc.integer({ min: -5000 * YEAR, max: 5000 * YEAR }).map((ms) => Math.floor(ms)),
        at.length === 0
          ? fc.constant(0)
          : fc
              .tuple(fc.constantFrom(...at), fc.integer({ min: -3 * 3_600_000, max: 3 * 3_600_000 }))
              .map(([t, d]) => t + d),
      );
      const instants = fc.array(
        fc.tuple(instant, fc.constantFrom(0, 0, 0, 0.25, 0.999)).map(([ms, part]) => ms + part),
        { minLength: 1, maxLength: 40 },
      );
      fc.assert(
        fc.property(instants, (instants) => {
          // one zone object over many instants: the buckets' cache is what is tested
          const zone = new TimeZone(name);
          for (const ms of instants) {
            // exact for whole ms; a fraction is added in another order (rounding in the last bits)
            if (Number.isInteger(ms)) assert.equal(zone.wall(ms), ref(ms), `${name} at ${ms}`);
            else assert.ok(Math.abs(zone.wall(ms) - ref(ms)) < 1e-6, `${name} at ${ms}`);
            if (ms >= Date.UTC(1, 0, 1) && ms < Date.UTC(9999, 0, 1)) {
              const iso = zone.iso(ms);
              assert.equal(zone.iso(ms), iso, 'the kept text');
              const text = new Date(ref(ms)).toISOString();
              const local = text.endsWith('.000Z') ? text.slice(0, -5) : text.slice(0, -1);
              assert.equal(iso.slice(0, local.length), local, `${name} at ${ms}: ${iso}`);
              if (Number.isInteger(ms) && !/[+-]\d\d:\d\d:\d\d$/.test(iso)) assert.equal(Date.parse(iso), ms, iso);
            }
          }
        }),
        { numRuns: RUNS },
      );
    });
  }
});
