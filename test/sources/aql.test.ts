import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  earliestTimestamp,
  AqlSyntaxError,
  formatRfc3339Micros,
  matchesEvent,
  parseQuery,
  parseRfc3339Micros,
  printExpr,
  unionQuery,
  type TagExpr,
} from '../../src/sources/aql';
import type { ActyxEvent } from '../../src/sources/types';

function ev(tags: string[], extra: Partial<ActyxEvent> = {}): ActyxEvent {
  return {
    lamport: 10,
    stream: 'node1-0',
    offset: 0,
    timestamp: 1_626_774_787_462_000,
    tags,
    appId: 'com.example.app',
    payload: {},
    ...extra,
  };
}

test('FROM with quoted tags, & before |, parentheses, comments, END', () => {
  const q = parseQuery("FROM 'a' & 'b' | 'c' -- either\n END");
  assert.equal(q.aql, "FROM 'a' & 'b' | 'c'");
  assert.ok(matchesEvent(q, ev(['a', 'b'])));
  assert.ok(matchesEvent(q, ev(['c'])));
  assert.ok(!matchesEvent(q, ev(['a'])));
  const p = parseQuery(`FROM "a" & ('b' | 'c')`);
  assert.equal(p.aql, "FROM 'a' & ('b' | 'c')");
  assert.ok(matchesEvent(p, ev(['a', 'c'])));
  assert.ok(!matchesEvent(p, ev(['c'])));
});

test("quoted tags with ids and doubled quotes: 'machine:Drill1', 'o''clock'", () => {
  const q = parseQuery('FROM \'machine:Drill1\' | \'o\'\'clock\' | "say ""hi"""');
  assert.ok(matchesEvent(q, ev(['machine:Drill1'])));
  assert.ok(matchesEvent(q, ev(["o'clock"])));
  assert.ok(matchesEvent(q, ev(['say "hi"'])));
  assert.ok(!matchesEvent(q, ev(['machine:Drill2'])));
  assert.equal(q.aql, "FROM 'machine:Drill1' | 'o''clock' | 'say \"hi\"'");
  assert.deepEqual(parseQuery(q.aql).expr, q.expr, 'the canonical text parses to the same tree');
});

test('a plain tag expression without FROM, with bare tags, is wrapped into FROM', () => {
  const q = parseQuery('machine & (machine:Drill1 | machine:Drill2)');
  assert.equal(q.aql, "FROM 'machine' & ('machine:Drill1' | 'machine:Drill2')");
  assert.ok(matchesEvent(q, ev(['machine', 'machine:Drill2'])));
  assert.equal(parseQuery("'a' | 'b'").aql, "FROM 'a' | 'b'");
});

test('allEvents, isLocal, appId(…), appId(me)', () => {
  assert.ok(matchesEvent(parseQuery('FROM allEvents'), ev([])));
  const local = parseQuery('FROM isLocal');
  assert.ok(matchesEvent(local, ev([]), { isLocalStream: (s) => s.startsWith('node1-') }));
  assert.ok(!matchesEvent(local, ev([], { stream: 'node2-0' }), { isLocalStream: (s) => s.startsWith('node1-') }));
  assert.ok(!matchesEvent(local, ev([])), 'without a context isLocal selects nothing');
  const app = parseQuery("FROM appId(com.example.app) & 'a'");
  assert.ok(matchesEvent(app, ev(['a'])));
  assert.ok(!matchesEvent(app, ev(['a'], { appId: 'com.example.other' })));
  assert.ok(matchesEvent(parseQuery('appId(me)'), ev([]), { appId: 'com.example.app' }));
  assert.ok(!matchesEvent(parseQuery('appId(me)'), ev([])));
});

test('TIME comparisons with microseconds, time zones and date-only forms', () => {
  const t = 1_626_774_787_462_000; // 2021-07-20T09:53:07.462Z
  assert.equal(parseRfc3339Micros('2021-07-20T09:53:07.462Z'), t);
  assert.equal(parseRfc3339Micros('2021-07-20T11:53:07.462001+02:00'), t + 1);
  assert.equal(parseRfc3339Micros('2021-07-20+04:30'), Date.UTC(2021, 6, 19, 19, 30) * 1000);
  assert.equal(parseRfc3339Micros('2021-07-20'), null, 'a time zone is required');
  assert.equal(parseRfc3339Micros('2021-02-30Z'), null);
  assert.equal(formatRfc3339Micros(t + 1), '2021-07-20T09:53:07.462001Z');
  const at = (q: string, micros: number): boolean => matchesEvent(parseQuery(q), ev([], { timestamp: micros }));
  assert.ok(at('FROM TIME > 2021-07-20T09:53:07.462Z', t + 1));
  assert.ok(!at('FROM TIME > 2021-07-20T09:53:07.462Z', t));
  assert.ok(at('FROM TIME >= 2021-07-20T09:53:07.462Z', t));
  assert.ok(at('FROM TIME ≥ 2021-07-20T09:53:07.462Z', t));
  assert.ok(at('FROM TIME < 2021-07-20T09:53:07.462Z', t - 1));
  assert.ok(!at('FROM TIME <= 2021-07-20T09:53:07.462Z', t + 1));
  assert.ok(at("FROM 'a' | TIME ≤ 2021-07-20T09:53:07Z", t - 462_000));
  const q = parseQuery('FROM TIME > 2021-07-20T11:53:07.462+02:00');
  assert.equal(q.aql, 'FROM TIME > 2021-07-20T09:53:07.462000Z');
});

test('KEY comparisons by lamport and stream', () => {
  const q = parseQuery('FROM KEY > 10/node1-0');
  assert.ok(!matchesEvent(q, ev([])));
  assert.ok(matchesEvent(q, ev([], { stream: 'node2-0' })));
  assert.ok(matchesEvent(q, ev([], { lamport: 11, stream: 'a-0' })));
  assert.ok(matchesEvent(parseQuery('FROM KEY >= 10'), ev([])));
});

test('syntax errors name the position and the problem', () => {
  const cases: Array<[string, RegExp, number]> = [
    ["FROM 'a' &", /expected a tag.*but the query ends/, 10],
    ["FROM 'a' & ('b' | 'c'", /expected \) to close the \(/, 21],
    ["FROM 'a' FILTER _.x > 1", /FILTER is not supported/, 9],
    ['FROM a', /tags must be quoted after FROM/, 5],
    ["FROM 'unterminated", /unterminated tag/, 5],
    ["FROM ''", /empty tag/, 5],
    ['', /empty query/, 0],
    ['FROM appId(Com Example)', /appId\(…\) needs a DNS-style app id/, 5],
    ['FROM TIME > yesterday', /RFC 3339 timestamp/, 12],
    ["FROM 'a' 'b'", /unexpected tag 'b' after the tag expression/, 9],
    ["SELECT 'a'", /SELECT is not supported/, 0],
    ['FROM `x{1}`', /interpolation/, 5],
    ["FROM ['a']", /FROM \[array\]/, 5],
    ["FROM 'a' ; 'b'", /unexpected character ";"/, 9],
    ["from 'a'", /keywords are upper case: write FROM/, 0],
  ];
  for (const [text, message, position] of cases) {
    assert.throws(
      () => parseQuery(text),
      (err: unknown) => {
        assert.ok(err instanceof AqlSyntaxError, `${text}: ${String(err)}`);
        assert.match(err.message, message, text);
        assert.equal(err.position, position, `position for ${JSON.stringify(text)}`);
        assert.match(err.message, /at (position|line)/);
        return true;
      },
    );
  }
  assert.throws(() => parseQuery("FROM 'a'\n& ("), /line 2, column 4/);
});

test('unionQuery joins queries; an empty list is an error', () => {
  assert.equal(unionQuery(["'a' & 'b'", "FROM 'c' | 'd'"]), "FROM ('a' & 'b') | ('c' | 'd')");
  assert.equal(unionQuery(['x']), "FROM 'x'");
  assert.throws(() => unionQuery([]), /at least one/);
  assert.throws(() => unionQuery(["'a'", "FROM 'a' &"]), AqlSyntaxError);
});

const TAGS = ['a', 'b', 'c', "o'k", 'machine:D1'];
const tagArb = fc.constantFrom(...TAGS);
const exprArb: fc.Arbitrary<TagExpr> = fc.letrec<{ expr: TagExpr }>((tie) => ({
  expr: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    tagArb.map((tag): TagExpr => ({ kind: 'tag', tag })),
    fc.constant<TagExpr>({ kind: 'allEvents' }),
    fc.constantFrom('com.example.a', 'com.example.b').map((appId): TagExpr => ({ kind: 'appId', appId })),
    fc
      .tuple(fc.constantFrom('>', '>=', '<', '<=' as const), fc.integer({ min: 0, max: 10 }))
      .map(([op, s]): TagExpr => ({ kind: 'time', op, micros: s * 1_000_000 })),
    fc.tuple(tie('expr'), tie('expr')).map(([left, right]): TagExpr => ({ kind: 'and', left, right })),
    fc.tuple(tie('expr'), tie('expr')).map(([left, right]): TagExpr => ({ kind: 'or', left, right })),
  ),
})).expr;
const eventArb = fc.record({
  tags: fc.uniqueArray(tagArb, { maxLength: 4 }),
  appId: fc.constantFrom('com.example.a', 'com.example.b'),
  timestamp: fc.integer({ min: 0, max: 10 }).map((s) => s * 1_000_000),
});

/** The meaning of a tree, computed directly (the reference the parser/matcher is compared with). */
function meaning(e: TagExpr, x: { tags: string[]; appId: string; timestamp: number }): boolean {
  switch (e.kind) {
    case 'tag':
      return x.tags.includes(e.tag);
    case 'allEvents':
      return true;
    case 'appId':
      return x.appId === e.appId;
    case 'time':
      return e.op === '>'
        ? x.timestamp > e.micros
        : e.op === '>='
          ? x.timestamp >= e.micros
          : e.op === '<'
            ? x.timestamp < e.micros
            : x.timestamp <= e.micros;
    case 'and':
      return meaning(e.left, x) && meaning(e.right, x);
    case 'or':
      return meaning(e.left, x) || meaning(e.right, x);
    default:
      throw new Error('not generated');
  }
}

test('property: printing then parsing keeps the meaning of any expression', () => {
  fc.assert(
    fc.property(exprArb, eventArb, (expr, x) => {
      const parsed = parseQuery(`FROM ${printExpr(expr)}`);
      return matchesEvent(parsed, ev(x.tags, x)) === meaning(expr, x);
    }),
    { numRuns: 500 },
  );
});

test('property: unionQuery matches an event iff one of its queries does', () => {
  fc.assert(
    fc.property(fc.array(exprArb, { minLength: 1, maxLength: 4 }), fc.boolean(), eventArb, (exprs, withFrom, x) => {
      const texts = exprs.map((e) => (withFrom ? `FROM ${printExpr(e)}` : printExpr(e)));
      const union = parseQuery(unionQuery(texts));
      const event = ev(x.tags, x);
      return matchesEvent(union, event) === texts.some((t) => matchesEvent(parseQuery(t), event));
    }),
    { numRuns: 500 },
  );
});

test('earliestTimestamp: the least timestamp a matching event can have, from TIME conditions that must hold', () => {
  const at = (q: string) => earliestTimestamp(parseQuery(q).expr);
  const t1 = '2024-01-01T00:00:00Z';
  const t2 = '2024-06-01T00:00:00Z';
  const micros = (t: string) => Date.parse(t) * 1000;
  assert.equal(at(`FROM 'a'`), null);
  assert.equal(at(`FROM 'a' & TIME > ${t1}`), micros(t1));
  assert.equal(at(`FROM 'a' & TIME >= ${t1}`), micros(t1));
  assert.equal(at(`FROM 'a' & TIME < ${t1}`), null);
  assert.equal(at(`FROM TIME > ${t1} & TIME > ${t2}`), micros(t2), 'both must hold: the later one');
  assert.equal(at(`FROM (TIME > ${t1} & 'a') | (TIME > ${t2} & 'b')`), micros(t1), 'either may hold: the earlier one');
  assert.equal(at(`FROM TIME > ${t2} | 'b'`), null, "'b' alone needs no time");
  assert.equal(at(`FROM ('a' | 'b') & TIME > ${t2}`), micros(t2));
});
