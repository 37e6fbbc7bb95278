/**
 * The dd operator editors (built by `DeltaFlowEditor.operator` in resources/dd-editor.js) in a real
 * browser against a real Node-RED with the machine-usage example deployed: every operator is in
 * the palette and the example's operators are valid; dd-minby's expression field switches between a
 * property path and a code editor, a bad path marks the node invalid after Done, and without a name
 * the label shows the path; dd-aggregate shows its value fields only for a sum; dd-scan's initial
 * state is a JSON typed input and invalid JSON marks it invalid. No script errors.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { screenshot, skipWithoutChromium } from '../browser/chromium';
import { closeTray, nodeRedEditor } from '../support/node-red-editor';

const editor = nodeRedEditor('dd-editor');

test('dd operator editors: palette, expression field by language, validation, path label, aggregate fields', async (t) => {
  if (skipWithoutChromium) return t.skip(skipWithoutChromium);
  const { page, pageErrors } = await editor.open();
  const palette = page.locator('#red-ui-palette-container-dataflow .red-ui-palette-label');
  await palette.filter({ hasText: /^min\s+by$/ }).waitFor({ timeout: 30_000 });
  for (const label of ['filter', 'map', 'flat map', 'group by', 'reduce', 'scan', 'aggregate', 'max by', 'distinct']) {
    assert.equal(
      await palette.filter({ hasText: new RegExp(`^${label.replace(' ', '\\s+')}$`) }).count(),
      1,
      `${label} in the palette`,
    );
  }

  // Ids from examples/machine-usage.json.
  const minBy = page.locator('g.red-ui-flow-node-group[id="dc8f07edc95391a4"]');
  await minBy.waitFor();
  const invalid = page.locator(
    '#red-ui-workspace-chart g.red-ui-flow-node-group:has(.red-ui-flow-node-error:not(.hide))',
  );
  assert.equal(await invalid.count(), 0, 'the example operators are valid');

  await minBy.dblclick();
  const path = page.locator('#node-input-by-path');
  await path.waitFor();
  assert.equal(await page.locator('#node-input-byType').inputValue(), 'path');
  assert.equal(await path.inputValue(), 'started');
  assert.equal(await page.locator('#node-input-by-editor').isVisible(), false);
  await page.locator('#node-input-byType').selectOption('js');
  assert.equal(await page.locator('#node-input-by-editor').isVisible(), true, 'code editor for JavaScript');
  assert.equal(await path.isVisible(), false);
  await page.locator('#node-input-byType').selectOption('path');
  assert.equal(await path.inputValue(), 'started', 'the text moves between the two fields');
  await path.fill('a..b');
  await screenshot(page, 'dd-minby-editor');
  await closeTray(page);
  await minBy.locator('.red-ui-flow-node-error:not(.hide)').waitFor({ timeout: 5000 });

  await minBy.dblclick();
  await path.waitFor();
  await path.fill('since');
  await page.locator('#node-input-name').fill('');
  await closeTray(page);
  await page.waitForFunction(
    "document.querySelectorAll('#red-ui-workspace-chart g.red-ui-flow-node-group .red-ui-flow-node-error:not(.hide)').length === 0",
  );
  // Without a name the label shows the path (the label is redrawn after the edit).
  const label = minBy.locator('.red-ui-flow-node-label');
  for (let i = 0; i < 50 && (await label.textContent())?.trim() !== 'min by since'; i++) await page.waitForTimeout(100);
  assert.equal((await label.textContent())?.trim(), 'min by since');

  await page.locator('g.red-ui-flow-node-group[id="a084060dc829cda0"]').dblclick(); // "total minutes": sum of a path
  await page.locator('#node-input-aggregate').waitFor();
  assert.equal(await page.locator('#node-input-aggregate').inputValue(), 'sum');
  assert.equal(await page.locator('#node-input-value-path').inputValue(), 'duration_minutes');
  await page.locator('#node-input-aggregate').selectOption('count');
  assert.equal(await page.locator('#node-input-value-path').isVisible(), false, 'no value fields for a count');
  await closeTray(page, '#node-dialog-cancel');

  // dd-scan ("pair started/stopped"): the initial state is a JSON typed input; invalid JSON marks the node invalid.
  const scan = page.locator('g.red-ui-flow-node-group[id="5e77fb9b6f54bf74"]');
  await scan.dblclick();
  await page.locator('#node-input-func-editor').waitFor();
  assert.equal(await page.locator('#node-input-initial').inputValue(), '{}');
  assert.equal(
    await page.locator('#node-input-initial + .red-ui-typedInput-container .red-ui-typedInput-option-expand').count(),
    1,
    'a button opening the JSON editor',
  );
  await page.evaluate("$('#node-input-initial').typedInput('value', '{\"open\": ')");
  await screenshot(page, 'dd-scan-editor');
  await closeTray(page);
  await scan.locator('.red-ui-flow-node-error:not(.hide)').waitFor({ timeout: 5000 });
  await scan.dblclick();
  await page.locator('#node-input-func-editor').waitFor();
  await page.evaluate("$('#node-input-initial').typedInput('value', '{}')");
  await closeTray(page);
  await page.waitForFunction(
    "document.querySelectorAll('#red-ui-workspace-chart g.red-ui-flow-node-group .red-ui-flow-node-error:not(.hide)').length === 0",
  );
  assert.deepEqual(pageErrors, []);
});
