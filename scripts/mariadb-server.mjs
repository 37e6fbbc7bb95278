// A private MariaDB server for the tests: Debian's mariadbd on a free port, its data directory in a
// temporary folder (created with mariadb-install-db, root without a password on 127.0.0.1), TLS
// with a self-signed certificate when openssl is there (for the TLS tests), stopped and removed at
// the end. Used by scripts/test.mjs when no MYSQL_* / MARIADB_URL / MYSQL_URL is set,
// and by tests that kill and restart a server of their own (`start` on an existing data directory).
// Works as root (the server then runs as root: --user=root) and as a normal user.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import net from 'node:net';

function which(names, extra) {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), ...extra];
  for (const name of names) for (const d of dirs) if (d && existsSync(join(d, name))) return join(d, name);
  return null;
}

/** The server and installer binaries, or an Error saying how to get them. */
export function mariadbBinaries() {
  const server = which(['mariadbd', 'mysqld'], ['/usr/sbin', '/usr/libexec', '/usr/local/sbin']);
  const install = which(['mariadb-install-db', 'mysql_install_db'], ['/usr/bin', '/usr/local/bin', '/usr/sbin']);
  if (!server || !install)
    return new Error(
      "MariaDB is needed for the tests: set MYSQL_HOST/MYSQL_PORT/MYSQL_USER/MYSQL_PASSWORD/MYSQL_DATABASE or MARIADB_URL, or install Debian's mariadb-server (apt-get install mariadb-server), whose mariadbd the tests start in a temporary directory",
    );
  return { server, install };
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

const isRoot = process.getuid?.() === 0;

/** Creates a data directory in `dir/data` (root@localhost and root@127.0.0.1 without a password). */
export function installDataDir(dir) {
  const bin = mariadbBinaries();
  if (bin instanceof Error) throw bin;
  const data = join(dir, 'data');
  mkdirSync(data, { recursive: true });
  const args = [
    '--no-defaults',
    `--datadir=${data}`,
    '--auth-root-authentication-method=normal',
    '--skip-test-db',
    ...(isRoot ? ['--user=root'] : []),
  ];
  const r = spawnSync(bin.install, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`mariadb-install-db failed (${r.status}): ${r.stderr || r.stdout}`);
  return data;
}

async function reachable(port, deadline) {
  for (;;) {
    const ok = await new Promise((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port }, () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`MariaDB did not listen on port ${port}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * A self-signed certificate for localhost in `dir` (cert.pem, key.pem), made with openssl; null when
 * openssl is not there.
 */
export function selfSignedCertificate(dir) {
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  if (existsSync(cert) && existsSync(key)) return { cert, key };
  const r = spawnSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      key,
      '-out',
      cert,
      '-days',
      '7',
      '-subj',
      '/CN=localhost',
    ],
    { encoding: 'utf8' },
  );
  return r.status === 0 ? { cert, key } : null;
}

/**
 * Starts mariadbd on `dir` (a folder holding `data`, from installDataDir) and `port`; resolves once
 * it accepts connections. With `tls` ({cert, key}) it also accepts TLS connections. Returns the
 * process and `stop()` (SIGTERM, waits for exit).
 */
export async function startServer(dir, port, tls = null) {
  const bin = mariadbBinaries();
  if (bin instanceof Error) throw bin;
  const args = [
    '--no-defaults',
    `--datadir=${join(dir, 'data')}`,
    `--socket=${join(dir, 'mariadbd.sock')}`,
    `--pid-file=${join(dir, 'mariadbd.pid')}`,
    `--log-error=${join(dir, 'error.log')}`,
    `--port=${port}`,
    '--bind-address=127.0.0.1',
    '--skip-name-resolve',
    '--performance-schema=OFF',
    '--innodb-buffer-pool-size=128M',
    '--innodb-buffer-pool-dump-at-shutdown=OFF',
    '--innodb-buffer-pool-load-at-startup=OFF',
    '--max-connections=500',
    ...(tls ? [`--ssl-cert=${tls.cert}`, `--ssl-key=${tls.key}`] : []),
    ...(isRoot ? ['--user=root'] : []),
  ];
  const proc = spawn(bin.server, args, { stdio: 'ignore', detached: false });
  let exited = false;
  const exit = new Promise((resolve) =>
    proc.on('exit', (code, signal) => {
      exited = true;
      resolve(code ?? signal);
    }),
  );
  const deadline = Date.now() + 60_000;
  await Promise.race([
    reachable(port, deadline),
    exit.then((c) => {
      throw new Error(`mariadbd exited (${c}) before it listened; see ${join(dir, 'error.log')}`);
    }),
  ]);
  return {
    proc,
    port,
    exit,
    async stop() {
      if (exited) return;
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 30_000);
      await exit;
      clearTimeout(timer);
    },
  };
}

/**
 * A whole private server: temporary folder, data directory, mariadbd, a database `deltaflow_test`.
 * Returns the MYSQL_* environment for it and `stop()`, which also removes the folder.
 */
export async function startTemporaryMariadb() {
  const dir = mkdtempSync(join(tmpdir(), 'deltaflow-mariadb-'));
  try {
    installDataDir(dir);
    const port = await freePort();
    const server = await startServer(dir, port, selfSignedCertificate(dir));
    const { default: mysql } = await import('mysql2/promise');
    const admin = await mysql.createConnection({ host: '127.0.0.1', port, user: 'root', password: '' });
    await admin.query('CREATE DATABASE IF NOT EXISTS deltaflow_test');
    await admin.end();
    return {
      /** The server's process id (bench:mariadb reads its CPU time). */
      pid: server.proc.pid,
      env: {
        MYSQL_HOST: '127.0.0.1',
        MYSQL_PORT: String(port),
        MYSQL_USER: 'root',
        MYSQL_PASSWORD: '',
        MYSQL_DATABASE: 'deltaflow_test',
      },
      async stop() {
        await server.stop();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
}
