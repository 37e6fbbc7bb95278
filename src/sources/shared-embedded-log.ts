/**
 * One EmbeddedLog per file in this process, shared by everything that opens that file (several
 * actyx-config nodes, the old and the new config node during a redeploy): publishes then wake
 * every subscriber at once, and the file is closed when its last user released it.
 */
import { resolve } from 'node:path';
import { EmbeddedLog, type EmbeddedLogOptions } from './embedded-log';

interface Entry {
  readonly log: EmbeddedLog;
  users: number;
}

const open = new Map<string, Entry>();

/** A use of a shared log; `release()` once when done (idempotent). */
export interface SharedLogHandle {
  readonly log: EmbeddedLog;
  release(): Promise<void>;
}

/** Opens `file` (or joins its open instance; the first opener's options apply). Throws if it cannot be opened. */
export function openSharedEmbeddedLog(file: string, options: EmbeddedLogOptions = {}): SharedLogHandle {
  const key = file === ':memory:' ? `:memory:${Math.random()}` : resolve(file);
  let entry = open.get(key);
  if (!entry) {
    entry = { log: new EmbeddedLog(file, options), users: 0 };
    open.set(key, entry);
  }
  entry.users++;
  const current = entry;
  let released = false;
  return {
    log: current.log,
    async release() {
      if (released) return;
      released = true;
      current.users--;
      if (current.users === 0) {
        open.delete(key);
        await current.log.close();
      }
    },
  };
}
