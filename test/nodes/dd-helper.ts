/**
 * node-red-node-test-helper, typed for the dd-* node tests, plus readers for what nodes reported
 * (errors and statuses, including those set in a node's constructor).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import type { NodeAPI } from '../../src/nodes/red';

const require = createRequire(__filename);

export interface FlowNode {
  id: string;
  type: string;
  [key: string]: unknown;
}

export interface TestNode {
  id: string;
  type: string;
  receive(msg: Record<string, unknown>): void;
  on(event: 'input', cb: (msg: Record<string, unknown>) => void): void;
}

interface Helper {
  init(runtimePath: string, settings?: Record<string, unknown>): void;
  load(nodes: ((RED: NodeAPI) => void)[], flow: FlowNode[], credentials?: Record<string, unknown>): Promise<void>;
  unload(): Promise<void>;
  getNode(id: string): TestNode;
  startServer(): Promise<void>;
  stopServer(): Promise<void>;
}

export const helper: Helper = require('node-red-node-test-helper');
helper.init(require.resolve('node-red'));

interface SpyCall {
  thisValue: { id: string };
  args: unknown[];
}
interface Spy {
  getCalls(): SpyCall[];
}

/** Node.prototype, whose methods the helper has replaced by spies during `load`. */
function nodePrototype(): Record<string, Spy> {
  return require('@node-red/runtime/lib/nodes/Node').prototype as Record<string, Spy>;
}

function callsOf(method: string, id: string): unknown[][] {
  const spy = nodePrototype()[method];
  if (!spy || typeof spy.getCalls !== 'function')
    throw new Error(`Node.prototype.${method} is not spied (call helper.load first)`);
  return spy
    .getCalls()
    .filter((c) => c.thisValue?.id === id)
    .map((c) => c.args);
}

/** The texts of every `node.error` call of node `id` so far. */
export function errorsOf(id: string): string[] {
  return callsOf('error', id).map(([e]) => (e instanceof Error ? e.message : String(e)));
}

/** The texts of every `node.warn` call of node `id` so far. */
export function warningsOf(id: string): string[] {
  return callsOf('warn', id).map(([w]) => String(w));
}

/** The texts of every `node.log` call (info level) of node `id` so far. */
export function logsOf(id: string): string[] {
  return callsOf('log', id).map(([l]) => String(l));
}

/** Every status node `id` has shown so far. */
export function statusesOf(id: string): { fill?: string; shape?: string; text?: string }[] {
  return callsOf('status', id).map(([s]) => s as { fill?: string; shape?: string; text?: string });
}

/** Resolves once `check` returns true (polled), or rejects after `ms`. */
export async function eventually(check: () => boolean | Promise<boolean>, what: string, ms = 5000): Promise<void> {
  const until = Date.now() + ms;
  for (;;) {
    if (await check()) return;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A temporary folder for one test file's event logs and table files; `files()` names a fresh pair. */
export function testFolder(prefix: string): { files(): { logFile: string; dbFile: string }; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  let run = 0;
  return {
    files: () => {
      run++;
      return { logFile: join(dir, `events-${run}.sqlite`), dbFile: join(dir, `tables-${run}.sqlite`) };
    },
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** Rows of a query, or [] while the file or table does not exist yet. */
export function table(dbFile: string, sql: string): Record<string, unknown>[] {
  let db: Database.Database | null = null;
  try {
    db = new Database(dbFile, { readonly: true, fileMustExist: true });
    return db.prepare(sql).all() as Record<string, unknown>[];
  } catch {
    return [];
  } finally {
    db?.close();
  }
}
