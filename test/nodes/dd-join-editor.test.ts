/**
 * The dd-join editor in a real browser against a real Node-RED with the erp-bookings example
 * deployed: the join is in the palette and valid; its Left input lists the nodes wired into it by
 * name, the form shows the others as the right input and follows the choice; unwiring the chosen
 * left input marks the node invalid (red triangle) and the form names the unwired choice; wiring
 * it back and choosing it makes the node valid again; Done saves the choice. A copy of the join with
 * its inputs, pasted, is valid and its left input is the copy of the left input node (Node-RED gives
 * pasted and imported copies new ids). No script errors.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { screenshot, skipWithoutChromium } from '../browser/chromium';
import { closeTray, nodeRedEditor } from '../support/node-red-editor';

const editor = nodeRedEditor('dd-join-editor', ['--examples', 'erp-bookings', '--no-simulator', '--no-audit-trail']);

// Ids from examples/erp-bookings.json.
const JOIN = '7a3c51d2e08b4f61';
const STEPS = '69191e6265506f19';
const RUNS = 'f19b0e7d4a2c6358';

test('dd-join editor: left input chosen among the wired nodes, right input shown, unwired choice invalid', async (t) => {
  if (skipWithoutChromium) return t.skip(skipWithoutChromium);
  const { page, pageErrors } = await editor.open();
  const palette = page.locator('#red-ui-palette-container-dataflow .red-ui-palette-label');
  await palette.filter({ hasText: /^join$/ }).waitFor({ timeout: 30_000 });
  const join = page.locator(`g.red-ui-flow-node-group[id="${JOIN}"]`);
  await join.waitFor();
  const joinError = join.locator('.red-ui-flow-node-error:not(.hide)');
  assert.equal(await joinError.count(), 0, 'the example join is valid');

  await join.dblclick();
  const left = page.locator('#dd-join-left');
  await left.waitFor();
  assert.equal(await left.inputValue(), STEPS);
  const options = await left.locator('option').allTextContents();
  assert.deepEqual(options.sort(), ['finished steps', 'machine runs']);
  assert.equal((await page.locator('#dd-join-right').textContent())?.trim(), 'machine runs');
  await left.selectOption(RUNS);
  assert.equal((await page.locator('#dd-join-right').textContent())?.trim(), 'finished steps');
  await closeTray(page, '#node-dialog-cancel');
  assert.equal(await page.evaluate(`RED.nodes.node('${JOIN}').left`), STEPS, 'cancel keeps the left input');

  // Unwire the left input: the node is invalid and says why.
  await page.evaluate(`(() => {
    const link = RED.nodes.filterLinks({ source: RED.nodes.node('${STEPS}'), target: RED.nodes.node('${JOIN}') })[0];
    RED.nodes.removeLink(link);
    RED.editor.validateNode(RED.nodes.node('${JOIN}'));
    RED.view.redraw();
  })()`);
  await joinError.waitFor({ timeout: 5000 });
  await join.dblclick();
  await left.waitFor();
  assert.equal(await left.inputValue(), STEPS);
  assert.match((await left.locator('option:checked').textContent()) ?? '', /no longer wired in/);
  await screenshot(page, 'dd-join-editor-unwired');
  await closeTray(page, '#node-dialog-cancel');

  // Wire it back: valid again.
  await page.evaluate(`(() => {
    RED.nodes.addLink({ source: RED.nodes.node('${STEPS}'), sourcePort: 0, target: RED.nodes.node('${JOIN}') });
    RED.editor.validateNode(RED.nodes.node('${JOIN}'));
    RED.view.redraw();
  })()`);
  await joinError.waitFor({ state: 'detached', timeout: 5000 }).catch(async () => {
    await page.waitForFunction(
      `document.querySelectorAll('g.red-ui-flow-node-group[id="${JOIN}"] .red-ui-flow-node-error:not(.hide)').length === 0`,
    );
  });

  // Done saves the choice (through oneditsave: the select is not a #node-input- field).
  await join.dblclick();
  await left.waitFor();
  await left.selectOption(RUNS);
  await closeTray(page);
  assert.equal(await page.evaluate(`RED.nodes.node('${JOIN}').left`), RUNS, 'Done saves the left input');

  // Copy the join and both inputs and paste them as Node-RED's paste does (new ids): the copy's left input is
  // the copy of the chosen node, and the copy is valid. Fails when the left input keeps the original's id.
  const pasted = JSON.parse(
    await page.evaluate(`(() => {
      const ids = ['${JOIN}', '${STEPS}', '${RUNS}'];
      const clip = RED.nodes.createExportableNodeSet(ids.map((id) => RED.nodes.node(id)));
      const result = RED.view.importNodes(clip, { generateIds: true, addFlow: false, touchImport: true });
      RED.view.redraw();
      const nodes = RED.nodes.filterNodes({ z: RED.workspaces.active() }).filter((n) => !ids.includes(n.id));
      const copy = nodes.find((n) => n.type === 'dd-join');
      const runs = nodes.find((n) => n.type === 'dd-scan' && n.name === 'machine runs');
      return JSON.stringify({ left: copy && copy.left, runs: runs && runs.id, valid: copy && copy.valid,
        errors: copy && copy.validationErrors });
    })()`),
  ) as { left?: string; runs?: string; valid?: boolean; errors?: string[] };
  assert.ok(pasted.runs && pasted.runs !== RUNS, 'the inputs were pasted as copies');
  assert.equal(pasted.left, pasted.runs, 'the pasted join names the pasted left input');
  assert.equal(pasted.valid, true, `the pasted join is valid: ${JSON.stringify(pasted.errors)}`);
  assert.deepEqual(pageErrors, []);
});
