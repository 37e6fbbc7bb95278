/**
 * Retrying with capped exponential backoff, for database commits and source reads: the work is
 * repeated until it succeeds or the dataflow stops (then `Abandoned` is thrown; a commit computed
 * before the stop is still attempted once, see `attemptWhenStopped`).
 */

/** Thrown by `retryWithBackoff` when the dataflow stopped while waiting to retry. */
export class Abandoned extends Error {
  constructor() {
    super('abandoned because the dataflow stopped');
    this.name = 'Abandoned';
  }
}

export interface RetryOptions {
  readonly stopped: () => boolean;
  /** Called before each wait; `attempt` counts failures so far (1 = first failure). */
  readonly onRetry: (error: unknown, attempt: number, delayMs: number) => void;
  /** Resolves early when the dataflow stops, so a stop never waits out a backoff. */
  readonly stopSignal: AbortSignal;
  readonly firstDelayMs?: number;
  readonly maxDelayMs?: number;
  /** Errors that a retry cannot fix (bad data, bad config): rethrown at once. */
  readonly isFatal?: (error: unknown) => boolean;
  /**
   * Make the first attempt even when the dataflow is stopping (a commit of work computed before
   * the stop); it is not retried then: a failure while stopping is thrown as it is.
   */
  readonly attemptWhenStopped?: boolean;
}

export function backoffDelay(attempt: number, firstMs: number, maxMs: number): number {
  return Math.min(maxMs, firstMs * 2 ** Math.max(0, attempt - 1));
}

/** Resolves after `ms`, or at once when `signal` aborts (never rejects). */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

/** Runs `fn(attempt)` (attempt 0 first) until it resolves; waits between failures. */
export async function retryWithBackoff<T>(fn: (attempt: number) => Promise<T>, options: RetryOptions): Promise<T> {
  const first = options.firstDelayMs ?? 100;
  const max = options.maxDelayMs ?? 5000;
  for (let attempt = 0; ; attempt++) {
    if (options.stopped() && !(attempt === 0 && options.attemptWhenStopped === true)) throw new Abandoned();
    try {
      return await fn(attempt);
    } catch (e) {
      if (e instanceof Abandoned) throw e;
      if (options.stopped()) throw options.attemptWhenStopped === true ? e : new Abandoned();
      if (options.isFatal?.(e)) throw e;
      const delay = backoffDelay(attempt + 1, first, max);
      options.onRetry(e, attempt + 1, delay);
      await sleep(delay, options.stopSignal);
    }
  }
}
