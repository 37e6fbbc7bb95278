/**
 * A real Node-RED (own temporary user directory, machine-usage example deployed unless told
 * otherwise) with its editor open in chromium, for the editor tests of the nodes. Registers an
 * `after` hook that closes the browser, stops Node-RED and removes the user directory.
 */
import { after } from 'node:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { launchChromium, screenshot } from '../browser/chromium';
import { watchEditorErrors } from '../browser/page-errors';
import { startNodeRed, type NodeRedProcess } from '../e2e/node-red-process';

/** The machine-usage example alone: no simulator, no audit trail. */
export const MACHINE_USAGE_EXAMPLE = ['--examples', 'machine-usage', '--no-simulator', '--no-audit-trail'] as const;

export interface OpenEditor {
  readonly page: Page;
  /**
   * Script errors of the page so far, with their stacks (a test ends asserting there are none); one
   * known error of Node-RED 5's own editor code is left out (test/browser/page-errors.ts).
   */
  readonly pageErrors: string[];
}

/** Call at module level; `open()` inside the test starts Node-RED (once) and loads the editor. */
export function nodeRedEditor(
  name: string,
  args: readonly string[] = MACHINE_USAGE_EXAMPLE,
): { open(locale?: string): Promise<OpenEditor> } {
  const userDir = mkdtempSync(join(tmpdir(), `deltaflow-${name}-`));
  let nodeRed: NodeRedProcess | null = null;
  let browser: Browser | null = null;
  after(async () => {
    await browser?.close();
    await nodeRed?.stop();
    rmSync(userDir, { recursive: true, force: true });
  });
  return {
    /** Loads the editor in a new browser window with the browser language `locale`; the first call starts Node-RED. */
    async open(locale = 'en-US') {
      nodeRed ??= await startNodeRed(userDir, args);
      browser ??= await launchChromium();
      const page = await (await browser.newContext({ viewport: { width: 1500, height: 950 }, locale })).newPage();
      const pageErrors: string[] = [];
      watchEditorErrors(page, pageErrors);
      await page.goto(`${nodeRed.base}/`);
      return { page, pageErrors };
    },
  };
}

/**
 * Clicks a node edit tray's Done (or Cancel) and waits until the tray is gone: while it slides
 * out its fields are still in the page, and a tray opened meanwhile would be filled in through them.
 */
export async function closeTray(
  page: Page,
  button: '#node-dialog-ok' | '#node-dialog-cancel' = '#node-dialog-ok',
): Promise<void> {
  await page.locator(button).click();
  await page.locator(button).waitFor({ state: 'detached' });
}

/**
 * Imports an example as a user does (menu → Import → Examples → @deltaflow/node-red → the example
 * → Import) and shows its tab. The examples share their config nodes by id: when some already
 * exist, Node-RED asks, and "Import copy" (what the examples' info texts advise) imports the flow
 * with new ids while using the existing config nodes.
 */
export async function importExample(editor: Page, example: string, tab: string): Promise<void> {
  await editor.locator('#red-ui-header-button-sidemenu').click();
  await editor.locator('#menu-item-import').click();
  // The dialog builds every library's tree (each tab's content, hidden until its tab is chosen), so the
  // package's label exists in the Examples tab before that tab shows: look in that tab only, and click the
  // tab until its content shows (a click while the dialog is being built can be lost: the Clipboard tab stays).
  const examplesTab = editor.locator('#red-ui-clipboard-dialog-import-tabs a', { hasText: 'Examples' });
  const examples = editor.locator('#red-ui-clipboard-dialog-import-tab-examples');
  for (let attempt = 0; attempt < 20 && !(await examples.isVisible()); attempt++) {
    await examplesTab.click();
    if (!(await examples.isVisible())) await editor.waitForTimeout(250);
  }
  const pkg = examples.locator('.red-ui-treeList-label', { hasText: '@deltaflow/node-red' });
  const entry = examples.locator('.red-ui-treeList-label', { hasText: new RegExp(`^${example}$`) });
  try {
    await pkg.waitFor();
  } catch (err) {
    await screenshot(editor, `import-${example}-no-package`).catch(() => undefined);
    const shown = await editor.evaluate(`(() => ({
      tabs: [...document.querySelectorAll('#red-ui-clipboard-dialog-import-tabs-content > div')].map((d) => d.id + (d.offsetParent ? ' (shown)' : ' (hidden)')),
      labels: [...document.querySelectorAll('#red-ui-clipboard-dialog-import-tabs-content .red-ui-treeList-label')].map((l) => l.textContent.trim() + (l.offsetParent ? '' : ' (hidden)')),
    }))()`);
    throw new Error(`importing ${example}: the package is not shown in Import → Examples: ${JSON.stringify(shown)}`, {
      cause: err,
    });
  }
  if (!(await entry.isVisible())) await pkg.click(); // the package folder remembers being open
  await entry.click();
  await editor.locator('#red-ui-clipboard-dialog-ok').click();
  const tabElement = editor
    .locator('.red-ui-tab', { hasText: new RegExp(`^\\s*${tab.replace(/[()]/g, '\\$&')}\\s*$`) })
    .first();
  const conflict = editor.locator('.red-ui-notification', { hasText: 'already exist' });
  await tabElement.or(conflict).first().waitFor();
  if (await conflict.isVisible()) await conflict.locator('button', { hasText: 'Import copy' }).click();
  await tabElement.waitFor();
  // A click while the import dialog is still closing can be lost: click until the tab is shown.
  for (let attempt = 0; attempt < 20; attempt++) {
    await tabElement.click();
    if (((await tabElement.getAttribute('class')) ?? '').split(/\s+/).includes('active')) return;
    await editor.waitForTimeout(250);
  }
  throw new Error(`the imported tab ${tab} did not become active`);
}

/**
 * Clicks Deploy, waits for Node-RED's confirmation and then until the deployed flows have started.
 * NB: Node-RED (4.1 and 5) answers the deploy request, and the editor says "Successfully deployed",
 * before it has started the new flows: it starts them afterwards and then sends the editor the
 * `notification/runtime-deploy` event with the new revision. Until then an `http in` node's page
 * is not served yet ("Cannot GET /drill-dashboard" on a loaded machine, in the Node 22 job): so this
 * waits for that event with the revision the editor got back (RED.nodes.version()).
 */
export async function deploy(editor: Page): Promise<void> {
  // (page scripts as text: the test's own functions are transpiled with helpers the page lacks)
  await editor.evaluate(`(() => {
    if (window.__deltaflowStarted) return;
    window.__deltaflowStarted = [];
    RED.comms.subscribe('notification/runtime-deploy', (topic, msg) => window.__deltaflowStarted.push(msg.revision));
  })()`);
  await editor.locator('#red-ui-header-button-deploy').click();
  await editor
    .locator('.red-ui-notification', { hasText: /deployed/i })
    .first()
    .waitFor();
  await editor.waitForFunction(`window.__deltaflowStarted.includes(RED.nodes.version())`);
}

/**
 * Waits until the editor shows no notification (those that close by themselves do so after 5 s, or
 * the time they were given). They slide over the top of the workspace and take the clicks that land
 * on them (a click closes one): a node there is double-clicked only once none is left, as one
 * sliding over it between the two clicks leaves Node-RED a single click on the node.
 */
export async function waitForNoNotification(editor: Page): Promise<void> {
  await editor.waitForFunction(`$('#red-ui-notifications .red-ui-notification:visible').length === 0`);
}

/** Nodes on the shown tab that carry the red triangle of an invalid configuration. */
export function invalidNodes(editor: Page): Promise<number> {
  return editor
    .locator('#red-ui-workspace-chart g.red-ui-flow-node-group:has(.red-ui-flow-node-error:not(.hide))')
    .count();
}

/** Clicks the button of the inject node labelled `label` on the current editor tab. */
export async function clickInject(editor: Page, label: string): Promise<void> {
  const node = editor.locator('g.red-ui-flow-node-group', { has: editor.locator('text', { hasText: label }) });
  await node.locator('.red-ui-flow-node-button').click();
}

/** What the editor shows of a node: its tab's label, type, name and status. */
export interface ShownNode {
  readonly id: string;
  readonly tab: string;
  readonly type: string;
  readonly name: string;
  readonly status: { fill?: string; shape?: string; text?: string } | null;
}

/** Every flow node of the editor with the status it shows (config nodes have none). */
export function shownNodes(editor: Page): Promise<ShownNode[]> {
  // (page scripts as text: the test's own functions are transpiled with helpers the page lacks)
  return editor.evaluate(`(() => {
    const out = [];
    RED.nodes.eachNode((n) => {
      const tab = RED.nodes.workspace(n.z);
      out.push({ id: n.id, tab: tab ? tab.label : '', type: n.type, name: n.name || '',
        status: n.status && (n.status.text || n.status.fill) ? { fill: n.status.fill, shape: n.status.shape, text: n.status.text } : null });
    });
    return out;
  })()`);
}

/** The config nodes of a type in the editor (to see that imports reused the shared ones). */
export function configNodes(editor: Page, type: string): Promise<{ id: string; name: string }[]> {
  return editor.evaluate(`(() => {
    const out = [];
    RED.nodes.eachConfig((n) => { if (n.type === ${JSON.stringify(type)}) out.push({ id: n.id, name: n.name || '' }); });
    return out;
  })()`);
}
