/**
 * A MariaDB server process a test owns: Debian's mariadbd (scripts/mariadb-server.mjs starts it) on
 * its own data directory in a temporary folder and a free port on 127.0.0.1, root without a
 * password, a database `deltaflow_test`. The test can crash it (SIGKILL) and start it again on the
 * same data directory (InnoDB crash recovery), stop and continue it (SIGSTOP/SIGCONT: mariadbd is
 * one process), shut it down cleanly and start it (`restartFast`) and end sessions.
 *
 * Every mysql2 connection made here has an `error` listener: the server dies under it by design.
 */
import { existsSync, rmSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import mysql from 'mysql2/promise';
import type { ChildProcess } from 'node:child_process';

interface Launcher {
  mariadbBinaries(): { server: string; install: string } | Error;
  installDataDir(dir: string): string;
  freePort(): Promise<number>;
  startServer(
    dir: string,
    port: number,
  ): Promise<{ proc: ChildProcess; exit: Promise<unknown>; stop(): Promise<void> }>;
}

// The launcher is plain JavaScript shared with scripts/test.mjs and the benchmark.
const launcher = async (): Promise<Launcher> =>
  (await import(join(__dirname, '..', '..', 'scripts', 'mariadb-server.mjs'))) as Launcher;

/** Why a server cannot be started here, or null when it can (the launcher looks in the same places). */
export function mariadbServerUnavailable(): string | null {
  if (process.platform !== 'linux') return 'the MariaDB server harness runs on Linux only';
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/usr/libexec', '/usr/local/sbin'];
  const found = (names: string[]): boolean => names.some((n) => dirs.some((d) => d && existsSync(join(d, n))));
  if (found(['mariadbd', 'mysqld']) && found(['mariadb-install-db', 'mysql_install_db'])) return null;
  return 'no MariaDB server binaries (apt-get install mariadb-server; .ci/run installs it)';
}

export const DATABASE = 'deltaflow_test';

export class MariadbServer {
  private running: Awaited<ReturnType<Launcher['startServer']>> | null = null;
  private paused = false;

  private constructor(
    private readonly l: Launcher,
    readonly dir: string,
    readonly port: number,
  ) {}

  /** Creates the data directory (mariadb-install-db) on a free port; `start()` runs it. */
  static async create(): Promise<MariadbServer> {
    const l = await launcher();
    const dir = mkdtempSync(join(tmpdir(), 'deltaflow-mariadbserver-'));
    try {
      l.installDataDir(dir);
      return new MariadbServer(l, dir, await l.freePort());
    } catch (e) {
      rmSync(dir, { recursive: true, force: true });
      throw e;
    }
  }

  /** Connection settings for the test's own clients (root, no password). */
  get connection(): mysql.ConnectionOptions {
    return {
      host: '127.0.0.1',
      port: this.port,
      user: 'root',
      password: '',
      database: DATABASE,
      supportBigNumbers: true,
      timezone: 'Z',
    };
  }

  /** Starts mariadbd on its data directory (after a kill: crash recovery); resolves when it accepts connections. */
  async start(): Promise<void> {
    this.running = await this.l.startServer(this.dir, this.port);
    const { database: _, ...admin } = this.connection;
    await this.withConnection((c) => c.query(`CREATE DATABASE IF NOT EXISTS ${DATABASE}`), admin);
  }

  /** SIGKILL of mariadbd, as an OOM kill or a crash does; resolves once it is gone. */
  async kill(): Promise<void> {
    const r = this.running;
    this.running = null;
    if (!r) return;
    r.proc.kill('SIGKILL');
    if (this.paused) r.proc.kill('SIGCONT'); // a stopped process dies only once continued
    this.paused = false;
    await r.exit;
  }

  pause(): void {
    if (!this.running) return;
    this.running.proc.kill('SIGSTOP');
    this.paused = true;
  }

  resume(): void {
    if (!this.running || !this.paused) return;
    this.running.proc.kill('SIGCONT');
    this.paused = false;
  }

  /**
   * A fast restart as an administrator does it: SHUTDOWN (sessions ended, clean shutdown; what
   * `mariadb-admin shutdown` sends), then a start on the same directory.
   */
  async restartFast(): Promise<void> {
    const r = this.running;
    if (!r) return this.start();
    await this.withConnection((c) => c.query('SHUTDOWN'));
    await r.exit;
    this.running = null;
    await this.start();
  }

  /** Ends (KILL CONNECTION) every session inside an InnoDB transaction but the asking one; resolves to how many. */
  async endSessionsInTransactions(): Promise<number> {
    return this.withConnection(async (c) => {
      const [rows] = await c.query(
        'SELECT trx_mysql_thread_id AS id FROM information_schema.innodb_trx WHERE trx_mysql_thread_id <> CONNECTION_ID()',
      );
      let ended = 0;
      for (const { id } of rows as { id: number }[]) {
        // NB: the id is the server's own number, read just above; KILL takes no parameter marker.
        if (!Number.isInteger(Number(id))) continue;
        try {
          await c.query(`KILL CONNECTION ${Number(id)}`);
          ended++;
        } catch {
          // gone meanwhile (ER_NO_SUCH_THREAD)
        }
      }
      return ended;
    });
  }

  /** Runs `fn` on a connection of the test's own. */
  async withConnection<T>(
    fn: (c: mysql.Connection) => Promise<T>,
    config: mysql.ConnectionOptions = this.connection,
  ): Promise<T> {
    const c = await mysql.createConnection(config);
    c.on('error', () => undefined);
    try {
      return await fn(c);
    } finally {
      await c.end().catch(() => c.destroy());
    }
  }

  /** Stops it at once and removes its data directory. */
  async destroy(): Promise<void> {
    this.resume();
    await this.kill();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
