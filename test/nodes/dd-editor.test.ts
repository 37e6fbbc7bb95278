/**
 * The dd operator editors (nodes/dd-*.html with the helpers of resources/dd-editor.js) in a real
 * browser against a real Node-RED with the machine-usage example deployed: every operator is in
 * the palette under its own label and the example's operators are valid; dd-minby's value is a
 * TypedInput (record. / JavaScript / JSONata), a bad path marks the node invalid after Done, and
 * without a name the label shows the path; dd-map's multi-line function is shown as a preview and
 * edited in Node-RED's code editor, and comes back unchanged; dd-aggregate shows its value only
 * for a sum; dd-scan's initial state is a JSON typed input and invalid JSON marks it invalid. No
 * script errors.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { screenshot, skipWithoutChromium } from '../browser/chromium';
import { closeTray, nodeRedEditor } from '../support/node-red-editor';

const editor = nodeRedEditor('dd-editor');

test('dd operator editors: palette, expression TypedInput, validation, path label, code editor, aggregate fields', async (t) => {
  if (skipWithoutChromium) return t.skip(skipWithoutChromium);
  const { page, pageErrors } = await editor.open();
  const palette = page.locator('#red-ui-palette-container-dataflow .red-ui-palette-label');
  await palette.filter({ hasText: /^min\s+by$/ }).waitFor({ timeout: 30_000 });
  for (const label of [
    'filter records',
    'map records',
    'flat map records',
    'group by',
    'reduce group',
    'scan group',
    'count / sum',
    'max by',
    'distinct records',
  ]) {
    assert.equal(
      await palette.filter({ hasText: new RegExp(`^${label.replace(/ /g, '\\s+')}$`) }).count(),
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
  const typed = page.locator('#node-input-by-typed');
  const field = page.locator('#node-input-by-typed + .red-ui-typedInput-container input.red-ui-typedInput-input');
  await field.waitFor();
  assert.equal(await page.evaluate("$('#node-input-by-typed').typedInput('type')"), 'path');
  assert.equal(await field.inputValue(), 'started');
  assert.equal(await typed.count(), 1);
  await page.evaluate("$('#node-input-by-typed').typedInput('type', 'js')");
  assert.equal(await page.locator('#node-input-byType').inputValue(), 'js', 'the type goes into byType');
  await page.evaluate("$('#node-input-by-typed').typedInput('type', 'path')");
  assert.equal(await field.inputValue(), 'started', 'the text stays when the type changes');
  await field.fill('a..b');
  await screenshot(page, 'dd-minby-editor');
  await closeTray(page);
  await minBy.locator('.red-ui-flow-node-error:not(.hide)').waitFor({ timeout: 5000 });

  const name = page.locator('#node-input-name');
  /** Opens the tray, sets the path to `since`, clears the name, Done; the name Node-RED then keeps. */
  const clearName = async (): Promise<string> => {
    await minBy.dblclick();
    await field.waitFor();
    await field.fill('since');
    // NB: the tray fills its inputs while it opens; clear the name only once it holds what was saved.
    await page.waitForFunction("(document.querySelector('#node-input-name')?.value ?? '') !== ''");
    await name.fill('');
    // NB: Node-RED 5's tray can still be finishing its opening (CI saw Done keep the example's name
    // once, not reproduced in 11 runs): Done only once the cleared field has stayed empty a moment.
    await page.waitForTimeout(300);
    if ((await name.inputValue()) !== '') {
      console.log('# dd-editor: the name field was filled again after it was cleared; clearing it again');
      await name.fill('');
    }
    await closeTray(page);
    return page
      .waitForFunction("RED.nodes.node('dc8f07edc95391a4').name === ''", null, { timeout: 10_000 })
      .then(() => '')
      .catch(() => page.evaluate("JSON.stringify(RED.nodes.node('dc8f07edc95391a4').name)") as Promise<string>);
  };
  assert.equal(await page.evaluate("RED.nodes.node('dc8f07edc95391a4').name"), 'first use');
  let saved = await clearName();
  if (saved !== '') {
    // Printed, never silent: the edit is made once more, as a user would; a second loss fails.
    console.log(`# dd-editor: Done kept the name ${saved}; editing once more`);
    saved = await clearName();
  }
  assert.equal(saved, '', 'Done saves the cleared name');
  await page.waitForFunction(
    "document.querySelectorAll('#red-ui-workspace-chart g.red-ui-flow-node-group .red-ui-flow-node-error:not(.hide)').length === 0",
  );
  // Without a name the label shows the path (the label is redrawn after the edit).
  const label = minBy.locator('.red-ui-flow-node-label');
  for (let i = 0; i < 50 && (await label.textContent())?.trim() !== 'min by since'; i++) {
    await page.evaluate('RED.view.redraw(true)');
    await page.waitForTimeout(100);
  }
  assert.equal((await label.textContent())?.trim(), 'min by since');

  // dd-map "excerpt": a multi-line function, shown as a preview and edited in the code editor.
  const map = page.locator('g.red-ui-flow-node-group[id="63db936de6e93fb1"]');
  const before = (await page.evaluate("RED.nodes.node('63db936de6e93fb1').func")) as string;
  assert.ok(before.includes('\n'), 'the example function has several lines');
  await map.dblclick();
  const preview = page.locator('#node-input-func-typed + .red-ui-typedInput-container .dd-code-preview');
  await preview.waitFor();
  assert.equal((await preview.textContent())?.trim(), before.split('\n')[0]!.trim());
  await preview.click();
  await page.locator('#node-input-js').waitFor(); // Node-RED's JavaScript editor tray
  await page.locator('#node-dialog-ok').last().click();
  await page.locator('#node-input-js').waitFor({ state: 'detached' });
  await closeTray(page);
  assert.equal(await page.evaluate("RED.nodes.node('63db936de6e93fb1').func"), before, 'the code comes back unchanged');

  await page.locator('g.red-ui-flow-node-group[id="a084060dc829cda0"]').dblclick(); // "total minutes": sum of a path
  await page.locator('#node-input-aggregate').waitFor();
  assert.equal(await page.locator('#node-input-aggregate').inputValue(), 'sum');
  const value = page.locator('#node-input-value-typed + .red-ui-typedInput-container');
  assert.equal(await value.locator('input.red-ui-typedInput-input').inputValue(), 'duration_minutes');
  await page.locator('#node-input-aggregate').selectOption('count');
  assert.equal(await value.isVisible(), false, 'no value field for a count');
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
