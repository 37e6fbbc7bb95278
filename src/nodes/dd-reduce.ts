/**
 * dd-reduce: per group, a JavaScript function `(key, inputs, outputs)` as in the seed: it sees the
 * group's records in the causal order of their events, or by its *Order by* value (then by value),
 * with multiplicities, and pushes `[record, multiplicity]` pairs into `outputs` (or returns them).
 * Only the difference to the group's previous outputs leaves the node.
 */
import type { Value } from '../engine/types';
import type { Node, NodeAPI, NodeDef } from './red';
import { groupedInput, registerOperatorType, type OperatorLogic } from './dd-operator';
import { compileOrderBy } from './order-by';
import { andThen, compileReduceFunction } from './user-function';
import { toValue } from './user-values';

export default function (RED: NodeAPI): void {
  registerOperatorType(RED, 'dd-reduce', (node, config, label) => compileReduce(RED, node, config, label));
}

/** The node's logic from its config (exported for the dataflow-level tests); throws for a bad config. */
export function compileReduce(RED: NodeAPI, node: Node, config: NodeDef, label: string): OperatorLogic {
  const fn = compileReduceFunction(config.func, 'function');
  const order = compileOrderBy(RED, node, config, label);
  const what = `${label}'s function`;
  return {
    // The order records come in is part of what the node computes (it was the value order once).
    definition: { func: String(config.func), order: order.definition },
    build: (inputs) => {
      const reduced = groupedInput(inputs, label, config.id).reduce(
        (key, groupInputs, outputs: [Value, number][]) =>
          andThen(fn(key, groupInputs, outputs), (returned) => {
            // Convert in place: the engine takes the pushed pairs and (if it is another array) the returned ones.
            convertValues(outputs, what);
            if (Array.isArray(returned) && returned !== outputs) convertValues(returned as unknown[], what);
            return returned;
          }),
        { name: config.id, orderBy: order.orderBy },
      );
      return { kind: 'collection', collection: reduced.ungroup({ name: config.id }) };
    },
  };
}

/** Turns the values of `[value, multiplicity]` pairs into engine values (Dates to strings …); the engine checks the pairs. */
function convertValues(pairs: unknown[], what: string): void {
  for (const pair of pairs) {
    if (Array.isArray(pair) && pair.length === 2) pair[0] = toValue(pair[0], what);
  }
}
