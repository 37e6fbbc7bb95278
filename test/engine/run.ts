/** Small helpers for the engine's unit tests. */
import {
  createGraph,
  type Batch,
  type Collection,
  type Graph,
  type StepOptions,
  type Update,
  type Value,
} from '../../src/engine';

/** The record most unit tests compute with. */
export type KV = { k: string; v: number };

/** A graph with one input `in` and one output `out` built by `build`. */
export function single<T extends Value>(
  build: (c: Collection<T>) => Collection,
  insertOnly = false,
): { graph: Graph; step: (batch: Update<T>[], options?: StepOptions) => Promise<Batch> } {
  const graph = createGraph();
  graph.output('out', build(graph.input<T>('in', { insertOnly })));
  return {
    graph,
    step: async (batch, options) => (await graph.step({ in: batch }, options)).outputs.get('out') ?? [],
  };
}

/** Updates without times, sorted, for readable assertions. */
export function show(batch: Batch): [Value, number][] {
  return batch
    .map(([v, d]): [Value, number] => [v, d])
    .sort((a, b) => (JSON.stringify(a) < JSON.stringify(b) ? -1 : 1));
}
