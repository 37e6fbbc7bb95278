/**
 * The causal order of events as an engine order key: `[lamport, stream, offset]`. Lamport
 * timestamps order events causally across streams (an event's stamp exceeds those of every
 * event its node had seen); the stream id breaks ties between streams and the offset orders a
 * stream's own events. Records derived from an event carry this key through the engine (see
 * "Order keys" in src/engine/types.ts), so `reduce`/`scan` see a group's records in causal order
 * without a field for it, however the records look after a map.
 *
 * ```ts
 * graph.input('events', { insertOnly: true, order: eventOrderKey });
 * eventOrderKey({ lamport: 7, stream: 'a-0', offset: 3, … }); // → [7, 'a-0', 3]
 * ```
 */
import type { Value } from '../engine/types';
import type { ActyxEvent } from './types';

export function eventOrderKey(event: Value): Value {
  const e = event as unknown as ActyxEvent;
  return [e.lamport, e.stream, e.offset];
}
