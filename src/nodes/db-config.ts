/**
 * `db-config`: the database a set of db-sink nodes writes to — a SQLite file or a PostgreSQL
 * server. Its users share one connection (SQLite) or pool (PostgreSQL), see db-access.ts.
 * Secrets (the password, a connection string that may contain one) are Node-RED credentials.
 */
import { isAbsolute, join, resolve } from 'node:path';
import type { SinkDatabase } from '../sinks/types';
import { SqliteDatabase } from '../sinks/sqlite-database';
import { PostgresDatabase, type PostgresOptions } from '../sinks/postgres-database';
import { validateIdentifier } from '../sinks/identifiers';
import { SharedDatabase, type DatabaseConfigNode } from './db-access';
import type { Node, NodeAPI, NodeDef } from './red';

export const DEFAULT_SQLITE_FILE = 'deltaflow.sqlite';

/** What the db-config node's settings turn into; `problems` are reported and make acquire fail. */
export type DatabaseSettings =
  | { readonly kind: 'sqlite'; readonly filename: string }
  | { readonly kind: 'postgres'; readonly options: PostgresOptions };

const ENV_REFERENCE = /^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$/;

/** Credentials are not substituted by Node-RED: `${VAR}` in one is read from the environment here. */
function credential(value: string | undefined, env: (name: string) => unknown): string | undefined {
  if (!value) return undefined;
  const m = ENV_REFERENCE.exec(value.trim());
  if (!m) return value;
  const v = env(m[1]);
  return v === undefined || v === null || v === '' ? undefined : String(v);
}

function text(v: unknown): string {
  return typeof v === 'string' ? v.trim() : typeof v === 'number' ? String(v) : '';
}

/** The schema field: empty for the server's default, else a plain identifier. */
function schemaName(raw: unknown, problems: string[]): string | undefined {
  const t = text(raw);
  if (t === '') return undefined;
  try {
    return validateIdentifier(t, 'schema');
  } catch (e) {
    problems.push(e instanceof Error ? e.message : String(e));
    return undefined;
  }
}

function wholeNumber(raw: unknown, what: string, min: number, max: number, problems: string[]): number | undefined {
  const t = text(raw);
  if (t === '') return undefined;
  const n = Number(t);
  if (!Number.isInteger(n) || n < min || n > max) {
    problems.push(`${what} must be a whole number from ${min} to ${max}, not ${JSON.stringify(t)}`);
    return undefined;
  }
  return n;
}

/** Reads a db-config node's settings; `userDir` anchors relative SQLite paths. */
export function parseDatabaseSettings(
  config: NodeDef,
  credentials: Record<string, string | undefined>,
  userDir: string,
  env: (name: string) => unknown,
): { settings: DatabaseSettings; problems: string[] } {
  const problems: string[] = [];
  if (config.kind !== 'postgres') {
    if (config.kind !== undefined && config.kind !== 'sqlite')
      problems.push(`unknown database kind ${JSON.stringify(config.kind)}`);
    const file = text(config.filename) || DEFAULT_SQLITE_FILE;
    const filename = file === ':memory:' || isAbsolute(file) ? file : resolve(join(userDir, file));
    return { settings: { kind: 'sqlite', filename }, problems };
  }
  const ssl =
    config.ssl === 'on'
      ? true
      : config.ssl === 'on-noverify'
        ? { rejectUnauthorized: false }
        : config.ssl === 'off'
          ? false
          : undefined;
  const options: PostgresOptions = {
    connectionString: credential(credentials.connectionString, env),
    host: text(config.host) || undefined,
    port: wholeNumber(config.port, 'port', 1, 65535, problems),
    database: text(config.database) || undefined,
    user: text(config.user) || undefined,
    password: credential(credentials.password, env),
    ssl,
    schema: schemaName(config.schema, problems),
    poolSize: wholeNumber(config.poolSize, 'pool size', 1, 100, problems),
    connectionTimeoutMs: (wholeNumber(config.connectTimeout, 'connect timeout', 1, 600, problems) ?? 10) * 1000,
    statementTimeoutMs: (wholeNumber(config.statementTimeout, 'statement timeout', 1, 86_400, problems) ?? 60) * 1000,
  };
  return { settings: { kind: 'postgres', options }, problems };
}

export default function (RED: NodeAPI): void {
  function DbConfigNode(this: DatabaseConfigNode, config: NodeDef): void {
    RED.nodes.createNode(this, config);
    const node = this;
    const name = text(config.name) || (config.kind === 'postgres' ? 'PostgreSQL' : 'SQLite');
    const env = (v: string): unknown => RED.util.evaluateNodeProperty(v, 'env', node, undefined);
    const { settings, problems } = parseDatabaseSettings(
      config,
      node.credentials ?? {},
      RED.settings.userDir ?? process.cwd(),
      env,
    );
    for (const p of problems) node.error(`db-config ${name}: ${p}`);

    const open = (): SinkDatabase =>
      settings.kind === 'sqlite'
        ? new SqliteDatabase({ filename: settings.filename })
        : new PostgresDatabase({
            ...settings.options,
            onIdleError: (err) => node.warn(`db-config ${name}: idle connection lost: ${err.message}`),
          });
    const shared = new SharedDatabase(open);

    node.acquire = (claim) => {
      if (problems.length) throw new Error(`database ${name} is misconfigured: ${problems.join('; ')}`);
      return shared.acquire(claim);
    };
    node.userCount = () => shared.userCount;

    node.on('close', (_removed: boolean, done: () => void) => {
      shared.close().then(done, (err: unknown) => {
        node.warn(`db-config ${name}: closing failed: ${err instanceof Error ? err.message : String(err)}`);
        done();
      });
    });
  }
  RED.nodes.registerType('db-config', DbConfigNode as unknown as (this: Node, def: NodeDef) => void, {
    credentials: { password: { type: 'password' }, connectionString: { type: 'password' } },
  });
}
