/**
 * Throttled status reporting: the coordinator sets a member's status as often as it likes; the
 * listener sees at most one update per member per interval (and only real changes), so a busy
 * dataflow does not flood the editor.
 */
import type { DataflowListener, MemberStatus } from './types';

export class StatusReporter {
  private readonly pending = new Map<string, MemberStatus>();
  private readonly shown = new Map<string, string>();
  private timer: NodeJS.Timeout | null = null;
  private lastFlush = 0;
  private closed = false;

  constructor(
    private readonly listener: DataflowListener,
    private readonly intervalMs = 250,
  ) {}

  /** Sets the status; `urgent` (errors) shows it at once. */
  set(memberId: string, status: MemberStatus, urgent = false): void {
    if (this.closed) return;
    this.pending.set(memberId, status);
    if (urgent) return this.flush();
    if (this.timer !== null) return;
    const wait = Math.max(0, this.lastFlush + this.intervalMs - Date.now());
    this.timer = setTimeout(() => this.flush(), wait);
    this.timer.unref?.();
  }

  flush(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.lastFlush = Date.now();
    for (const [id, status] of this.pending) {
      const key = `${status.fill}/${status.shape}/${status.text}`;
      if (this.shown.get(id) === key) continue;
      this.shown.set(id, key);
      this.listener.status(id, status);
    }
    this.pending.clear();
  }

  /** Shows what is pending and ignores later updates. */
  close(): void {
    this.flush();
    this.closed = true;
  }
}
