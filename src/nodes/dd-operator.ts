/**
 * What the dd-* operator nodes share: registering the node type, joining and leaving the
 * dataflow config node, deploy-time checks (dataflow selected, logic compiles, inputs come from
 * the dataflow) and turning the wired input stages into the collection or grouped stage an
 * operator needs. Each dd-*.ts file only says how its config becomes engine operators.
 */
import { errorText } from '../core/message-text';
import type { Collection, Grouped, Value } from '../engine/types';
import type { Stage } from '../dataflow/types';
import {
  findDataflow,
  leaveDataflow,
  NO_DATAFLOW_SELECTED,
  problemReporter,
  type DataflowConfigNode,
} from './dataflow-membership';
import type { Node, NodeAPI, NodeDef, NodeMessage } from './red';
import { UserCodeError } from './user-function';

/** The part of an operator node that depends on its type. */
export interface OperatorLogic {
  /** Everything that defines the computation (texts, languages, paths) — changing it rebuilds downstream tables. */
  readonly definition: Value;
  /**
   * Builds the engine operators on the wired input stages (`inputIds[i]`: the node `inputs[i]` comes
   * from); throws an Error with a clear message.
   */
  build(inputs: readonly Stage[], inputIds: readonly string[]): Stage;
}

/** Turns a node's config into its logic; throws `UserCodeError` for configuration problems. */
export type OperatorCompiler = (node: Node, config: NodeDef, label: string) => OperatorLogic;

/**
 * The property the dd-dataflow config node sets on every message a dataflow member sends after a
 * commit. Such messages reaching a dd node along a wire are expected (the engine already carried
 * the data) and ignored; any other message means a non-dataflow node is wired into it.
 */
export const DATAFLOW_MESSAGE_MARKER = '_deltaflow';

/** Node types that are members of a dataflow (a wire between two of them is a dataflow edge). */
export function isDataflowMemberType(type: string | undefined): boolean {
  return type !== undefined && (type.startsWith('dd-') || type === 'db-sink' || type === 'actyx-subscribe');
}

/** The name used in messages: the node's name, or its type and id. */
export function memberLabel(config: NodeDef): string {
  return typeof config.name === 'string' && config.name.trim() !== ''
    ? config.name.trim()
    : `${config.type} ${config.id}`;
}

/** Registers a dd-* operator node type. */
export function registerOperatorType(RED: NodeAPI, type: string, compile: OperatorCompiler): void {
  function OperatorNode(this: Node, config: NodeDef): void {
    RED.nodes.createNode(this, config);
    const node = this;
    const label = memberLabel(config);
    const fail = problemReporter(node);

    let logic: OperatorLogic;
    try {
      logic = compile(node, config, label);
    } catch (err) {
      const message = errorText(err);
      fail(err instanceof UserCodeError ? 'invalid expression' : 'invalid config', message);
      // Still join: the dataflow then reports this node as broken instead of running without it.
      logic = {
        definition: null,
        build: () => {
          throw new Error(`${label}: ${message}`);
        },
      };
    }

    const deployed = deployedTypes(RED);
    const problem = wrongSources(config, deployed);
    if (problem) {
      fail('wrong input wired', problem);
      // The dataflow runs without the bad wire and would report this node as fine: keep the
      // problem visible until the wiring is fixed (the dataflow's own errors still show).
      const show = node.status.bind(node);
      node.status = (status) =>
        show(
          'fill' in status && status.fill === 'red'
            ? status
            : { fill: 'red', shape: 'ring', text: 'wrong input wired' },
        );
    }

    const dataflow: DataflowConfigNode | null = findDataflow(RED, config.dataflow);
    if (!dataflow) {
      fail('no dataflow', NO_DATAFLOW_SELECTED);
    } else {
      dataflow.join(node, {
        role: 'operator',
        id: config.id,
        type,
        label,
        definition: logic.definition,
        tap: hasTap(config, deployed),
        build: (inputs, inputIds) => logic.build(inputs, inputIds),
      });
    }

    node.on('input', (msg: NodeMessage, _send, done) => {
      if (msg[DATAFLOW_MESSAGE_MARKER] !== undefined) {
        done(); // changes an upstream dataflow node sent after a commit; the engine already has them
        return;
      }
      node.status({ fill: 'red', shape: 'ring', text: 'wrong input wired' });
      done(
        new Error(
          'received a message that did not come from the dataflow. ' +
            'dd nodes take their input only from actyx-subscribe and other dd nodes of the same dataflow; ' +
            'use actyx-publish to put data into the event log instead.',
        ),
      );
    });

    node.on('close', (_removed: boolean, done: () => void) => {
      if (!dataflow) return done();
      void leaveDataflow(dataflow, node).then(done);
    });
  }
  RED.nodes.registerType(type, OperatorNode);
}

interface DeployedNode {
  readonly type: string;
  readonly dataflow: unknown;
  readonly label: string;
  readonly wires: readonly (readonly string[])[];
}

/** Type, dataflow and wires of every deployed node, by id. */
function deployedTypes(RED: NodeAPI): ReadonlyMap<string, DeployedNode> {
  const map = new Map<string, DeployedNode>();
  RED.nodes.eachNode((def) => {
    map.set(def.id, { type: def.type, dataflow: def.dataflow, label: memberLabel(def), wires: def.wires ?? [] });
  });
  return map;
}

/** A message naming the nodes wired into this one that cannot feed a dataflow, or null. */
function wrongSources(config: NodeDef, deployed: ReadonlyMap<string, DeployedNode>): string | null {
  const wrong: string[] = [];
  for (const [, other] of deployed) {
    if (!other.wires.some((port) => port.includes(config.id))) continue;
    if (other.type === 'db-sink' || !isDataflowMemberType(other.type)) {
      wrong.push(`${other.label} (${other.type}) is not part of a dataflow`);
    } else if (other.dataflow === undefined || other.dataflow === '') {
      wrong.push(`${other.label} (${other.type}) is in no dataflow (its Dataflow field is empty)`);
    } else if (other.dataflow !== config.dataflow) {
      wrong.push(`${other.label} (${other.type}) belongs to a different dataflow`);
    }
  }
  return wrong.length === 0
    ? null
    : `input wired from ${wrong.join('; ')}. dd nodes take their input only from actyx-subscribe and dd nodes of the same dataflow.`;
}

/** True when the node has a wire to a node that is not a dataflow member (a debug node, a function, …). */
function hasTap(config: NodeDef, deployed: ReadonlyMap<string, DeployedNode>): boolean {
  return (config.wires ?? []).some((port) => port.some((id) => !isDataflowMemberType(deployed.get(id)?.type)));
}

/** The wired inputs as one ungrouped collection (several are concatenated). */
export function collectionInput(inputs: readonly Stage[], label: string, id: string): Collection {
  if (inputs.length === 0) throw new Error(`${label}: no input wired`);
  const collections: Collection[] = [];
  for (const stage of inputs) {
    if (stage.kind !== 'collection') {
      throw new Error(
        `${label}: its input is grouped (from dd-groupby); this node works on ungrouped records. ` +
          'Put dd-maxby, dd-minby, dd-reduce, dd-aggregate or dd-distinct after dd-groupby, or wire this node before it.',
      );
    }
    collections.push(stage.collection);
  }
  const [first, ...rest] = collections;
  return rest.length === 0 ? first! : first!.concat(rest, { name: id });
}

/**
 * The wired input as a grouped stage. Ungrouped input (not from dd-groupby) is treated as one
 * group with key null, so "max of everything" works without a dd-groupby.
 */
export function groupedInput(inputs: readonly Stage[], label: string, id: string): Grouped {
  if (inputs.length === 0) throw new Error(`${label}: no input wired`);
  const grouped = inputs.filter((s): s is Extract<Stage, { kind: 'grouped' }> => s.kind === 'grouped');
  if (grouped.length === 0)
    return collectionInput(inputs, label, id).groupBy(() => null, { name: id, resultsChecked: true });
  if (inputs.length > 1) {
    throw new Error(
      `${label}: a grouped input (from dd-groupby) cannot be combined with other inputs; ` +
        'wire all records into one dd-groupby before this node.',
    );
  }
  return grouped[0]!.grouped;
}
