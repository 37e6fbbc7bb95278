/**
 * The example flows as files: they share their config nodes (one id per event log and database,
 * the same definition in every file, so that importing several reuses them instead of adding
 * copies), every reference resolves inside its own file (each example imports on its own), no
 * other node id appears in two files, and no flow names a host or port of its own (they run in any
 * user directory, on any port).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const dir = join(__dirname, '..', 'examples');

interface FlowNode {
  readonly id: string;
  readonly type: string;
  readonly z?: string;
  readonly name?: string;
  readonly [key: string]: unknown;
}

const examples = readdirSync(dir)
  .filter((f) => f.endsWith('.json'))
  .map((f) => ({ file: f, nodes: JSON.parse(readFileSync(join(dir, f), 'utf8')) as FlowNode[] }));

/** Config nodes: no tab, no position (Node-RED's own rule when it imports). */
const isConfig = (n: FlowNode): boolean => n.type !== 'tab' && n.z === undefined && !('x' in n);

/** Properties of our nodes that name a config node. */
const CONFIG_REFERENCES = ['actyx', 'dataflow', 'database', 'server', 'client', 'group', 'ui', 'page', 'theme'];

test('config nodes are shared: one id per log and database, the same definition in every example', () => {
  const byId = new Map<string, { file: string; text: string }>();
  const byName = new Map<string, string>();
  for (const { file, nodes } of examples) {
    for (const n of nodes.filter(isConfig)) {
      const seen = byId.get(n.id);
      if (seen) assert.equal(JSON.stringify(n), seen.text, `${file} and ${seen.file} define config node ${n.id} alike`);
      else byId.set(n.id, { file, text: JSON.stringify(n) });
      // Two config nodes of one type and name would be the duplicates the editor showed before.
      const label = `${n.type} "${n.name ?? ''}"`;
      const other = byName.get(label);
      assert.ok(other === undefined || other === n.id, `${label} has two ids: ${other} and ${n.id}`);
      byName.set(label, n.id);
    }
  }
  const shared = (type: string): number => [...byId.values()].filter((v) => JSON.parse(v.text).type === type).length;
  assert.equal(shared('actyx-config'), 1, 'one embedded event log for all examples');
  const users = examples.filter(({ nodes }) => nodes.some((n) => n.id === 'a02ecdb67df56e7b'));
  assert.ok(users.length >= 4, `the event log is shared by ${users.map((u) => u.file).join(', ')}`);
  const factory = examples.filter(({ nodes }) =>
    nodes.some((n) => n.type === 'db-config' && n.name === 'factory database'),
  );
  assert.ok(factory.length >= 3, 'the SQLite examples share the factory database');
});

test('every reference resolves inside its own file; other ids appear in one file only', () => {
  const owner = new Map<string, string>();
  for (const { file, nodes } of examples) {
    const ids = new Set(nodes.map((n) => n.id));
    for (const n of nodes) {
      for (const key of CONFIG_REFERENCES) {
        const ref = n[key];
        if (typeof ref === 'string' && ref !== '' && n.type !== 'tab')
          assert.ok(ids.has(ref), `${file}: ${n.type} ${n.id} refers to ${key} ${ref}, which is not in the file`);
      }
      for (const port of (n.wires as string[][] | undefined) ?? [])
        for (const target of port)
          assert.ok(ids.has(target), `${file}: ${n.id} is wired to ${target}, not in the file`);
      for (const link of (n.links as string[] | undefined) ?? [])
        assert.ok(ids.has(link), `${file}: ${n.id} links to ${link}, not in the file`);
      if (n.z !== undefined) assert.ok(ids.has(n.z), `${file}: ${n.id} is on tab ${n.z}, not in the file`);
      if (!isConfig(n)) {
        assert.ok(!owner.has(n.id), `node ${n.id} is in ${owner.get(n.id)} and ${file}`);
        owner.set(n.id, file);
      }
    }
  }
});

test('no example names a host or port of its own', () => {
  for (const { file } of examples) {
    const text = readFileSync(join(dir, file), 'utf8');
    assert.doesNotMatch(text, /127\.0\.0\.1|localhost|:1880\b/, `${file} names a host or port`);
  }
});
