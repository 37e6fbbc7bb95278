/**
 * The *Order by* field of dd-reduce and dd-scan: the order in which a group's records reach the
 * function. Empty (the default) is the causal order of the events the records come from (Lamport
 * timestamp, stream, offset); otherwise a property path, JavaScript (a function body of `record`)
 * or JSONata whose value is the sort key — records then come in the order of that value, records
 * with equal values in the order of the records themselves, so a result stays a function of the
 * set of records whatever their field names.
 */
import type { MaybePromise, Value } from '../engine/types';
import type { Node, NodeAPI, NodeDef } from './red';
import { compileRecordFunction, valueFunction } from './user-function';

/** What a node's Order by field compiles to. */
export interface OrderBy {
  /** The engine's `orderBy` option; undefined for the causal order. */
  readonly orderBy: ((record: Value) => MaybePromise<Value>) | undefined;
  /**
   * What the order contributes to the node's fingerprint definition: `'causal'` (the value every
   * dd-reduce and dd-scan had before the field existed, so flows without an order rebuild nothing)
   * or the type and text of the expression (changing it rebuilds the tables downstream).
   */
  readonly definition: Value;
}

/** The node's Order by (`config.orderByType`, `config.orderBy`); throws UserCodeError for a bad expression. */
export function compileOrderBy(RED: NodeAPI, node: Node, config: NodeDef, label: string): OrderBy {
  const text = typeof config.orderBy === 'string' ? config.orderBy : '';
  // NB: 'causal' is the order every dd-reduce and dd-scan definition held before the field existed; a
  // different value would rebuild every such table on upgrade (test/dataflow/order-by.test.ts checks it).
  if (text.trim() === '') return { orderBy: undefined, definition: 'causal' };
  const language = config.orderByType ?? 'path';
  const fn = valueFunction(
    compileRecordFunction(RED, node, { language, text }, ['path', 'js', 'jsonata'], 'order by'),
    `${label}'s order by`,
  );
  return { orderBy: fn, definition: { type: String(language), by: text } };
}
