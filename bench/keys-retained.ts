/**
 * What each engine operator of the example flows keeps after a catch-up (issue 13, many keys):
 * the example flows run on the cached drill log, and once every db-sink is live each operator's
 * state (its `ValueMap`s, `Map`s and `Set`s) is cleared in turn; the heap after a full GC drops
 * by what that operator alone retained. Prints bytes per group. Not timed: heap figures only.
 *
 * `node --expose-gc dist/bench/keys-retained.js` (BENCH_KEYS_EVENTS, default 50,000; BENCH_KEYS,
 * default 100,000 machines; BENCH_KEYS_STREAMS, default one per machine). Run it from the
 * repository (Node-RED's test helper finds its runtime from there).
 */
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getHeapStatistics } from 'node:v8';
import { createGraph } from '../src/engine';
import { EmbeddedLog } from '../src/sources/embedded-log';
import { cachedDrillLog } from './drill-members';
import { runExampleFlows } from './example-flows';

const EVENTS = Number(process.env.BENCH_KEYS_EVENTS ?? 50_000);
const MACHINES = Number(process.env.BENCH_KEYS ?? 100_000);
const STREAMS = Number(process.env.BENCH_KEYS_STREAMS ?? MACHINES);
const ROOT = join(__dirname, '..', '..');

interface OperatorLike {
  readonly name: string;
  stateSize(): number;
  readonly groups?: { readonly size: number };
}

function heapAfterGc(): number {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) throw new Error('run with node --expose-gc');
  gc();
  gc();
  return getHeapStatistics().used_heap_size;
}

async function main(): Promise<void> {
  // NB: the graphs the dataflows build are found through the graph's prototype (its step), as
  // they are private to the nodes; this works because the nodes load the same engine module.
  const graphs = new Set<{ operators: OperatorLike[] }>();
  const proto = Object.getPrototypeOf(createGraph()) as { step: (...a: unknown[]) => unknown };
  const step = proto.step;
  proto.step = function (this: { operators: OperatorLike[] }, ...a: unknown[]) {
    graphs.add(this);
    return step.apply(this, a);
  };
  const file = cachedDrillLog(EVENTS, MACHINES, STREAMS);
  await new EmbeddedLog(file, { foreignWritePollMs: 0 }).close();
  const dir = mkdtempSync(join(tmpdir(), 'deltaflow-keys-retained-'));
  const log = join(dir, 'log.sqlite');
  copyFileSync(file, log);
  const start = heapAfterGc();
  const run = await runExampleFlows(ROOT, log, join(dir, 'db.sqlite'));
  const after = heapAfterGc();
  console.log(
    `${EVENTS.toLocaleString('en-US')} events, ${MACHINES.toLocaleString('en-US')} machines, ${STREAMS.toLocaleString('en-US')} streams: heap after the catch-up +${((after - start) / 1e6).toFixed(1)} MB (${((after - start) / EVENTS).toFixed(0)} B per event)`,
  );
  let total = 0;
  for (const g of graphs)
    for (const op of g.operators) {
      const size = op.stateSize();
      const groups = op.groups?.size ?? null;
      const before = heapAfterGc();
      for (const v of Object.values(op))
        if (v instanceof Map || v instanceof Set || v?.constructor?.name === 'ValueMap')
          (v as Map<unknown, unknown>).clear();
      const freed = before - heapAfterGc();
      total += freed;
      if (size === 0 && freed < 100_000) continue;
      const perGroup = groups !== null && groups > 0 ? `, ${(freed / groups).toFixed(0)} B per group` : '';
      console.log(
        `  ${op.constructor.name} ${op.name}: ${groups ?? '-'} groups, state size ${size}, kept ${(freed / 1e6).toFixed(2)} MB${perGroup}`,
      );
    }
  console.log(
    `  operators together ${(total / 1e6).toFixed(1)} MB; the rest ${((heapAfterGc() - start) / 1e6).toFixed(1)} MB`,
  );
  await run.stop();
  rmSync(dir, { recursive: true, force: true });
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    console.error(e);
    process.exit(1);
  },
);
