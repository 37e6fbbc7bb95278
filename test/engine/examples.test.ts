/**
 * The examples in the engine's doc comments run, and show what they compute: every `@example` in
 * src/engine is compiled and evaluated, and each line ending in `// → <expected>` asserts that its
 * expression (awaited) deep-equals the expected value. Every public operator — each method of
 * `Collection` and `Grouped`, and `createGraph` — must have an example.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { runInThisContext } from 'node:vm';
import ts from 'typescript';
import * as engine from '../../src/engine';

const root = join(__dirname, '..', '..');
const engineDir = join(root, 'src', 'engine');

interface Example {
  /** `Collection.filter`, `createGraph`, … */
  readonly where: string;
  readonly file: string;
  readonly code: string;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir)
    .sort()
    .flatMap((name) => {
      const p = join(dir, name);
      if (statSync(p).isDirectory()) return sourceFiles(p);
      return name.endsWith('.ts') ? [p] : [];
    });
}

function nameOf(node: ts.Node): string | undefined {
  const name = (node as { name?: ts.Node }).name;
  return name !== undefined && ts.isIdentifier(name) ? name.text : undefined;
}

/** Every `@example` in the file's doc comments, named by its declaration (and the interface or class around it). */
function examplesIn(file: string): Example[] {
  const sf = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true);
  const out: Example[] = [];
  const visit = (node: ts.Node): void => {
    for (const tag of ts.getJSDocTags(node)) {
      if (tag.tagName.text !== 'example' || tag.parent.parent !== node) continue;
      const owner =
        ts.isInterfaceDeclaration(node.parent) || ts.isClassDeclaration(node.parent) ? nameOf(node.parent) : undefined;
      const name = nameOf(node) ?? '(anonymous)';
      out.push({
        where: owner ? `${owner}.${name}` : name,
        file: relative(root, file),
        code: ts.getTextOfJSDocComment(tag.comment) ?? '',
      });
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return out;
}

/** The public operators: the methods of `Collection` and `Grouped` (types.ts), and `createGraph`. */
function publicOperators(): string[] {
  const file = join(engineDir, 'types.ts');
  const sf = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true);
  const out: string[] = ['createGraph'];
  sf.forEachChild((node) => {
    if (!ts.isInterfaceDeclaration(node) || !['Collection', 'Grouped'].includes(node.name.text)) return;
    for (const m of node.members) if (ts.isMethodSignature(m)) out.push(`${node.name.text}.${nameOf(m)}`);
  });
  return out;
}

const CHECK = /^(\s*)(.+?);?\s*\/\/ → (.+)$/;

/** The example as a function of the engine's exports and a check: `expr; // → expected` lines become checks. */
function compile(example: Example): (lib: typeof engine, check: Check) => Promise<void> {
  const lines = example.code.split('\n').map((line) => {
    const m = CHECK.exec(line);
    if (m === null) return line;
    const [, indent, expr, expected] = m as unknown as [string, string, string, string];
    return `${indent}__check(await (${expr}), (${expected}), ${JSON.stringify(line.trim())});`;
  });
  const names = Object.keys(engine).join(', ');
  const body = `(async (__engine, __check) => {\nconst { ${names} } = __engine;\n${lines.join('\n')}\n})`;
  const js = ts.transpileModule(body, {
    compilerOptions: { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.None },
    reportDiagnostics: true,
  });
  const syntax = (js.diagnostics ?? []).map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'));
  assert.deepEqual(syntax, [], `${example.where} (${example.file}): the example does not compile`);
  return runInThisContext(js.outputText, { filename: `${example.file} @example ${example.where}` }) as (
    lib: typeof engine,
    check: Check,
  ) => Promise<void>;
}

type Check = (actual: unknown, expected: unknown, line: string) => void;

const examples = sourceFiles(engineDir).flatMap(examplesIn);

describe('doc comment examples of the engine', () => {
  test('every public operator has an example', () => {
    const documented = new Set(examples.map((e) => e.where));
    assert.deepEqual(
      publicOperators().filter((op) => !documented.has(op)),
      [],
      'add an @example to these doc comments',
    );
  });

  for (const example of examples) {
    test(`${example.where} (${example.file})`, async () => {
      let checks = 0;
      const check: Check = (actual, expected, line) => {
        checks++;
        assert.deepStrictEqual(actual, expected, `${example.where}: ${line}`);
      };
      await compile(example)(engine, check);
      assert.ok(checks > 0, `${example.where}: the example shows no result (end a line with // → expected)`);
    });
  }
});
