/**
 * A rebuilt table is swapped in by its contents: what users added to the table — a trigger, an
 * index of their own, a grant (PostgreSQL, MariaDB), a view reading it — is still there after a
 * rebuild, and the trigger saw the swap's rows arrive. On SQLite, PostgreSQL and MariaDB. Before
 * the contents swap (DROP + RENAME) the trigger and the index were gone on all three, the grant on
 * PostgreSQL, and the view made the swap fail on PostgreSQL ("cannot drop table … because other
 * objects depend on it") and on SQLite ("error in view …: no such table").
 *
 * A rebuild that changes the table's columns still replaces the table (DROP + RENAME: its rows
 * cannot go into the old columns). SQLite and MariaDB: a view on the table reads the new one. On
 * PostgreSQL the view stops the swap: the error names the view and the table, the swap is retried,
 * and it goes on once the view is dropped.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { rmSync } from 'node:fs';
import Database from 'better-sqlite3';
import { startDataflow } from '../../src/dataflow/coordinator';
import type { DataflowMember } from '../../src/dataflow/types';
import { MariadbDatabase } from '../../src/sinks/mariadb-database';
import { PostgresDatabase } from '../../src/sinks/postgres-database';
import { SqliteDatabase } from '../../src/sinks/sqlite-database';
import { SinkDatabaseError } from '../../src/sinks/errors';
import type { SinkDatabase, TableSpec } from '../../src/sinks/types';
import { EmbeddedLog } from '../../src/sources/embedded-log';
import {
  appendEvents,
  drillEvents,
  pgClient,
  recordingListener,
  sinkMember,
  tempDir,
  uniqueName,
  withMariadb,
} from './support';
import { REBUILD_SETTINGS as SETTINGS, rebuildMembers as members, rebuildTable as table } from './rebuild-members';

const EVENTS = 2_000;

/** What the user added, as the catalog shows it, and what the trigger and the view saw. */
interface Added {
  readonly trigger: boolean;
  readonly index: boolean;
  /** null where the database has no grants (SQLite). */
  readonly grant: boolean | null;
  /** Rows the trigger recorded (one per row inserted into the table). */
  readonly audited: number;
  /** What the view reads: `<count>×<v>`, or the error reading it. */
  readonly view: string;
}

interface Kind {
  readonly name: string;
  open(dir: string): SinkDatabase;
  /** Adds a trigger (recording inserted rows in `<t>_audit`), an index, a grant and a view `<t>_view`. */
  add(dir: string, t: string): Promise<void>;
  look(dir: string, t: string): Promise<Added>;
  /** Whether the views of the table survive a swap that replaces it (schema change). */
  readonly viewSurvivesReplace: boolean;
  dropView(dir: string, t: string): Promise<void>;
  /** The table's rows as `<count>×<v>`. */
  read(dir: string, t: string): Promise<string>;
  cleanUp(t: string): Promise<void>;
}

const countSql = (q: string, t: string): string => `SELECT v, COUNT(*) AS n FROM ${q}${t}${q} GROUP BY v`;

const viewText = (rows: readonly Record<string, unknown>[]): string =>
  rows
    .map((r) => `${Number(r.n)}×${String(r.v)}`)
    .sort()
    .join(', ');

const sqliteFile = (dir: string): string => join(dir, 'views.sqlite');
const role = (t: string): string => `${t}_reader`;

const kinds: Kind[] = [
  {
    name: 'SQLite',
    open: (dir) => new SqliteDatabase({ filename: sqliteFile(dir) }),
    add: async (dir, t) => {
      const c = new Database(sqliteFile(dir));
      try {
        c.exec(`
          CREATE TABLE "${t}_audit" (v text);
          CREATE TRIGGER "${t}_trigger" AFTER INSERT ON "${t}" BEGIN INSERT INTO "${t}_audit" VALUES (NEW.v); END;
          CREATE INDEX "${t}_mine" ON "${t}" (off, v);
          CREATE VIEW "${t}_view" AS SELECT v, COUNT(*) AS n FROM "${t}" GROUP BY v;`);
      } finally {
        c.close();
      }
    },
    look: async (dir, t) => {
      const c = new Database(sqliteFile(dir), { readonly: true });
      try {
        const has = (type: string, name: string): boolean =>
          c.prepare('SELECT 1 FROM sqlite_master WHERE type = ? AND name = ? AND tbl_name = ?').get(type, name, t) !==
          undefined;
        let view: string;
        try {
          view = viewText(c.prepare(`SELECT * FROM "${t}_view"`).all() as Record<string, unknown>[]);
        } catch (e) {
          view = `error: ${(e as Error).message}`;
        }
        return {
          trigger: has('trigger', `${t}_trigger`),
          index: has('index', `${t}_mine`),
          grant: null,
          audited: (c.prepare(`SELECT COUNT(*) AS n FROM "${t}_audit"`).get() as { n: number }).n,
          view,
        };
      } finally {
        c.close();
      }
    },
    viewSurvivesReplace: true,
    dropView: async () => undefined,
    read: async (dir, t) => {
      const c = new Database(sqliteFile(dir), { readonly: true });
      try {
        return viewText(c.prepare(countSql('"', t)).all() as Record<string, unknown>[]);
      } finally {
        c.close();
      }
    },
    cleanUp: async () => undefined,
  },
  {
    name: 'PostgreSQL',
    open: () => new PostgresDatabase({}),
    add: async (_dir, t) => {
      const c = await pgClient();
      try {
        await c.query(`
          CREATE TABLE "${t}_audit" (v text);
          CREATE FUNCTION "${t}_audit_fn"() RETURNS trigger LANGUAGE plpgsql AS
            $$ BEGIN INSERT INTO "${t}_audit" VALUES (NEW.v); RETURN NEW; END $$;
          CREATE TRIGGER "${t}_trigger" AFTER INSERT ON "${t}" FOR EACH ROW EXECUTE FUNCTION "${t}_audit_fn"();
          CREATE INDEX "${t}_mine" ON "${t}" (off, v);
          CREATE ROLE "${role(t)}" NOLOGIN;
          GRANT SELECT ON "${t}" TO "${role(t)}";
          CREATE VIEW "${t}_view" AS SELECT v, COUNT(*) AS n FROM "${t}" GROUP BY v;`);
      } finally {
        await c.end();
      }
    },
    look: async (_dir, t) => {
      const c = await pgClient();
      try {
        const one = async (sql: string, params: unknown[]): Promise<boolean> =>
          (await c.query(sql, params)).rows.length > 0;
        let view: string;
        try {
          view = viewText((await c.query(`SELECT * FROM "${t}_view"`)).rows);
        } catch (e) {
          view = `error: ${(e as Error).message}`;
        }
        return {
          trigger: await one(
            'SELECT 1 FROM pg_trigger WHERE tgname = $1 AND tgrelid = to_regclass($2) AND NOT tgisinternal',
            [`${t}_trigger`, `"${t}"`],
          ),
          index: await one('SELECT 1 FROM pg_indexes WHERE indexname = $1 AND tablename = $2', [`${t}_mine`, t]),
          grant: (await c.query('SELECT has_table_privilege($1, $2, $3) AS ok', [role(t), `"${t}"`, 'SELECT'])).rows[0]
            .ok as boolean,
          audited: Number((await c.query(`SELECT COUNT(*) AS n FROM "${t}_audit"`)).rows[0].n),
          view,
        };
      } finally {
        await c.end();
      }
    },
    viewSurvivesReplace: false,
    dropView: async (_dir, t) => {
      const c = await pgClient();
      try {
        await c.query(`DROP VIEW IF EXISTS "${t}_view"`);
      } finally {
        await c.end();
      }
    },
    read: async (_dir, t) => {
      const c = await pgClient();
      try {
        return viewText((await c.query(countSql('"', t))).rows);
      } finally {
        await c.end();
      }
    },
    cleanUp: async (t) => {
      const c = await pgClient();
      try {
        await c.query(`
          DROP VIEW IF EXISTS "${t}_view";
          DROP TABLE IF EXISTS "${t}", "${t}_offsets", "${t}__deltaflow_new", "${t}__deltaflow_new_offsets", "${t}_audit";
          DROP FUNCTION IF EXISTS "${t}_audit_fn"();
          DROP ROLE IF EXISTS "${role(t)}";
          DELETE FROM deltaflow_meta WHERE table_name LIKE '${t}%';`);
      } finally {
        await c.end();
      }
    },
  },
  {
    name: 'MariaDB',
    open: () => new MariadbDatabase(),
    add: (_dir, t) =>
      withMariadb(async (c) => {
        await c.query(`CREATE TABLE \`${t}_audit\` (v text)`);
        await c.query(
          `CREATE TRIGGER \`${t}_trigger\` AFTER INSERT ON \`${t}\` FOR EACH ROW INSERT INTO \`${t}_audit\` VALUES (NEW.v)`,
        );
        await c.query(`CREATE INDEX \`${t}_mine\` ON \`${t}\` (off, v(20))`);
        await c.query(`CREATE USER \`${role(t)}\`@'localhost'`);
        await c.query(`GRANT SELECT ON \`${t}\` TO \`${role(t)}\`@'localhost'`);
        await c.query(`CREATE VIEW \`${t}_view\` AS SELECT v, COUNT(*) AS n FROM \`${t}\` GROUP BY v`);
      }),
    look: (_dir, t) =>
      withMariadb(async (c) => {
        const one = async (sql: string, params: unknown[]): Promise<boolean> =>
          ((await c.query(sql, params))[0] as unknown[]).length > 0;
        let view: string;
        try {
          view = viewText((await c.query(`SELECT * FROM \`${t}_view\``))[0] as Record<string, unknown>[]);
        } catch (e) {
          view = `error: ${(e as Error).message}`;
        }
        const schema = 'TABLE_SCHEMA = DATABASE()';
        return {
          trigger: await one(
            `SELECT 1 FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE() AND TRIGGER_NAME = ? AND EVENT_OBJECT_TABLE = ?`,
            [`${t}_trigger`, t],
          ),
          index: await one(
            `SELECT 1 FROM information_schema.STATISTICS WHERE ${schema} AND TABLE_NAME = ? AND INDEX_NAME = ?`,
            [t, `${t}_mine`],
          ),
          grant: await one(
            `SELECT 1 FROM information_schema.TABLE_PRIVILEGES WHERE ${schema} AND TABLE_NAME = ? AND GRANTEE = ? AND PRIVILEGE_TYPE = 'SELECT'`,
            [t, `'${role(t)}'@'localhost'`],
          ),
          audited: Number(
            ((await c.query(`SELECT COUNT(*) AS n FROM \`${t}_audit\``))[0] as Record<string, unknown>[])[0]?.n,
          ),
          view,
        };
      }),
    viewSurvivesReplace: true,
    dropView: async () => undefined,
    read: (_dir, t) =>
      withMariadb(async (c) => viewText((await c.query(countSql('`', t)))[0] as Record<string, unknown>[])),
    cleanUp: (t) =>
      withMariadb(async (c) => {
        await c.query(`DROP VIEW IF EXISTS \`${t}_view\``);
        for (const x of [t, `${t}_offsets`, `${t}__deltaflow_new`, `${t}__deltaflow_new_offsets`, `${t}_audit`])
          await c.query(`DROP TABLE IF EXISTS \`${x}\``);
        await c.query(`DROP USER IF EXISTS \`${role(t)}\`@'localhost'`);
        await c.query(`DELETE FROM deltaflow_meta WHERE table_name LIKE ?`, [`${t}%`]).catch(() => undefined);
      }),
  },
];

for (const kind of kinds) {
  test(`${kind.name}: a trigger, an index, a grant and a view on a sink table survive a rebuild; a schema change replaces the table`, async () => {
    const dir = tempDir('deltaflow-swap-');
    const log = new EmbeddedLog(join(dir, 'log.sqlite'));
    const name = uniqueName('swap');
    appendEvents(log, drillEvents({ machines: 5, events: EVENTS, seed: 3 }));
    const db = kind.open(dir);
    const start = (spec: TableSpec, variant: string) => {
      const listener = recordingListener();
      const run = startDataflow(
        { source: log, members: members(log, db, spec, variant), settings: SETTINGS },
        listener,
      );
      return { run, listener };
    };
    const complete = async (spec: TableSpec, variant: string): Promise<number> => {
      const { run } = start(spec, variant);
      await Promise.race([run.live, run.finished]);
      const stats = run.stats();
      await run.stop();
      assert.equal(stats.error, null);
      return stats.rebuilt.length;
    };
    try {
      assert.equal(await complete(table(name), 'old'), 0);
      await kind.add(dir, name);
      const before = await kind.look(dir, name);
      assert.deepEqual(before, {
        trigger: true,
        index: true,
        grant: kind.name === 'SQLite' ? null : true,
        audited: 0,
        view: `${EVENTS}×old`,
      });

      // Same columns, another definition: a rebuild, swapped in by its contents.
      assert.equal(await complete(table(name), 'new'), 1, 'the changed definition rebuilds the table');
      const after = await kind.look(dir, name);
      assert.deepEqual(
        after,
        { ...before, audited: EVENTS, view: `${EVENTS}×new` },
        'what the user added is still there, and the trigger saw the swapped-in rows',
      );

      // A changed schema: the table is replaced.
      const wide = table(name, true);
      if (kind.viewSurvivesReplace) {
        assert.equal(await complete(wide, 'wide'), 1);
        assert.equal((await kind.look(dir, name)).view, `${EVENTS}×wide`, 'the view reads the replaced table');
      } else {
        const { run, listener } = start(wide, 'wide');
        const blocked = (): string | undefined =>
          listener.recorded.errors.map((e) => e.message).find((m) => m.includes(`${name}_view`));
        while (blocked() === undefined) {
          assert.equal(run.stats().error, null, 'the blocked swap is retried, not fatal');
          await new Promise((r) => setTimeout(r, 20));
        }
        const message = blocked() as string;
        assert.match(message, new RegExp(`view "${name}_view" reads it`), message);
        assert.match(message, new RegExp(`table "${name}"`), message);
        assert.doesNotMatch(message, /depend/, 'not the raw DROP TABLE error');
        assert.equal((await kind.look(dir, name)).trigger, true, 'until the swap, the old table stays');
        await kind.dropView(dir, name);
        await Promise.race([run.live, run.finished]);
        const stats = run.stats();
        await run.stop();
        assert.equal(stats.error, null);
        assert.equal(stats.rebuilt.length, 1);
      }
      const replaced = await kind.look(dir, name);
      assert.equal(replaced.trigger, false, 'a replaced table is a new table: the trigger went with the old one');
      assert.equal(replaced.index, false);
    } finally {
      await db.close();
      await log.close();
      await kind.cleanUp(name);
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

/**
 * The swap of a dataflow's tables in one database is one transaction. On MariaDB each table's swap
 * is committed by the DROP of its shadow (DDL commits), so a failure after the first table's swap
 * leaves it committed, and the retried transaction must not swap it again (its shadow and the
 * shadow's meta row are gone: the meta row of the table would be deleted, or the retry fail for
 * ever). Here the first swapIn of the swap transaction fails once, after its work, with a retryable
 * error: the retry swaps the rest, both tables hold the new rows, and a restart rebuilds nothing.
 */
for (const kind of kinds) {
  test(`${kind.name}: a swap transaction that fails after the first of two tables was swapped in is retried and swaps each table once`, async () => {
    const dir = tempDir('deltaflow-swap-retry-');
    const log = new EmbeddedLog(join(dir, 'log.sqlite'));
    const names = [uniqueName('swap_a'), uniqueName('swap_b')];
    appendEvents(log, drillEvents({ machines: 5, events: EVENTS, seed: 4 }));
    const db = kind.open(dir);
    let failures = 0;
    const watched: SinkDatabase = {
      kind: db.kind,
      label: db.label,
      transaction: (fn) =>
        db.transaction((tx) =>
          fn({
            ...tx,
            swapIn: async (spec, shadow) => {
              await tx.swapIn(spec, shadow);
              if (failures++ === 0) throw new SinkDatabaseError(db.label, spec.name, 'connection lost (test)', true);
            },
          }),
        ),
      close: () => db.close(),
    };
    const run = async (variant: string): Promise<number> => {
      const [src, row, sink] = members(log, watched, table(names[0] as string), variant);
      const second = sinkMember('sink2', ['row'], watched, table(names[1] as string));
      const r = startDataflow(
        { source: log, members: [src, row, sink, second] as DataflowMember[], settings: SETTINGS },
        recordingListener(),
      );
      await Promise.race([r.live, r.finished]);
      const stats = r.stats();
      await r.stop();
      assert.equal(stats.error, null);
      return stats.rebuilt.length;
    };
    try {
      assert.equal(await run('old'), 0);
      assert.equal(await run('new'), 2);
      assert.equal(failures, 3, 'one failed attempt, then both tables swapped in');
      for (const t of names) assert.equal(await kind.read(dir, t), `${EVENTS}×new`, t);
      assert.equal(await run('new'), 0, 'the swapped-in tables have their fingerprints');
    } finally {
      await db.close();
      await log.close();
      for (const t of names) await kind.cleanUp(t);
      rmSync(dir, { recursive: true, force: true });
    }
  });
}
