/**
 * dd-flatmap: turns each record into any number of records — an array from JavaScript, JSONata or
 * a property path.
 */
import type { Value } from '../engine/types';
import type { NodeAPI } from './red';
import { collectionInput, registerOperatorType } from './dd-operator';
import { andThen, compileRecordFunction } from './user-function';
import { toValue } from './user-values';

export default function (RED: NodeAPI): void {
  registerOperatorType(RED, 'dd-flatmap', (node, config, label) => {
    const language = String(config.language ?? 'js');
    const fn = compileRecordFunction(RED, node, { language, text: config.func }, ['js', 'jsonata', 'path'], 'function');
    const what = `${label}'s function`;
    const records = (result: unknown): Value[] => {
      // Nothing (undefined, null) is no records; JSONata gives a single value for a one-element
      // sequence, and a property path that is no array is one record.
      if (result === undefined || result === null) return [];
      if (!Array.isArray(result)) {
        if (language !== 'js') return [toValue(result, what)];
        throw new Error(`${what} returned ${typeof result}; return an array of records (or nothing for none)`);
      }
      return result.map((r) => toValue(r, what));
    };
    return {
      definition: { language, func: String(config.func) },
      build: (inputs) => ({
        kind: 'collection',
        collection: collectionInput(inputs, label, config.id).flatMap((record) => andThen(fn(record), records), {
          name: config.id,
        }),
      }),
    };
  });
}
