/**
 * The delta engine: incremental dataflow over JSON-like values with structural identity.
 * Pure TypeScript: nothing here touches Node-RED, databases or the network.
 *
 * ```ts
 * const g = createGraph();
 * const events = g.input<Event>('events', { insertOnly: true });
 * g.output('dashboard', events.map(toEntry).groupBy((e) => e.machine).maxBy((e) => e.since).ungroup());
 * const { outputs } = await g.step({ events: [[event, 1, event.timestamp]] });
 * ```
 */
export * from './types';
export { canonicalKey, valueEquals } from './value-identity';
export { compareValues } from './value-order';
export { assertValue, isValue, valueProblem } from './value-check';
export { consolidate } from './consolidate';
export { createGraph } from './graph';
export { encodeKey, decodeKey, decodeKeys } from './state-key';
export { MemoryStateStore } from './memory-store';
