/**
 * The db-sink and db-config editors in a real browser (Debian's chromium through playwright-core)
 * against a real Node-RED with the machine-usage example deployed: the column list shows the
 * configured columns, editing a column name to an injection attempt marks the node invalid, and the
 * db-config form shows the fields of the chosen database kind. Screenshots go to test-artifacts/.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { screenshot, skipWithoutChromium } from '../browser/chromium';
import { closeTray, nodeRedEditor } from '../support/node-red-editor';

const editor = nodeRedEditor('db-editor');

test('db-sink editor: column list, validation of names, db-config fields by kind', async (t) => {
  if (skipWithoutChromium) return t.skip(skipWithoutChromium);
  const { page, pageErrors } = await editor.open();
  await page
    .locator('#red-ui-palette-container-dataflow .red-ui-palette-label', { hasText: /^sql\s+table$/ })
    .waitFor({ timeout: 30_000 });

  const sinkNode = page.locator('g.red-ui-flow-node-group', {
    has: page.locator('text', { hasText: 'machine_usage table' }),
  });
  await sinkNode.waitFor();
  const invalidMarker = sinkNode.locator('.red-ui-flow-node-error:not(.hide)');
  assert.equal(await invalidMarker.count(), 0, 'the example sink starts valid');

  await sinkNode.dblclick();
  const rows = page.locator('#node-input-columns-container .red-ui-editableList-item-content');
  await rows.first().waitFor();
  const names = await page
    .locator('#node-input-columns-container .db-col-name')
    .evaluateAll((els) => els.map((e) => (e as unknown as { value: string }).value));
  assert.deepEqual(names.slice(0, 3), ['machine', 'manufacturing_order', 'started']);
  assert.equal(await page.locator('#node-input-mode').inputValue(), 'multiset');
  await screenshot(page, 'db-sink-editor');

  // An injection attempt as a column name: the node is marked invalid after Done.
  await page.locator('#node-input-columns-container .db-col-name').first().fill('a"b; drop table x');
  await closeTray(page);
  await invalidMarker.waitFor({ timeout: 5000 });

  // Fix it again: valid.
  await sinkNode.dblclick();
  await page.locator('#node-input-columns-container .db-col-name').first().fill('machine');
  await closeTray(page);
  await page.waitForFunction(
    "document.querySelectorAll('g.red-ui-flow-node-group .red-ui-flow-node-error:not(.hide)').length === 0",
  );

  // The db-config form shows SQLite, PostgreSQL or MariaDB fields.
  await sinkNode.dblclick();
  await page.locator('#node-input-btn-database-edit').click();
  await page.locator('#node-config-input-kind').waitFor();
  assert.equal(await page.locator('#node-config-input-filename').isVisible(), true);
  assert.equal(await page.locator('#node-config-input-host').isVisible(), false);
  await page.locator('#node-config-input-kind').selectOption('postgres');
  assert.equal(await page.locator('#node-config-input-host').isVisible(), true);
  assert.equal(await page.locator('#node-config-input-password').getAttribute('type'), 'password');
  assert.equal(await page.locator('#node-config-input-ssl').inputValue(), 'default');
  assert.equal(await page.locator('#node-config-input-filename').isVisible(), false);
  assert.equal(await page.locator('#node-config-input-schema').isVisible(), true);
  await screenshot(page, 'db-config-editor');
  // MariaDB / MySQL: the server fields, without PostgreSQL's schema and pool size.
  await page.locator('#node-config-input-kind').selectOption('mariadb');
  assert.equal(await page.locator('#node-config-input-host').isVisible(), true);
  assert.equal(await page.locator('#node-config-input-password').isVisible(), true);
  assert.equal(await page.locator('#node-config-input-schema').isVisible(), false);
  assert.equal(await page.locator('#node-config-input-poolSize').isVisible(), false);
  assert.equal(await page.locator('#node-config-input-port').getAttribute('placeholder'), '3306');
  await screenshot(page, 'db-config-editor-mariadb');
  assert.deepEqual(pageErrors, []);
});
