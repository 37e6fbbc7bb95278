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
import { launchChromium } from '../browser/chromium';
import { startNodeRed, type NodeRedProcess } from '../e2e/node-red-process';

/** The machine-usage example alone: no simulator, no audit trail. */
export const MACHINE_USAGE_EXAMPLE = ['--examples', 'machine-usage', '--no-simulator', '--no-audit-trail'] as const;

export interface OpenEditor {
  readonly page: Page;
  /** Script errors of the page so far (a test ends asserting there are none). */
  readonly pageErrors: string[];
}

/** Call at module level; `open()` inside the test starts Node-RED and loads the editor. */
export function nodeRedEditor(
  name: string,
  args: readonly string[] = MACHINE_USAGE_EXAMPLE,
): { open(): Promise<OpenEditor> } {
  const userDir = mkdtempSync(join(tmpdir(), `deltaflow-${name}-`));
  let nodeRed: NodeRedProcess | null = null;
  let browser: Browser | null = null;
  after(async () => {
    await browser?.close();
    await nodeRed?.stop();
    rmSync(userDir, { recursive: true, force: true });
  });
  return {
    async open() {
      nodeRed = await startNodeRed(userDir, args);
      browser = await launchChromium();
      const page = await (await browser.newContext({ viewport: { width: 1500, height: 950 } })).newPage();
      const pageErrors: string[] = [];
      page.on('pageerror', (err) => pageErrors.push(err.message));
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
