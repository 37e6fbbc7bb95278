/**
 * `npm start -- --node-red 5` (issue 18): the demo on Node-RED 5 when Node.js ≥ 22.9 runs it — in
 * the Node 22 job (scripts/ci-node22.sh), where the package's own node-red is 5.x, it starts and the
 * editor reports 5.x; on an older Node it refuses with the reason. A major other than 4 or 5 is refused.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startNodeRed } from './node-red-process';

const root = join(__dirname, '..', '..');
const [major, minor] = process.versions.node.split('.').map(Number) as [number, number];
const node22 = major > 22 || (major === 22 && minor >= 9);

function runStart(args: string[]): { status: number | null; out: string } {
  const dir = mkdtempSync(join(tmpdir(), 'deltaflow-nr-version-'));
  try {
    const r = spawnSync(process.execPath, [join(root, 'scripts', 'start.mjs'), '--user-dir', dir, ...args], {
      cwd: root,
      encoding: 'utf8',
      timeout: 60_000,
    });
    return { status: r.status, out: `${r.stdout}${r.stderr}` };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('--node-red takes 4 or 5', () => {
  const r = runStart(['--node-red', '6', '--port', '0']);
  assert.notEqual(r.status, 0);
  assert.match(r.out, /--node-red must be 4 or 5/);
});

test(
  '--node-red 5 on Node.js older than 22.9 says that Node-RED 5 needs 22.9',
  { skip: node22 && 'Node ≥ 22.9' },
  () => {
    const r = runStart(['--node-red', '5', '--port', '0', '--no-simulator']);
    assert.notEqual(r.status, 0);
    assert.match(r.out, /Node-RED 5 needs Node\.js ≥ 22\.9; this is /);
  },
);

test('--node-red 5 on Node.js 22 runs the demo on Node-RED 5', { skip: !node22 && 'Node < 22.9' }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'deltaflow-nr-version-'));
  const nr = await startNodeRed(dir, ['--node-red', '5', '--no-simulator', '--examples', 'drill-dashboard']);
  try {
    assert.match(nr.output(), /Node-RED 5\.\d+\.\d+ on Node\.js 2\d\./);
    const settings = (await (await fetch(`${nr.base}/settings`)).json()) as { version: string };
    assert.match(settings.version, /^5\./);
  } finally {
    await nr.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
