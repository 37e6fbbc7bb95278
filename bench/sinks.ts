/**
 * Sink write throughput (not a test): commits of 1,000-row batches together with an offset map,
 * on SQLite (temp file) and PostgreSQL (PG* env / DATABASE_URL), for a multiset table (inserts)
 * and a keyed table (each batch updates 1,000 of 5,000 keys: retraction + insertion per key).
 *
 *   npm run build && node dist/bench/sinks.js [batches]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Update, Value } from '../src/engine/types';
import type { SinkDatabase, TableSpec } from '../src/sinks/types';
import { SqliteDatabase } from '../src/sinks/sqlite-database';
import { PostgresDatabase } from '../src/sinks/postgres-database';

const BATCH = 1000;
const batches = Number(process.argv[2] ?? 200);
const streams = Array.from({ length: 50 }, (_v, i) => `stream-${i}`);

function columns(keyed: boolean): TableSpec['columns'] {
  return [
    { name: 'machine', type: 'text not null', value: { path: 'machine' }, key: keyed, index: !keyed },
    { name: 'status', type: 'text', value: { path: 'status' } },
    { name: 'manufacturing_order', type: 'text', value: { path: 'order' } },
    { name: 'since', type: 'bigint', value: { path: 'since' }, index: true },
  ];
}

async function run(
  db: SinkDatabase,
  spec: TableSpec,
  batchFor: (i: number) => Update[],
): Promise<{ rowsPerSec: number; msPerCommit: number; p99: number }> {
  await db.transaction(async (tx) => {
    await tx.dropTable(spec);
    await tx.ensureTable(spec);
  });
  const offsets: Record<string, number> = {};
  const times: number[] = [];
  let rows = 0;
  const t0 = performance.now();
  for (let i = 0; i < batches; i++) {
    const batch = batchFor(i);
    for (const s of streams) offsets[s] = (offsets[s] ?? 0) + BATCH / streams.length;
    const start = performance.now();
    const changes = await db.transaction(async (tx) => {
      const c = await tx.apply(spec, batch);
      await tx.writeState(spec, { offsets: { ...offsets }, fingerprint: 'bench', watermark: i });
      return c;
    });
    times.push(performance.now() - start);
    rows += changes.length;
  }
  const total = performance.now() - t0;
  await db.transaction((tx) => tx.dropTable(spec));
  times.sort((a, b) => a - b);
  return {
    rowsPerSec: Math.round((rows / total) * 1000),
    msPerCommit: total / batches,
    p99: times[Math.floor(times.length * 0.99)],
  };
}

const inserts = (i: number): Update[] =>
  Array.from({ length: BATCH }, (_v, j): Update => [
    { machine: `m${j % 50}`, status: j % 2 ? 'working' : 'idle', order: `o${i}-${j}`, since: i * BATCH + j } as Value,
    1,
    0,
  ]);

// Keyed: 5,000 keys; batch i moves keys [(i % 5) * 1000, +1000) from version i-5 to version i.
const keyedRecord = (key: number, version: number): Value => ({
  machine: `machine-${key}`,
  status: version % 2 ? 'working' : 'idle',
  order: `o${version}`,
  since: version,
});
const updates = (i: number): Update[] => {
  const out: Update[] = [];
  for (let j = 0; j < BATCH; j++) {
    const key = (i % 5) * BATCH + j;
    if (i >= 5) out.push([keyedRecord(key, i - 5), -1, 0]);
    out.push([keyedRecord(key, i), 1, 0]);
  }
  return out;
};

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'deltaflow-bench-sinks-'));
  const targets: [string, () => SinkDatabase][] = [
    ['SQLite', () => new SqliteDatabase({ filename: join(dir, 'bench.sqlite') })],
    ['PostgreSQL', () => new PostgresDatabase()],
  ];
  console.log(`sink writes: ${batches} commits of ${BATCH}-row batches with a ${streams.length}-stream offset map`);
  for (const [name, open] of targets) {
    const db = open();
    try {
      for (const [what, keyed, gen] of [
        ['multiset inserts', false, inserts],
        ['keyed upserts', true, updates],
      ] as const) {
        const spec: TableSpec = {
          name: `bench_${keyed ? 'keyed' : 'multiset'}_${process.pid}`,
          mode: keyed ? 'keyed' : 'multiset',
          columns: columns(keyed),
        };
        const r = await run(db, spec, gen);
        console.log(
          `${name.padEnd(10)} ${what.padEnd(16)} ${String(r.rowsPerSec).padStart(9)} rows/s   ${r.msPerCommit.toFixed(2)} ms/commit   p99 ${r.p99.toFixed(2)} ms`,
        );
      }
    } catch (err) {
      console.log(`${name}: ${err instanceof Error ? err.message : String(err)}`);
    } finally {
      await db.close();
    }
  }
  rmSync(dir, { recursive: true, force: true });
}

void main();
