/**
 * A synchronous evaluator for the simple JSONata expressions that dd nodes mostly get — a field
 * (`machine`, `payload.type`), an object of fields (`{"machine": machine, "order": order}`), a
 * comparison with a literal (`payload.type = "started"`, `payload.type in ["started", "stopped"]`)
 * and `and` / `or` of comparisons. JSONata itself evaluates every expression asynchronously, with a
 * promise per step: about 9 KB of garbage and a few microseconds for `{"machine": machine, …}`.
 *
 * `compileSimpleJsonata(ast)` returns null for an expression outside that subset (JSONata then
 * evaluates every record), else a function that gives the result JSONata would give, or `BAIL` for
 * a record where JSONata's sequence semantics would come in (an array on the path: JSONata maps over
 * it and flattens) or an inherited property is named — for that record JSONata evaluates.
 * Expressions are checked node by node against the exact shape this evaluator knows (no
 * predicates, stages, grouping, focus or other annotations), so a parser change or an unknown
 * feature leaves the expression to JSONata. A property test compares it with JSONata.
 */

/** JSONata's answer is needed for this record. */
export const BAIL: unique symbol = Symbol('bail');

type Fast = (input: unknown) => unknown;

interface AstNode {
  readonly type?: unknown;
  readonly value?: unknown;
  readonly steps?: unknown;
  readonly lhs?: unknown;
  readonly rhs?: unknown;
  readonly expressions?: unknown;
}

/** The node has exactly these own keys (besides `position`, which every node may have). */
function shaped(node: unknown, keys: readonly string[]): node is AstNode {
  if (typeof node !== 'object' || node === null || Array.isArray(node)) return false;
  for (const k of Object.keys(node)) if (k !== 'position' && !keys.includes(k)) return false;
  for (const k of keys) if (!Object.hasOwn(node, k)) return false;
  return true;
}

/** A function of the record giving what JSONata gives, or BAIL; null when `ast` is outside the subset. */
export function compileSimpleJsonata(ast: unknown): ((record: unknown) => unknown) | null {
  const f = compile(ast);
  if (f === null) return null;
  return (record) => (Array.isArray(record) ? BAIL : f(record));
}

function compile(node: unknown): Fast | null {
  return literal(node) ?? path(node) ?? object(node) ?? predicate(node);
}

/** A literal constant: its value (`undefined` marks "not a literal"). */
function literalValue(node: unknown): string | number | boolean | null | undefined {
  if (!shaped(node, ['type', 'value'])) return undefined;
  if (node.type === 'string' && typeof node.value === 'string') return node.value;
  if (node.type === 'number' && typeof node.value === 'number' && Number.isFinite(node.value)) return node.value;
  if (node.type === 'value' && (node.value === true || node.value === false || node.value === null)) return node.value;
  return undefined;
}

function literal(node: unknown): Fast | null {
  const v = literalValue(node);
  if (v === undefined) return null;
  return () => v;
}

/** `a.b.c`: names only, read from objects; an array on the way (or at the start) is JSONata's. */
function path(node: unknown): Fast | null {
  if (!shaped(node, ['type', 'steps']) || node.type !== 'path' || !Array.isArray(node.steps)) return null;
  if (node.steps.length === 0) return null;
  const names: string[] = [];
  for (const step of node.steps) {
    if (!shaped(step, ['type', 'value']) || step.type !== 'name' || typeof step.value !== 'string') return null;
    names.push(step.value);
  }
  return (input) => {
    let v: unknown = input;
    for (let i = 0; i < names.length; i++) {
      if (Array.isArray(v)) return BAIL; // JSONata maps the rest of the path over the items
      if (typeof v !== 'object' || v === null) return undefined;
      const name = names[i] as string;
      const next: unknown = (v as Record<string, unknown>)[name];
      if (next === undefined) return undefined;
      if (!Object.hasOwn(v, name) || typeof next === 'function') return BAIL; // inherited: as JSONata would see it
      v = next;
    }
    // A final array is returned as it is (JSONata does not flatten the last step's single array).
    return v;
  };
}

/** `{"k": expr, …}` with distinct string keys: the pairs whose value is not undefined. */
function object(node: unknown): Fast | null {
  if (!shaped(node, ['type', 'value', 'lhs']) || node.type !== 'unary' || node.value !== '{') return null;
  if (!Array.isArray(node.lhs) || node.lhs.length === 0) return null;
  const keys: string[] = [];
  const values: Fast[] = [];
  for (const pair of node.lhs) {
    if (!Array.isArray(pair) || pair.length !== 2) return null;
    const key = literalValue(pair[0]);
    // Equal keys are an error in JSONata (D1009); `__proto__` would set the prototype.
    if (typeof key !== 'string' || keys.includes(key) || key === '__proto__') return null;
    const value = compile(pair[1]);
    if (value === null) return null;
    keys.push(key);
    values.push(value);
  }
  return (input) => {
    const out: Record<string, unknown> = {};
    for (let i = 0; i < keys.length; i++) {
      const v = (values[i] as Fast)(input);
      if (v === BAIL) return BAIL;
      if (v !== undefined) out[keys[i] as string] = v;
    }
    return out;
  };
}

/** Comparisons with `=`, `!=` and `in`, combined with `and` / `or`: always a boolean. */
function predicate(node: unknown): Fast | null {
  if (!shaped(node, ['type', 'value', 'lhs', 'rhs']) || node.type !== 'binary') return null;
  switch (node.value) {
    case 'and':
    case 'or': {
      const l = predicate(node.lhs) ?? booleanLiteral(node.lhs);
      const r = predicate(node.rhs) ?? booleanLiteral(node.rhs);
      if (l === null || r === null) return null;
      return node.value === 'and'
        ? (input) => {
            const a = l(input);
            if (a === BAIL || a === false) return a;
            return r(input);
          }
        : (input) => {
            const a = l(input);
            if (a === BAIL || a === true) return a;
            return r(input);
          };
    }
    case '=':
    case '!=': {
      const l = compile(node.lhs);
      const r = compile(node.rhs);
      if (l === null || r === null) return null;
      const equal = node.value === '=';
      return (input) => {
        const a = l(input);
        if (a === BAIL) return BAIL;
        const b = r(input);
        if (b === BAIL) return BAIL;
        if (a === undefined || b === undefined) return false; // both '=' and '!='
        if ((typeof a === 'object' && a !== null) || (typeof b === 'object' && b !== null)) return BAIL; // deep equality
        return (a === b) === equal;
      };
    }
    case 'in': {
      const l = compile(node.lhs);
      const options = literalList(node.rhs);
      if (l === null || options === null) return null;
      return (input) => {
        const a = l(input);
        if (a === BAIL || a === undefined) return a === BAIL ? BAIL : false;
        for (let i = 0; i < options.length; i++) if (options[i] === a) return true;
        return false;
      };
    }
    default:
      return null;
  }
}

function booleanLiteral(node: unknown): Fast | null {
  const v = literalValue(node);
  return v === true || v === false ? () => v : null;
}

/** `["a", "b", 1]` (or a single literal): the values `in` compares with. */
function literalList(node: unknown): readonly (string | number | boolean | null)[] | null {
  const single = literalValue(node);
  if (single !== undefined) return [single];
  if (!shaped(node, ['type', 'value', 'expressions']) || node.type !== 'unary' || node.value !== '[') return null;
  if (!Array.isArray(node.expressions)) return null;
  const out: (string | number | boolean | null)[] = [];
  for (const e of node.expressions) {
    const v = literalValue(e);
    if (v === undefined) return null;
    out.push(v);
  }
  return out;
}
