/**
 * dd-maxby and dd-minby: per group, the record with the greatest (smallest) value of a property
 * path or function; ties are broken by the engine's total order of records, so the result never
 * depends on the order in which events arrived.
 */
import type { NodeAPI } from './red';
import { groupedInput, registerOperatorType } from './dd-operator';
import { compileRecordFunction, valueFunction } from './user-function';

/** Registers dd-maxby (`direction` max) or dd-minby (min). */
export function registerExtremeBy(RED: NodeAPI, type: 'dd-maxby' | 'dd-minby', direction: 'max' | 'min'): void {
  registerOperatorType(RED, type, (node, config, label) => {
    const byType = config.byType ?? 'path';
    const by = valueFunction(
      compileRecordFunction(RED, node, { language: byType, text: config.by }, ['path', 'js', 'jsonata'], 'order by'),
      `${label}'s order by`,
    );
    return {
      definition: { byType: String(byType), by: String(config.by) },
      build: (inputs) => {
        const grouped = groupedInput(inputs, label, config.id);
        const best =
          direction === 'max' ? grouped.maxBy(by, { name: config.id }) : grouped.minBy(by, { name: config.id });
        return { kind: 'collection', collection: best.ungroup({ name: config.id }) };
      },
    };
  });
}
