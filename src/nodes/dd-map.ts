/** dd-map: turns each record into one new record (JavaScript, JSONata or a property path). */
import type { NodeAPI } from './red';
import { collectionInput, registerOperatorType } from './dd-operator';
import { andThen, compileRecordFunction } from './user-function';
import { toValue } from './user-values';

export default function (RED: NodeAPI): void {
  registerOperatorType(RED, 'dd-map', (node, config, label) => {
    const language = config.language ?? 'js';
    const fn = compileRecordFunction(RED, node, { language, text: config.func }, ['js', 'jsonata', 'path'], 'function');
    const what = `${label}'s function`;
    // A property path that is missing gives null, as in dd-groupby; a function must return a value.
    const value =
      language === 'path'
        ? (r: unknown) => toValue(r === undefined ? null : r, what)
        : (r: unknown) => toValue(r, what);
    return {
      definition: { language: String(language), func: String(config.func) },
      build: (inputs) => ({
        kind: 'collection',
        // Every result went through toValue (a Value, or an error): the engine need not check it again.
        collection: collectionInput(inputs, label, config.id).map((record) => andThen(fn(record), value), {
          name: config.id,
          resultsChecked: true,
        }),
      }),
    };
  });
}
