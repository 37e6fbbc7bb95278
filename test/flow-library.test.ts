/**
 * The Flow Library's validator, node-red-dev (a dev dependency), run as the Flow Library runs it
 * (`node-red-dev validate -p <package>`) on this package, with everything it fetches answered
 * offline (test/support/node-red-dev-offline.cjs):
 * - the flow catalogue (N01 unique node types, P08 similar package names): a stand-in built from
 *   the Node-RED modules installed here (node-red's core nodes and every package with a
 *   `node-red.nodes` map in node_modules, this one included);
 * - Node-RED's releases (P06, P07): the registry's answer of the day in
 *   test/fixtures/node-red-dev/registry.json;
 * - each dependency's tree (D02): the lock file;
 * - the dependencies' latest versions (D03): the same fixture. D03 is the one rule that depends on
 *   the day (a dependency's new major fails it): better-sqlite3 13 needs Node.js 22 and crashes
 *   on Node.js 20, which this package supports, so the lock file (and so this tree) holds 12.x
 *   and D03 reports it (README, "Requirements"); every other dependency must pass.
 * Every other rule must pass for all 20 node types, and the validator must have read all of them
 * (it skips an editor file whose registerType it cannot parse). A second run with a catalogue that
 * has another module registering `dd-map` shows that N01 can fail.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

const root = join(__dirname, '..');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
  name: string;
  version: string;
  dependencies: Record<string, string>;
  'node-red': { nodes: Record<string, string> };
};
const fixture = JSON.parse(readFileSync(join(__dirname, 'fixtures', 'node-red-dev', 'registry.json'), 'utf8')) as {
  registry: Record<string, unknown>;
  latest: Record<string, string>;
};

/** Node types an editor file registers (as the catalogue lists them). */
function typesIn(html: string): string[] {
  const types = new Set<string>();
  for (const m of html.matchAll(/registerType\(\s*['"]([^'"]+)['"]/g)) types.add(m[1]!);
  for (const m of html.matchAll(/data-template-name=['"]([^'"]+)['"]/g)) types.add(m[1]!);
  return [...types];
}

/** The catalogue stand-in: every installed Node-RED module with the node types it registers. */
function installedCatalogue(): { modules: { id: string; version: string; types: string[] }[] } {
  const modules: { id: string; version: string; types: string[] }[] = [];
  const add = (dir: string): void => {
    const file = join(dir, 'package.json');
    if (!existsSync(file)) return;
    const p = JSON.parse(readFileSync(file, 'utf8')) as typeof pkg;
    const nodes = p['node-red']?.nodes;
    if (!nodes) return;
    const types = Object.values(nodes).flatMap((js) => {
      const html = join(dir, js.replace(/\.c?js$/, '.html'));
      return existsSync(html) ? typesIn(readFileSync(html, 'utf8')) : [];
    });
    modules.push({ id: p.name, version: p.version, types });
  };
  const nodeModules = join(root, 'node_modules');
  for (const entry of readdirSync(nodeModules)) {
    if (entry.startsWith('.')) continue;
    if (entry.startsWith('@')) {
      for (const scoped of readdirSync(join(nodeModules, entry))) add(join(nodeModules, entry, scoped));
    } else add(join(nodeModules, entry));
  }
  // The core nodes: the `node-red` module lists no nodes map; its types are in @node-red/nodes.
  const core = dirname(require.resolve('@node-red/nodes/package.json'));
  const coreTypes: string[] = [];
  const walk = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      if (e.isDirectory() && e.name !== 'locales') walk(join(dir, e.name));
      else if (e.name.endsWith('.html')) coreTypes.push(...typesIn(readFileSync(join(dir, e.name), 'utf8')));
    }
  };
  walk(join(core, 'core'));
  modules.push({ id: 'node-red', version: '4.1.8', types: coreTypes });
  add(root);
  return { modules };
}

/** Each dependency's production tree from the lock file, as `name@version` (what npm-remote-ls lists). */
function lockTrees(): Record<string, string[]> {
  const lock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8')) as {
    packages: Record<string, { version?: string; dependencies?: Record<string, string> }>;
  };
  const trees: Record<string, string[]> = {};
  for (const name of Object.keys(pkg.dependencies)) {
    const seen = new Set<string>();
    const visit = (dep: string): void => {
      const entry = lock.packages[`node_modules/${dep}`];
      if (!entry?.version || seen.has(`${dep}@${entry.version}`)) return;
      seen.add(`${dep}@${entry.version}`);
      for (const next of Object.keys(entry.dependencies ?? {})) visit(next);
    };
    visit(name);
    trees[name] = [...seen];
  }
  return trees;
}

interface Scorecard {
  [rule: string]: { test: boolean; nodes?: string[]; packages?: string[] } | unknown;
}

/** Runs `node-red-dev validate -p <root>` offline with `catalogue`; the scorecard and the output. */
async function validate(catalogue: unknown): Promise<{ scorecard: Scorecard; output: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'deltaflow-validate-'));
  try {
    const standIn = join(dir, 'stand-in.json');
    writeFileSync(standIn, JSON.stringify({ ...fixture, catalogue, trees: lockTrees() }));
    const out = join(dir, 'scorecard.json');
    const bin = join(dirname(require.resolve('node-red-dev/package.json')), 'bin', 'run');
    const output = await new Promise<string>((resolve, reject) => {
      execFile(
        process.execPath,
        ['-r', join(__dirname, 'support', 'node-red-dev-offline.cjs'), bin, 'validate', '-p', root, '-o', out],
        { env: { ...process.env, DELTAFLOW_STAND_IN: standIn }, timeout: 120_000 },
        (err, stdout, stderr) => (err && !existsSync(out) ? reject(err) : resolve(`${stdout}${stderr}`)),
      );
    });
    return { scorecard: JSON.parse(readFileSync(out, 'utf8')) as Scorecard, output };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const rule = (s: Scorecard, id: string) => s[id] as { test: boolean; nodes?: string[]; packages?: string[] };

test('node-red-dev validate: every rule passes for all 20 nodes (D03: better-sqlite3 held at 12 for Node.js 20)', async () => {
  const { scorecard, output } = await validate(installedCatalogue());
  assert.doesNotMatch(output, /Unable to parse/, `the validator could not read an editor file:\n${output}`);
  assert.doesNotMatch(output, /offline: no stand-in/, output);
  for (const id of ['P01', 'P03', 'P04', 'P05', 'P06', 'P07', 'P08', 'N01', 'N02', 'D01', 'D02']) {
    assert.ok(scorecard[id], `no ${id} in the scorecard:\n${output}`);
    assert.equal(rule(scorecard, id).test, true, `${id} failed:\n${output}`);
  }
  // N02 lists the non-config nodes it found in an example: all of them, so it read every definition.
  const configTypes = ['actyx-config', 'db-config', 'dd-dataflow'];
  const expected = Object.keys(pkg['node-red'].nodes).filter((t) => !configTypes.includes(t));
  assert.deepEqual([...(rule(scorecard, 'N02').nodes ?? [])].sort(), expected.sort());
  assert.equal(expected.length, 17);
  const d03 = rule(scorecard, 'D03');
  assert.ok(d03.test || (d03.packages ?? []).every((p) => p === 'better-sqlite3'), `D03:\n${output}`);
});

test('node-red-dev validate: N01 fails when another module in the catalogue registers one of our types', async () => {
  const catalogue = installedCatalogue();
  catalogue.modules.push({ id: 'node-red-contrib-other', version: '1.0.0', types: ['dd-map'] });
  const { scorecard } = await validate(catalogue);
  assert.equal(rule(scorecard, 'N01').test, false);
  assert.deepEqual(rule(scorecard, 'N01').nodes, ['node-red-contrib-other']);
});
