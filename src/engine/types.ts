/**
 * Public types of the delta engine. The engine is pure TypeScript: it imports nothing from
 * Node-RED, databases or the network. Everything the nodes, the sinks and the restart logic
 * need from it is declared here and exported from `src/engine/index.ts`.
 */

/** A JSON-like value. Identity is structural: deep-equal values are the same value. */
export type Value = null | boolean | number | string | readonly Value[] | { readonly [key: string]: Value };

/**
 * One change of a collection: `diff` copies of `value` are added (diff > 0) or removed (diff < 0).
 * `time` is the event time (µs since the epoch) of the newest event this change derives from; it
 * is only used by retention (`Graph.compact`). Sources put the event timestamp here; operators
 * carry it through.
 */
export type Update<T extends Value = Value> = readonly [value: T, diff: number, time: number];

/** A list of updates. Engine outputs are always consolidated: one entry per value, no zero diffs. */
export type Batch<T extends Value = Value> = readonly Update<T>[];

/**
 * An input batch as columns — what a source has at hand, without a tuple per update. The engine
 * reads the arrays during the step and keeps none of them; `diffs` defaults to 1 for every value.
 */
export interface ColumnBatch<T extends Value = Value> {
  readonly values: readonly T[];
  readonly times: readonly number[];
  readonly diffs?: readonly number[];
}

/**
 * Order keys.
 *
 * Every record in a collection has an order key beside its value: its position, which `reduce`
 * and `scan` sort a group's records by. An input computes it from each input value
 * (`InputOptions.order`; the dataflow gives events their causal position `[lamport, stream,
 * offset]`); without one it is null. The rules:
 *
 * - **Identity.** Inside the engine a record is the pair (order key, value): a retraction cancels
 *   an insertion only when both are equal, and `reduce`/`scan` see two equal values with different
 *   order keys as two records at two places. Every operator gives its outputs order keys that are
 *   a function of its inputs, so a retraction always carries the order key its insertion had.
 * - **Values only**, order keys ignored: `distinct` (a value once however many places it has),
 *   `count`/`sum`, and the graph's outputs (`Graph.step` consolidates by value; sinks never see
 *   order keys). So order keys never cause duplicates there.
 * - **What outputs carry**: `filter`/`map`/`flatMap`/`groupBy`/`concat`/`ungroup`: their input's
 *   order key. `maxBy`/`minBy`: the winning input record's. `scan`: an output carries the sort key
 *   of the input whose step emitted it (its order key, or its order-by value with `orderBy`).
 *   `reduce`, `count`, `sum`, `distinct`: null (a result of the whole group, or of all copies of a
 *   value, has no one place).
 * - **Sorting**: `reduce` and `scan` sort a group's records by (order key, value): the value
 *   order is the tie-break, so results stay a function of the set of records whatever the arrival
 *   order. `ReduceOptions.orderBy` replaces the order key by a function of the value.
 * - **Cost**: order keys are computed and carried only where an operator downstream reads them
 *   (`reduce`/`scan` without `orderBy`, and what feeds them); a graph without one computes none.
 */

/** Options of `Graph.input`. */
export interface InputOptions<T extends Value = Value> {
  /** Insert-only inputs (events of a log) allow O(1)-state aggregates downstream; a retraction is then an error. */
  readonly insertOnly?: boolean;
  /**
   * The order key of an input value (see "Order keys"); called once per input update, and only
   * when an operator downstream reads order keys. It must be a function of the value (a
   * retraction must get its insertion's order key). Default: every order key is null.
   */
  readonly order?: (value: T) => Value;
}

/** User functions may be synchronous or return a promise (JSONata evaluates asynchronously). */
export type MaybePromise<T> = T | Promise<T>;

/** Options every operator takes: a name for error messages (the Node-RED node id or label). */
export interface OperatorOptions {
  readonly name?: string;
}

/** Options of `map` and `groupBy`. */
export interface CheckedOptions extends OperatorOptions {
  /**
   * Every result of the function is a `Value` already: its caller checked or converted each one
   * (the dd-* nodes pass their functions' results through `toValue`), so the engine does not walk
   * it a second time. NB: a result that is not a Value then reaches identity, order and the sinks
   * unchecked; set it only for functions whose every result went through such a check.
   */
  readonly resultsChecked?: boolean;
}

/** Inputs and outputs of `reduce`: consolidated, sorted by the value's total order. */
export type Multiset<T extends Value = Value> = readonly (readonly [value: T, multiplicity: number])[];

/**
 * `reduce` user function, as in the seed: it sees the group's consolidated inputs with
 * multiplicities, sorted by (order key, value) — for records derived from events their causal
 * order — or by (`orderBy(value)`, value) with `ReduceOptions.orderBy`; the same value may appear
 * once per place it has. It either pushes `[value, multiplicity]` pairs into `outputs` or returns
 * them (both count if it does both; returning `outputs` itself counts once). The engine emits
 * only the difference to the group's previous outputs. It is not called for an empty group (a
 * group without inputs has no outputs).
 */
export type ReduceFn<K extends Value, V extends Value, O extends Value> = (
  key: K,
  inputs: Multiset<V>,
  outputs: [O, number][],
) => MaybePromise<void | readonly (readonly [O, number])[]>;

/**
 * `scan` step function: the next fold state from the state and one input of the group (inputs come
 * in the order `reduce` sees them, a value with multiplicity n n times; a value whose multiplicity
 * is not positive — a retraction that arrived before its insertion — is not folded). It may
 * `emit(output, multiplicity = 1)` records; the group's outputs are everything emitted folding from
 * the initial state over all its inputs. The state must be a JSON value; the step may change it in
 * place and return it.
 */
export type ScanFn<K extends Value, V extends Value, S extends Value, O extends Value> = (
  state: S,
  value: V,
  emit: (output: O, multiplicity?: number) => void,
  key: K,
) => MaybePromise<S>;

/** Options of `reduce` (and `scan`). */
export interface ReduceOptions<T extends Value = Value> extends OperatorOptions {
  /**
   * Sort a group's records by (`orderBy(value)`, value) instead of (order key, value): an explicit
   * order, e.g. by a timestamp field. A record whose function fails is skipped (reported) like a
   * failing map. Default: the order keys (for events, their causal order).
   */
  readonly orderBy?: (value: T) => MaybePromise<Value>;
  /**
   * With a state store: how many inputs of a group one stored part holds (default 64; a part that
   * grows beyond twice this is split). A step rewrites the parts holding the inputs it changed; a
   * group not in memory is read whole.
   */
  readonly partInputs?: number;
}

export interface ScanOptions<T extends Value = Value> extends Omit<ReduceOptions<T>, 'partInputs'> {
  /**
   * Keep a copy of the fold state before every n-th input of a group (default 32): a change
   * refolds at most n − 1 unchanged inputs before it; the copies cost memory.
   */
  readonly checkpointEvery?: number;
}

export interface OutputOptions {
  /**
   * false: the output's batches are not consolidated — a value may appear more than once (its diffs
   * add up), though never with a zero diff. Saves hashing every output value when the consumer
   * consolidates anyway (the SQL sinks do, by row cells). Default true.
   */
  readonly consolidate?: boolean;
}

/** The calendar units of `Collection.window`. */
export type WindowUnit = 'minute' | 'hour' | 'day' | 'week' | 'month';

/** Options of `Collection.window`: where a record is in time, and the calendar of windows in a time zone. */
export interface WindowOptions<T extends Value = Value> extends OperatorOptions {
  /** The record's event time in µs since the epoch (an event's timestamp); with `end`, the start of its timespan. */
  readonly time: (value: T) => MaybePromise<number>;
  /**
   * The end (µs, exclusive) of the record's timespan: the record goes into every window the span
   * overlaps, with the part inside (`from`, `to`). Default: the record is an instant.
   */
  readonly end?: (value: T) => MaybePromise<number>;
  readonly unit: WindowUnit;
  /** Units per window (default 1). Minutes and hours must divide a day: 15 minutes, 8 hours, … */
  readonly size?: number;
  /** Sliding windows: one begins every `slide` units (`size` a multiple of it). Default `size`: tumbling windows. */
  readonly slide?: number;
  /**
   * The local time of day (HH:MM, default 00:00) the windows are aligned to: 8 hours from 06:00 are
   * the shifts 06–14, 14–22, 22–06; 1 day from 06:00 production days. Weeks begin on Monday, months
   * on the 1st, at that time.
   */
  readonly start?: string;
  /** The IANA time zone of the calendar (default UTC): boundaries are local times, DST-correct. */
  readonly timeZone?: string;
}

/**
 * A row of `window`: the window `[start, end)` (µs), the record, and for a timespan the part of it
 * inside the window, `[from, to)`.
 */
export type WindowRow<T extends Value = Value> = {
  readonly start: number;
  readonly end: number;
  readonly value: T;
  readonly from?: number;
  readonly to?: number;
};

/** Options of `Grouped.topK`. */
export interface TopKOptions extends OperatorOptions {
  /** 'max' (default): the greatest by the function; 'min': the smallest. */
  readonly direction?: 'max' | 'min';
}

/** An ungrouped collection in a graph under construction. */
export interface Collection<T extends Value = Value> {
  /** True when every upstream input is insert-only and no operator on the way can retract. */
  readonly insertOnly: boolean;
  /**
   * The values for which `fn` returns true, with their multiplicities and times.
   * @example
   * const g = createGraph();
   * const numbers = g.input<number>('numbers');
   * g.output('even', numbers.filter((n) => n % 2 === 0));
   * const { outputs } = await g.step({ numbers: [[1, 1, 10], [2, 1, 11], [4, 1, 12]] });
   * outputs.get('even'); // → [[2, 1, 11], [4, 1, 12]]
   */
  filter(fn: (value: T) => MaybePromise<boolean>, options?: OperatorOptions): Collection<T>;
  /**
   * `fn(value)` for every value; equal results add up.
   * @example
   * const g = createGraph();
   * const readings = g.input<{ machine: string; temp: number }>('readings');
   * g.output('machines', readings.map((r) => r.machine));
   * const { outputs } = await g.step({
   *   readings: [[{ machine: 'a', temp: 70 }, 1, 1], [{ machine: 'a', temp: 75 }, 1, 2]],
   * });
   * outputs.get('machines'); // → [['a', 2, 2]]
   */
  map<U extends Value>(fn: (value: T) => MaybePromise<U>, options?: CheckedOptions): Collection<U>;
  /**
   * Every element of the array `fn(value)` returns, with the value's multiplicity and time.
   * @example
   * const g = createGraph();
   * const orders = g.input<{ order: string; items: string[] }>('orders');
   * g.output('items', orders.flatMap((o) => o.items));
   * const { outputs } = await g.step({ orders: [[{ order: 'o1', items: ['bolt', 'nut', 'bolt'] }, 1, 5]] });
   * outputs.get('items'); // → [['bolt', 2, 5], ['nut', 1, 5]]
   */
  flatMap<U extends Value>(fn: (value: T) => MaybePromise<readonly U[]>, options?: OperatorOptions): Collection<U>;
  /**
   * Union of this collection and the others (multiplicities add up).
   * @example
   * const g = createGraph();
   * const a = g.input<string>('a');
   * const b = g.input<string>('b');
   * g.output('both', a.concat([b]));
   * const { outputs } = await g.step({ a: [['x', 1, 1]], b: [['x', 1, 2], ['y', 1, 3]] });
   * outputs.get('both'); // → [['x', 2, 2], ['y', 1, 3]]
   */
  concat(others: readonly Collection<T>[], options?: OperatorOptions): Collection<T>;
  /**
   * Splits the collection into groups by `keyFn(value)`, for the per-group operators of `Grouped`.
   * @example
   * const g = createGraph();
   * const readings = g.input<{ machine: string; temp: number }>('readings');
   * g.output('perMachine', readings.groupBy((r) => r.machine).count().ungroup());
   * const { outputs } = await g.step({
   *   readings: [
   *     [{ machine: 'a', temp: 70 }, 1, 1],
   *     [{ machine: 'b', temp: 60 }, 1, 2],
   *     [{ machine: 'a', temp: 75 }, 1, 3],
   *   ],
   * });
   * outputs.get('perMachine'); // → [[{ key: 'a', count: 2 }, 1, 3], [{ key: 'b', count: 1 }, 1, 2]]
   */
  groupBy<K extends Value>(keyFn: (value: T) => MaybePromise<K>, options?: CheckedOptions): Grouped<K, T>;
  /**
   * Each distinct value once (multiplicity 1) while its multiplicity is positive.
   * @example
   * const g = createGraph();
   * const tags = g.input<string>('tags');
   * g.output('seen', tags.distinct());
   * (await g.step({ tags: [['red', 2, 1], ['blue', 1, 2]] })).outputs.get('seen'); // → [['red', 1, 1], ['blue', 1, 2]]
   * (await g.step({ tags: [['red', -1, 3]] })).outputs.get('seen'); // → undefined
   * (await g.step({ tags: [['red', -1, 4]] })).outputs.get('seen'); // → [['red', -1, 4]]
   */
  distinct(options?: OperatorOptions): Collection<T>;
  /**
   * Event-time windows: each record as `{start, end, value}` once per window of the calendar
   * (`WindowOptions`: unit, size, slide, start, time zone) that holds its time; with `end`, a
   * timespan is split over the windows it overlaps (`from`, `to`: the part inside each). Window
   * bounds are µs; boundaries are local wall-clock times, DST-correct. A pure function of the
   * record: late events and retractions change the windows they belong to.
   * @example
   * const g = createGraph();
   * const runs = g.input<{ machine: string; from: number; to: number }>('runs');
   * // minutes worked per shift (06:00, 14:00, 22:00 in Berlin): a run across 14:00 is split
   * const shifts = runs.window({ time: (r) => r.from, end: (r) => r.to, unit: 'hour', size: 8, start: '06:00', timeZone: 'Europe/Berlin' });
   * const perShift = shifts.groupBy((w) => [w.value.machine, w.start]).sum((w) => (w.to! - w.from!) / 60e6);
   * g.output('minutes', perShift.ungroup().map((r) => [new Date((r.key as [string, number])[1] / 1000).toISOString(), r.sum]));
   * const at = (iso: string) => Date.parse(iso) * 1000;
   * const { outputs } = await g.step({ runs: [[{ machine: 'm', from: at('2026-06-01T11:30:00Z'), to: at('2026-06-01T12:30:00Z') }, 1, 1]] });
   * outputs.get('minutes'); // → [[['2026-06-01T04:00:00.000Z', 30], 1, 1], [['2026-06-01T12:00:00.000Z', 30], 1, 1]]
   */
  window(options: WindowOptions<T>): Collection<WindowRow<T>>;
}

export interface JoinOptions extends OperatorOptions {
  /** 'inner' (default): matched pairs only; 'left': left outer, unmatched left records with `right: null`. */
  readonly kind?: 'inner' | 'left';
}

/** A row of `join`: the key, the left record, the right record (null for an unmatched left record of a left outer join). */
export type JoinRow<K extends Value = Value, T extends Value = Value, U extends Value = Value> = {
  readonly key: K;
  readonly left: T;
  readonly right: U | null;
};

/** A collection split into groups by key. Per-group operators only recompute touched groups. */
export interface Grouped<K extends Value = Value, T extends Value = Value> {
  readonly insertOnly: boolean;
  /**
   * The value with the greatest `fn(value)` per group; ties broken by the total order of values
   * (greatest value wins) so results never depend on arrival order. O(1) state per group when the
   * input is insert-only, a sorted multiset per group otherwise.
   * @example
   * const g = createGraph();
   * const readings = g.input<{ machine: string; temp: number }>('readings');
   * g.output('hottest', readings.groupBy((r) => r.machine).maxBy((r) => r.temp).ungroup());
   * await g.step({ readings: [[{ machine: 'a', temp: 70 }, 1, 1], [{ machine: 'a', temp: 90 }, 1, 2]] });
   * const { outputs } = await g.step({ readings: [[{ machine: 'a', temp: 90 }, -1, 3]] });
   * outputs.get('hottest'); // → [[{ machine: 'a', temp: 90 }, -1, 1], [{ machine: 'a', temp: 70 }, 1, 1]]
   */
  maxBy(fn: (value: T) => MaybePromise<Value>, options?: OperatorOptions): Grouped<K, T>;
  /**
   * Like `maxBy` with the smallest `fn(value)`; ties broken by the smallest value.
   * @example
   * const g = createGraph();
   * const bids = g.input<{ lot: string; price: number; bidder: string }>('bids');
   * g.output('lowest', bids.groupBy((b) => b.lot).minBy((b) => b.price).ungroup());
   * const { outputs } = await g.step({
   *   bids: [[{ lot: 'l1', price: 5, bidder: 'x' }, 1, 1], [{ lot: 'l1', price: 5, bidder: 'w' }, 1, 2]],
   * });
   * outputs.get('lowest'); // → [[{ lot: 'l1', price: 5, bidder: 'w' }, 1, 2]]
   */
  minBy(fn: (value: T) => MaybePromise<Value>, options?: OperatorOptions): Grouped<K, T>;
  /**
   * Per group, `fn` over the group's records sorted by (order key, value) or (`orderBy`, value);
   * emits the difference of its outputs. The outputs carry null order keys.
   * @example
   * const g = createGraph();
   * // events in causal order: the input's order key is their Lamport stamp
   * const events = g.input<{ machine: string; type: string; at: number; lamport: number }>('events', {
   *   order: (e) => e.lamport,
   * });
   * // the span of each started/stopped pair of a machine, in causal order
   * const spans = events.groupBy((e) => e.machine).reduce((machine, inputs, outputs) => {
   *   let start: number | null = null;
   *   for (const [e] of inputs) {
   *     if (e.type === 'started') start = e.at;
   *     else if (start !== null) {
   *       outputs.push([{ machine, start, stop: e.at }, 1]);
   *       start = null;
   *     }
   *   }
   * });
   * g.output('spans', spans.ungroup());
   * const { outputs } = await g.step({
   *   events: [
   *     [{ machine: 'm', type: 'stopped', at: 20, lamport: 2 }, 1, 20],
   *     [{ machine: 'm', type: 'started', at: 10, lamport: 1 }, 1, 10],
   *   ],
   * });
   * outputs.get('spans'); // → [[{ machine: 'm', start: 10, stop: 20 }, 1, 20]]
   */
  reduce<O extends Value>(fn: ReduceFn<K, T, O>, options?: ReduceOptions<T>): Grouped<K, O>;
  /**
   * A left fold per group from `initial` over the group's inputs in `reduce`'s order: the
   * outputs are what `step` emitted. The same result as a `reduce` doing that fold, but a batch
   * only refolds from just before its first changed input until the fold state rejoins the
   * previous fold, so events appended in causal order cost O(1) each instead of O(group).
   * @example
   * const g = createGraph();
   * const events = g.input<{ machine: string; at: number; parts: number }>('events');
   * // a running total per machine, one row per event, ordered by a timestamp field
   * const totals = events.groupBy((e) => e.machine).scan(0, (sum, e, emit) => {
   *   emit({ machine: e.machine, at: e.at, total: sum + e.parts });
   *   return sum + e.parts;
   * }, { orderBy: (e) => e.at });
   * g.output('totals', totals.ungroup());
   * await g.step({ events: [[{ machine: 'm', at: 2, parts: 5 }, 1, 2]] });
   * // a late event (at 1) refolds what follows it
   * const { outputs } = await g.step({ events: [[{ machine: 'm', at: 1, parts: 3 }, 1, 1]] });
   * outputs.get('totals')?.map(([row, diff]) => [row.at, row.total, diff]); // → [[2, 5, -1], [1, 3, 1], [2, 8, 1]]
   */
  scan<S extends Value, O extends Value>(initial: S, step: ScanFn<K, T, S, O>, options?: ScanOptions<T>): Grouped<K, O>;
  /**
   * `{key, count}` per non-empty group (count = sum of multiplicities).
   * @example
   * const g = createGraph();
   * const logins = g.input<{ user: string }>('logins');
   * g.output('perUser', logins.groupBy((l) => l.user).count().ungroup());
   * await g.step({ logins: [[{ user: 'ann' }, 1, 1], [{ user: 'ann' }, 1, 2]] });
   * const { outputs } = await g.step({ logins: [[{ user: 'ann' }, -2, 3]] });
   * outputs.get('perUser'); // → [[{ key: 'ann', count: 2 }, -1, 3]]
   */
  count(options?: OperatorOptions): Grouped<K, { key: K; count: number }>;
  /**
   * `{key, sum}` per non-empty group (sum of `fn(value) × multiplicity`).
   * @example
   * const g = createGraph();
   * const sales = g.input<{ shop: string; amount: number }>('sales');
   * g.output('revenue', sales.groupBy((s) => s.shop).sum((s) => s.amount).ungroup());
   * const { outputs } = await g.step({ sales: [[{ shop: 's', amount: 5 }, 2, 1], [{ shop: 's', amount: 3 }, 1, 2]] });
   * outputs.get('revenue'); // → [[{ key: 's', sum: 13 }, 1, 2]]
   */
  sum(fn: (value: T) => MaybePromise<number>, options?: OperatorOptions): Grouped<K, { key: K; sum: number }>;
  /**
   * Each distinct value once per group while its multiplicity in the group is positive.
   * @example
   * const g = createGraph();
   * const visits = g.input<{ page: string; user: string }>('visits');
   * g.output('visitors', visits.groupBy((v) => v.page).distinct().count().ungroup());
   * const { outputs } = await g.step({
   *   visits: [
   *     [{ page: 'p', user: 'ann' }, 1, 1],
   *     [{ page: 'p', user: 'ann' }, 1, 2],
   *     [{ page: 'p', user: 'bob' }, 1, 3],
   *   ],
   * });
   * outputs.get('visitors'); // → [[{ key: 'p', count: 2 }, 1, 3]]
   */
  distinct(options?: OperatorOptions): Grouped<K, T>;
  /**
   * The equi-join with `other` by group key: for each key, every pair of a record of this side
   * (left) and one of `other` (right) as `{key, left, right}` (multiplicities multiply). `kind:
   * 'left'` (left outer) also outputs `{key, left, right: null}` for the left records of a key
   * `other` has no record of. A change costs work in proportion to the records it matches;
   * retractions on either side retract the rows they joined into. Rows carry the greater order
   * key of their two records.
   * @example
   * const g = createGraph();
   * const steps = g.input<{ order: number; step: string }>('steps');
   * const spans = g.input<{ order: number; minutes: number }>('spans');
   * const joined = steps.groupBy((s) => s.order).join(spans.groupBy((s) => s.order), { kind: 'left' });
   * g.output('rows', joined.ungroup().map((r) => ({ order: r.key, step: r.left.step, minutes: r.right?.minutes ?? null })));
   * await g.step({ steps: [[{ order: 4711, step: 'drilling' }, 1, 1]] });
   * // the span arrives: the left-outer row without a right side is replaced
   * const { outputs } = await g.step({ spans: [[{ order: 4711, minutes: 31 }, 1, 2]] });
   * outputs.get('rows'); // → [[{ minutes: 31, order: 4711, step: 'drilling' }, 1, 2], [{ minutes: null, order: 4711, step: 'drilling' }, -1, 1]]
   */
  join<U extends Value>(other: Grouped<K, U>, options?: JoinOptions): Grouped<K, JoinRow<K, T, U>>;
  /**
   * The `n` records with the greatest `fn(value)` per group (`direction: 'min'`: the smallest),
   * with their multiplicities (a record with multiplicity 3 counts 3 times); ties broken by the
   * total order of values like `maxBy`/`minBy`, so the result is a function of the set of records.
   * Retractions bring in the next ones. Recomputes a touched group (its records are kept sorted).
   * @example
   * const g = createGraph();
   * const stops = g.input<{ line: string; machine: string; minutes: number }>('stops');
   * const top2 = stops.groupBy((s) => s.line).topK(2, (s) => s.minutes);
   * g.output('top', top2.ungroup().map((s) => s.machine));
   * await g.step({
   *   stops: [
   *     [{ line: 'l', machine: 'a', minutes: 5 }, 1, 1],
   *     [{ line: 'l', machine: 'b', minutes: 9 }, 1, 2],
   *     [{ line: 'l', machine: 'c', minutes: 7 }, 1, 3],
   *   ],
   * });
   * // b's downtime is retracted: a moves up
   * const { outputs } = await g.step({ stops: [[{ line: 'l', machine: 'b', minutes: 9 }, -1, 4]] });
   * outputs.get('top'); // → [['b', -1, 3], ['a', 1, 3]]
   */
  topK(n: number, fn: (value: T) => MaybePromise<Value>, options?: TopKOptions): Grouped<K, T>;
  /**
   * The groups' values as one collection (the key is dropped; keep it in the value if needed).
   * @example
   * const g = createGraph();
   * const readings = g.input<{ machine: string; temp: number }>('readings');
   * const latest = readings.groupBy((r) => r.machine).maxBy((r) => r.temp);
   * g.output('rows', latest.ungroup().map((r) => ({ machine: r.machine, max: r.temp })));
   * const { outputs } = await g.step({ readings: [[{ machine: 'a', temp: 70 }, 1, 1]] });
   * outputs.get('rows'); // → [[{ machine: 'a', max: 70 }, 1, 1]]
   */
  ungroup(options?: OperatorOptions): Collection<T>;
}

/** What `Graph.step` reports for a user function that threw and was skipped. */
export interface SkippedInput {
  /** The operator's `name` (or a generated id such as `map#3`). */
  readonly operator: string;
  /** The input value (or, for `reduce`, the group key) the function failed on. */
  readonly value: Value;
  readonly error: unknown;
  /** For `reduce`: the input update that was left out of the group (absent when the group as a whole failed). */
  readonly input?: Value;
}

/** Thrown by `Graph.step` with `onError: 'stop'`; the graph must then be rebuilt before reuse. */
export class OperatorError extends Error {
  constructor(
    readonly operator: string,
    readonly value: Value,
    override readonly cause: unknown,
  ) {
    super(
      `operator ${operator} failed on ${safeJson(value)}: ${cause instanceof Error ? cause.message : String(cause)}`,
    );
    this.name = 'OperatorError';
  }
}

/** Thrown when a retraction reaches an operator planned as insert-only (never a silent wrong answer). */
export class RetractionError extends Error {
  constructor(
    readonly operator: string,
    readonly value: Value,
  ) {
    super(`operator ${operator} was planned for insert-only input but received a retraction of ${safeJson(value)}`);
    this.name = 'RetractionError';
  }
}

export interface StepOptions {
  /** What to do when a user function throws: skip that input (default) or stop with OperatorError. */
  readonly onError?: 'skip' | 'stop';
  /**
   * Called between operators once the step has computed for `pauseAfterMs` (default 5) since it
   * began or last paused; the step waits for it. A host passes a turn of its event loop, so that
   * I/O (a database commit's next statement) goes on during a long step.
   */
  readonly pause?: () => Promise<void>;
  readonly pauseAfterMs?: number;
}

export interface StepResult {
  /** Consolidated output batch of every output registered with `Graph.output`, by name. Outputs with no change are absent. */
  readonly outputs: ReadonlyMap<string, Batch>;
  /** Inputs skipped because a user function threw (only with onError 'skip'). */
  readonly skipped: readonly SkippedInput[];
  /** With a state store (`Graph.useStore`): the step's changed state entries, to commit with its outputs. */
  readonly state?: StepState;
}

/**
 * Durable operator state (docs/durable-state.md): where a graph's operator state is stored. The
 * host implements it (the dataflow layer: a table beside `deltaflow_meta`); the engine reads
 * through it the entries a step needs that are not in memory, and hands the host each step's
 * changed entries (`StepResult.state`) to commit. Keys are `encodeKey` texts (order-preserving);
 * `op` is a state id (`Graph.stateIds`). A store only ever answers with committed entries: the
 * engine never reads an entry whose newest text is not committed yet (it keeps those in memory).
 */
export interface StateStore {
  /** The stored texts of the given keys of one operator (undefined: none). */
  get(op: string, keys: readonly string[]): MaybePromise<readonly (string | undefined)[]>;
  /** The first (or, with `last`, the last) stored entry with from ≤ k < to. */
  seek(op: string, from: string, to: string, last: boolean): MaybePromise<readonly [string, string] | undefined>;
  /** All stored entries with from ≤ k < to, in key order. */
  range(op: string, from: string, to: string): MaybePromise<readonly (readonly [string, string])[]>;
}

export interface StoreOptions {
  /** Bound of the state kept in memory, counted as each entry's text length plus 600 bytes (clean entries beyond it are evicted, least recently used first). */
  readonly cacheBytes: number;
  /** false: nothing is stored yet (a miss is a new entry, no read needed). */
  readonly stored: boolean;
  /**
   * The retention cutoff the stored state was committed with (`StepState.cutoff` of the last
   * committed step); a `compact` to it or below forgets nothing more. Default: none.
   */
  readonly cutoff?: number | null;
}

/** One stored entry: its JSON text and its time (the greatest event time it holds; null: never forgotten). */
export interface StateEntry {
  readonly v: string;
  readonly t: number | null;
}

/** A step's state changes. */
export interface StepState {
  /** The step's number (1, 2, …): `Graph.release(step)` once a commit containing it is durable. */
  readonly step: number;
  /** Per state id, the changed entries by key: the new text, or null for a deleted entry. */
  readonly entries: ReadonlyMap<string, ReadonlyMap<string, StateEntry | null>>;
  /**
   * Retention since the previous step (`Graph.compact`): delete the stored entries of these state
   * ids whose time is below `cutoff` (entries loaded later are compacted as they load).
   */
  readonly forget: { readonly cutoff: number; readonly ops: readonly string[] } | null;
  /** The retention cutoff of the graph at this step (null: none): store it with the state (`StoreOptions.cutoff`). */
  readonly cutoff: number | null;
}

/** Statistics of the state in memory with a store. */
export interface StateStats {
  /** Entries in memory (including deleted ones kept until their commit is durable). */
  readonly entries: number;
  /** Their size as the cache counts it (text length plus 600 bytes each). */
  readonly bytes: number;
  /** Entries read from the store since the graph was created. */
  readonly loads: number;
  /** Entries evicted since the graph was created. */
  readonly evictions: number;
}

/**
 * A unit of operator state in the cache (`Graph.hotUnits`), to read back after a restart
 * (`Graph.warm`): the operator's state id, the unit's encoded key and the unit itself, its size as
 * the cache counts it, and how many steps touched it since it came into memory.
 */
export interface HotUnit {
  readonly id: string;
  readonly key: string;
  readonly unit: Value;
  readonly bytes: number;
  readonly hits: number;
}

/** What `Graph.warm` read. */
export interface WarmResult {
  /** Units now in memory that were not (each read as a step's first touch would read it). */
  readonly units: number;
  /** Their size as the cache counts it. */
  readonly bytes: number;
  /** Units left unread: over the cache bound, or after the deadline. */
  readonly skipped: number;
}

/** A dataflow graph: build it with `input`, the collection methods and `output`, then `step` it. */
export interface Graph {
  /** A named input (see InputOptions: insert-only, order keys). */
  input<T extends Value = Value>(name: string, options?: InputOptions<T>): Collection<T>;
  /** Registers a named output whose consolidated changes `step` returns (see OutputOptions). */
  output(name: string, collection: Collection, options?: OutputOptions): void;
  /**
   * Runs one batch per input (missing inputs are empty; tuples or columns) through all operators in topological order.
   * Operators never stay half-updated: a user function's failure is either skipped (reported in
   * `skipped`) or aborts the step with OperatorError.
   */
  step(
    inputs: ReadonlyMap<string, Batch | ColumnBatch> | Readonly<Record<string, Batch | ColumnBatch>>,
    options?: StepOptions,
  ): Promise<StepResult>;
  /**
   * Retention: stateful operators forget inputs whose `time` is older than `cutoff` (µs). Their
   * current outputs become the new baseline silently: nothing is emitted, so rows already derived
   * from forgotten inputs stay as they are and are never retracted. A retained value's time is the
   * newest time of the batches that changed it since it appeared (a batch whose updates of the
   * value cancel out does not count). `count`/`sum` keep only totals and insert-only `maxBy`/`minBy`
   * one value per group: they forget nothing.
   */
  compact(cutoff: number): void;
  /** Rough count of retained state entries (values kept by stateful operators), for metrics and tests. */
  stateSize(): number;
  /**
   * Keeps the operators' state in `store` (before the first step): each step loads the entries its
   * inputs touch that are not in memory, returns its changed entries as `StepResult.state`, and
   * evicts clean, released entries beyond `cacheBytes`, least recently used first.
   */
  useStore(store: StateStore, options: StoreOptions): void;
  /** The stateful operators' state ids (their names; `name#2`, … for repeats, in build order). */
  stateIds(): readonly { readonly id: string; readonly operator: string }[];
  /** The commit containing the state of steps ≤ `step` is durable: their entries may be evicted. */
  release(step: number): void;
  /** The state in memory with a store (null without one). */
  stateStats(): StateStats | null;
  /**
   * With a store: the units in memory (not deleted ones), the most touched first, then the most
   * recently used: what a later start may `warm` (an empty list without a store).
   */
  hotUnits(): readonly HotUnit[];
  /**
   * With a store, before a step or between steps (never during one): reads the listed units that are
   * not in memory, in the list's order, as a step's first touch would read them, while the cache
   * holds less than its bound and (with `deadline`, a `Date.now()` time) until then. A cache only:
   * what a step computes is the same with or without it. Units of unknown state ids are skipped.
   */
  warm(units: readonly HotUnit[], options?: { readonly deadline?: number }): Promise<WarmResult>;
}

function safeJson(v: unknown): string {
  try {
    const s = JSON.stringify(v);
    return s === undefined ? String(v) : s.length > 200 ? s.slice(0, 200) + '…' : s;
  } catch {
    return String(v);
  }
}
