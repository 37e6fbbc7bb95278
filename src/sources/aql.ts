/**
 * The subset of the Actyx Query Language (AQL) that selects events: `FROM <tag expression>` with
 * an optional `END`, or a plain tag expression without `FROM`. Transformations (FILTER, SELECT,
 * AGGREGATE, …), pragmas and `ORDER` are rejected with a clear error: they change what an event is,
 * and every part of this product (embedded log, dataflow routing) must agree on what a query selects.
 *
 * Grammar (after /work/shared/reference/actyx/aql.mdx, "Event queries"):
 *   query    := 'FROM' or-expr ['END'] | or-expr
 *   or-expr  := and-expr ('|' and-expr)*
 *   and-expr := atom ('&' atom)*
 *   atom     := '(' or-expr ')' | 'tag' | "tag" | bare-tag | 'allEvents' | 'isLocal'
 *             | 'appId(' app-id ')' | 'TIME' cmp rfc3339 | 'KEY' cmp lamport['/' stream]
 *   cmp      := '>' | '>=' | '≥' | '<' | '<=' | '≤'
 * Bare tags (`machine:Drill1` without quotes) are accepted in plain tag expressions only, as a
 * convenience for Node-RED users; they are printed quoted, so the text sent to Actyx is valid AQL.
 * Comments (`-- …` to the end of the line) are allowed anywhere whitespace is.
 */
import type { ActyxEvent, MatchContext } from './types';

export type { MatchContext } from './types';

/** A comparison in `TIME …` and `KEY …` atoms. */
export type Comparison = '>' | '>=' | '<' | '<=';

/** The boolean expression of a query, as a tree. */
export type TagExpr =
  | { readonly kind: 'allEvents' }
  | { readonly kind: 'isLocal' }
  | { readonly kind: 'tag'; readonly tag: string }
  | { readonly kind: 'appId'; readonly appId: string }
  | { readonly kind: 'time'; readonly op: Comparison; readonly micros: number }
  | { readonly kind: 'key'; readonly op: Comparison; readonly lamport: number; readonly stream: string }
  | { readonly kind: 'and'; readonly left: TagExpr; readonly right: TagExpr }
  | { readonly kind: 'or'; readonly left: TagExpr; readonly right: TagExpr };

/** A parsed query: the expression tree and its canonical AQL text (`FROM …`, valid for an Actyx node). */
export interface ParsedQuery {
  /** The text as given. */
  readonly text: string;
  readonly expr: TagExpr;
  /** Equivalent AQL an Actyx v2 node accepts, e.g. `FROM 'machine' & ('a' | 'b')`. */
  readonly aql: string;
}

/** A query that is not valid in the supported AQL subset. `position` is a 0-based index into the text. */
export class AqlSyntaxError extends Error {
  override readonly name = 'AqlSyntaxError';
  constructor(
    readonly reason: string,
    readonly text: string,
    readonly position: number,
  ) {
    super(`${reason} at ${describePosition(text, position)} in query ${JSON.stringify(abbreviate(text))}`);
  }
}

function describePosition(text: string, position: number): string {
  const before = text.slice(0, position);
  const line = before.split('\n').length;
  const column = position - before.lastIndexOf('\n');
  return line > 1 ? `line ${line}, column ${column}` : `position ${column}`;
}

function abbreviate(text: string): string {
  return text.length > 120 ? `${text.slice(0, 117)}...` : text;
}

type Token =
  | { readonly t: 'str'; readonly value: string; readonly pos: number }
  | { readonly t: 'word'; readonly value: string; readonly pos: number }
  | { readonly t: 'op'; readonly value: '&' | '|' | '(' | ')' | Comparison; readonly pos: number }
  | { readonly t: 'appId'; readonly value: string; readonly pos: number }
  | { readonly t: 'eof'; readonly pos: number };

/** Characters that may form a bare word: keywords, bare tags, timestamps, event ids. */
const WORD_CHAR = /[\p{L}\p{N}_:.\-/+@#$*]/u;
const APP_ID = /^[a-z0-9-]+(\.[a-z0-9-]+)*$/;

function tokenize(text: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (/\s/.test(c)) {
      i++;
    } else if (c === '-' && text[i + 1] === '-') {
      while (i < text.length && text[i] !== '\n') i++;
    } else if (c === "'" || c === '"') {
      const start = i;
      let value = '';
      i++;
      for (;;) {
        if (i >= text.length) throw new AqlSyntaxError(`unterminated tag ${c}…${c}`, text, start);
        if (text[i] === c) {
          if (text[i + 1] === c) {
            value += c;
            i += 2;
            continue;
          }
          i++;
          break;
        }
        value += text[i];
        i++;
      }
      if (value === '') throw new AqlSyntaxError('empty tag (tags are non-empty strings)', text, start);
      tokens.push({ t: 'str', value, pos: start });
    } else if (c === '&' || c === '|' || c === '(' || c === ')') {
      tokens.push({ t: 'op', value: c, pos: i });
      i++;
    } else if (c === '>' || c === '<') {
      const eq = text[i + 1] === '=';
      tokens.push({ t: 'op', value: eq ? (`${c}=` as Comparison) : c, pos: i });
      i += eq ? 2 : 1;
    } else if (c === '≥' || c === '≤') {
      tokens.push({ t: 'op', value: c === '≥' ? '>=' : '<=', pos: i });
      i++;
    } else if (c === '`') {
      throw new AqlSyntaxError('string interpolation (backtick tags) is not supported here', text, i);
    } else if (c === '[') {
      throw new AqlSyntaxError('FROM [array] is not supported; select events with a tag expression', text, i);
    } else if (WORD_CHAR.test(c)) {
      const start = i;
      while (i < text.length && WORD_CHAR.test(text[i]!)) i++;
      const word = text.slice(start, i);
      if (word === 'appId' && text[i] === '(') {
        const close = text.indexOf(')', i);
        const id = close < 0 ? '' : text.slice(i + 1, close);
        if (close < 0 || !(APP_ID.test(id) || id === 'me')) {
          throw new AqlSyntaxError(
            'appId(…) needs a DNS-style app id without spaces, e.g. appId(com.example.app)',
            text,
            start,
          );
        }
        tokens.push({ t: 'appId', value: id, pos: start });
        i = close + 1;
      } else {
        tokens.push({ t: 'word', value: word, pos: start });
      }
    } else {
      throw new AqlSyntaxError(`unexpected character ${JSON.stringify(c)}`, text, i);
    }
  }
  tokens.push({ t: 'eof', pos: text.length });
  return tokens;
}

const UNSUPPORTED = new Set(['FILTER', 'SELECT', 'AGGREGATE', 'LIMIT', 'LET', 'ORDER', 'PRAGMA', 'FEATURES']);

class Parser {
  private i = 0;
  constructor(
    private readonly text: string,
    private readonly tokens: Token[],
    private readonly bareTags: boolean,
  ) {}

  private peek(): Token {
    return this.tokens[this.i]!;
  }

  private fail(reason: string, token: Token = this.peek()): never {
    throw new AqlSyntaxError(reason, this.text, token.pos);
  }

  parseQuery(): TagExpr {
    const first = this.peek();
    if (first.t === 'eof') this.fail('empty query: expected FROM followed by a tag expression, or a tag expression');
    if (first.t === 'word' && UNSUPPORTED.has(first.value))
      this.fail(`${first.value} is not supported; a query must start with FROM`);
    if (first.t === 'word' && first.value !== 'FROM' && first.value.toUpperCase() === 'FROM')
      this.fail('AQL keywords are upper case: write FROM');
    if (first.t === 'word' && first.value === 'FROM') {
      this.i++;
      const expr = this.parseOr();
      const next = this.peek();
      if (next.t === 'word' && next.value === 'END') this.i++;
      this.expectEnd();
      return expr;
    }
    const expr = this.parseOr();
    this.expectEnd();
    return expr;
  }

  private expectEnd(): void {
    const t = this.peek();
    if (t.t === 'eof') return;
    if (t.t === 'word' && UNSUPPORTED.has(t.value)) {
      this.fail(`${t.value} is not supported (only FROM with a tag expression selects events here)`);
    }
    this.fail(`unexpected ${describe(t)} after the tag expression (expected & or | or the end)`);
  }

  private parseOr(): TagExpr {
    let left = this.parseAnd();
    for (;;) {
      const t = this.peek();
      if (t.t !== 'op' || t.value !== '|') return left;
      this.i++;
      left = { kind: 'or', left, right: this.parseAnd() };
    }
  }

  private parseAnd(): TagExpr {
    let left = this.parseAtom();
    for (;;) {
      const t = this.peek();
      if (t.t !== 'op' || t.value !== '&') return left;
      this.i++;
      left = { kind: 'and', left, right: this.parseAtom() };
    }
  }

  private parseAtom(): TagExpr {
    const t = this.peek();
    switch (t.t) {
      case 'str':
        this.i++;
        return { kind: 'tag', tag: t.value };
      case 'appId':
        this.i++;
        return { kind: 'appId', appId: t.value };
      case 'op':
        if (t.value === '(') {
          this.i++;
          const inner = this.parseOr();
          const close = this.peek();
          if (close.t !== 'op' || close.value !== ')')
            this.fail(`expected ) to close the ( at ${describePosition(this.text, t.pos)}`);
          this.i++;
          return inner;
        }
        return this.fail(`expected a tag, allEvents, isLocal, appId(…), TIME or KEY but found ${describe(t)}`);
      case 'eof':
        return this.fail('expected a tag, allEvents, isLocal, appId(…), TIME or KEY but the query ends');
      case 'word':
        this.i++;
        if (t.value === 'allEvents') return { kind: 'allEvents' };
        if (t.value === 'isLocal') return { kind: 'isLocal' };
        if (t.value === 'TIME') return this.parseTime();
        if (t.value === 'KEY') return this.parseKey();
        if (t.value === 'FROM' || t.value === 'END' || UNSUPPORTED.has(t.value)) {
          return this.fail(`unexpected keyword ${t.value}`, t);
        }
        if (!this.bareTags) return this.fail(`tags must be quoted after FROM, e.g. '${t.value}'`, t);
        return { kind: 'tag', tag: t.value };
    }
  }

  private parseComparison(what: string): Comparison {
    const t = this.peek();
    if (t.t !== 'op' || t.value === '&' || t.value === '|' || t.value === '(' || t.value === ')') {
      this.fail(`expected >, >=, < or <= after ${what}`);
    }
    this.i++;
    return t.value as Comparison;
  }

  private parseTime(): TagExpr {
    const op = this.parseComparison('TIME');
    const t = this.peek();
    const micros = t.t === 'word' ? parseRfc3339Micros(t.value) : null;
    if (micros === null)
      this.fail('expected an RFC 3339 timestamp with a time zone after TIME, e.g. 2021-07-20T09:53:07.462Z');
    this.i++;
    return { kind: 'time', op, micros };
  }

  private parseKey(): TagExpr {
    const op = this.parseComparison('KEY');
    const t = this.peek();
    const m = t.t === 'word' ? /^(\d+)(?:\/(.+))?$/.exec(t.value) : null;
    if (!m) this.fail('expected an event id <lamport>[/<stream id>] after KEY, e.g. 42/abc.s-0');
    this.i++;
    return { kind: 'key', op, lamport: Number(m[1]), stream: m[2] ?? '' };
  }
}

function describe(t: Token): string {
  switch (t.t) {
    case 'eof':
      return 'the end of the query';
    case 'str':
      return `tag '${t.value}'`;
    case 'appId':
      return `appId(${t.value})`;
    default:
      return JSON.stringify(t.value);
  }
}

/**
 * Microseconds since the epoch for `2021-07-20T09:53:07.462Z`, `…07.462123+02:00`, `…07Z`,
 * `2021-07-20Z` or `2021-07-20+04:30` (omitted parts are zero); null if not such a timestamp.
 */
export function parseRfc3339Micros(text: string): number | null {
  const m = /^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?(Z|[+-]\d{2}:\d{2})$/.exec(text);
  if (!m) return null;
  const [, y, mo, d, h = '0', mi = '0', s = '0', frac = '', zone] = m;
  const month = Number(mo);
  const day = Number(d);
  if (month < 1 || month > 12 || day < 1 || day > 31 || Number(h) > 23 || Number(mi) > 59 || Number(s) > 60)
    return null;
  const millis = Date.UTC(Number(y), month - 1, day, Number(h), Number(mi), Number(s));
  if (new Date(millis).getUTCDate() !== day) return null;
  const offsetMinutes =
    zone === 'Z' ? 0 : (zone![0] === '-' ? -1 : 1) * (Number(zone!.slice(1, 3)) * 60 + Number(zone!.slice(4, 6)));
  const fracMicros = Math.floor(Number(`${frac}000000`.slice(0, 6)));
  return (millis - offsetMinutes * 60_000) * 1000 + fracMicros;
}

/** `2021-07-20T09:53:07.462123Z` for microseconds since the epoch. */
export function formatRfc3339Micros(micros: number): string {
  const millis = Math.floor(micros / 1000);
  const rest = micros - millis * 1000;
  const iso = new Date(millis).toISOString(); // …SS.mmmZ
  return `${iso.slice(0, -1)}${String(rest).padStart(3, '0')}Z`;
}

function quoteTag(tag: string): string {
  return `'${tag.replace(/'/g, "''")}'`;
}

/** Prints an expression as AQL; `|` inside `&` gets parentheses. */
export function printExpr(expr: TagExpr): string {
  switch (expr.kind) {
    case 'allEvents':
    case 'isLocal':
      return expr.kind;
    case 'tag':
      return quoteTag(expr.tag);
    case 'appId':
      return `appId(${expr.appId})`;
    case 'time':
      return `TIME ${expr.op} ${formatRfc3339Micros(expr.micros)}`;
    case 'key':
      return `KEY ${expr.op} ${expr.lamport}${expr.stream ? `/${expr.stream}` : ''}`;
    case 'and': {
      const side = (e: TagExpr): string => (e.kind === 'or' ? `(${printExpr(e)})` : printExpr(e));
      return `${side(expr.left)} & ${side(expr.right)}`;
    }
    case 'or':
      return `${printExpr(expr.left)} | ${printExpr(expr.right)}`;
  }
}

/**
 * A timestamp every event matching `expr` has at least (from its `TIME >`/`TIME >=` conditions
 * that must hold), or null when the expression implies none. Lets a store skip what is older.
 */
export function earliestTimestamp(expr: TagExpr): number | null {
  switch (expr.kind) {
    case 'time':
      return expr.op === '>' || expr.op === '>=' ? expr.micros : null;
    case 'and': {
      const l = earliestTimestamp(expr.left);
      const r = earliestTimestamp(expr.right);
      return l === null ? r : r === null ? l : Math.max(l, r);
    }
    case 'or': {
      const l = earliestTimestamp(expr.left);
      const r = earliestTimestamp(expr.right);
      return l === null || r === null ? null : Math.min(l, r);
    }
    default:
      return null;
  }
}

/**
 * Parses `FROM <tag expression> [END]` or a plain tag expression (where tags may also be bare
 * words). Throws `AqlSyntaxError` (with position and reason) for anything else.
 */
export function parseQuery(text: string): ParsedQuery {
  if (typeof text !== 'string') throw new AqlSyntaxError('the query must be a string', String(text), 0);
  const tokens = tokenize(text);
  const first = tokens[0]!;
  const bareTags = !(first.t === 'word' && first.value === 'FROM');
  const expr = new Parser(text, tokens, bareTags).parseQuery();
  return { text, expr, aql: `FROM ${printExpr(expr)}` };
}

type Matcher = (event: ActyxEvent, context: MatchContext) => boolean;

function comparator(op: Comparison): (c: number) => boolean {
  switch (op) {
    case '>':
      return (c) => c > 0;
    case '>=':
      return (c) => c >= 0;
    case '<':
      return (c) => c < 0;
    case '<=':
      return (c) => c <= 0;
  }
}

/** The expression as a function (built once per parsed query: routing runs it for every event). */
function compile(expr: TagExpr): Matcher {
  switch (expr.kind) {
    case 'allEvents':
      return () => true;
    case 'isLocal':
      return (event, context) => context.isLocalStream?.(event.stream) ?? false;
    case 'tag': {
      const tag = expr.tag;
      return (event) => event.tags.includes(tag);
    }
    case 'appId': {
      const appId = expr.appId;
      return appId === 'me'
        ? (event, context) => context.appId !== undefined && event.appId === context.appId
        : (event) => event.appId === appId;
    }
    case 'time': {
      const { micros } = expr;
      const holds = comparator(expr.op);
      return (event) => holds(event.timestamp - micros);
    }
    case 'key': {
      const { lamport, stream } = expr;
      const holds = comparator(expr.op);
      return (event) =>
        holds(
          event.lamport !== lamport
            ? event.lamport - lamport
            : event.stream < stream
              ? -1
              : event.stream > stream
                ? 1
                : 0,
        );
    }
    case 'and': {
      const left = compile(expr.left);
      const right = compile(expr.right);
      return (event, context) => left(event, context) && right(event, context);
    }
    case 'or': {
      const left = compile(expr.left);
      const right = compile(expr.right);
      return (event, context) => left(event, context) || right(event, context);
    }
  }
}

const compiled = new WeakMap<ParsedQuery, Matcher>();
const NO_CONTEXT: MatchContext = {};

/** Whether `event` is selected by the query. */
export function matchesEvent(parsed: ParsedQuery, event: ActyxEvent, context: MatchContext = NO_CONTEXT): boolean {
  let matcher = compiled.get(parsed);
  if (!matcher) {
    matcher = compile(parsed.expr);
    compiled.set(parsed, matcher);
  }
  return matcher(event, context);
}

/**
 * One AQL query selecting exactly the events that any of `texts` selects: `FROM (a) | (b) | …`.
 * Throws `AqlSyntaxError` for an invalid member, and an Error for an empty list (AQL cannot say "nothing").
 */
export function unionQuery(texts: readonly string[]): string {
  if (texts.length === 0) throw new Error('unionQuery needs at least one query');
  const exprs = texts.map((t) => parseQuery(t).expr);
  if (exprs.length === 1) return `FROM ${printExpr(exprs[0]!)}`;
  return `FROM ${exprs.map((e) => `(${printExpr(e)})`).join(' | ')}`;
}
