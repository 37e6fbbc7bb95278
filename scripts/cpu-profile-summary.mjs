#!/usr/bin/env node
/**
 * Self time of a V8 CPU profile (`node --cpu-prof`, a .cpuprofile JSON) by function and by source
 * file, for BENCHMARKS.md's profiles:
 *
 *   node scripts/cpu-profile-summary.mjs <file.cpuprofile> [--top N] [--after S] [--callers NAME] [--depth D]
 *
 * `--top` (30): rows per table. `--after`: only samples taken S seconds or more after the profile's
 * start (e.g. to leave out loading Node-RED). `--callers NAME`: instead of the tables, the self time
 * of the functions named NAME (e.g. `handle`, a native frame without a file) by their chain of `--depth`
 * (2) callers. Files are shown relative to the repository or to node_modules, node internals as
 * `node:...`; V8's own entries as `(garbage collector)`, `(program)`, `(idle)`; native frames without
 * a file as `(native)`.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';

const args = process.argv.slice(2);
const option = (name, fallback) => {
  const at = args.indexOf(name);
  if (at < 0) return fallback;
  const [, value] = args.splice(at, 2);
  return value;
};
const top = Number(option('--top', '30'));
const after = Number(option('--after', '0'));
const callersOf = option('--callers', null);
const depth = Number(option('--depth', '2'));
const [file] = args;
if (!file) {
  console.error(
    'usage: node scripts/cpu-profile-summary.mjs <file.cpuprofile> [--top N] [--after S] [--callers NAME] [--depth D]',
  );
  process.exit(2);
}
const profile = JSON.parse(readFileSync(file, 'utf8'));
const root = resolve(new URL('..', import.meta.url).pathname);

const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const parentOf = new Map();
for (const n of profile.nodes) for (const c of n.children ?? []) parentOf.set(c, n.id);

// Self time per profile node (µs), from the samples and their time deltas.
const selfUs = new Map();
let t = profile.startTime;
const from = profile.startTime + after * 1e6;
for (let i = 0; i < profile.samples.length; i++) {
  const dt = profile.timeDeltas[i] ?? 0;
  t += dt;
  if (t < from) continue;
  const id = profile.samples[i];
  selfUs.set(id, (selfUs.get(id) ?? 0) + dt);
}

const where = (url) => {
  if (!url) return '';
  let u = url.replace(/^file:\/\//, '');
  if (u.startsWith(root + '/')) u = u.slice(root.length + 1);
  return u.replace(/^.*\/node_modules\//, 'node_modules/');
};
const label = (n) => {
  const cf = n.callFrame;
  return `${cf.functionName || '(anonymous)'} ${where(cf.url)}${cf.url ? `:${cf.lineNumber + 1}` : ''}`.trim();
};

let total = 0;
for (const us of selfUs.values()) total += us;
const show = (title, m, n) => {
  console.log(`\n${title} (total ${(total / 1e6).toFixed(2)} s)`);
  for (const [k, us] of [...m].sort((a, b) => b[1] - a[1]).slice(0, n))
    console.log(`${(us / 1e6).toFixed(3).padStart(8)} s ${((us / total) * 100).toFixed(1).padStart(5)} %  ${k}`);
};

if (callersOf !== null) {
  const chains = new Map();
  for (const [id, us] of selfUs) {
    if (byId.get(id).callFrame.functionName !== callersOf) continue;
    const chain = [];
    for (let q = parentOf.get(id), d = 0; q !== undefined && d < depth; q = parentOf.get(q), d++)
      chain.push(label(byId.get(q)));
    const k = chain.join(' < ') || '(no caller)';
    chains.set(k, (chains.get(k) ?? 0) + us);
  }
  show(`self time of ${callersOf} by its callers`, chains, top);
} else {
  const fns = new Map();
  const files = new Map();
  for (const [id, us] of selfUs) {
    const n = byId.get(id);
    const cf = n.callFrame;
    const f = where(cf.url) || (cf.functionName.startsWith('(') ? cf.functionName : '(native)');
    fns.set(label(n), (fns.get(label(n)) ?? 0) + us);
    files.set(f, (files.get(f) ?? 0) + us);
  }
  show('self time by function', fns, top);
  show('self time by file', files, top);
}
