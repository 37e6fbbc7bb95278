/**
 * Issue 12, point 3, end to end: a view that gives a machine two rows of a keyed table halts the
 * dataflow with the same error whether the events were stored before the start (one batch), arrive
 * live one at a time (the second row in a later commit), or the second arrives after a restart. The
 * error names the db-sink, the key, both rows and the node that produced them; the table keeps the
 * rows of the last good commit. On SQLite, PostgreSQL and MariaDB. On 34efe75 the live and restart
 * cases kept the newer row silently and stayed live.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { rmSync } from 'node:fs';
import { startDataflow } from '../../src/dataflow/coordinator';
import type { Collection } from '../../src/engine/types';
import type { DataflowMember, DataflowSettings } from '../../src/dataflow/types';
import { MariadbDatabase } from '../../src/sinks/mariadb-database';
import { PostgresDatabase } from '../../src/sinks/postgres-database';
import { SqliteDatabase } from '../../src/sinks/sqlite-database';
import type { SinkDatabase, TableSpec } from '../../src/sinks/types';
import { EmbeddedLog } from '../../src/sources/embedded-log';
import {
  mariadbDrop,
  mariadbRows,
  operatorMember,
  pgExec,
  pgRows,
  recordingListener,
  rowText,
  sinkMember,
  sourceMember,
  sqliteRows,
  tempDir,
  uniqueName,
  waitCommitted,
} from './support';

const SETTINGS: DataflowSettings = {
  batchSize: 100,
  batchMs: 1,
  maxInFlight: 2,
  retentionMicros: null,
  onError: 'skip',
};

const table = (name: string): TableSpec => ({
  name,
  mode: 'keyed',
  columns: [
    { name: 'machine', type: 'text', value: { path: 'machine' }, key: true },
    { name: 'status', type: 'text', value: { path: 'status' } },
  ],
});

/** Every event becomes a row (machine, status): no max-by, so two events of a machine give it two rows. */
function members(log: EmbeddedLog, db: SinkDatabase, name: string): DataflowMember[] {
  return [
    sourceMember('src', "'m'", log),
    operatorMember('status-map', ['src'], { fn: 'status' }, ([s]) => ({
      kind: 'collection',
      collection: (s as { collection: Collection }).collection.map(
        (v) => {
          const p = (v as { payload: { machine: string; status: string } }).payload;
          return { machine: p.machine, status: p.status };
        },
        { name: 'status-map' },
      ),
    })),
    sinkMember('sink', ['status-map'], db, table(name)),
  ];
}

const kinds: {
  name: string;
  open: (dir: string) => SinkDatabase;
  rows: (dir: string, t: TableSpec) => Promise<string[]>;
  drop: (t: string) => Promise<void>;
}[] = [
  {
    name: 'SQLite',
    open: (dir) => new SqliteDatabase({ filename: join(dir, 'views.sqlite') }),
    rows: async (dir, t) => sqliteRows(join(dir, 'views.sqlite'), t),
    drop: async () => undefined,
  },
  {
    name: 'PostgreSQL',
    open: () => new PostgresDatabase({}),
    rows: (_dir, t) => pgRows(t),
    drop: (t) => pgExec(`drop table if exists "${t}"; drop table if exists "${t}_offsets"`),
  },
  {
    name: 'MariaDB',
    open: () => new MariadbDatabase(),
    rows: (_dir, t) => mariadbRows(t),
    drop: (t) => mariadbDrop([t]),
  },
];

type Arrival = 'stored' | 'live' | 'after a restart';

for (const kind of kinds) {
  test(`${kind.name}: two rows for one key halt with the same named error, stored, live or after a restart`, async () => {
    const messages = new Map<Arrival, string>();
    for (const arrival of ['live', 'after a restart', 'stored'] as const) {
      const dir = tempDir('deltaflow-dup-');
      const log = new EmbeddedLog(join(dir, 'log.sqlite'));
      const db = kind.open(dir);
      const name = uniqueName('dup');
      const append = (machine: string, status: string, lamport: number): void =>
        void log.appendSync('dev-0', [
          { tags: ['m'], payload: { machine, status }, lamport, timestamp: lamport * 1000 },
        ]);
      try {
        append('M1', 'idle', 1);
        append('M2', 'idle', 2);
        if (arrival === 'stored') append('M1', 'working', 3);
        let listener = recordingListener();
        let run = startDataflow({ source: log, members: members(log, db, name), settings: SETTINGS }, listener);
        if (arrival !== 'stored') {
          await run.live;
          await waitCommitted(run, await log.presentOffsets());
          if (arrival === 'after a restart') {
            await run.stop();
            listener = recordingListener();
            run = startDataflow({ source: log, members: members(log, db, name), settings: SETTINGS }, listener);
            await run.live;
          }
          append('M1', 'working', 3);
        }
        // (Not timing: a dataflow that keeps running instead of halting fails here rather than hanging.)
        await Promise.race([run.finished, new Promise((r) => setTimeout(r, 20_000).unref())]);
        assert.equal(run.stats().phase, 'error', `${arrival}: the dataflow halts`);
        const errors = listener.recorded.errors.filter((e) => e.id === 'sink');
        assert.equal(errors.length, 1, JSON.stringify(listener.recorded.errors));
        const message = (errors[0] as { message: string }).message;
        assert.match(message, /^commit failed and cannot succeed by retrying: /); // the node is named by errors[0].id
        assert.match(message, new RegExp(`table "${name}": two rows for key \\{"machine":"M1"\\} in the view`));
        assert.match(message, /\{"machine":"M1","status":"idle"\} and \{"machine":"M1","status":"working"\}/);
        assert.match(message, /the rows came from status-map \(dd-test\)/);
        messages.set(arrival, message.replaceAll(name, 'T'));
        // Nothing of the failing commit is written: stored, nothing; else the two first rows.
        const expected =
          arrival === 'stored'
            ? []
            : [rowText({ machine: 'M1', status: 'idle' }), rowText({ machine: 'M2', status: 'idle' })].sort();
        assert.deepEqual(await kind.rows(dir, table(name)), expected);
        await run.stop();
      } finally {
        await db.close();
        await log.close();
        await kind.drop(name);
        rmSync(dir, { recursive: true, force: true });
      }
    }
    assert.equal(messages.get('live'), messages.get('stored'));
    assert.equal(messages.get('after a restart'), messages.get('stored'));
  });
}
