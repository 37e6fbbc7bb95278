/**
 * How the coordinator names members, values and events in messages and statuses: short enough for
 * a status line or a log, and with the event's stream, offset and Lamport stamp so it can be found.
 */
import { abbreviate, errorText, shortStatus } from '../core/message-text';
import type { Value } from '../engine/types';
import { SinkDatabaseError } from '../sinks/errors';
import type { ActyxEvent } from '../sources/types';
import type { DataflowMember } from './types';

export function describeMember(m: DataflowMember): string {
  return `${m.type} ${m.label} (${m.id})`;
}

function isEventValue(v: Value): v is { readonly [k: string]: Value } {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && 'stream' in v && 'offset' in v && 'lamport' in v;
}

export function describeValue(v: Value): string {
  if (isEventValue(v)) {
    return `event ${String(v.stream)}/${String(v.offset)} (lamport ${String(v.lamport)}) ${abbreviate(JSON.stringify(v.payload))}`;
  }
  return `value ${abbreviate(JSON.stringify(v))}`;
}

/** What `DataflowListener.error` gets beside the message: the event, when the value is one. */
export function contextOf(v: Value): { event?: ActyxEvent; value?: Value } {
  return isEventValue(v) ? { event: v as unknown as ActyxEvent, value: v } : { value: v };
}

/** The retrying status: what to set or do when the error says (its hint), else the start of its message. */
export function retryingText(e: unknown): string {
  const hint = e instanceof SinkDatabaseError ? e.hint : undefined;
  return hint ? `retrying: ${hint}` : shortStatus(`retrying: ${errorText(e)}`);
}
