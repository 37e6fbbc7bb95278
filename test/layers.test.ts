/**
 * The layers of docs/architecture.md, checked on every import in src/: nothing points back up.
 * engine imports nothing of ours (and no package but pure ones); core imports nothing at all;
 * sqlite only core; sources and sinks only core, sqlite and the engine's types; dataflow not the
 * nodes; only the nodes import Node-RED. Imports are read with the TypeScript parser (static and
 * type imports, re-exports, `require` and `import()`), so a type-only import is told apart.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, sep } from 'node:path';
import ts from 'typescript';

const root = join(__dirname, '..');
const src = join(root, 'src');

interface Rule {
  /** Layers (directories under src/) this layer may import from, besides itself. */
  readonly may: readonly string[];
  /** Layers it may import types from (`import type`), and nothing else. */
  readonly typesOf?: readonly string[];
  /** Packages it may import; undefined = any but Node-RED. */
  readonly packages?: readonly string[];
}

const RULES: Readonly<Record<string, Rule>> = {
  // Pure: no Node-RED, no database, no network, no Node built-ins. A new pure package goes here.
  engine: { may: [], packages: ['sorted-btree'] },
  core: { may: [], packages: [] },
  sqlite: { may: ['core'] },
  sources: { may: ['core', 'sqlite'], typesOf: ['engine'] },
  sinks: { may: ['core', 'sqlite'], typesOf: ['engine'] },
  dataflow: { may: ['core', 'engine', 'sources', 'sinks'] },
  simulator: { may: ['core', 'engine', 'sources'] },
  nodes: { may: ['core', 'engine', 'sources', 'sinks', 'dataflow', 'sqlite', 'simulator'] },
};

interface ImportUse {
  readonly file: string;
  readonly specifier: string;
  readonly typeOnly: boolean;
}

/** Every module a file imports, with whether the import brings in types only. */
function importsOf(file: string, text: string): ImportUse[] {
  const out: ImportUse[] = [];
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, false, ts.ScriptKind.TS);
  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node) && ts.isStringLiteral(node.moduleSpecifier)) {
      const clause = node.importClause;
      const named = clause?.namedBindings;
      const allNamedTypes =
        named !== undefined && ts.isNamedImports(named) && named.elements.length > 0 && clause?.name === undefined
          ? named.elements.every((e) => e.isTypeOnly)
          : false;
      out.push({ file, specifier: node.moduleSpecifier.text, typeOnly: clause?.isTypeOnly === true || allNamedTypes });
    } else if (ts.isExportDeclaration(node) && node.moduleSpecifier && ts.isStringLiteral(node.moduleSpecifier)) {
      out.push({ file, specifier: node.moduleSpecifier.text, typeOnly: node.isTypeOnly });
    } else if (
      ts.isCallExpression(node) &&
      (node.expression.kind === ts.SyntaxKind.ImportKeyword ||
        (ts.isIdentifier(node.expression) && node.expression.text === 'require')) &&
      node.arguments.length === 1 &&
      ts.isStringLiteral(node.arguments[0] as ts.Expression)
    ) {
      out.push({ file, specifier: (node.arguments[0] as ts.StringLiteral).text, typeOnly: false });
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return out;
}

/** The layer of a file under src/ (its first directory), or null for a file directly in src/. */
function layerOf(file: string): string | null {
  const parts = relative(src, file).split(sep);
  return parts.length > 1 ? (parts[0] as string) : null;
}

function packageOf(specifier: string): string {
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : (parts[0] as string);
}

/** Every import that breaks a rule, as `file: what (why)`. */
function violations(files: ReadonlyMap<string, string>): string[] {
  const out: string[] = [];
  for (const [file, text] of files) {
    const layer = layerOf(file);
    if (layer === null) {
      out.push(
        `${relative(root, file)}: a file outside the layers (put it in one of src/${Object.keys(RULES).join(', src/')})`,
      );
      continue;
    }
    const rule = RULES[layer];
    if (rule === undefined) {
      out.push(`${relative(root, file)}: src/${layer} is no known layer (add it to test/layers.test.ts and docs)`);
      continue;
    }
    for (const use of importsOf(file, text)) {
      const where = `${relative(root, file)}: imports '${use.specifier}'`;
      if (use.specifier.startsWith('.')) {
        const target = relative(src, join(dirname(file), use.specifier)).split(sep)[0] as string;
        if (target === layer) continue;
        if (rule.may.includes(target)) continue;
        if (use.typeOnly && rule.typesOf?.includes(target)) continue;
        const allowed = [...rule.may, ...(rule.typesOf ?? []).map((t) => `types of ${t}`)];
        out.push(
          `${where} (src/${layer} may import ${allowed.length > 0 ? allowed.join(', ') : 'nothing outside it'})`,
        );
      } else {
        const pkg = packageOf(use.specifier);
        if (rule.packages === undefined) {
          if ((pkg === 'node-red' || pkg.startsWith('@node-red/')) && layer !== 'nodes')
            out.push(`${where} (only src/nodes imports Node-RED)`);
        } else if (!rule.packages.includes(pkg)) {
          out.push(`${where} (src/${layer} may import only the packages ${rule.packages.join(', ') || '(none)'})`);
        }
      }
    }
  }
  return out;
}

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...sourceFiles(p));
    else if (name.endsWith('.ts')) out.push(p);
  }
  return out;
}

test('no module in src/ imports a layer above its own', () => {
  const files = new Map(sourceFiles(src).map((f) => [f, readFileSync(f, 'utf8')]));
  assert.ok(files.size > 50, `found only ${files.size} source files`);
  assert.deepEqual(violations(files), []);
});

test('the check finds each kind of upward import', () => {
  const f = (layer: string, name: string): string => join(src, layer, name);
  const planted = new Map([
    [f('engine', 'a.ts'), "import { x } from '../core/offset-map';\nimport { y } from './b';"],
    [f('engine', 'c.ts'), "import { readFileSync } from 'node:fs';"],
    [f('core', 'a.ts'), "import type { ActyxEvent } from '../sources/types';"],
    [f('sinks', 'a.ts'), "import { offsetOf } from '../sources/offset-map';"],
    [f('sinks', 'b.ts'), "import { createGraph } from '../engine';\nimport type { Value } from '../engine/types';"],
    [f('sources', 'a.ts'), "export { errorText } from '../dataflow/describe';"],
    [f('dataflow', 'a.ts'), "const m = require('../nodes/red');\nconst n = import('../nodes/db-sink');"],
    [f('dataflow', 'b.ts'), "import type { NodeAPI } from 'node-red';"],
    [
      f('nodes', 'a.ts'),
      "import { startDataflow } from '../dataflow/coordinator';\nimport type { NodeAPI } from 'node-red';",
    ],
  ]);
  const found = violations(planted).map((v) => v.replace(/ \(.*\)$/, ''));
  assert.deepEqual(found, [
    "src/engine/a.ts: imports '../core/offset-map'",
    "src/engine/c.ts: imports 'node:fs'",
    "src/core/a.ts: imports '../sources/types'",
    "src/sinks/a.ts: imports '../sources/offset-map'",
    "src/sinks/b.ts: imports '../engine'",
    "src/sources/a.ts: imports '../dataflow/describe'",
    "src/dataflow/a.ts: imports '../nodes/red'",
    "src/dataflow/a.ts: imports '../nodes/db-sink'",
    "src/dataflow/b.ts: imports 'node-red'",
  ]);
});
