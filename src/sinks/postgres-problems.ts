/**
 * What a failed PostgreSQL connection or statement says about the configuration, and what to set:
 * a missing user name, a role, database or password the server refuses, no server at the address,
 * an unknown host, a privilege not granted. All of these can be fixed without a redeploy (the
 * server comes up, the role or database is created, pg_hba.conf or a GRANT is changed, Node-RED is
 * restarted with the variable set), so they are retried, and the hint, short enough for a node
 * status, names the setting: the db-config field that gave the value, the connection string, the
 * `PG*` variable, or where to set one when none was given.
 *
 * @example
 *   postgresProblem({ code: '28000', message: 'no PostgreSQL user name specified in startup packet' }, {}, {})
 *   // → { hint: 'no user: set PGUSER or User field', advice: 'set PGUSER or User field of the db-config …' }
 */
import type { PostgresOptions } from './postgres-database';

export interface PostgresProblem {
  /** For a node status: what is wrong and what to set (≈ 40 characters). */
  readonly hint: string;
  /** For the log, after the driver's message (which says what failed): what to do about it. */
  readonly advice: string;
}

type Setting = 'host' | 'port' | 'database' | 'user' | 'password';

const FIELD: Record<Setting, string> = {
  host: 'Host',
  port: 'Port',
  database: 'Database',
  user: 'User',
  password: 'Password',
};
const VARIABLE: Record<Setting, string> = {
  host: 'PGHOST',
  port: 'PGPORT',
  database: 'PGDATABASE',
  user: 'PGUSER',
  password: 'PGPASSWORD',
};

type Env = Readonly<Record<string, string | undefined>>;

/** The connection string in use and what it names, if any (the db-config's URL, else DATABASE_URL without a host). */
function connectionUrl(options: PostgresOptions, env: Env): { where: string; url: URL | null } | null {
  const text = options.connectionString || (!options.host && env.DATABASE_URL) || '';
  if (!text) return null;
  const where = options.connectionString ? 'URL field' : 'DATABASE_URL';
  try {
    return { where, url: new URL(text) };
  } catch {
    return { where, url: null };
  }
}

function urlNames(url: URL | null, s: Setting): boolean {
  if (url === null) return false;
  switch (s) {
    case 'host':
      return url.hostname !== '' || url.searchParams.has('host');
    case 'port':
      return url.port !== '';
    case 'database':
      return url.pathname.length > 1;
    case 'user':
      return url.username !== '';
    case 'password':
      return url.password !== '';
  }
}

/**
 * Where the value of `s` came from (`User field`, `URL field`, `DATABASE_URL`, `PGUSER`), or where
 * to set it when nothing gave one (`PGUSER or User field`).
 */
export function settingSource(s: Setting, options: PostgresOptions, env: Env = process.env): string {
  if (options[s] !== undefined && options[s] !== '') return `${FIELD[s]} field`;
  const url = connectionUrl(options, env);
  if (url && urlNames(url.url, s)) return url.where;
  if (env[VARIABLE[s]]) return VARIABLE[s];
  return `${VARIABLE[s]} or ${FIELD[s]} field`;
}

/** `host:port` the connection went to, as the driver reports it. */
function address(err: { address?: unknown; port?: unknown }, options: PostgresOptions, env: Env): string {
  const host =
    typeof err.address === 'string'
      ? err.address
      : (options.host ?? env.PGHOST ?? connectionUrl(options, env)?.url?.hostname) || 'localhost';
  const port = typeof err.port === 'number' ? err.port : (options.port ?? (env.PGPORT || 5432));
  return `${host}:${port}`;
}

const quoted = (message: string, pattern: RegExp): string | null => pattern.exec(message)?.[1] ?? null;

/**
 * The configuration problem behind a pg error, or null when it is none of those (a data error, a
 * lost connection, …: the caller decides). `env` is where unset values are looked up (PG* variables).
 */
export function postgresProblem(
  err: unknown,
  options: PostgresOptions,
  env: Env = process.env,
): PostgresProblem | null {
  if (err === null || typeof err !== 'object') return null;
  const e = err as { code?: unknown; message?: unknown; errors?: unknown; hostname?: unknown };
  // Connecting to a name with several addresses fails with an AggregateError of one error each.
  if (Array.isArray(e.errors) && e.errors.length > 0) return postgresProblem(e.errors[0], options, env);
  const code = typeof e.code === 'string' ? e.code : '';
  const message = typeof e.message === 'string' ? e.message : '';
  const where = (s: Setting): string => settingSource(s, options, env);

  if (code === '28000' && /no PostgreSQL user name specified/i.test(message)) {
    return {
      hint: `no user: set ${where('user')}`,
      advice: `set ${where('user')} of the db-config (variables in Node-RED's environment)`,
    };
  }
  if (code === '28000' && /pg_hba\.conf/i.test(message)) {
    return {
      hint: 'pg_hba.conf refuses this connection',
      advice:
        "add an entry to the server's pg_hba.conf for this client, user, database and SSL mode, or connect as one it allows",
    };
  }
  if (code === '28000' || code === '28P01') {
    const role = quoted(message, /(?:role|user) "([^"]*)"/);
    const notExisting = /does not exist/i.test(message);
    if (notExisting) {
      return {
        hint: `no role ${role ? `"${role}" ` : ''}(${where('user')})`,
        advice: `create the role (CREATE ROLE … LOGIN PASSWORD …) or set another user (${where('user')})`,
      };
    }
    return {
      hint: `password refused: check ${where('password')}`,
      advice: `check the password (${where('password')}) and the user (${where('user')})`,
    };
  }
  if (/client password must be a string|no password supplied/i.test(message)) {
    return {
      hint: `no password: set ${where('password')}`,
      advice: `the server asks for a password: set ${where('password')} (the field is a credential; \${VAR} reads a variable)`,
    };
  }
  if (code === '3D000') {
    const db = quoted(message, /database "([^"]*)"/);
    return {
      hint: `no database ${db ? `"${db}" ` : ''}(${where('database')})`,
      advice: `create the database (CREATE DATABASE …) or set another (${where('database')})`,
    };
  }
  if (code === '42501') {
    return {
      hint: 'permission denied: GRANT it',
      advice: `GRANT the user the privilege (e.g. CREATE and USAGE on the schema), or connect as another user (${where('user')})`,
    };
  }
  if (code === 'ECONNREFUSED') {
    const at = address(err as { address?: unknown; port?: unknown }, options, env);
    return {
      hint: `no server at ${at}`,
      advice: `start PostgreSQL at ${at}, or set ${where('host')} and ${where('port')}`,
    };
  }
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') {
    const host = typeof e.hostname === 'string' ? e.hostname : (options.host ?? env.PGHOST ?? '');
    return {
      hint: `unknown host ${host ? `"${host}" ` : ''}(${where('host')})`,
      advice: `the host name is not known (DNS): set ${where('host')}`,
    };
  }
  if (/timeout exceeded when trying to connect|connection timeout/i.test(message)) {
    const at = address({}, options, env);
    return {
      hint: `no answer from ${at}`,
      advice: `${at} did not answer in time: check ${where('host')} and ${where('port')}, the network and the server`,
    };
  }
  // A statement without any answer (postgres-database.ts gives its connection up): as the connect timeout.
  if (code === 'ETIMEDOUT' && /^no answer from the server/.test(message)) {
    const at = address({}, options, env);
    return {
      hint: `no answer from ${at}`,
      advice: `${at} did not answer a statement in time: the server is stopped, frozen or overloaded, or the network is down (statements that really take longer need a longer Statements timeout in the db-config)`,
    };
  }
  if (code === '57014' && /statement timeout/i.test(message)) {
    return {
      hint: 'statement timeout: see db-config',
      advice:
        "a statement ran longer than the db-config's Statements timeout and the server cancelled it: raise the timeout if statements really take that long, or find what makes them slow (a lock held elsewhere, a large table)",
    };
  }
  if (/does not support SSL/i.test(message)) {
    return {
      hint: 'server has no SSL: SSL field/PGSSLMODE',
      advice: "set the db-config's SSL to off (or PGSSLMODE=disable)",
    };
  }
  return null;
}
