/**
 * A dataflow reading an Actyx node (the fake, through the real HTTP client) whose bounded queries
 * misbehave as behind a cutting proxy: a table brought forward through such a query commits no
 * offset for an event it did not receive, says so in the source's status, and equals the
 * from-scratch result once the node answers properly. On SQLite and PostgreSQL.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { startDataflow } from '../../src/dataflow/coordinator';
import type { DataflowMember, DataflowSettings } from '../../src/dataflow/types';
import { ActyxClient } from '../../src/sources/actyx-client';
import { PostgresDatabase } from '../../src/sinks/postgres-database';
import { SqliteDatabase } from '../../src/sinks/sqlite-database';
import type { SinkDatabase } from '../../src/sinks/types';
import type { OffsetMap } from '../../src/core/offset-map';
import { FakeActyx } from '../support/fake-actyx';
import { waitFor } from '../support/actyx-helpers';
import {
  allEvents,
  appendEvents,
  assertSameRows,
  dashboardMembers,
  drillEvents,
  fromScratch,
  pgExec,
  pgOffsets,
  pgRows,
  recordingListener,
  sourceMember,
  sqliteOffsets,
  sqliteRows,
  tempDir,
  uniqueName,
  usageMembers,
  usageTable,
  waitCommitted,
} from './support';

const SETTINGS: DataflowSettings = {
  batchSize: 200,
  batchMs: 5,
  maxInFlight: 2,
  retentionMicros: null,
  onError: 'skip',
};
const manifest = { appId: 'com.example.deltaflow-test', displayName: 'DeltaFlow tests', version: '1.0.0' };

for (const kind of ['sqlite', 'postgres'] as const) {
  test(`${kind}: a table brought forward through empty query responses commits no offset until it has the events`, async () => {
    const fake = await FakeActyx.start({ keepAliveMs: 50 });
    const client = new ActyxClient({ baseUrl: fake.baseUrl, manifest, backoff: { initialMs: 2, maxMs: 20 } });
    const dir = tempDir();
    const file = join(dir, 'views.sqlite');
    const db: SinkDatabase = kind === 'sqlite' ? new SqliteDatabase({ filename: file }) : new PostgresDatabase({});
    const dash = uniqueName('dash');
    const usage = uniqueName('usage');
    const rows = (): Promise<string[]> =>
      kind === 'sqlite' ? Promise.resolve(sqliteRows(file, usageTable(usage))) : pgRows(usageTable(usage));
    const offsets = (): Promise<OffsetMap> =>
      kind === 'sqlite' ? Promise.resolve(sqliteOffsets(file, usage)) : pgOffsets(usage);
    try {
      appendEvents(fake.log, drillEvents({ machines: 4, events: 600, seed: 3 }));
      const present = await client.presentOffsets();
      const dashboard = (): DataflowMember[] => [
        sourceMember('src', "'machine'", client, 'actyx'),
        ...dashboardMembers('src', db, dash),
      ];
      const first = startDataflow({ source: client, members: dashboard(), settings: SETTINGS }, recordingListener());
      await first.live;
      await waitCommitted(first, present);
      await first.stop();

      // A usage table is added: it is brought forward through bounded queries, which now come back empty.
      fake.queryAnswer = 'empty';
      const members = [...dashboard(), ...usageMembers('src', db, usage)];
      const listener = recordingListener();
      const second = startDataflow({ source: client, members, settings: SETTINGS }, listener);
      try {
        const queries = (): number => fake.streamRequests.filter((r) => r.path === '/events/query').length;
        let live = false;
        void second.live.then(() => (live = true));
        await waitFor(() => queries() >= 5 || live, 'five empty query responses');
        assert.deepEqual(await offsets(), {}, 'no offset for events that were never received');
        await waitFor(
          () => listener.recorded.statuses.some((s) => s.id === 'src' && s.status.text.startsWith('query incomplete')),
          'the source status saying the query is incomplete',
        );
        assert.deepEqual(await rows(), []);
        assert.notEqual(second.stats().phase, 'live');

        fake.queryAnswer = 'complete';
        await second.live;
        await waitCommitted(second, present);
        const expected = await fromScratch(members, await allEvents(fake.log));
        assertSameRows(await rows(), expected.get('usage-sink'), 'usage table');
        assert.ok((await rows()).length > 100);
        assert.deepEqual(await offsets(), present);
        assert.equal(second.stats().error, null);
      } finally {
        await second.stop();
      }
    } finally {
      await db.close();
      await client.close();
      await fake.close();
      if (kind === 'postgres') {
        await pgExec(
          `drop table if exists "${dash}", "${dash}_offsets", "${usage}", "${usage}_offsets"; delete from deltaflow_meta where table_name in ('${dash}', '${usage}')`,
        );
      }
    }
  });
}
