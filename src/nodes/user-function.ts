/**
 * User-supplied logic of the dd-* nodes — a JavaScript function body, a JSONata expression or a
 * property path — compiled once at deploy time into a plain function of one record that the
 * engine calls for every record. Compilation errors are thrown as `UserCodeError` with a message
 * fit for `node.error` and the node status; nothing is compiled per record.
 */
import { errorText } from '../core/message-text';
import type { MaybePromise, Multiset, ReduceFn, ScanFn, Value } from '../engine/types';
import { readPath } from '../sinks/table-spec';
import type { Node, NodeAPI } from './red';
import { BAIL, compileSimpleJsonata } from './jsonata-fast';
import { readOnly, toValue } from './user-values';

/** How a node's expression is written. */
export type ExpressionLanguage = 'js' | 'jsonata' | 'path';

/** A compiled record function (JSONata ones return a promise). */
export type RecordFunction = (record: Value) => MaybePromise<unknown>;

/** A configuration problem found at deploy time (syntax error, empty expression, unknown language). */
export class UserCodeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UserCodeError';
  }
}

/** What a node's config says about one expression field. */
export interface ExpressionConfig {
  readonly language: unknown;
  readonly text: unknown;
}

const LANGUAGE_NAMES: Record<ExpressionLanguage, string> = {
  js: 'JavaScript',
  jsonata: 'JSONata',
  path: 'property path',
};

/**
 * Compiles `config` (checked against `allowed`) into a function of `record`. `what` names the
 * field in error messages, e.g. "condition" or "key".
 */
export function compileRecordFunction(
  RED: NodeAPI,
  node: Node,
  config: ExpressionConfig,
  allowed: readonly ExpressionLanguage[],
  what: string,
): RecordFunction {
  const language = config.language;
  if (typeof language !== 'string' || !(allowed as readonly string[]).includes(language)) {
    throw new UserCodeError(`${what}: unknown language ${JSON.stringify(language)} (expected ${allowed.join(', ')})`);
  }
  const text = typeof config.text === 'string' ? config.text : '';
  if (text.trim() === '')
    throw new UserCodeError(`${what}: the ${LANGUAGE_NAMES[language as ExpressionLanguage]} is empty`);
  switch (language as ExpressionLanguage) {
    case 'js': {
      const fn = compileJavaScript(text, ['record'], what);
      return (record: Value) => fn(readOnly(record)) as MaybePromise<unknown>;
    }
    case 'jsonata':
      return compileJsonata(RED, node, text, what);
    case 'path':
      return compilePath(RED, text, what);
  }
}

/**
 * Compiles the body of `function (key, inputs, outputs) { … }` for dd-reduce. The body pushes
 * `[value, multiplicity]` pairs into `outputs` or returns such an array.
 */
export function compileReduceFunction(text: unknown, what: string): ReduceFn<Value, Value, Value> {
  const fn = compileJavaScript(nonEmptyBody(text, what), ['key', 'inputs', 'outputs'], what);
  // A fresh inputs array of fresh pairs per call: the user may sort or splice it, or change a pair,
  // without touching engine state. Read by index, not destructured: destructuring goes through
  // the iterator protocol, an object per pair. (Handing out the engine's frozen pairs instead
  // was slower: V8 destructures frozen arrays, `for (const [v, n] of inputs)`, the slow way.)
  return (key: Value, inputs: Multiset<Value>, outputs: [Value, number][]) => {
    const n = inputs.length;
    const copy = new Array<[Value, number]>(n);
    for (let i = 0; i < n; i++) {
      const pair = inputs[i]!;
      copy[i] = [readOnly(pair[0]), pair[1]];
    }
    return fn(readOnly(key), copy, outputs) as MaybePromise<void | readonly (readonly [Value, number])[]>;
  };
}

/**
 * Compiles the body of `function (state, record, emit, key) { … }` for dd-scan. The body returns the
 * next state (it may change `state` in place and return it) and may call `emit(row, multiplicity)`;
 * emitted rows are converted like JSON (Dates to strings …; `toValue`). Record and key are read-only.
 */
export function compileScanFunction(text: unknown, what: string): ScanFn<Value, Value, Value, Value> {
  const fn = compileJavaScript(nonEmptyBody(text, what), ['state', 'record', 'emit', 'key'], what);
  // The engine hands the same emit to every step of a refold: wrap it once per refold, not per record.
  let engineEmit: ((output: Value, multiplicity?: number) => void) | null = null;
  let userEmit: (row: unknown, multiplicity?: number) => void = () => undefined;
  return (state, record, emit, key) => {
    if (emit !== engineEmit) {
      engineEmit = emit;
      userEmit = (row, multiplicity) => {
        if (row === undefined) throw new Error(`${what} emitted undefined; emit a row`);
        emit(toValue(row, what), multiplicity);
      };
    }
    return fn(state, readOnly(record), userEmit, readOnly(key)) as MaybePromise<Value>;
  };
}

type CompiledJs = (...args: unknown[]) => unknown;

/** The function body, or a UserCodeError when there is none. */
function nonEmptyBody(text: unknown, what: string): string {
  const body = typeof text === 'string' ? text : '';
  if (body.trim() === '') throw new UserCodeError(`${what}: the JavaScript is empty`);
  return body;
}

function compileJavaScript(body: string, params: readonly string[], what: string): CompiledJs {
  let fn: CompiledJs;
  try {
    // Strict mode: writing to the (frozen) record throws instead of silently corrupting engine state.
    fn = new Function(...params, `"use strict";\n${body}`) as CompiledJs;
  } catch (err) {
    throw new UserCodeError(`${what}: JavaScript syntax error: ${errorText(err)}`);
  }
  return fn;
}

interface PreparedJsonata {
  evaluate?: unknown;
  ast?: unknown;
  /** Set by Node-RED when the expression refers to `msg`: it is then evaluated against `{msg: record}`. */
  _legacyMode?: unknown;
}

function compileJsonata(RED: NodeAPI, node: Node, text: string, what: string): RecordFunction {
  let expr: unknown;
  try {
    expr = RED.util.prepareJSONataExpression(text, node);
  } catch (err) {
    const e = err as { message?: string; position?: number; token?: string };
    const where = typeof e.position === 'number' ? ` at position ${e.position}` : '';
    throw new UserCodeError(`${what}: JSONata syntax error${where}: ${e.message ?? String(err)}`);
  }
  if (!expr || typeof (expr as PreparedJsonata).evaluate !== 'function') {
    throw new UserCodeError(`${what}: JSONata expression could not be prepared`);
  }
  const evaluate = (record: Value): Promise<unknown> =>
    new Promise((resolve, reject) => {
      RED.util.evaluateJSONataExpression(expr, record, (err, result) =>
        err ? reject(jsonataError(err)) : resolve(result),
      );
    });
  // Simple expressions are evaluated synchronously; JSONata answers for the rest, and for records
  // where its sequence semantics come in (see jsonata-fast.ts).
  const prepared = expr as PreparedJsonata;
  const fast =
    typeof prepared.ast === 'function' ? compileSimpleJsonata((prepared as { ast: () => unknown }).ast()) : null;
  if (fast === null) return evaluate;
  const legacy = prepared._legacyMode === true;
  return (record: Value) => {
    const result = fast(legacy ? { msg: record } : record);
    return result === BAIL ? evaluate(record) : result;
  };
}

/**
 * A JSONata evaluation error as an Error that keeps what JSONata says: its message, the position
 * in the expression, the token there and the error code. (JSONata throws plain objects, which
 * printed as "[object Object]".)
 */
export function jsonataError(err: unknown): Error {
  const e = (typeof err === 'object' && err !== null ? err : {}) as {
    message?: unknown;
    position?: unknown;
    token?: unknown;
    code?: unknown;
  };
  if (err instanceof Error && e.position === undefined) return err;
  const message = typeof e.message === 'string' && e.message !== '' ? e.message : String(err);
  const where = typeof e.position === 'number' ? ` at position ${e.position}` : '';
  const token = typeof e.token === 'string' || typeof e.token === 'number' ? ` (at "${String(e.token)}")` : '';
  const code = typeof e.code === 'string' ? ` ${e.code}` : '';
  return new Error(`JSONata error${code}${where}${token}: ${message}`);
}

function compilePath(RED: NodeAPI, text: string, what: string): RecordFunction {
  const path = text.trim().replace(/^msg\./, '');
  let parts: readonly (string | number)[];
  try {
    parts = RED.util.normalisePropertyExpression(path) as (string | number)[];
  } catch (err) {
    throw new UserCodeError(`${what}: invalid property path ${JSON.stringify(text)}: ${errorText(err)}`);
  }
  // A missing step gives undefined, which the callers turn into null.
  return (record: Value) => readPath(record, parts);
}

/** Applies `f` to a result that may be a promise, staying synchronous when it is not. */
export function andThen<T, U>(result: MaybePromise<T>, f: (value: T) => U): MaybePromise<U> {
  return result instanceof Promise ? result.then(f) : f(result);
}

/** A record function whose result is made an engine value with `toValue`; undefined (a missing property) becomes null. */
export function valueFunction(fn: RecordFunction, what: string): (record: Value) => MaybePromise<Value> {
  // One converter for every record (a closure per record was a tenth of the flows' garbage).
  const convert = (r: unknown): Value => (r === undefined ? null : toValue(r, what));
  return (record) => andThen(fn(record), convert);
}
