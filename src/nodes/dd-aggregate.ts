/**
 * dd-aggregate: per group, the number of records (`{key, count}`) or the sum of a numeric property
 * path or function (`{key, sum}`). Ungrouped input counts or sums everything as one group with key null.
 */
import type { Value } from '../engine/types';
import type { NodeAPI } from './red';
import { groupedInput, registerOperatorType, type OperatorLogic } from './dd-operator';
import { andThen, compileRecordFunction, UserCodeError } from './user-function';

export default function (RED: NodeAPI): void {
  registerOperatorType(RED, 'dd-aggregate', (node, config, label): OperatorLogic => {
    const aggregate = String(config.aggregate ?? 'count');
    if (aggregate === 'count') {
      return {
        definition: { aggregate },
        build: (inputs) => ({
          kind: 'collection',
          collection: groupedInput(inputs, label, config.id).count({ name: config.id }).ungroup({ name: config.id }),
        }),
      };
    }
    if (aggregate !== 'sum')
      throw new UserCodeError(`aggregate: unknown function ${JSON.stringify(aggregate)} (expected count or sum)`);
    const valueType = config.valueType ?? 'path';
    const fn = compileRecordFunction(
      RED,
      node,
      { language: valueType, text: config.value },
      ['path', 'js', 'jsonata'],
      'value to sum',
    );
    const checked = (n: unknown): number => {
      if (typeof n !== 'number' || !Number.isFinite(n)) {
        throw new Error(`${label}: the value to sum is ${JSON.stringify(n) ?? 'undefined'}, not a number`);
      }
      return n;
    };
    const number = (record: Value) => andThen(fn(record), checked);
    return {
      definition: { aggregate, valueType: String(valueType), value: String(config.value) },
      build: (inputs) => ({
        kind: 'collection',
        collection: groupedInput(inputs, label, config.id)
          .sum(number, { name: config.id })
          .ungroup({ name: config.id }),
      }),
    };
  });
}
