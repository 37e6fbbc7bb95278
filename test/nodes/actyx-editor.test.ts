/**
 * The actyx-subscribe, actyx-publish and actyx-config editors in a real browser (Debian's chromium
 * through playwright-core) against a real Node-RED with the machine-usage example deployed: the
 * nodes are in the palette, the subscribe form shows its query and hides the standalone start
 * option inside a dataflow, the config form shows the fields of the chosen kind and the signature
 * as a password. No script errors in the page.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { screenshot, skipWithoutChromium } from '../browser/chromium';
import { nodeRedEditor } from '../support/node-red-editor';

const editor = nodeRedEditor('actyx-editor');

test('actyx editors: palette, subscribe form, config form by kind, signature as password', async (t) => {
  if (skipWithoutChromium) return t.skip(skipWithoutChromium);
  const { page, pageErrors } = await editor.open();
  const palette = page.locator('#red-ui-palette-container-dataflow .red-ui-palette-label');
  await palette.filter({ hasText: /^events\s+in$/ }).waitFor({ timeout: 30_000 });
  assert.equal(await palette.filter({ hasText: /^events\s+out$/ }).count(), 1);

  const subscribeNode = page.locator('g.red-ui-flow-node-group[id="19116c1b0100a948"]'); // "machine events" in examples/machine-usage.json
  await subscribeNode.waitFor();
  assert.equal(
    await subscribeNode.locator('.red-ui-flow-node-error:not(.hide)').count(),
    0,
    'the example node is valid',
  );
  await subscribeNode.dblclick();
  await page.locator('#node-input-query').waitFor();
  assert.equal(await page.locator('#node-input-query').inputValue(), "'machine'");
  assert.equal(await page.locator('#node-input-start').isVisible(), false, 'start option hidden inside a dataflow');
  await screenshot(page, 'actyx-subscribe-editor');

  await page.locator('#node-input-btn-actyx-edit').click();
  await page.locator('#node-config-input-kind').waitFor();
  assert.equal(await page.locator('#node-config-input-kind').inputValue(), 'embedded');
  assert.equal(await page.locator('#node-config-input-file').isVisible(), true);
  assert.equal(await page.locator('#node-config-input-host').isVisible(), false);
  assert.equal(await page.locator('#node-config-input-signature').isVisible(), false);
  await page.locator('#node-config-input-kind').selectOption('actyx');
  assert.equal(await page.locator('#node-config-input-host').isVisible(), true);
  assert.equal(await page.locator('#node-config-input-port').isVisible(), true);
  assert.equal(await page.locator('#node-config-input-signature').getAttribute('type'), 'password');
  assert.equal(await page.locator('#node-config-input-file').isVisible(), false);
  await screenshot(page, 'actyx-config-editor');
  assert.deepEqual(pageErrors, []);
});
