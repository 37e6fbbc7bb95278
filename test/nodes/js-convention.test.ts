/**
 * One JavaScript convention (a function body of `record`) for db-sink columns too, and flows saved
 * by 0.1 — whose JavaScript columns were expressions and which have no `columnJs` property — keep
 * working unchanged: the runtime still reads them as expressions, and the table's fingerprint
 * definition is exactly the one 0.1 computed (so upgrading rebuilds no table). A column the editor
 * turned into a body (`expressionToBody`, in resources/dd-editor.js and src/nodes/column-javascript.ts,
 * which must agree) has that same definition; any other body has its own. Across nodes: every expression
 * field offers property path, JavaScript and JSONata (db-sink columns path and JavaScript), and one compiler
 * (src/nodes/user-function.ts) reads all their JavaScript as a function body.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import vm from 'node:vm';
import { tableFromConfig } from '../../src/nodes/db-sink';
import { bodyToExpression, expressionToBody } from '../../src/nodes/column-javascript';

const node = { id: 'n', type: 'db-sink' } as unknown as Parameters<typeof tableFromConfig>[1];
const RED = {} as Parameters<typeof tableFromConfig>[0];

/** A column as the editor stores it. */
const column = (name: string, value: string, source = 'js') => ({
  name,
  type: 'text',
  source,
  value,
  index: false,
  key: false,
  exclude: false,
});

function build(columns: ReturnType<typeof column>[], columnJs?: string) {
  const failures: string[] = [];
  const built = tableFromConfig(
    RED,
    node,
    { id: 'n', type: 'db-sink', table: 't', mode: 'multiset', columns, ...(columnJs ? { columnJs } : {}) },
    (c, _r, e) => failures.push(`${c}: ${e instanceof Error ? e.message : String(e)}`),
  );
  const cell = (i: number, record: unknown) =>
    (built.table.columns[i]!.value as { fn: (r: unknown) => unknown }).fn(record);
  return { ...built, cell, failures };
}

const EXPRESSIONS = [
  'record.since / 1000',
  'new Date(record.timestamp / 1000).toISOString()',
  ' record.since ',
  'record.a // the a field',
  '{ a: record.a }',
  'record.a\n  + record.b',
  "record.tags.find((t) => t.startsWith('machine:')) ?? null",
];
const RECORD = { since: 5000, timestamp: 1_700_000_000_000_000, a: 1, b: 2, tags: ['machine:Drill1'] };

test('a 0.1 flow: JavaScript columns are expressions, evaluated as before, with the 0.1 fingerprint definition', () => {
  const columns = EXPRESSIONS.map((e, i) => column(`c${i}`, e));
  const { cell, definition, failures } = build(columns);
  // The values 0.1 computed: the expression in parentheses, returned.
  EXPRESSIONS.forEach((e, i) => {
    // eslint-disable-next-line no-new-func
    const old = new Function('record', `"use strict"; return (${e}\n);`) as (r: unknown) => unknown;
    assert.deepEqual(cell(i, RECORD), old(RECORD), e);
  });
  assert.deepEqual(failures, []);
  // 0.1's definition: the columns as configured (db-sink.ts before this change).
  assert.deepEqual(
    definition,
    columns.map((c) => ({ ...c })),
  );
});

test('the editor migration (expression → body) gives the same cells and the same fingerprint definition', () => {
  const legacy = build(EXPRESSIONS.map((e, i) => column(`c${i}`, e)));
  const migrated = build(
    EXPRESSIONS.map((e, i) => column(`c${i}`, expressionToBody(e))),
    'body',
  );
  EXPRESSIONS.forEach((e, i) => assert.deepEqual(migrated.cell(i, RECORD), legacy.cell(i, RECORD), e));
  assert.deepEqual(migrated.definition, legacy.definition);
  for (const e of EXPRESSIONS) assert.equal(bodyToExpression(expressionToBody(e)), e);
});

test('the editor and the runtime turn expressions into the same bodies', () => {
  const anything: unknown = new Proxy(function () {}, { get: () => anything, apply: () => anything });
  const context = vm.createContext({ RED: anything, $: anything, jsonata: anything, console });
  (context as { window: unknown }).window = context;
  vm.runInContext(readFileSync(join(__dirname, '..', '..', 'resources', 'dd-editor.js'), 'utf8'), context);
  const editor = (context as { DeltaFlowEditor: { expressionToBody(e: string): string } }).DeltaFlowEditor;
  for (const e of EXPRESSIONS) assert.equal(editor.expressionToBody(e), expressionToBody(e), e);
});

test('columns written as bodies: statements are allowed, and such a body has its own fingerprint definition', () => {
  const body = "const tag = record.tags.find((t) => t.startsWith('machine:'));\nreturn tag ? tag.slice(8) : null;";
  const { cell, definition } = build([column('machine', body), column('since', 'since', 'path')], 'body');
  assert.equal(cell(0, RECORD), 'Drill1');
  assert.deepEqual((definition as { source: string; value: string }[])[0], {
    ...column('machine', body),
    source: 'js-body',
  });
  // A body without return gives undefined: a NULL cell, as in a function node without return.
  assert.equal(build([column('x', 'record.since / 1000')], 'body').cell(0, RECORD), undefined);
  // An expression in a body column is a syntax error only where it is not a statement.
  assert.throws(() => build([column('x', 'return (;')], 'body'), /JavaScript syntax error/);
});

test('one convention across nodes: every expression field offers the same kinds, and one compiler reads their JavaScript', () => {
  const nodesDir = join(__dirname, '..', '..', 'nodes');
  const kinds = new Map<string, string[][]>();
  for (const file of readdirSync(nodesDir).filter((f) => f.endsWith('.html'))) {
    const html = readFileSync(join(nodesDir, file), 'utf8');
    for (const m of html.matchAll(/types:\s*\[([^\]]*)\]/g)) {
      const types = [...m[1]!.matchAll(/'([a-z]+)'/g)].map((t) => t[1]!);
      if (types.length === 1 && types[0] === 'json') continue; // dd-scan's initial state: a JSON value, not code
      kinds.set(file, [...(kinds.get(file) ?? []), types]);
    }
  }
  // Every operator's expression fields: property path, JavaScript and JSONata (in any order).
  for (const [file, lists] of kinds) {
    for (const types of lists) {
      const expected = file === 'db-sink.html' ? ['js', 'path'] : ['js', 'jsonata', 'path'];
      assert.deepEqual([...types].sort(), expected, `${file}: ${types.join(', ')}`);
    }
  }
  for (const file of ['dd-filter', 'dd-map', 'dd-flatmap', 'dd-groupby', 'dd-join', 'dd-maxby', 'dd-minby']) {
    assert.ok(kinds.has(`${file}.html`), `${file} has an expression TypedInput`);
  }
  for (const file of ['dd-reduce', 'dd-scan', 'dd-aggregate', 'db-sink']) {
    assert.ok(kinds.has(`${file}.html`), `${file} has an expression TypedInput`);
  }
  // The JavaScript of every node is compiled by src/nodes/user-function.ts (a function body, as in the
  // function node): no other node module compiles code of its own.
  const srcNodes = join(__dirname, '..', '..', 'src', 'nodes');
  for (const file of readdirSync(srcNodes).filter((f) => f.endsWith('.ts') && f !== 'user-function.ts')) {
    const text = readFileSync(join(srcNodes, file), 'utf8');
    assert.doesNotMatch(text, /new Function\(|\beval\(|vm\.(?:runIn|Script)/, `${file} compiles JavaScript itself`);
  }
  // The editor checks JavaScript as the same function body (resources/dd-editor.js, expressionProblem).
  const editor = readFileSync(join(__dirname, '..', '..', 'resources', 'dd-editor.js'), 'utf8');
  assert.match(editor, /new Function\(params\.join\(','\), '"use strict";\\n' \+ text\)/);
});
