/**
 * How other nodes get the event source of an `actyx-config` node: find the config node, `acquire()`
 * a source (the connection is shared by all users of that config node), and `release()` it in the
 * close handler. The connection is closed only after its last user released it, even though
 * Node-RED closes config nodes in parallel with the nodes that use them.
 */
import type { EventSource } from '../sources/types';
import type { Node, NodeAPI } from './red';

export interface ActyxConfigNode extends Node {
  /**
   * The shared event source, opened on first use. Each call counts one user. The returned object's
   * `close()` releases exactly this use (so a consumer that closes its source does the right thing).
   * Throws an Error with a clear message when the source cannot be opened (e.g. an unusable file path).
   */
  acquire(): EventSource;
  /** Ends one use: the given source from `acquire()`, or (without argument) the oldest one not yet released. */
  release(source?: EventSource): Promise<void>;
  /** Where events come from, for messages: `embedded log /path/file.sqlite` or `Actyx node http://host:4454`. */
  readonly description: string;
}

/** The actyx-config node named by `id`, or null (the caller reports a clear configuration error). */
export function findActyxConfig(RED: NodeAPI, id: unknown): ActyxConfigNode | null {
  if (typeof id !== 'string' || id === '') return null;
  const node = RED.nodes.getNode(id) as Partial<ActyxConfigNode> | null;
  return node && typeof node.acquire === 'function' && typeof node.release === 'function'
    ? (node as ActyxConfigNode)
    : null;
}

/** A use of the event source of an actyx-config node. */
export interface EventSourceLease {
  readonly source: EventSource;
  readonly config: ActyxConfigNode;
  /** Ends this use (idempotent); call it in the node's close handler and wait for it. */
  release(): Promise<void>;
}

/**
 * Acquires the event source of the actyx-config node `configId`. Throws an Error with a clear
 * message when none is selected or it cannot be opened.
 */
export function getEventSource(RED: NodeAPI, configId: unknown): EventSourceLease {
  const config = findActyxConfig(RED, configId);
  if (!config) throw new Error('no event source selected: choose an actyx-config node in the node settings');
  const source = config.acquire();
  return { source, config, release: () => config.release(source) };
}
