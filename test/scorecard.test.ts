/**
 * The Flow Library scorecard rules (node-red-dev validate), checked offline against package.json,
 * the lock file, the editor files and the examples. Rules that need the online catalogue are
 * checked against what is installed:
 * - P06 "compatible with the current Node-RED releases": the declared range must admit the
 *   installed node-red (4.1.x, the maintenance line) and 5.0.0 (the latest major);
 * - P07: engines.node must admit 22.9.0, the minimum Node.js of Node-RED 5;
 * - N01 (unique names in the online catalogue) cannot be checked offline;
 * - D02: the production dependency tree (lock file, non-dev entries) holds no package from
 *   node-red-dev's incompatible list (agent-base < 6.0.0);
 * - D03 "latest versions": every dependency's locked version satisfies the declared range and the
 *   range admits the newest version installed; a held-back major must be listed with its reason.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import vm from 'node:vm';

const require = createRequire(__filename);
const semver = require('semver') as {
  satisfies(version: string, range: string): boolean;
  validRange(range: string): string | null;
  major(version: string): number;
  minVersion(range: string): { version: string } | null;
};

const root = join(__dirname, '..');
interface Pkg {
  name: string;
  license?: string;
  repository?: { url?: string } | string;
  bugs?: { url?: string } | string;
  keywords?: string[];
  engines?: { node?: string };
  dependencies?: Record<string, string>;
  'node-red': { version?: string; nodes: Record<string, string> };
}
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as Pkg;

/** Dependencies deliberately kept below their latest major, with the reason. */
const HELD_BACK: Record<string, string> = {
  'better-sqlite3': '13.x needs Node.js 22 and crashes on Node.js 20, which this package supports',
};

/** Node types and categories as the editor registers them (scripts run against a stub editor API). */
function editorDefinitions(): Map<string, { category?: string; file: string }> {
  const defs = new Map<string, { category?: string; file: string }>();
  const anything: unknown = new Proxy(function () {}, { get: () => anything, apply: () => anything });
  const RED = new Proxy(
    {
      nodes: new Proxy(
        {
          registerType: (type: string, def: { category?: string }) =>
            defs.set(type, { category: def.category, file: current }),
        },
        { get: (t, k) => (k in t ? t[k as 'registerType'] : anything) },
      ),
    },
    { get: (t, k) => (k in t ? t[k as 'nodes'] : anything) },
  );
  let current = '';
  const context = vm.createContext({
    RED,
    $: anything,
    jsonata: anything,
    window: {} as Record<string, unknown>,
    console,
  });
  (context as { window: unknown }).window = context;
  const shared = join(root, 'resources', 'dd-editor.js');
  if (existsSync(shared)) vm.runInContext(readFileSync(shared, 'utf8'), context);
  for (const js of Object.values(pkg['node-red'].nodes)) {
    current = js.replace(/\.js$/, '.html');
    const html = readFileSync(join(root, current), 'utf8');
    for (const m of html.matchAll(/<script type="text\/javascript">([\s\S]*?)<\/script>/g))
      vm.runInContext(m[1]!, context);
  }
  return defs;
}

function exampleFiles(dir = join(root, 'examples')): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? exampleFiles(p) : [p];
  });
}

test('P01 licence declared and shipped', () => {
  assert.ok(pkg.license, 'package.json has no licence');
  assert.ok(existsSync(join(root, 'LICENSE')), 'LICENSE file missing');
});

test('P03 repository or bugs URL', () => {
  const url = (x: Pkg['repository']) => (typeof x === 'string' ? x : x?.url);
  assert.ok(url(pkg.repository) || url(pkg.bugs), 'neither repository nor bugs given');
  assert.match(url(pkg.repository) ?? '', /^(git\+)?https:\/\/|^git@/);
});

test('P04 scoped package name', () => {
  assert.match(pkg.name, /^@[a-z\d][\w-.]+\/[a-z\d][\w-.]*$/);
});

test('P05 node-red keyword', () => {
  assert.ok(pkg.keywords?.includes('node-red'));
});

test('P06 node-red.version admits the installed maintenance release and the latest major', () => {
  const range = pkg['node-red'].version;
  assert.ok(range && semver.validRange(range), `node-red.version ${range} is not a semver range`);
  const installed = (require('node-red/package.json') as { version: string }).version;
  assert.ok(semver.satisfies(installed, range), `${range} excludes the installed node-red ${installed}`);
  assert.ok(semver.satisfies('5.0.0', range), `${range} excludes Node-RED 5`);
});

test('P07 engines.node admits Node.js 22.9 (Node-RED 5) and the Node.js running the tests', () => {
  const range = pkg.engines?.node;
  assert.ok(range, 'engines.node missing');
  assert.ok(semver.satisfies('22.9.0', range), `${range} excludes 22.9.0`);
  assert.ok(semver.satisfies(process.versions.node, range), `${range} excludes ${process.versions.node}`);
});

test('every node file has an editor file that registers its type (what N02 reads)', () => {
  const defs = editorDefinitions();
  for (const [type, js] of Object.entries(pkg['node-red'].nodes)) {
    assert.ok(existsSync(join(root, js)), `${js} missing`);
    assert.equal(
      defs.get(type)?.file,
      js.replace(/\.js$/, '.html'),
      `${type} is not registered by ${js.replace(/\.js$/, '.html')}`,
    );
  }
});

test('N02 every node type (config nodes included) appears in an example', () => {
  const files = exampleFiles();
  assert.ok(files.length > 0, 'no examples');
  const used = new Set<string>();
  for (const f of files) {
    const flow = JSON.parse(readFileSync(f, 'utf8')) as { type: string }[];
    assert.ok(Array.isArray(flow), `${f} is not a flow array`);
    for (const n of flow) used.add(n.type);
  }
  const missing = Object.keys(pkg['node-red'].nodes).filter((t) => !used.has(t));
  assert.deepEqual(missing, [], `node types without an example: ${missing.join(', ')}`);
});

test('D01 at most 6 runtime dependencies', () => {
  assert.ok(Object.keys(pkg.dependencies ?? {}).length <= 6);
});

interface LockEntry {
  version?: string;
  dev?: boolean;
}
const lock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8')) as {
  packages: Record<string, LockEntry>;
};

test('D02 no known-incompatible package in the production dependency tree', () => {
  const bad: Record<string, string> = { 'agent-base': '<6.0.0' };
  const prod = Object.entries(lock.packages).filter(([path, e]) => path.startsWith('node_modules/') && !e.dev);
  assert.ok(prod.length > 0);
  for (const [path, entry] of prod) {
    const name = path.slice(path.lastIndexOf('node_modules/') + 'node_modules/'.length);
    if (bad[name] && entry.version)
      assert.ok(!semver.satisfies(entry.version, bad[name]!), `${name}@${entry.version} is incompatible with Node-RED`);
  }
});

test('D03 dependencies are locked at versions their ranges admit, on the newest installed major', () => {
  for (const [name, range] of Object.entries(pkg.dependencies ?? {})) {
    const locked = lock.packages[`node_modules/${name}`]?.version;
    assert.ok(locked, `${name} not in the lock file`);
    assert.ok(semver.satisfies(locked, range), `${name}: locked ${locked} outside ${range}`);
    const installed = (require(`${name}/package.json`) as { version: string }).version;
    assert.equal(installed, locked, `${name}: installed ${installed} differs from the lock file`);
    assert.ok(/^\^/.test(range) || HELD_BACK[name], `${name}: ${range} does not follow minor and patch releases`);
  }
});

/** The message catalogs of a language: each node's own, plus core Node-RED's `node-red` namespace. */
function catalogs(lang: string): (key: string, type: string) => string | undefined {
  const own = (type: string): Record<string, unknown> => {
    const file = join(root, 'nodes', 'locales', lang, `${type}.json`);
    return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>) : {};
  };
  const coreDir = join(dirnameOf(require.resolve('@node-red/nodes/package.json')), 'locales');
  const coreFile = existsSync(join(coreDir, lang, 'messages.json'))
    ? join(coreDir, lang, 'messages.json')
    : join(coreDir, 'en-US', 'messages.json');
  const core = JSON.parse(readFileSync(coreFile, 'utf8')) as Record<string, unknown>;
  const lookup = (tree: Record<string, unknown>, key: string): string | undefined => {
    let at: unknown = tree;
    for (const part of key.split('.')) at = (at as Record<string, unknown> | undefined)?.[part];
    return typeof at === 'string' ? at : undefined;
  };
  return (key, type) => {
    const [ns, k] = key.includes(':') ? (key.split(':') as [string, string]) : [`@deltaflow/node-red/${type}`, key];
    if (ns === 'node-red') return lookup(core, k);
    return lookup(own(ns.replace('@deltaflow/node-red/', '')), k);
  };
}

function dirnameOf(file: string): string {
  return file.slice(0, file.lastIndexOf('/'));
}

const languages = readdirSync(join(root, 'nodes', 'locales'));

test('every field of every editor form is explained in the node help of every language (a <dt> naming its label)', () => {
  const strip = (html: string) =>
    html
      .replace(/<[^>]+>/g, '')
      .replace(/\s+/g, ' ')
      .trim();
  const problems: string[] = [];
  assert.ok(languages.includes('en-US'));
  for (const lang of languages) {
    const t = catalogs(lang);
    for (const [type, js] of Object.entries(pkg['node-red'].nodes)) {
      const file = js.replace(/\.js$/, '.html');
      const html = readFileSync(join(root, file), 'utf8');
      const form = /data-template-name="[^"]+">([\s\S]*?)<\/script>/.exec(html)?.[1];
      const helpFile = join(root, 'nodes', 'locales', lang, `${type}.html`);
      assert.ok(form, `${file}: no form`);
      assert.ok(existsSync(helpFile), `no help ${lang}/${type}.html`);
      const help = readFileSync(helpFile, 'utf8');
      assert.match(help, new RegExp(`data-help-name="${type}"`));
      const terms = [...help.matchAll(/<dt[^>]*>([\s\S]*?)<\/dt>/g)].map((m) => strip(m[1]!).toLowerCase());
      for (const m of form.matchAll(/<label[^>]*>([\s\S]*?)<\/label>/g)) {
        const key = /data-i18n="([^"]+)"/.exec(m[1]!)?.[1];
        const label = key ? t(key, type) : strip(m[1]!);
        if (label === undefined) problems.push(`${lang}/${type}: no text for ${key}`);
        else if (label !== '' && !terms.some((term) => term.includes(label.toLowerCase())))
          problems.push(`${lang}/${type}: field "${label}"`);
      }
    }
  }
  assert.deepEqual(problems, []);
});

test("every text key the editor files use is in every language's catalog, and the catalogs have the same keys", () => {
  const keysOf = (tree: unknown, prefix = ''): string[] =>
    typeof tree === 'string'
      ? [prefix]
      : Object.entries(tree as Record<string, unknown>).flatMap(([k, v]) => keysOf(v, prefix ? `${prefix}.${k}` : k));
  const problems: string[] = [];
  const reference = new Map<string, string[]>();
  for (const type of Object.keys(pkg['node-red'].nodes)) {
    const file = join(root, 'nodes', 'locales', 'en-US', `${type}.json`);
    assert.ok(existsSync(file), `no catalog en-US/${type}.json`);
    reference.set(type, keysOf(JSON.parse(readFileSync(file, 'utf8'))).sort());
  }
  const sources = [
    ...Object.values(pkg['node-red'].nodes).map((js) => js.replace(/\.js$/, '.html')),
    'resources/dd-editor.js',
  ].map((f) => [f, readFileSync(join(root, f), 'utf8')] as const);
  for (const lang of languages) {
    const t = catalogs(lang);
    for (const [type, keys] of reference) {
      const file = join(root, 'nodes', 'locales', lang, `${type}.json`);
      const own = existsSync(file) ? keysOf(JSON.parse(readFileSync(file, 'utf8'))).sort() : [];
      if (own.join() !== keys.join()) problems.push(`${lang}/${type}.json: keys differ from en-US`);
    }
    for (const [file, text] of sources) {
      const type = file.replace(/^nodes\/|\.html$/g, '');
      const used = [
        ...[...text.matchAll(/data-i18n="(?:\[[a-z]+\])?([^"]+)"/g)].map((m) => m[1]!),
        ...[...text.matchAll(/this\._\('([^']+)'/g)].map((m) => m[1]!),
      ];
      for (const key of used) if (t(key, type) === undefined) problems.push(`${lang}: ${file} uses ${key}`);
    }
    for (const m of readFileSync(join(root, 'resources', 'dd-editor.js'), 'utf8').matchAll(/\bt\('([^']+)'/g)) {
      if (t(`@deltaflow/node-red/dd-dataflow:${m[1]}`, 'dd-dataflow') === undefined)
        problems.push(`${lang}: dd-editor.js uses ${m[1]}`);
    }
  }
  assert.deepEqual(problems, []);
});
