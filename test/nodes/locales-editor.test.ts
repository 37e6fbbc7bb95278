/**
 * The editor in the browser's language, as core nodes do it (nodes/locales/<lang>/), in a real
 * Node-RED with the machine-usage example deployed: with the browser language set to German the
 * palette, the edit forms, the port labels and the help are German; otherwise English. In both,
 * actyx-subscribe hides "Start at" while a dataflow is set (a dataflow ignores it) and shows it
 * without one. No script errors.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Page } from 'playwright-core';
import { screenshot, skipWithoutChromium } from '../browser/chromium';
import { closeTray, nodeRedEditor } from '../support/node-red-editor';

const editor = nodeRedEditor('locales-editor');

// Ids from examples/machine-usage.json.
const MIN_BY = 'dc8f07edc95391a4';
const SUBSCRIBE = '19116c1b0100a948';
const DATAFLOW = '1085402d0f51906e';

const TEXTS = {
  'de-DE': {
    palette: ['Ereignisse lesen', 'Ereignisse schreiben', 'Datensätze filtern', 'Datensätze umformen', 'SQL-Tabelle'],
    dataflow: 'Datenfluss',
    minBy: 'Kleinster Wert',
    inputLabel: 'Datensätze, gruppiert oder nicht',
    help: 'Behält je Gruppe den einen Datensatz mit dem kleinsten Wert',
    start: 'Beginnen bei',
  },
  'en-US': {
    palette: ['events in', 'events out', 'filter records', 'map records', 'sql table'],
    dataflow: 'Dataflow',
    minBy: 'Smallest',
    inputLabel: 'records, grouped or not',
    help: 'Keeps, per group, the one record with the smallest value',
    start: 'Start at',
  },
};

async function check(page: Page, locale: keyof typeof TEXTS): Promise<void> {
  const texts = TEXTS[locale];
  const palette = page.locator('#red-ui-palette-container-dataflow .red-ui-palette-label');
  await palette.first().waitFor({ timeout: 30_000 });
  const labels = (await palette.allTextContents()).map((l) => l.replace(/\s+/g, ' ').replace(/ ?- ?/g, '-').trim());
  for (const label of texts.palette) assert.ok(labels.includes(label), `${locale}: "${label}" in ${labels.join(', ')}`);

  const minBy = page.locator(`g.red-ui-flow-node-group[id="${MIN_BY}"]`);
  await minBy.dblclick();
  await page.locator('#node-input-by-typed').waitFor({ state: 'attached' });
  const formLabels = (await page.locator('#dialog-form label').allTextContents()).map((l) => l.trim());
  assert.ok(formLabels.includes(texts.dataflow), `${locale}: ${formLabels.join(' | ')}`);
  assert.ok(formLabels.includes(texts.minBy), `${locale}: ${formLabels.join(' | ')}`);
  await screenshot(page, `dd-minby-editor-${locale}`);
  await closeTray(page, '#node-dialog-cancel');

  const inputLabel = await page.evaluate((id) => {
    const node = (
      globalThis as unknown as { RED: { nodes: { node(id: string): Record<string, unknown> } } }
    ).RED.nodes.node(id);
    return (node._def as { inputLabels: (this: unknown) => string }).inputLabels.call(node);
  }, MIN_BY);
  assert.equal(inputLabel, texts.inputLabel);

  await page.evaluate(() =>
    (globalThis as unknown as { RED: { sidebar: { help: { show(type: string): void } } } }).RED.sidebar.help.show(
      'dd-minby',
    ),
  );
  const help = page.locator('.red-ui-help');
  await help.filter({ hasText: texts.help }).first().waitFor({ timeout: 10_000 });

  // actyx-subscribe: "Start at" only without a dataflow.
  await page.locator(`g.red-ui-flow-node-group[id="${SUBSCRIBE}"]`).dblclick();
  await page.locator('#node-input-query').waitFor();
  const start = page.locator('#node-input-start');
  assert.equal(await start.isVisible(), false, 'hidden inside a dataflow');
  await page.evaluate("$('#node-input-dataflow').val('').trigger('change')");
  assert.equal(await start.isVisible(), true, 'shown without a dataflow');
  assert.equal((await page.locator('label[for="node-input-start"]').textContent())?.trim(), texts.start);
  await page.evaluate(`$('#node-input-dataflow').val('${DATAFLOW}').trigger('change')`);
  assert.equal(await start.isVisible(), false, 'hidden again with a dataflow');
  await closeTray(page, '#node-dialog-cancel');
}

test('the editor speaks German with a German browser, English otherwise; "Start at" only without a dataflow', async (t) => {
  if (skipWithoutChromium) return t.skip(skipWithoutChromium);
  for (const locale of ['de-DE', 'en-US'] as const) {
    const { page, pageErrors } = await editor.open(locale);
    await check(page, locale);
    assert.deepEqual(pageErrors, [], locale);
    await page.close();
  }
});
