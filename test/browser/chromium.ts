/**
 * Debian's chromium through playwright-core, with the flags these machines need (see
 * shared notes: no sandbox, no GPU, no QUIC, no background traffic). Every launch gets a fresh,
 * temporary profile from playwright. Screenshots go to `test-artifacts/` (gitignored).
 *
 * The browser is looked up once: `CHROMIUM_PATH` when set (also to point the lookup at a
 * path that does not exist, to try the tests without a browser), else `chromium` or
 * `chromium-browser` on the PATH, else /usr/bin/chromium. Without one, the browser tests skip
 * themselves with the reason and the install command (their first line:
 * `if (skipWithoutChromium) return t.skip(skipWithoutChromium);`), so `npm test` passes on a machine
 * without Chromium — except with `CI=true`, where they run and fail: CI installs Chromium (.ci/run)
 * and must not pass by skipping them.
 */
import { accessSync, constants, mkdirSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';

export const artifactsDir = join(__dirname, '..', '..', 'test-artifacts');

const INSTALL_HINT = 'install it with `apt-get install chromium` (Debian/Ubuntu), or set CHROMIUM_PATH';

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Where the browser is, and where it was looked for. */
function findChromium(): { path: string | null; lookedAt: string } {
  const override = process.env.CHROMIUM_PATH;
  if (override !== undefined && override !== '') {
    return { path: executable(override) ? override : null, lookedAt: `CHROMIUM_PATH=${override}` };
  }
  const dirs = (process.env.PATH ?? '').split(delimiter).filter(Boolean);
  for (const name of ['chromium', 'chromium-browser']) {
    for (const dir of dirs) if (executable(join(dir, name))) return { path: join(dir, name), lookedAt: '' };
  }
  if (executable('/usr/bin/chromium')) return { path: '/usr/bin/chromium', lookedAt: '' };
  return { path: null, lookedAt: 'chromium and chromium-browser on the PATH and /usr/bin/chromium' };
}

const found = findChromium();

/** `CI=true` (or 1): browser tests must run. */
const inCi = /^(true|1)$/i.test(process.env.CI ?? '');

/** False when the browser tests can run (or must, in CI); otherwise why they are skipped. */
export const skipWithoutChromium: string | false =
  found.path !== null || inCi ? false : `no Chromium (looked for ${found.lookedAt}): ${INSTALL_HINT}`;

export function launchChromium(): Promise<Browser> {
  if (found.path === null) {
    return Promise.reject(
      new Error(
        `no Chromium (looked for ${found.lookedAt}); the browser tests need it${inCi ? ' (CI=true: they are not skipped)' : ''}: ${INSTALL_HINT}`,
      ),
    );
  }
  return chromium.launch({
    executablePath: found.path,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/** Saves a full-page screenshot as test-artifacts/<name>.png. */
export async function screenshot(page: Page, name: string): Promise<void> {
  mkdirSync(artifactsDir, { recursive: true });
  await page.screenshot({ path: join(artifactsDir, `${name}.png`), fullPage: true });
}
