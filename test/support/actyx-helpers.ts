/** Small helpers for the event-source tests. */
import type { ActyxEvent, EventSource, SourceDiagnostic, SubscriptionItem } from '../../src/sources/types';

/** Polls `condition` every 5 ms until it holds; throws with `what` after `timeoutMs`. */
export async function waitFor(condition: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** A running subscription that records what it receives, until `stop()`. */
export class Collector {
  readonly events: ActyxEvent[] = [];
  readonly items: SubscriptionItem[] = [];
  readonly diagnostics: SourceDiagnostic[] = [];
  error: unknown = null;
  private readonly abort = new AbortController();
  readonly done: Promise<void>;

  constructor(source: EventSource, query: string, lowerBound: Record<string, number> = {}) {
    const iterable = source.subscribe(query, lowerBound, {
      signal: this.abort.signal,
      onDiagnostic: (d) => this.diagnostics.push(d),
    });
    this.done = (async () => {
      try {
        for await (const item of iterable) {
          this.items.push(item);
          if (item.type === 'event') this.events.push(item.event);
        }
      } catch (err) {
        this.error = err;
      }
    })();
  }

  get caughtUp(): boolean {
    return this.items.some((i) => i.type === 'caughtUp');
  }

  async stop(): Promise<void> {
    this.abort.abort();
    await this.done;
  }
}

/** `stream/offset` of an event, for set comparisons. */
export function eventId(e: { stream: string; offset: number }): string {
  return `${e.stream}/${e.offset}`;
}

/** Checks that within each stream offsets strictly increase; returns a problem or null. */
export function streamOrderProblem(events: readonly ActyxEvent[]): string | null {
  const last = new Map<string, number>();
  for (const e of events) {
    const prev = last.get(e.stream);
    if (prev !== undefined && e.offset <= prev) return `${e.stream}: offset ${e.offset} after ${prev}`;
    last.set(e.stream, e.offset);
  }
  return null;
}

/** `n` publish requests with `tags` and payloads `{n: from…}`. */
export function tagged(n: number, tags: string[], from = 0): Array<{ tags: string[]; payload: { n: number } }> {
  return Array.from({ length: n }, (_, i) => ({ tags, payload: { n: from + i } }));
}

/** A TCP port nothing listens on (just released by a probe server). */
export async function freePort(): Promise<number> {
  const { createServer } = await import('node:net');
  return new Promise((resolve) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}
