/**
 * The dataflow graph: named inputs, operators, named outputs. Operators are created from existing
 * collections only, so creation order is a topological order and `step` simply runs them in it.
 * A step awaits only when a user function returned a promise.
 */
import type { Columns } from './columns';
import { consolidate } from './consolidate';
import { then, type Operator } from './operator';
import { ConcatOperator } from './operators/concat';
import { AggregateOperator } from './operators/aggregate';
import { DistinctOperator } from './operators/distinct';
import { FilterOperator, FlatMapOperator, MapOperator } from './operators/elementwise';
import { ExtremumOperator, MonotonicExtremumOperator, type Direction } from './operators/extremum';
import { GroupByOperator, UngroupOperator } from './operators/grouping';
import { JoinOperator } from './operators/join';
import { PART_INPUTS, ReduceOperator } from './operators/reduce';
import { ScanOperator } from './operators/scan';
import { CHECKPOINT_EVERY, type StepFn } from './fold';
import { StateCache, type DurableOp } from './state-cache';
import { Windowing } from './time-windows';
import { isThenable, StepContext } from './step-context';
import { isValue } from './value-check';
import {
  RetractionError,
  type Batch,
  type CheckedOptions,
  type ColumnBatch,
  type Collection,
  type Graph,
  type Grouped,
  type InputOptions,
  type JoinOptions,
  type JoinRow,
  type MaybePromise,
  type OperatorOptions,
  type OutputOptions,
  type ReduceFn,
  type ReduceOptions,
  type ScanFn,
  type ScanOptions,
  type StateStats,
  type HotUnit,
  type WarmResult,
  type StateStore,
  type StepOptions,
  type StepResult,
  type StoreOptions,
  type TopKOptions,
  type Update,
  type Value,
  type WindowOptions,
  type WindowRow,
} from './types';

/**
 * Creates an empty graph: add inputs, build collections from them, register outputs, then `step`
 * it with a batch of updates `[value, diff, time]` per input (or columns `{values, times, diffs?}`);
 * each output gives the change of its collection, consolidated.
 * @example
 * const g = createGraph();
 * const events = g.input<{ machine: string; state: string }>('events', { insertOnly: true });
 * g.output('states', events.groupBy((e) => e.machine).count().ungroup());
 * const first = await g.step({ events: { values: [{ machine: 'a', state: 'on' }], times: [100] } });
 * first.outputs.get('states'); // → [[{ key: 'a', count: 1 }, 1, 100]]
 * const second = await g.step({ events: [[{ machine: 'a', state: 'off' }, 1, 200]] });
 * second.outputs.get('states'); // → [[{ key: 'a', count: 1 }, -1, 200], [{ key: 'a', count: 2 }, 1, 200]]
 * second.skipped; // → []
 */
export function createGraph(): Graph {
  return new DataflowGraph();
}

/** Output batches of up to this many updates are allocated at their size ahead. */
const PREALLOCATED_OUTPUTS = 8192;

/** Stands in the operator list for a named input; `step` fills its output directly. */
class InputNode implements Operator {
  readonly inputs: readonly number[] = [];
  /** Whether an operator downstream reads order keys: then `order` is called for every input value. */
  ordered = false;
  constructor(
    readonly name: string,
    readonly insertOnly: boolean,
    readonly order: ((value: Value) => Value) | null,
  ) {}
  planOrder(outputOrdered: boolean): boolean {
    this.ordered = outputOrdered && this.order !== null;
    return false;
  }
  run(): Columns | null {
    return null;
  }
  compact(): void {}
  stateSize(): number {
    return 0;
  }
}

class DataflowGraph implements Graph {
  private readonly operators: Operator[] = [];
  private readonly inputIndex = new Map<string, number>();
  private readonly outputIndex = new Map<string, number>();
  /** Outputs returned as they come (see OutputOptions.consolidate). */
  private readonly rawOutputs = new Set<string>();
  private readonly generatedIds = new Map<string, number>();
  private stepped = false;
  private running = false;
  private broken: unknown = null;
  /** With a state store (useStore): the entries in memory, loads, pinning, eviction. */
  private cache: StateCache | null = null;
  /** The stateful operators with their state ids, by operator index. */
  private durableOps: DurableOp[] | null = null;

  input<T extends Value = Value>(name: string, options?: InputOptions<T>): Collection<T> {
    if (this.inputIndex.has(name)) throw new Error(`graph already has an input named ${JSON.stringify(name)}`);
    const order = options?.order;
    if (order !== undefined && typeof order !== 'function')
      throw new TypeError(`input ${JSON.stringify(name)}: order must be a function of the input value`);
    const index = this.add(new InputNode(name, options?.insertOnly === true, (order as (v: Value) => Value) ?? null));
    this.inputIndex.set(name, index);
    return new EngineCollection<T>(this, index, options?.insertOnly === true);
  }

  output(name: string, collection: Collection, options?: OutputOptions): void {
    if (!(collection instanceof EngineCollection) || collection.graph !== this)
      throw new Error(`output ${JSON.stringify(name)}: the collection belongs to another graph`);
    if (this.outputIndex.has(name)) throw new Error(`graph already has an output named ${JSON.stringify(name)}`);
    this.outputIndex.set(name, collection.index);
    if (options?.consolidate === false) this.rawOutputs.add(name);
  }

  /** Adds an operator (its inputs must already exist) and returns its index. */
  add(op: Operator): number {
    if (this.stepped) throw new Error('the graph has already run a step: build the whole graph before the first step');
    this.operators.push(op);
    return this.operators.length - 1;
  }

  /** `options.name`, or a generated id such as `map#3`. */
  nameFor(kind: string, options: OperatorOptions | undefined): string {
    if (options?.name !== undefined) return options.name;
    const n = (this.generatedIds.get(kind) ?? 0) + 1;
    this.generatedIds.set(kind, n);
    return `${kind}#${n}`;
  }

  async step(
    inputs: ReadonlyMap<string, Batch | ColumnBatch> | Readonly<Record<string, Batch | ColumnBatch>>,
    options?: StepOptions,
  ): Promise<StepResult> {
    if (this.broken !== null)
      throw new Error(`the graph is unusable after a failed step (${describe(this.broken)}): rebuild it`);
    if (this.running) throw new Error('step called while the previous step is still running: await each step');
    this.running = true;
    try {
      const ctx = new StepContext(options?.onError ?? 'skip');
      if (!this.stepped) this.planOrder();
      const results: (Columns | null)[] = new Array(this.operators.length).fill(null);
      // Inputs are checked completely before any operator runs: a bad batch changes nothing.
      for (const [name, batch] of inputs instanceof Map ? inputs : Object.entries(inputs)) {
        const index = this.inputIndex.get(name);
        if (index === undefined) throw new Error(`step: the graph has no input named ${JSON.stringify(name)}`);
        results[index] = toColumns(this.operators[index] as InputNode, batch);
      }
      this.stepped = true;
      const pause = options?.pause;
      const pauseAfterMs = options?.pauseAfterMs ?? 5;
      let since = Date.now();
      try {
        for (let i = 0; i < this.operators.length; i++) {
          const op = this.operators[i];
          if (op instanceof InputNode) continue;
          const ins = op.inputs.map((j) => results[j]);
          if (ins.every((c) => c === null)) continue;
          if (this.cache !== null && op.durable !== undefined) {
            const loading = this.cache.prepare(this.durableOps![i] as DurableOp, ins);
            if (loading !== undefined) await loading;
          }
          let r: MaybePromise<Columns | null> = op.run(ins, ctx);
          if (isThenable(r)) r = await r;
          results[i] = r;
          if (pause !== undefined && Date.now() - since >= pauseAfterMs) {
            await pause();
            since = Date.now();
          }
        }
      } catch (error) {
        this.broken = error;
        this.cache?.abandon();
        throw error;
      }
      const state = this.cache?.finish();
      const outputs = new Map<string, Batch>();
      for (const [name, index] of this.outputIndex) {
        const c = results[index];
        if (c === null) continue;
        const raw = this.rawOutputs.has(name);
        const n = c.values.length;
        // NB: allocated at the column length and trimmed (pushing from empty made about as much
        // again as garbage); `new Array(n)` beyond a few thousand slots may not give a fast array.
        const updates: Update[] = n <= PREALLOCATED_OUTPUTS ? new Array<Update>(n) : [];
        let w = 0;
        for (let i = 0; i < n; i++) if (!raw || c.diffs[i] !== 0) updates[w++] = [c.values[i], c.diffs[i], c.times[i]];
        updates.length = w;
        const batch = raw || c.consolidated === true ? updates : consolidate(updates);
        if (batch.length > 0) outputs.set(name, batch);
      }
      return state === undefined ? { outputs, skipped: ctx.skipped } : { outputs, skipped: ctx.skipped, state };
    } finally {
      this.running = false;
    }
  }

  /**
   * Decides once, consumers first, which operators carry order keys (Operator.planOrder): only
   * those upstream of an operator that reads them, so a graph without such an operator computes
   * none. Outputs do not read them.
   */
  private planOrder(): void {
    const needed = new Array<boolean>(this.operators.length).fill(false);
    for (let i = this.operators.length - 1; i >= 0; i--) {
      const op = this.operators[i];
      if (op.planOrder(needed[i])) for (const j of op.inputs) needed[j] = true;
    }
  }

  compact(cutoff: number): void {
    if (this.running) throw new Error('compact called while a step is running');
    for (const op of this.operators) op.compact(cutoff);
    this.cache?.compacted(cutoff);
  }

  useStore(store: StateStore, options: StoreOptions): void {
    if (this.stepped) throw new Error('useStore: the graph has already run a step');
    if (this.cache !== null) throw new Error('useStore: the graph already has a state store');
    if (!Number.isFinite(options.cacheBytes) || options.cacheBytes < 0)
      throw new RangeError(`useStore: cacheBytes must be a number ≥ 0, got ${String(options.cacheBytes)}`);
    const ops: DurableOp[] = [];
    const byIndex: DurableOp[] = [];
    for (const { index, id } of this.stateIdList()) {
      const op: DurableOp = { index, id, durable: this.operators[index].durable! };
      ops.push(op);
      byIndex[index] = op;
    }
    this.durableOps = byIndex;
    this.cache = new StateCache(store, options, ops);
  }

  stateIds(): readonly { readonly id: string; readonly operator: string }[] {
    return this.stateIdList().map(({ index, id }) => ({ id, operator: this.operators[index].name }));
  }

  /** The stateful operators in build order, each with a unique state id: its name, `name#2`, … for repeats. */
  private stateIdList(): { index: number; id: string }[] {
    const used = new Set<string>();
    const out: { index: number; id: string }[] = [];
    for (let i = 0; i < this.operators.length; i++) {
      const op = this.operators[i];
      if (op.durable === undefined) continue;
      let id = op.name;
      for (let n = 2; used.has(id); n++) id = `${op.name}#${n}`;
      used.add(id);
      out.push({ index: i, id });
    }
    return out;
  }

  release(step: number): void {
    // NB: a host releases when a commit becomes durable, which can be during a step (its pause, or
    // a load being awaited): evicting then would drop units the step has loaded or changed before
    // it serialises them. The step's finish() evicts (test/engine/durable-release.test.ts).
    this.cache?.release(step, !this.running);
  }

  stateStats(): StateStats | null {
    return this.cache?.stats() ?? null;
  }

  hotUnits(): readonly HotUnit[] {
    return this.cache?.hot() ?? [];
  }

  async warm(units: readonly HotUnit[], options?: { readonly deadline?: number }): Promise<WarmResult> {
    if (this.cache === null) return { units: 0, bytes: 0, skipped: units.length };
    if (this.broken !== null) throw new Error('warm: the graph is unusable after a failed step');
    if (this.running) throw new Error('warm called while a step is running: await each step');
    // Like a step: no step (and no other warm-up) starts before it ends; the graph is complete, and
    // which operators carry order keys is decided first (operators load their units in that layout:
    // a join's records hold their order keys only when they carry them).
    if (!this.stepped) this.planOrder();
    this.stepped = true;
    this.running = true;
    try {
      return await this.cache.warm(units, options?.deadline ?? Infinity);
    } finally {
      this.running = false;
    }
  }

  stateSize(): number {
    let n = 0;
    for (const op of this.operators) n += op.stateSize();
    return n;
  }
}

function toColumns(input: InputNode, batch: Batch | ColumnBatch): Columns | null {
  if (!Array.isArray(batch)) return fromColumnBatch(input, batch as ColumnBatch);
  if (batch.length === 0) return null;
  const n = batch.length;
  const c: Columns = { values: new Array(n), diffs: new Array(n), times: new Array(n), keys: null, orders: null };
  for (let i = 0; i < n; i++) {
    const u = batch[i];
    if (!Array.isArray(u) || u.length !== 3)
      throw new TypeError(`input ${input.name}: update ${i} is not [value, diff, time]`);
    checkUpdate(input, i, u[0], u[1], u[2]);
    c.values[i] = u[0];
    c.diffs[i] = u[1];
    c.times[i] = u[2];
  }
  return withOrders(input, c);
}

/** The input's order keys of the values, when the graph needs them; a bad order key fails the step before anything changes. */
function withOrders(input: InputNode, c: Columns): Columns {
  if (!input.ordered) return c;
  const order = input.order as (value: Value) => Value;
  const n = c.values.length;
  const orders = new Array<Value>(n);
  for (let i = 0; i < n; i++) {
    const o = order(c.values[i]);
    // NB: order keys are compared with compareValues, which assumes JSON values (checked here, once per input update).
    if (o === undefined || (typeof o === 'number' && !Number.isFinite(o)) || (typeof o === 'object' && !isOrderKey(o)))
      throw new TypeError(`input ${input.name}: the order key of update ${i} is not a JSON value: ${String(o)}`);
    orders[i] = o;
  }
  return { values: c.values, diffs: c.diffs, times: c.times, keys: null, orders };
}

/** Arrays of numbers and strings (the common order key) pass without the general check. */
function isOrderKey(o: Value): boolean {
  if (o === null) return true;
  if (Array.isArray(o)) {
    for (let i = 0; i < o.length; i++) {
      const x = o[i];
      if (typeof x === 'string' || (typeof x === 'number' && Number.isFinite(x))) continue;
      return isValue(o);
    }
    return true;
  }
  return isValue(o);
}

/** A column batch as the first operator's input: checked, and used without copying. */
function fromColumnBatch(input: InputNode, batch: ColumnBatch): Columns | null {
  if (typeof batch !== 'object' || batch === null || !Array.isArray(batch.values) || !Array.isArray(batch.times)) {
    throw new TypeError(
      `input ${input.name}: the batch is neither an array of updates nor {values, times, diffs?} columns`,
    );
  }
  const { values, times } = batch;
  const n = values.length;
  if (times.length !== n || (batch.diffs !== undefined && (!Array.isArray(batch.diffs) || batch.diffs.length !== n))) {
    throw new TypeError(`input ${input.name}: the batch's columns differ in length`);
  }
  if (n === 0) return null;
  const diffs = batch.diffs ?? new Array<number>(n).fill(1);
  for (let i = 0; i < n; i++) checkUpdate(input, i, values[i], diffs[i], times[i]);
  // NB: operators never change the arrays they receive, so the caller's columns are used without a
  // copy (the property tests check that a step leaves its input as it was: test/engine/harness.ts).
  return withOrders(input, {
    values: values as Value[],
    diffs: diffs as number[],
    times: times as number[],
    keys: null,
    orders: null,
  });
}

function checkUpdate(input: InputNode, i: number, value: Value | undefined, diff: unknown, time: unknown): void {
  if (value === undefined) throw new TypeError(`input ${input.name}: update ${i} has no value`);
  if (!Number.isInteger(diff))
    throw new TypeError(`input ${input.name}: update ${i} has a diff that is not an integer: ${String(diff)}`);
  if (typeof time !== 'number' || Number.isNaN(time))
    throw new TypeError(`input ${input.name}: update ${i} has a time that is not a number: ${String(time)}`);
  if ((diff as number) < 0 && input.insertOnly) throw new RetractionError(input.name, value);
}

/** User functions typed for the collection's values run on plain values inside the engine. */
function loosen<R>(fn: (value: never) => R): (value: Value) => R {
  return fn as (value: Value) => R;
}

/** The `orderBy` option as a function of plain values, or null. */
function orderByOf<T extends Value>(
  kind: string,
  options: ReduceOptions<T> | undefined,
): ((value: Value) => MaybePromise<Value>) | null {
  const orderBy = options?.orderBy;
  if (orderBy === undefined) return null;
  if (typeof orderBy !== 'function') throw new TypeError(`${kind}: orderBy must be a function of the value`);
  return loosen(orderBy);
}

function describe(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

class EngineCollection<T extends Value> implements Collection<T> {
  constructor(
    readonly graph: DataflowGraph,
    readonly index: number,
    readonly insertOnly: boolean,
  ) {}

  private derive<U extends Value>(op: Operator, insertOnly = this.insertOnly): EngineCollection<U> {
    return new EngineCollection<U>(this.graph, this.graph.add(op), insertOnly);
  }

  filter(fn: (value: T) => MaybePromise<boolean>, options?: OperatorOptions): Collection<T> {
    return this.derive(new FilterOperator(this.graph.nameFor('filter', options), this.index, loosen(fn)));
  }

  map<U extends Value>(fn: (value: T) => MaybePromise<U>, options?: CheckedOptions): Collection<U> {
    return this.derive(
      new MapOperator(
        this.graph.nameFor('map', options),
        this.index,
        loosen<MaybePromise<Value>>(fn),
        options?.resultsChecked === true,
      ),
    );
  }

  flatMap<U extends Value>(fn: (value: T) => MaybePromise<readonly U[]>, options?: OperatorOptions): Collection<U> {
    return this.derive(
      new FlatMapOperator(
        this.graph.nameFor('flatMap', options),
        this.index,
        loosen<MaybePromise<readonly Value[]>>(fn),
      ),
    );
  }

  concat(others: readonly Collection<T>[], options?: OperatorOptions): Collection<T> {
    const all: EngineCollection<T>[] = [this];
    for (const o of others) {
      if (!(o instanceof EngineCollection) || o.graph !== this.graph)
        throw new Error('concat: a collection belongs to another graph');
      all.push(o as EngineCollection<T>);
    }
    const op = new ConcatOperator(
      this.graph.nameFor('concat', options),
      all.map((c) => c.index),
    );
    return this.derive(
      op,
      all.every((c) => c.insertOnly),
    );
  }

  groupBy<K extends Value>(keyFn: (value: T) => MaybePromise<K>, options?: CheckedOptions): Grouped<K, T> {
    const index = this.graph.add(
      new GroupByOperator(
        this.graph.nameFor('groupBy', options),
        this.index,
        loosen<MaybePromise<Value>>(keyFn),
        options?.resultsChecked === true,
      ),
    );
    return new EngineGrouped<K, T>(this.graph, index, this.insertOnly);
  }

  distinct(options?: OperatorOptions): Collection<T> {
    return this.derive(new DistinctOperator(this.graph.nameFor('distinct', options), this.index, false));
  }

  window(options: WindowOptions<T>): Collection<WindowRow<T>> {
    const windowing = new Windowing(options);
    const time = options?.time;
    const end = options.end;
    if (typeof time !== 'function') throw new TypeError('window: time must be a function of the value');
    if (end !== undefined && typeof end !== 'function')
      throw new TypeError('window: end must be a function of the value');
    // Synchronous times (the common case) make no closure per record; `then` chains promises.
    const assign = (value: Value): MaybePromise<readonly Value[]> => {
      const t = (time as (v: Value) => MaybePromise<number>)(value);
      if (end === undefined)
        return isThenable(t) ? then(t, (at) => windowing.windowsOf(value, at)) : windowing.windowsOf(value, t);
      const endOf = end as (v: Value) => MaybePromise<number>;
      if (isThenable(t)) return then(t, (from) => then(endOf(value), (to) => windowing.split(value, from, to)));
      const e = endOf(value);
      return isThenable(e) ? then(e, (to) => windowing.split(value, t, to)) : windowing.split(value, t, e);
    };
    return this.derive(new FlatMapOperator(this.graph.nameFor('window', options), this.index, assign));
  }
}

class EngineGrouped<K extends Value, T extends Value> implements Grouped<K, T> {
  constructor(
    readonly graph: DataflowGraph,
    readonly index: number,
    readonly insertOnly: boolean,
  ) {}

  private derive<K2 extends Value, U extends Value>(op: Operator, insertOnly: boolean): EngineGrouped<K2, U> {
    return new EngineGrouped<K2, U>(this.graph, this.graph.add(op), insertOnly);
  }

  private extremum(
    kind: string,
    direction: Direction,
    fn: (value: T) => MaybePromise<Value>,
    options?: OperatorOptions,
  ): Grouped<K, T> {
    const name = this.graph.nameFor(kind, options);
    const score = loosen(fn);
    const op = this.insertOnly
      ? new MonotonicExtremumOperator(name, this.index, direction, score)
      : new ExtremumOperator(name, this.index, direction, score);
    return this.derive(op, false);
  }

  maxBy(fn: (value: T) => MaybePromise<Value>, options?: OperatorOptions): Grouped<K, T> {
    return this.extremum('maxBy', 1, fn, options);
  }

  minBy(fn: (value: T) => MaybePromise<Value>, options?: OperatorOptions): Grouped<K, T> {
    return this.extremum('minBy', -1, fn, options);
  }

  reduce<O extends Value>(fn: ReduceFn<K, T, O>, options?: ReduceOptions<T>): Grouped<K, O> {
    const part = options?.partInputs ?? PART_INPUTS;
    if (!Number.isInteger(part) || part < 1)
      throw new RangeError(`reduce: partInputs must be a positive integer, got ${String(part)}`);
    return this.derive(
      new ReduceOperator(
        this.graph.nameFor('reduce', options),
        this.index,
        fn as unknown as ReduceFn<Value, Value, Value>,
        orderByOf('reduce', options),
        part,
      ),
      false,
    );
  }

  scan<S extends Value, O extends Value>(
    initial: S,
    step: ScanFn<K, T, S, O>,
    options?: ScanOptions<T>,
  ): Grouped<K, O> {
    const every = options?.checkpointEvery ?? CHECKPOINT_EVERY;
    if (!Number.isInteger(every) || every < 1)
      throw new RangeError(`scan: checkpointEvery must be a positive integer, got ${String(every)}`);
    return this.derive(
      new ScanOperator(
        this.graph.nameFor('scan', options),
        this.index,
        initial,
        step as unknown as StepFn,
        every,
        orderByOf('scan', options),
      ),
      false,
    );
  }

  count(options?: OperatorOptions): Grouped<K, { key: K; count: number }> {
    return this.derive(
      new AggregateOperator(this.graph.nameFor('count', options), this.index, 'count', null, this.insertOnly),
      false,
    );
  }

  sum(fn: (value: T) => MaybePromise<number>, options?: OperatorOptions): Grouped<K, { key: K; sum: number }> {
    const term = loosen(fn);
    return this.derive(
      new AggregateOperator(this.graph.nameFor('sum', options), this.index, 'sum', term, this.insertOnly),
      false,
    );
  }

  distinct(options?: OperatorOptions): Grouped<K, T> {
    return this.derive(
      new DistinctOperator(this.graph.nameFor('distinct', options), this.index, true),
      this.insertOnly,
    );
  }

  join<U extends Value>(other: Grouped<K, U>, options?: JoinOptions): Grouped<K, JoinRow<K, T, U>> {
    if (!(other instanceof EngineGrouped) || other.graph !== this.graph)
      throw new Error('join: the other side belongs to another graph');
    const kind = options?.kind ?? 'inner';
    if (kind !== 'inner' && kind !== 'left')
      throw new RangeError(`join: kind must be 'inner' or 'left', got ${JSON.stringify(kind)}`);
    const op = new JoinOperator(this.graph.nameFor('join', options), this.index, other.index, kind);
    // An inner join of insert-only sides only ever adds rows.
    return this.derive(op, kind === 'inner' && this.insertOnly && other.insertOnly);
  }

  topK(n: number, fn: (value: T) => MaybePromise<Value>, options?: TopKOptions): Grouped<K, T> {
    if (!Number.isInteger(n) || n < 1) throw new RangeError(`topK: n must be a positive integer, got ${String(n)}`);
    if (typeof fn !== 'function') throw new TypeError('topK: the function must be a function of the value');
    const direction = options?.direction ?? 'max';
    if (direction !== 'max' && direction !== 'min')
      throw new RangeError(`topK: direction must be 'max' or 'min', got ${JSON.stringify(direction)}`);
    // The group's records come sorted by (fn(value), value): the greatest are at the end, the
    // smallest at the start; the value order breaks ties, so the result is a function of the set.
    const take: ReduceFn<Value, Value, Value> = (_key, inputs, outputs) => {
      let left = n;
      const from = direction === 'max' ? inputs.length - 1 : 0;
      const by = direction === 'max' ? -1 : 1;
      for (let i = from; left > 0 && i >= 0 && i < inputs.length; i += by) {
        const [value, multiplicity] = inputs[i]!;
        if (multiplicity <= 0) continue; // a retraction ahead of its insertion is no record yet
        const m = Math.min(multiplicity, left);
        outputs.push([value, m]);
        left -= m;
      }
    };
    return this.derive(new ReduceOperator(this.graph.nameFor('topK', options), this.index, take, loosen(fn)), false);
  }

  ungroup(options?: OperatorOptions): Collection<T> {
    const index = this.graph.add(new UngroupOperator(this.graph.nameFor('ungroup', options), [this.index]));
    return new EngineCollection<T>(this.graph, index, this.insertOnly);
  }
}
