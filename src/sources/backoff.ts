/**
 * Capped exponential backoff with full jitter, for reconnecting to an Actyx node: the n-th retry
 * waits a random time in [base·factor^n / 2, base·factor^n], capped at `maxMs`, so that many
 * clients reconnecting after a node restart do not arrive in lockstep.
 */

export interface BackoffOptions {
  /** First delay (ms), default 250. */
  readonly initialMs?: number;
  /** Longest delay (ms), default 30,000. */
  readonly maxMs?: number;
  /** Growth per attempt, default 2. */
  readonly factor?: number;
  /** Random number source in [0, 1) (tests can make it deterministic). */
  readonly random?: () => number;
}

export class Backoff {
  private attempt = 0;
  private readonly initialMs: number;
  private readonly maxMs: number;
  private readonly factor: number;
  private readonly random: () => number;

  constructor(options: BackoffOptions = {}) {
    this.initialMs = options.initialMs ?? 250;
    this.maxMs = options.maxMs ?? 30_000;
    this.factor = options.factor ?? 2;
    this.random = options.random ?? Math.random;
  }

  /** The delay before the next attempt; each call grows the next one. */
  next(): number {
    const ceiling = Math.min(this.maxMs, this.initialMs * this.factor ** this.attempt);
    this.attempt = Math.min(this.attempt + 1, 64);
    return Math.round(ceiling / 2 + (this.random() * ceiling) / 2);
  }

  /** After a success: the next failure starts with the shortest delay again. */
  reset(): void {
    this.attempt = 0;
  }

  /** How many delays were handed out since the last reset. */
  get failures(): number {
    return this.attempt;
  }
}
