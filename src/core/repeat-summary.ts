/**
 * One kind of problem reported many times — a user function failing on every event, a database
 * retried every few seconds, a device whose clock is years ahead — is reported in full once and
 * then summarised: a count per interval instead of a line per occurrence. Nothing is dropped: each
 * occurrence is counted, and `close()` reports what was counted since the last summary.
 *
 * ```ts
 * const summary = new RepeatSummary({
 *   intervalMs: 30_000,
 *   onSummary: (key, s) => log.warn(`${key}: ${s.count} more in the last ${s.seconds} s (${s.total} in all); last: ${s.last}`),
 * });
 * if (summary.occurred('map-1 failed', message)) log.error(message); // the first one in full
 * // … later occurrences only count; every 30 s one summary line per kind; at the end:
 * summary.close();
 * ```
 *
 * A kind that stays quiet for a whole interval starts over: its next occurrence is reported in
 * full again. Used by the dataflow (skipped inputs, retries, source diagnostics, events ahead of
 * the clock) and by nodes that log on their own.
 */

/** What a summary reports for one kind of problem. */
export interface RepeatCount {
  /** Occurrences since the last report (the full one or the previous summary). */
  readonly count: number;
  /** Occurrences since the kind was first reported in full. */
  readonly total: number;
  /** The text of the latest occurrence. */
  readonly last: string;
  /** Seconds the summary covers (rounded). */
  readonly seconds: number;
}

export interface RepeatSummaryOptions {
  /** How often counts are reported (default 30,000 ms). */
  readonly intervalMs?: number;
  /** Reports the occurrences of `key` counted since the last report. */
  readonly onSummary: (key: string, count: RepeatCount) => void;
  /** Clock for the `seconds` of a summary (default Date.now). */
  readonly now?: () => number;
}

interface Kind {
  count: number;
  total: number;
  last: string;
  since: number;
  /** Ticks since the last occurrence (a kind quiet for a whole interval starts over). */
  quiet: number;
}

export class RepeatSummary {
  private readonly kinds = new Map<string, Kind>();
  private readonly intervalMs: number;
  private readonly now: () => number;
  private timer: NodeJS.Timeout | null = null;
  private closed = false;

  constructor(private readonly options: RepeatSummaryOptions) {
    this.intervalMs = Math.max(1, options.intervalMs ?? 30_000);
    this.now = options.now ?? Date.now;
  }

  /**
   * Counts one occurrence of `key` (`text` describes it); true when the caller should report this
   * one in full (the first of its kind, or the first after a quiet interval), false when it is
   * counted for the next summary. After `close()`, every occurrence is to be reported in full.
   */
  occurred(key: string, text: string): boolean {
    if (this.closed) return true;
    const kind = this.kinds.get(key);
    if (kind === undefined) {
      this.kinds.set(key, { count: 0, total: 1, last: text, since: this.now(), quiet: 0 });
      this.schedule();
      return true;
    }
    kind.count++;
    kind.total++;
    kind.last = text;
    kind.quiet = 0;
    return false;
  }

  /** Occurrences of `key` since it was first reported in full (0 if none). */
  total(key: string): number {
    return this.kinds.get(key)?.total ?? 0;
  }

  /** Reports every count now, and forgets kinds that stayed quiet for a whole interval. */
  tick(): void {
    for (const [key, kind] of this.kinds) {
      if (kind.count > 0) {
        this.report(key, kind);
      } else if (++kind.quiet >= 2) {
        // Quiet since the previous tick too: a whole interval without an occurrence.
        this.kinds.delete(key);
      }
    }
    if (this.kinds.size === 0 && this.timer !== null) {
      clearInterval(this.timer);
      this.timer = null;
    }
  }

  /**
   * The problems of the kinds `match` selects are over (the database is reachable again): what was
   * counted is reported now, and their next occurrence is reported in full.
   */
  settle(match: (key: string) => boolean): void {
    for (const [key, kind] of this.kinds) {
      if (!match(key)) continue;
      if (kind.count > 0) this.report(key, kind);
      this.kinds.delete(key);
    }
  }

  /** Reports what was counted and stops counting: later occurrences are all reported in full. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    for (const [key, kind] of this.kinds) if (kind.count > 0) this.report(key, kind);
    this.kinds.clear();
  }

  private report(key: string, kind: Kind): void {
    const at = this.now();
    const count: RepeatCount = {
      count: kind.count,
      total: kind.total,
      last: kind.last,
      seconds: Math.max(1, Math.round((at - kind.since) / 1000)),
    };
    kind.count = 0;
    kind.since = at;
    kind.quiet = 0;
    this.options.onSummary(key, count);
  }

  private schedule(): void {
    if (this.timer !== null || this.closed) return;
    this.timer = setInterval(() => this.tick(), this.intervalMs);
    this.timer.unref();
  }
}
