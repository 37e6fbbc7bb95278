/**
 * The code is formatted with Prettier (.prettierrc.json: 120 columns): `npm run format` fixes it.
 * This test fails when a file is not, so a change cannot land unformatted.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

test('every source, test, script and node file is formatted with Prettier', () => {
  const root = join(__dirname, '..');
  const prettier = join(root, 'node_modules', 'prettier', 'bin', 'prettier.cjs');
  const r = spawnSync(process.execPath, [prettier, '--check', '--log-level', 'warn', '.'], {
    cwd: root,
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, `not formatted (run npm run format):\n${r.stdout}${r.stderr}`);
});
