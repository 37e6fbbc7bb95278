/**
 * The actyx-subscribe, actyx-publish and actyx-config editors in a real browser (Debian's chromium
 * through playwright-core) against a real Node-RED with the machine-usage example deployed: the
 * nodes are in the palette, the subscribe form shows its query and hides the standalone start
 * option inside a dataflow, the config form shows the fields of the chosen kind and the signature
 * as a password. No script errors in the page.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { startNodeRed, type NodeRedProcess } from '../e2e/node-red-process';

const artifacts = join(__dirname, '..', '..', 'test-artifacts');
mkdirSync(artifacts, { recursive: true });
const userDir = mkdtempSync(join(tmpdir(), 'deltaflow-actyx-editor-'));
let nodeRed: NodeRedProcess | null = null;
let browser: Browser | null = null;

after(async () => {
  await browser?.close();
  await nodeRed?.stop();
  rmSync(userDir, { recursive: true, force: true });
});

test('actyx editors: palette, subscribe form, config form by kind, signature as password', async () => {
  nodeRed = await startNodeRed(userDir, ['--examples', 'machine-usage', '--no-simulator', '--no-audit-trail']);
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const page = await (await browser.newContext({ viewport: { width: 1500, height: 950 } })).newPage();
  const pageErrors: string[] = [];
  page.on('pageerror', (err) => pageErrors.push(err.message));
  await page.goto(`${nodeRed.base}/`);
  const palette = page.locator('#red-ui-palette-container-dataflow .red-ui-palette-label');
  await palette.filter({ hasText: /^subscribe$/ }).waitFor({ timeout: 30_000 });
  assert.equal(await palette.filter({ hasText: /^publish$/ }).count(), 1);

  const subscribeNode = page.locator('g.red-ui-flow-node-group[id="19116c1b0100a948"]'); // "machine events" in examples/machine-usage.json
  await subscribeNode.waitFor();
  assert.equal(await subscribeNode.locator('.red-ui-flow-node-error:not(.hide)').count(), 0, 'the example node is valid');
  await subscribeNode.dblclick();
  await page.locator('#node-input-query').waitFor();
  assert.equal(await page.locator('#node-input-query').inputValue(), "'machine'");
  assert.equal(await page.locator('#node-input-start').isVisible(), false, 'start option hidden inside a dataflow');
  await page.screenshot({ path: join(artifacts, 'actyx-subscribe-editor.png') });

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
  await page.screenshot({ path: join(artifacts, 'actyx-config-editor.png') });
  assert.deepEqual(pageErrors, []);
});
