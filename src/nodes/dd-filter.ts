/** dd-filter: keeps the records for which a condition (JavaScript, JSONata or a property path) is truthy. */
import type { NodeAPI } from './red';
import { collectionInput, registerOperatorType } from './dd-operator';
import { andThen, compileRecordFunction } from './user-function';

export default function (RED: NodeAPI): void {
  registerOperatorType(RED, 'dd-filter', (node, config, label) => {
    const language = config.language ?? 'js';
    const condition = compileRecordFunction(
      RED,
      node,
      { language, text: config.condition },
      ['js', 'jsonata', 'path'],
      'condition',
    );
    return {
      definition: { language: String(language), condition: String(config.condition) },
      build: (inputs) => ({
        kind: 'collection',
        collection: collectionInput(inputs, label, config.id).filter((record) => andThen(condition(record), Boolean), {
          name: config.id,
        }),
      }),
    };
  });
}
