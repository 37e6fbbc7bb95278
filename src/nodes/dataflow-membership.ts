/**
 * How Node-RED nodes take part in a dataflow: every actyx-subscribe (with a dataflow set), dd-*
 * and db-sink node looks up its `dd-dataflow` config node and joins it in its constructor, and
 * leaves it in its close handler. The config node derives `inputs` from the deployed wires,
 * drives node status, `node.error` (Catch nodes) and the after-commit messages through the `Node`.
 */
import { errorText } from '../core/message-text';
import type { DataflowMember } from '../dataflow/types';
import type { Node, NodeAPI } from './red';

/** A member as a node describes itself; the config node adds the inputs from the wires. */
export type MemberDescription = DataflowMember extends infer M
  ? M extends DataflowMember
    ? Omit<M, 'inputs'>
    : never
  : never;

export interface DataflowConfigNode extends Node {
  /** Adds the node to the dataflow; the graph is (re)built on the next `flows:started`. */
  join(node: Node, member: MemberDescription): void;
  /** Removes the node; resolves once the dataflow no longer uses it (a commit may be in flight). */
  leave(node: Node): Promise<void>;
  /**
   * A source that could not join (its query is invalid, its event log cannot be opened): the other
   * members then say that the source failed, not that there is none. Undone by `leave`.
   */
  sourceFailed?(node: Node, label: string): void;
}

/** The dataflow config node named by `id`, or null (the caller reports a clear configuration error). */
export function findDataflow(RED: NodeAPI, id: unknown): DataflowConfigNode | null {
  if (typeof id !== 'string' || id === '') return null;
  const node = RED.nodes.getNode(id) as Partial<DataflowConfigNode> | null;
  return node && typeof node.join === 'function' && typeof node.leave === 'function'
    ? (node as DataflowConfigNode)
    : null;
}

/** What a member with no dataflow selected reports. */
export const NO_DATAFLOW_SELECTED = 'no dataflow selected: choose a dd-dataflow config node in the node settings';

/**
 * How a member reports a configuration problem: `node.error` (log, Catch nodes; Node-RED prefixes the
 * node's type and name, so the text does not repeat them) and a red ring with a short `status` text.
 */
export function problemReporter(node: Node): (status: string, message: string) => void {
  return (status, message) => {
    node.error(message);
    node.status({ fill: 'red', shape: 'ring', text: status });
  };
}

/** Leaves the dataflow in a close handler; a failure is logged as a warning and closing goes on. */
export function leaveDataflow(dataflow: DataflowConfigNode, node: Node): Promise<void> {
  return dataflow.leave(node).catch((err: unknown) => {
    node.warn(`leaving the dataflow failed: ${errorText(err)}`);
  });
}
