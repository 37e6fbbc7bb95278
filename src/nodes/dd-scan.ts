/**
 * dd-scan: per group, a left fold over the group's records in the causal order of their events,
 * or by its *Order by* value (then by value) — the incremental form of dd-reduce. A JavaScript step
 * `(state, record, emit, key)` returns the next state and may `emit(row, multiplicity)`; the
 * group's outputs are everything emitted folding from
 * the initial state over all its records. The engine refolds only from just before a changed record
 * until the fold rejoins the previous one, so records appended in causal order cost O(1) each.
 */
import { errorText } from '../core/message-text';
import type { Value } from '../engine/types';
import type { Node, NodeAPI, NodeDef } from './red';
import { groupedInput, registerOperatorType, type OperatorLogic } from './dd-operator';
import { compileOrderBy } from './order-by';
import { compileScanFunction } from './user-function';

/** The default initial state: an empty object (e.g. the open starts by order). */
const DEFAULT_INITIAL = '{}';

export default function (RED: NodeAPI): void {
  registerOperatorType(RED, 'dd-scan', (node, config, label) => compileScan(RED, node, config, label));
}

/** The node's logic from its config (exported for the dataflow-level tests); throws for a bad config. */
export function compileScan(RED: NodeAPI, node: Node, config: NodeDef, label: string): OperatorLogic {
  const initialText = config.initial === undefined ? DEFAULT_INITIAL : config.initial;
  const initial = parseInitialState(initialText);
  const step = compileScanFunction(config.func, 'step function');
  const order = compileOrderBy(RED, node, config, label);
  return {
    // The initial state as written: whitespace changes in it should not rebuild tables, its value should.
    // The order records come in is part of what the node computes (it was the value order once).
    definition: { initial, func: String(config.func), order: order.definition },
    build: (inputs) => {
      const scanned = groupedInput(inputs, label, config.id).scan(initial, step, {
        name: config.id,
        orderBy: order.orderBy,
      });
      return { kind: 'collection', collection: scanned.ungroup({ name: config.id }) };
    },
  };
}

/** The initial state from its JSON text; throws an Error naming the field (a configuration problem). */
export function parseInitialState(text: unknown): Value {
  if (typeof text !== 'string' || text.trim() === '')
    throw new Error('initial state: empty; enter a JSON value such as {}');
  try {
    return JSON.parse(text) as Value;
  } catch (err) {
    throw new Error(`initial state: not valid JSON: ${errorText(err)}`);
  }
}
