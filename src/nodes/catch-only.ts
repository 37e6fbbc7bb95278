/**
 * Errors for Catch nodes only: a repeated error whose log line a summary replaces (see
 * src/core/repeat-summary.ts) must still reach the Catch nodes, each one, without a log line per
 * occurrence. `node.error(message, msg)` logs whenever no Catch node handles it; the runtime's
 * flow offers the part that only delivers to Catch nodes.
 */
import type { Node, NodeMessage } from './red';

/** The runtime's flow of a node (Node-RED 1 to 5: `node._flow.handleError(node, text, msg)` → handled). */
interface WithFlow {
  readonly _flow?: { handleError?: (node: Node, text: string, msg: NodeMessage) => boolean };
}

/**
 * Delivers `message` with `msg` to the Catch nodes that cover `node`, without logging it; returns
 * whether one took it. Where the runtime does not offer that, it falls back to `node.error` (which
 * logs when no Catch node takes it).
 */
export function reportToCatchNodes(node: Node, message: string, msg: NodeMessage): boolean {
  const flow = (node as Node & WithFlow)._flow;
  if (typeof flow?.handleError !== 'function') {
    node.error(message, msg);
    return true;
  }
  return flow.handleError(node, message, msg);
}
