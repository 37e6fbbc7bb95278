/**
 * dd-join: the incremental equi-join of two dataflow inputs by key, inner or left outer. Which
 * wired node is the left input is a property of the join (`left`, the id of that node, chosen in
 * the editor among the nodes wired into it); every other node wired in is the right input (their
 * records together). Each side has its own key (property path, JavaScript or JSONata). The output
 * is `{key, left, right}` per matching pair (`right: null` for a left record without a match in a
 * left outer join); a change on either side costs work in proportion to the records of its key.
 */
import type { Stage } from '../dataflow/types';
import type { Node, NodeAPI, NodeDef } from './red';
import { collectionInput, registerOperatorType, type OperatorLogic } from './dd-operator';
import { compileRecordFunction, UserCodeError, valueFunction } from './user-function';

const KINDS = ['inner', 'left'] as const;
type Kind = (typeof KINDS)[number];

export default function (RED: NodeAPI): void {
  registerOperatorType(RED, 'dd-join', (node, config, label) => compileJoin(RED, node, config, label));
}

/** The join's logic from its config (exported for the dataflow-level tests); throws for a bad config. */
export function compileJoin(RED: NodeAPI, node: Node, config: NodeDef, label: string): OperatorLogic {
  const kind = String(config.kind ?? 'inner') as Kind;
  if (!KINDS.includes(kind)) {
    throw new UserCodeError(`join: unknown kind ${JSON.stringify(config.kind)} (expected inner or left)`);
  }
  const leftId = typeof config.left === 'string' ? config.left : '';
  const keyOf = (side: 'left' | 'right') => {
    const language = config[`${side}KeyType`] ?? 'path';
    const text = config[`${side}Key`];
    return valueFunction(
      compileRecordFunction(RED, node, { language, text }, ['path', 'js', 'jsonata'], `${side} key`),
      `${label}'s ${side} key`,
    );
  };
  const leftKey = keyOf('left');
  const rightKey = keyOf('right');
  return {
    // Which input is left is part of the computation: swapping the sides rebuilds the tables downstream.
    definition: {
      kind,
      left: leftId,
      leftKeyType: String(config.leftKeyType ?? 'path'),
      leftKey: String(config.leftKey),
      rightKeyType: String(config.rightKeyType ?? 'path'),
      rightKey: String(config.rightKey),
    },
    build: (inputs, inputIds) => {
      const { left, right } = sides(inputs, inputIds, leftId, label);
      const joined = collectionInput(left, label, config.id)
        .groupBy(leftKey, { name: config.id, resultsChecked: true }) // keys made Values by valueFunction
        .join(collectionInput(right, label, config.id).groupBy(rightKey, { name: config.id, resultsChecked: true }), {
          kind,
          name: config.id,
        });
      return { kind: 'collection', collection: joined.ungroup({ name: config.id }) };
    },
  };
}

/**
 * Splits the wired inputs into the left one (the node the join's `left` names) and the right ones
 * (all others); throws an Error that says what to change when either side is missing.
 */
export function sides(
  inputs: readonly Stage[],
  inputIds: readonly string[],
  leftId: string,
  label: string,
): { left: Stage[]; right: Stage[] } {
  const left: Stage[] = [];
  const right: Stage[] = [];
  inputs.forEach((stage, i) => (inputIds[i] === leftId ? left : right).push(stage));
  if (leftId === '') {
    throw new Error(
      `${label}: no left input chosen; open the node and choose which of the nodes wired into it is the left input`,
    );
  }
  if (left.length === 0) {
    throw new Error(
      `${label}: its left input (node ${leftId}) is not wired into it; wire it, or open the node and choose another left input`,
    );
  }
  if (right.length === 0) {
    throw new Error(
      `${label}: no right input; wire a second node into it (every node wired in other than the left input is the right input)`,
    );
  }
  return { left, right };
}
