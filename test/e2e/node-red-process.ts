/**
 * Runs the demo script (`scripts/start.mjs`, what `npm start` runs) as a child process: a real
 * embedded Node-RED with a temporary user directory, this package linked into it and the chosen
 * examples deployed. Used by the end-to-end and browser tests.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';

const root = join(__dirname, '..', '..');

export interface NodeRedProcess {
  readonly base: string;
  readonly child: ChildProcess;
  /** Everything the process printed so far. */
  output(): string;
  /** Lines Node-RED logged at level error. */
  errors(): string[];
  /** Stops it: SIGTERM (clean stop) or SIGKILL (a crash). */
  stop(signal?: 'SIGTERM' | 'SIGKILL'): Promise<void>;
}

export async function startNodeRed(
  userDir: string,
  args: readonly string[],
  env: NodeJS.ProcessEnv = {},
): Promise<NodeRedProcess> {
  const child = spawn(
    process.execPath,
    [join(root, 'scripts', 'start.mjs'), '--user-dir', userDir, '--port', '0', ...args],
    {
      cwd: root,
      env: { ...process.env, NODE_RED_LOG_LEVEL: 'warn', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const base = await new Promise<string>((resolve, reject) => {
    const check = (): void => {
      const m = /Node-RED editor:\s+(http:\/\/127\.0\.0\.1:\d+)\//.exec(out);
      if (m) resolve(m[1]!);
    };
    child.stdout!.on('data', check);
    child.once('exit', (code) => reject(new Error(`start.mjs exited with ${code} before it was ready:\n${out}`)));
  });
  return {
    base,
    child,
    output: () => out,
    errors: () => out.split('\n').filter((l) => l.includes('[error]')),
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      await exited;
    },
  };
}

/** Polls `read` until `accept` holds for its result; returns that result, or throws with the last one. */
export async function waitFor<T>(
  what: string,
  read: () => Promise<T> | T,
  accept: (v: T) => boolean,
  ms = 20_000,
): Promise<T> {
  const until = Date.now() + ms;
  let last: T | undefined;
  let lastError: unknown;
  for (;;) {
    try {
      last = await read();
      if (accept(last)) return last;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > until) {
      throw new Error(
        `timed out waiting for ${what}; last: ${JSON.stringify(last)}${lastError ? `; last error: ${String(lastError)}` : ''}`,
      );
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}
