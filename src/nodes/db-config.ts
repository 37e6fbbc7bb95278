/**
 * `db-config`: the database a set of db-sink nodes writes to — a SQLite file, a PostgreSQL server
 * or a MariaDB / MySQL server. Its users share one connection (SQLite, MariaDB) or pool
 * (PostgreSQL), see db-access.ts. Secrets (the password, a connection string that may contain one)
 * are Node-RED credentials.
 */
import { errorText } from '../core/message-text';
import { isAbsolute, join, resolve } from 'node:path';
import type { SinkDatabase } from '../sinks/types';
import { SqliteDatabase } from '../sinks/sqlite-database';
import { PostgresDatabase, type PostgresOptions } from '../sinks/postgres-database';
import { MariadbDatabase } from '../sinks/mariadb-database';
import { mariadbTarget, type MariadbOptions } from '../sinks/mariadb-connection';
import { validateIdentifier } from '../sinks/identifiers';
import { SharedDatabase, type DatabaseConfigNode } from './db-access';
import type { Node, NodeAPI, NodeDef } from './red';

export const DEFAULT_SQLITE_FILE = 'deltaflow.sqlite';

/** What the db-config node's settings turn into; `problems` are reported and make acquire fail. */
export type DatabaseSettings =
  | { readonly kind: 'sqlite'; readonly filename: string }
  | { readonly kind: 'postgres'; readonly options: PostgresOptions }
  | { readonly kind: 'mariadb'; readonly options: MariadbOptions };

/** What a db-config node knows after its deploy: its settings (fields as Node-RED substituted them) and their problems. */
export interface ParsedDatabaseConfig {
  readonly settings: DatabaseSettings;
  readonly problems: readonly string[];
}

/** A deployed db-config node: shares its database (db-access.ts) and tells db-query its settings. */
export interface DbConfigNode extends DatabaseConfigNode {
  parsedConfig: ParsedDatabaseConfig;
}

/** The name a db-config shows when it has none. */
export function databaseKindName(kind: unknown): string {
  return kind === 'postgres' ? 'PostgreSQL' : kind === 'mariadb' ? 'MariaDB' : 'SQLite';
}

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
    problems.push(errorText(e));
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
  if (config.kind === 'mariadb') return parseMariadbSettings(config, credentials, env);
  if (config.kind !== 'postgres') {
    if (config.kind !== undefined && config.kind !== 'sqlite')
      problems.push(`unknown database kind ${JSON.stringify(config.kind)}`);
    const file = text(config.filename) || DEFAULT_SQLITE_FILE;
    const filename = file === ':memory:' || isAbsolute(file) ? file : resolve(join(userDir, file));
    return { settings: { kind: 'sqlite', filename }, problems };
  }
  const ssl = sslSetting(config.ssl);
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

function sslSetting(raw: unknown): boolean | { rejectUnauthorized: boolean } | undefined {
  if (raw === 'on') return true;
  if (raw === 'on-noverify') return { rejectUnauthorized: false };
  if (raw === 'off') return false;
  return undefined;
}

/**
 * MariaDB / MySQL: the fields, then the URL (credential, `mysql://…`), then MARIADB_URL / MYSQL_URL
 * and MYSQL_HOST, MYSQL_PORT, MYSQL_DATABASE, MYSQL_USER, MYSQL_PASSWORD. A database must be named
 * somewhere; a malformed URL is reported.
 */
function parseMariadbSettings(
  config: NodeDef,
  credentials: Record<string, string | undefined>,
  env: (name: string) => unknown,
): { settings: DatabaseSettings; problems: string[] } {
  const problems: string[] = [];
  const options: MariadbOptions = {
    url: credential(credentials.connectionString, env),
    host: text(config.host) || undefined,
    port: wholeNumber(config.port, 'port', 1, 65535, problems),
    database: text(config.database) || undefined,
    user: text(config.user) || undefined,
    password: credential(credentials.password, env),
    ssl: sslSetting(config.ssl),
    connectionTimeoutMs: (wholeNumber(config.connectTimeout, 'connect timeout', 1, 600, problems) ?? 10) * 1000,
    statementTimeoutMs: (wholeNumber(config.statementTimeout, 'statement timeout', 1, 86_400, problems) ?? 60) * 1000,
  };
  try {
    if (!mariadbTarget(options).database)
      problems.push('no database named: set the Database field, the URL path or MYSQL_DATABASE');
  } catch (e) {
    problems.push(e instanceof Error ? e.message : String(e));
  }
  return { settings: { kind: 'mariadb', options }, problems };
}

export default function (RED: NodeAPI): void {
  function DbConfigNode(this: DbConfigNode, config: NodeDef): void {
    RED.nodes.createNode(this, config);
    const node = this;
    const name = text(config.name) || databaseKindName(config.kind);
    const env = (v: string): unknown => RED.util.evaluateNodeProperty(v, 'env', node, undefined);
    const { settings, problems } = parseDatabaseSettings(
      config,
      node.credentials ?? {},
      RED.settings.userDir ?? process.cwd(),
      env,
    );
    for (const p of problems) node.error(p);
    node.parsedConfig = { settings, problems };

    const onIdleError = (err: Error): void => node.warn(`idle connection lost: ${err.message}`);
    const open = (): SinkDatabase => {
      if (settings.kind === 'sqlite') return new SqliteDatabase({ filename: settings.filename });
      if (settings.kind === 'mariadb') return new MariadbDatabase({ ...settings.options, onIdleError });
      return new PostgresDatabase({ ...settings.options, onIdleError });
    };
    const shared = new SharedDatabase(open, (err) => node.warn(`closing the database failed: ${errorText(err)}`));

    node.acquire = (claim) => {
      if (problems.length) throw new Error(`database ${name} is misconfigured: ${problems.join('; ')}`);
      return shared.acquire(claim);
    };
    node.userCount = () => shared.userCount;

    node.on('close', (_removed: boolean, done: () => void) => {
      shared.close().then(done, (err: unknown) => {
        node.warn(`closing failed: ${errorText(err)}`);
        done();
      });
    });
  }
  RED.nodes.registerType('db-config', DbConfigNode as unknown as (this: Node, def: NodeDef) => void, {
    credentials: { password: { type: 'password' }, connectionString: { type: 'password' } },
  });
}
