/**
 * dd-distinct: each distinct record once, however many times it occurs — per group when fed by
 * dd-groupby (the groups' records are then passed on ungrouped).
 */
import type { NodeAPI } from './red';
import { collectionInput, registerOperatorType } from './dd-operator';

export default function (RED: NodeAPI): void {
  registerOperatorType(RED, 'dd-distinct', (_node, config, label) => ({
    definition: { distinct: true },
    build: (inputs) => {
      const grouped = inputs.length === 1 && inputs[0]!.kind === 'grouped' ? inputs[0]!.grouped : null;
      return {
        kind: 'collection',
        collection: grouped
          ? grouped.distinct({ name: config.id }).ungroup({ name: config.id })
          : collectionInput(inputs, label, config.id).distinct({ name: config.id }),
      };
    },
  }));
}
