/** dd-groupby: splits records into groups by a key (property path, JavaScript or JSONata). */
import type { NodeAPI } from './red';
import { collectionInput, registerOperatorType } from './dd-operator';
import { compileRecordFunction, valueFunction } from './user-function';

export default function (RED: NodeAPI): void {
  registerOperatorType(RED, 'dd-groupby', (node, config, label) => {
    const keyType = config.keyType ?? 'path';
    const key = valueFunction(
      compileRecordFunction(RED, node, { language: keyType, text: config.key }, ['path', 'js', 'jsonata'], 'key'),
      `${label}'s key`,
    );
    return {
      definition: { keyType: String(keyType), key: String(config.key) },
      build: (inputs) => ({
        kind: 'grouped',
        // `valueFunction` made every key a Value (toValue): the engine need not check it again.
        grouped: collectionInput(inputs, label, config.id).groupBy(key, { name: config.id, resultsChecked: true }),
      }),
    };
  });
}
