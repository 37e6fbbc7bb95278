/**
 * dd-reduce: per group, a JavaScript function `(key, inputs, outputs)` as in the seed: it sees the
 * group's records sorted by the total order of records, with multiplicities, and pushes
 * `[record, multiplicity]` pairs into `outputs` (or returns them). Only the difference to the
 * group's previous outputs leaves the node.
 */
import type { Value } from '../engine/types';
import type { NodeAPI } from './red';
import { groupedInput, registerOperatorType } from './dd-operator';
import { andThen, compileReduceFunction, toValue } from './user-function';

export default function (RED: NodeAPI): void {
  registerOperatorType(RED, 'dd-reduce', (_node, config, label) => {
    const fn = compileReduceFunction(config.func, 'function');
    const what = `${label}'s function`;
    return {
      definition: { func: String(config.func) },
      build: (inputs) => {
        const reduced = groupedInput(inputs, label, config.id).reduce(
          (key, groupInputs, outputs: [Value, number][]) =>
            andThen(fn(key, groupInputs, outputs), (returned) => checkOutputs(returned ?? outputs, what)),
          { name: config.id },
        );
        return { kind: 'collection', collection: reduced.ungroup({ name: config.id }) };
      },
    };
  });
}

/** Validates the `[value, multiplicity]` pairs a reduce function produced. */
function checkOutputs(outputs: unknown, what: string): [Value, number][] {
  if (!Array.isArray(outputs)) throw new Error(`${what} returned ${typeof outputs}; return nothing or an array of [record, multiplicity] pairs`);
  return outputs.map((pair: unknown, i) => {
    if (!Array.isArray(pair) || pair.length !== 2 || !Number.isInteger(pair[1])) {
      throw new Error(`${what}: outputs[${i}] is not a [record, multiplicity] pair with an integer multiplicity`);
    }
    return [toValue(pair[0], what), pair[1] as number];
  });
}
