/**
 * The tests run through tsx, which strips types without checking them, so a type error in a test,
 * a benchmark or the sources would only surface in an editor. This test type-checks all three with
 * the project's settings (tsconfig.test.json), so such an error cannot land.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

test('sources, benchmarks and tests type-check (tsc -p tsconfig.test.json)', () => {
  const root = join(__dirname, '..');
  const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
  const r = spawnSync(process.execPath, [tsc, '-p', 'tsconfig.test.json', '--pretty', 'false'], {
    cwd: root,
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, `type errors:\n${r.stdout}${r.stderr}`);
});
