/**
 * actyx-config: where events come from — the embedded SQLite log (default, a file in the Node-RED
 * user directory) or an Actyx v2 node (host, port, app manifest; the manifest signature is a
 * credential). The connection is shared by all nodes using this config node (reference-counted
 * `acquire`/`release`, see actyx-connection.ts).
 */
import { errorText } from '../core/message-text';
import { homedir } from 'node:os';
import { isAbsolute, join } from 'node:path';
import { ActyxClient } from '../sources/actyx-client';
import { openSharedEmbeddedLog } from '../sources/shared-embedded-log';
import type { EventSource } from '../sources/types';
import type { ActyxConfigNode } from './actyx-connection';
import type { NodeAPI, NodeDef } from './red';

/** The embedded log file when none is configured. */
export const DEFAULT_LOG_FILE = 'deltaflow-events.sqlite';

interface Opened {
  readonly source: EventSource;
  close(): Promise<void>;
}

/** A source whose `close()` ends one use instead of closing the shared connection. */
function lease(source: EventSource, release: () => Promise<void>): EventSource {
  const batches = source.subscribeBatches?.bind(source);
  const queryBatches = source.queryBatches?.bind(source);
  return {
    subscribe: (q, lower, o) => source.subscribe(q, lower, o),
    query: (q, lower, upper, o) => source.query(q, lower, upper, o),
    presentOffsets: () => source.presentOffsets(),
    publish: (events) => source.publish(events),
    close: release,
    ...(source.matchContext ? { matchContext: source.matchContext.bind(source) } : {}),
    ...(batches ? { subscribeBatches: batches } : {}),
    ...(queryBatches ? { queryBatches } : {}),
  };
}

export default function (RED: NodeAPI): void {
  function ActyxConfig(this: ActyxConfigNode, config: NodeDef): void {
    RED.nodes.createNode(this, config);
    const node = this;
    const kind = config.kind === 'actyx' ? 'actyx' : 'embedded';
    const userDir = RED.settings.userDir ?? join(homedir(), '.node-red');
    const fileSetting =
      typeof config.file === 'string' && config.file.trim() !== '' ? config.file.trim() : DEFAULT_LOG_FILE;
    const file = isAbsolute(fileSetting) ? fileSetting : join(userDir, fileSetting);
    const host = typeof config.host === 'string' && config.host.trim() !== '' ? config.host.trim() : 'localhost';
    const port = config.port === undefined || config.port === '' ? 4454 : Number(config.port);
    const description = kind === 'embedded' ? `embedded log ${file}` : `Actyx node http://${host}:${port}`;
    Object.defineProperty(node, 'description', { value: description });

    let opened: Opened | null = null;
    const leases: Array<{ source: EventSource; released: boolean }> = [];
    let idle: (() => void) | null = null;

    const open = (): Opened => {
      if (kind === 'embedded') {
        const appId = typeof config.appId === 'string' && config.appId.trim() !== '' ? config.appId.trim() : undefined;
        try {
          const handle = openSharedEmbeddedLog(file, appId ? { appId } : {});
          return { source: handle.log, close: () => handle.release() };
        } catch (err) {
          throw new Error(`cannot open the embedded event log ${file}: ${errorText(err)}`);
        }
      }
      const client = new ActyxClient({
        host,
        port,
        manifest: {
          appId: String(config.appId ?? ''),
          displayName: String(config.displayName ?? ''),
          version: String(config.version ?? ''),
          ...(node.credentials?.signature ? { signature: node.credentials.signature } : {}),
        },
      });
      return { source: client, close: () => client.close() };
    };

    const releaseOne = async (entry: { released: boolean }): Promise<void> => {
      if (entry.released) return;
      entry.released = true;
      if (leases.some((l) => !l.released)) return;
      leases.length = 0;
      const closing = opened;
      opened = null;
      try {
        await closing?.close();
      } catch (err) {
        node.warn(`closing the ${description} failed: ${errorText(err)}`);
      } finally {
        idle?.();
      }
    };

    node.acquire = (): EventSource => {
      if (!opened) {
        try {
          opened = open();
        } catch (err) {
          node.error(`${description}: ${errorText(err)}`);
          throw err instanceof Error ? err : new Error(String(err));
        }
      }
      const entry = { source: null as unknown as EventSource, released: false };
      entry.source = lease(opened.source, () => releaseOne(entry));
      leases.push(entry);
      return entry.source;
    };

    node.release = async (source?: EventSource): Promise<void> => {
      const entry = source ? leases.find((l) => l.source === source) : leases.find((l) => !l.released);
      if (entry) await releaseOne(entry);
    };

    node.on('close', (_removed: boolean, done: () => void) => {
      // Config nodes close in parallel with their users: wait until the last one released.
      if (!opened) return done();
      const timer = setTimeout(() => {
        node.warn(`${description}: users still active after 12 s; closing anyway`);
        const closing = opened;
        opened = null;
        Promise.resolve(closing?.close())
          .catch((err: unknown) => node.warn(`closing the ${description} failed: ${errorText(err)}`))
          .finally(done);
      }, 12_000);
      idle = () => {
        clearTimeout(timer);
        done();
      };
    });
  }

  RED.nodes.registerType('actyx-config', ActyxConfig as unknown as Parameters<NodeAPI['nodes']['registerType']>[1], {
    credentials: { signature: { type: 'password' } },
  });
}
