/**
 * The parent's side of a chaos worker (worker.ts): spawns it, follows what it reports, sends it
 * commands, and stops it. A worker that exits by itself is a failure of the test: the dataflow
 * process must survive whatever happens to its database.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { WorkerConfig } from './worker';

export interface SinkStatus {
  readonly id: string;
  readonly fill: string;
  readonly text: string;
}

export class WorkerProcess {
  readonly statuses: SinkStatus[] = [];
  readonly errors: string[] = [];
  readonly logs: { level: string; message: string }[] = [];
  commits = 0;
  /** Events committed (sum over the streams of offset + 1). */
  progress = 0;
  live = false;
  /** A transaction has written its rows and has not ended. */
  txOpen = false;
  txOpened = 0;
  loaded: number | null = null;
  private stderr = '';
  private exitCode: number | null | undefined = undefined;
  private readonly proc: ChildProcess;
  private readonly exited: Promise<number | null>;
  private readonly waiters = new Set<() => void>();

  constructor(config: WorkerConfig) {
    this.proc = spawn(process.execPath, ['--import', 'tsx', join(__dirname, 'worker.ts'), JSON.stringify(config)], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: process.env,
    });
    this.proc.stderr!.on('data', (d: Buffer) => (this.stderr += d.toString()));
    this.exited = new Promise((resolve) =>
      this.proc.once('exit', (code, signal) => {
        this.exitCode = code ?? (signal ? null : -1);
        this.wake();
        resolve(this.exitCode);
      }),
    );
    createInterface({ input: this.proc.stdout! }).on('line', (line) => {
      const m = JSON.parse(line) as {
        live?: boolean;
        commit?: number;
        progress?: number;
        tx?: 'open' | 'done';
        status?: SinkStatus;
        error?: string;
        log?: { level: string; message: string };
        loaded?: number;
      };
      if (m.live) this.live = true;
      if (m.commit !== undefined) {
        this.commits = m.commit;
        this.progress = m.progress ?? this.progress;
      }
      if (m.tx === 'open') this.txOpened++;
      if (m.tx !== undefined) this.txOpen = m.tx === 'open';
      if (m.status) this.statuses.push(m.status);
      if (m.error !== undefined) this.errors.push(m.error);
      if (m.log) this.logs.push(m.log);
      if (m.loaded !== undefined) this.loaded = m.loaded;
      this.wake();
    });
  }

  get alive(): boolean {
    return this.exitCode === undefined;
  }

  /** What the worker printed on stderr (its own log lines), for failure messages. */
  get output(): string {
    return this.stderr;
  }

  send(command: { hold?: number; load?: number }): void {
    this.proc.stdin!.write(`${JSON.stringify(command)}\n`);
  }

  /** Resolves when `condition` holds; fails when the worker exits first or after `ms`. */
  async until(condition: () => boolean, what: string, ms = 60_000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!condition()) {
      if (!this.alive)
        throw new Error(`the worker exited (code ${this.exitCode}) while waiting for ${what}:\n${this.tail()}`);
      if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}:\n${this.tail()}`);
      await new Promise<void>((resolve) => {
        const wake = (): void => {
          clearTimeout(timer);
          this.waiters.delete(wake);
          resolve();
        };
        const timer = setTimeout(wake, 50);
        this.waiters.add(wake);
      });
    }
  }

  /** The last log lines and errors, for failure messages. */
  tail(): string {
    const lines = [...this.logs.map((l) => `${l.level}: ${l.message}`), ...this.errors.map((e) => `error: ${e}`)];
    return [...lines.slice(-15), this.stderr.slice(-2000)].join('\n');
  }

  /** Stops it cleanly (SIGTERM); it must exit with 0. */
  async stop(): Promise<void> {
    if (!this.alive) throw new Error(`the worker had exited (code ${this.exitCode}):\n${this.tail()}`);
    this.proc.kill('SIGTERM');
    const code = await Promise.race([
      this.exited,
      new Promise<'hung'>((resolve) => setTimeout(() => resolve('hung'), 30_000).unref()),
    ]);
    if (code === 'hung') {
      this.proc.kill('SIGKILL');
      throw new Error(`the worker did not stop within 30 s of SIGTERM:\n${this.tail()}`);
    }
    if (code !== 0) throw new Error(`the worker exited with ${code} on SIGTERM:\n${this.tail()}`);
  }

  /** For cleanup after a failure. */
  kill(): void {
    if (this.alive) this.proc.kill('SIGKILL');
  }

  private wake(): void {
    for (const w of [...this.waiters]) w();
  }
}
