/**
 * Cuts a pull-based stream of chunks into batches of at most `batchSize` items, or whatever arrived
 * within `batchMs` of a batch's first item. The consumer's `onBatch` is awaited before more is
 * pulled, so a slow consumer (a slow database) pauses reading: back-pressure through the iterator.
 */

export interface BatcherOptions<T> {
  /** Largest batch; a function is asked again for each item (the limit may change while reading). */
  readonly batchSize: number | (() => number);
  readonly batchMs: number;
  /** Items that close the batch they are in at once (e.g. "caught up"). */
  readonly flushesBatch?: (item: T) => boolean;
  /** Reading stops (the pending batch is abandoned) once this is aborted. */
  readonly signal: AbortSignal;
}

/**
 * The default largest step for stored events (catch-up, replay): 10× the live batch size, at most
 * 2,500 events. Larger steps save little once per-group work is incremental (scan, maxBy, count …),
 * while what a step keeps alive is copied by every young-generation collection during it
 * (measured in BENCHMARKS.md: 2,500 beat 1,000, 5,000 and 10,000 end to end on SQLite). Commits
 * are not bound to steps while catching up: steps join the commit that waits (pending-commit.ts).
 * A `reduce`, which recomputes a touched group per step, prefers larger steps: see the setting.
 */
export function catchUpBatchSize(batchSize: number): number {
  return Math.max(1, Math.min(10 * batchSize, 2_500));
}

/** The per-chunk face of a per-item iterable (sources without a batched API). */
export async function* chunksOf<T>(items: AsyncIterable<T>): AsyncGenerator<readonly T[], void, undefined> {
  for await (const item of items) yield [item];
}

/**
 * Reads `chunks` to the end (or until aborted), calling `onBatch` in order, never concurrently.
 * `end` is true for the last call after the iterable finished. If reading throws, the items read so
 * far are handed on first, then the error is rethrown (the caller resumes after them).
 */
export async function readInBatches<T>(
  chunks: AsyncIterable<readonly T[]>,
  options: BatcherOptions<T>,
  onBatch: (batch: T[], end: boolean) => Promise<void>,
): Promise<void> {
  const { batchSize, batchMs, signal, flushesBatch } = options;
  const limit = (): number => (typeof batchSize === 'number' ? batchSize : batchSize());
  // Each batch is sized like the one before (growing by push would copy a 2,500-item catch-up batch
  // several times; live batches of one event keep small arrays), trimmed at flush.
  let batch: T[] = new Array<T>(16);
  let count = 0;
  let timer: NodeJS.Timeout | null = null;
  let gate: Promise<void> = Promise.resolve();
  let busy = 0;
  let gateError: unknown = null;

  const flush = (end: boolean): Promise<void> => {
    if (timer !== null) clearTimeout(timer);
    timer = null;
    const taken = batch;
    taken.length = count;
    batch = new Array<T>(Math.max(16, Math.min(count, limit())));
    count = 0;
    busy++;
    gate = gate
      .then(() => (signal.aborted || gateError !== null ? undefined : onBatch(taken, end)))
      .catch((e: unknown) => {
        gateError ??= e;
      })
      .finally(() => {
        busy--;
      });
    return gate;
  };
  const checkGate = (): void => {
    if (gateError !== null) throw gateError;
  };

  try {
    for await (const chunk of chunks) {
      if (signal.aborted) break;
      // A timer flush may still be waiting for room downstream: wait for it before reading on.
      if (busy > 0) await gate;
      checkGate();
      if (signal.aborted) break;
      // Indexed: an iterator here would allocate a result object per item (the loop awaits).
      for (let i = 0; i < chunk.length; i++) {
        const item = chunk[i] as T;
        batch[count++] = item;
        if (count >= limit() || (flushesBatch !== undefined && flushesBatch(item))) {
          await flush(false);
          checkGate();
          if (signal.aborted) break;
        }
      }
      if (count > 0 && timer === null) timer = setTimeout(() => void flush(false), batchMs);
    }
  } catch (e) {
    if (timer !== null) clearTimeout(timer);
    if (!signal.aborted && count > 0) await flush(false);
    await gate;
    checkGate();
    throw e;
  }
  if (timer !== null) clearTimeout(timer);
  if (signal.aborted) return;
  await flush(true);
  checkGate();
}
