/**
 * What a failed MariaDB / MySQL connection or statement says about the configuration, and what to
 * set — as postgres-problems.ts does for PostgreSQL: a user or password the server refuses, a
 * database that does not exist, a privilege not granted, no server at the address, an unknown
 * host, a server without TLS. All can be fixed without a redeploy (the server comes up, the user
 * or database is created, a GRANT is given), so they are retried, and the hint, short enough for a
 * node status, names the setting: the db-config field, the URL, or the `MYSQL_*` variable.
 *
 * @example
 *   mariadbProblem({ errno: 1049, sqlMessage: "Unknown database 'views'" }, { database: 'views' }, {})
 *   // → { hint: 'no database "views" (Database field)', advice: 'create the database (CREATE DATABASE …) …' }
 */
import type { MariadbOptions } from './mariadb-connection';

export interface MariadbProblem {
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
  host: 'MYSQL_HOST',
  port: 'MYSQL_PORT',
  database: 'MYSQL_DATABASE',
  user: 'MYSQL_USER',
  password: 'MYSQL_PASSWORD',
};

type Env = Readonly<Record<string, string | undefined>>;

/** The URL in use, if any: the db-config's, else MARIADB_URL / MYSQL_URL when no host is set. */
function connectionUrl(options: MariadbOptions, env: Env): { where: string; url: URL | null } | null {
  const fromEnv = !options.host ? (env.MARIADB_URL ? 'MARIADB_URL' : env.MYSQL_URL ? 'MYSQL_URL' : null) : null;
  const text = options.url || (fromEnv ? env[fromEnv] : '') || '';
  if (!text) return null;
  const where = options.url ? 'URL field' : (fromEnv as string);
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
      return url.hostname !== '';
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

/** Where the value of `s` came from, or where to set it when nothing gave one. */
export function mariadbSettingSource(s: Setting, options: MariadbOptions, env: Env = process.env): string {
  if (options[s] !== undefined && options[s] !== '') return `${FIELD[s]} field`;
  const url = connectionUrl(options, env);
  if (url && urlNames(url.url, s)) return url.where;
  if (env[VARIABLE[s]]) return VARIABLE[s];
  if (s === 'password' && env.MYSQL_PWD) return 'MYSQL_PWD';
  return `${VARIABLE[s]} or ${FIELD[s]} field`;
}

const quoted = (message: string, pattern: RegExp): string | null => pattern.exec(message)?.[1] ?? null;

/**
 * The configuration problem behind a mysql2 error, or null when it is none of those (a data error,
 * a lost connection, a deadlock, …: the caller decides).
 */
export function mariadbProblem(err: unknown, options: MariadbOptions, env: Env = process.env): MariadbProblem | null {
  if (err === null || typeof err !== 'object') return null;
  const e = err as { code?: unknown; errno?: unknown; message?: unknown; sqlMessage?: unknown; errors?: unknown };
  if (Array.isArray(e.errors) && e.errors.length > 0) return mariadbProblem(e.errors[0], options, env);
  const code = typeof e.code === 'string' ? e.code : '';
  const errno = typeof e.errno === 'number' ? e.errno : 0;
  const message = typeof e.sqlMessage === 'string' ? e.sqlMessage : typeof e.message === 'string' ? e.message : '';
  const where = (s: Setting): string => mariadbSettingSource(s, options, env);
  const at = (): string => {
    const host = options.host ?? env.MYSQL_HOST ?? connectionUrl(options, env)?.url?.hostname ?? 'localhost';
    const port =
      options.port ?? (env.MYSQL_PORT || env.MYSQL_TCP_PORT || connectionUrl(options, env)?.url?.port || 3306);
    return `${host}:${port}`;
  };

  if (errno === 1045) {
    // Access denied for user 'u'@'h' (using password: YES|NO)
    const user = quoted(message, /for user '([^']*)'/);
    if (/using password: NO/.test(message))
      return {
        hint: `no password: set ${where('password')}`,
        advice: `the server asks for a password for ${user ? `'${user}'` : 'the user'}: set ${where('password')} (the field is a credential; \${VAR} reads a variable)`,
      };
    return {
      hint: `access denied: check ${where('password')}`,
      advice: `check the password (${where('password')}) and the user (${where('user')}), and that the user may connect from this host`,
    };
  }
  if (errno === 1049) {
    const db = quoted(message, /Unknown database '([^']*)'/);
    return {
      hint: `no database ${db ? `"${db}" ` : ''}(${where('database')})`,
      advice: `create the database (CREATE DATABASE …) or set another (${where('database')})`,
    };
  }
  if (errno === 1044 || errno === 1142 || errno === 1143 || errno === 1227) {
    return {
      hint: 'permission denied: GRANT it',
      advice: `GRANT the user SELECT, INSERT, UPDATE, DELETE, CREATE, DROP and INDEX on the database, or connect as another user (${where('user')})`,
    };
  }
  if (code === 'ECONNREFUSED') {
    return {
      hint: `no server at ${at()}`,
      advice: `start MariaDB at ${at()}, or set ${where('host')} and ${where('port')}`,
    };
  }
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') {
    const host = options.host ?? env.MYSQL_HOST ?? '';
    return {
      hint: `unknown host ${host ? `"${host}" ` : ''}(${where('host')})`,
      advice: `the host name is not known (DNS): set ${where('host')}`,
    };
  }
  if ((code === 'ETIMEDOUT' && /connect/i.test(message)) || code === 'PROTOCOL_SEQUENCE_TIMEOUT') {
    // Connecting, or a statement that got no answer at all (a stopped server, a network gone).
    return {
      hint: `no answer from ${at()}`,
      advice: `${at()} did not answer in time: check ${where('host')} and ${where('port')}, the network and the server (the connection is replaced and the commit retried)`,
    };
  }
  if (errno === 1969) {
    return {
      hint: 'statement timeout: raise Statements',
      advice:
        "a statement ran longer than the db-config's statement timeout (MariaDB's max_statement_time) and was cancelled; it is retried — raise the Statements field if it really needs longer",
    };
  }
  if (code === 'HANDSHAKE_NO_SSL_SUPPORT') {
    return {
      hint: 'server has no SSL: SSL field/ssl-mode',
      advice: "set the db-config's SSL to off (or ssl-mode=DISABLED in the URL), or enable TLS on the server",
    };
  }
  return null;
}
