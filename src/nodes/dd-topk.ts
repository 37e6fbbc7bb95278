/**
 * dd-topk: per group, the N records with the greatest (or smallest) value of a property path or
 * function — a top-5 list. Ties are broken by the engine's total order of records, so the result
 * is a function of the set of records, never of the order in which events arrived.
 */
import type { NodeAPI, NodeDef } from './red';
import { groupedInput, registerOperatorType } from './dd-operator';
import { compileRecordFunction, UserCodeError, valueFunction } from './user-function';

/** N from the config: a positive integer (at most 10000), or a UserCodeError saying so. */
function topCount(config: NodeDef): number {
  const text = String(config.count ?? '').trim();
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < 1 || n > 10_000)
    throw new UserCodeError(`count: ${JSON.stringify(text)} is not a whole number from 1 to 10000`);
  return n;
}

export default function (RED: NodeAPI): void {
  registerOperatorType(RED, 'dd-topk', (node, config, label) => {
    const n = topCount(config);
    const direction = String(config.direction ?? 'max');
    if (direction !== 'max' && direction !== 'min')
      throw new UserCodeError(`direction: unknown ${JSON.stringify(direction)} (expected max or min)`);
    const byType = config.byType ?? 'path';
    const by = valueFunction(
      compileRecordFunction(RED, node, { language: byType, text: config.by }, ['path', 'js', 'jsonata'], 'by'),
      `${label}'s by`,
    );
    return {
      definition: { count: n, direction, byType: String(byType), by: String(config.by) },
      build: (inputs) => {
        const top = groupedInput(inputs, label, config.id).topK(n, by, { direction, name: config.id });
        return { kind: 'collection', collection: top.ungroup({ name: config.id }) };
      },
    };
  });
}
