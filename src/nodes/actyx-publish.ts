/**
 * actyx-publish: publishes `msg.payload` (an object, or an array of objects) as events with the
 * configured tags plus `msg.tags`, in message order. The output message carries what the log
 * assigned (lamport, stream, offset, timestamp); a failed publish reaches Catch nodes.
 */
import { errorText, shortStatus } from '../core/message-text';
import type { EventSource, PublishRequest } from '../sources/types';
import { findActyxConfig, getEventSource, type EventSourceLease } from './actyx-connection';
import type { Node, NodeAPI, NodeDef, NodeMessage } from './red';

/** Tags from a comma- or newline-separated setting. */
export function parseTagList(text: unknown): string[] {
  if (typeof text !== 'string') return [];
  return text
    .split(/[,\n]/)
    .map((t) => t.trim())
    .filter((t) => t !== '');
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !Buffer.isBuffer(value);
}

function describeType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (Buffer.isBuffer(value)) return 'a Buffer';
  return typeof value === 'string'
    ? `a string (${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value)})`
    : `a ${typeof value}`;
}

/** The events a message asks for; throws an Error saying what is wrong with it. */
export function eventsOf(msg: NodeMessage, configTags: readonly string[]): PublishRequest[] {
  const extra = msg.tags;
  let msgTags: string[] = [];
  if (typeof extra === 'string') msgTags = parseTagList(extra);
  else if (Array.isArray(extra) && extra.every((t) => typeof t === 'string'))
    msgTags = extra.map((t: string) => t.trim()).filter((t) => t !== '');
  else if (extra !== undefined && extra !== null)
    throw new Error(`msg.tags must be a string or an array of strings, got ${describeType(extra)}`);
  const tags = [...new Set([...configTags, ...msgTags])];
  if (tags.length === 0) throw new Error('no tags: set tags in the node or send msg.tags');
  const payloads = Array.isArray(msg.payload) ? msg.payload : [msg.payload];
  if (Array.isArray(msg.payload) && payloads.length === 0)
    throw new Error('msg.payload is an empty array: nothing to publish');
  payloads.forEach((p, i) => {
    if (!isPlainObject(p)) {
      const where = Array.isArray(msg.payload) ? `msg.payload[${i}]` : 'msg.payload';
      throw new Error(`${where} must be an object (or msg.payload an array of objects), got ${describeType(p)}`);
    }
  });
  try {
    JSON.stringify(payloads);
  } catch (err) {
    throw new Error(`msg.payload cannot be published as JSON: ${errorText(err)}`);
  }
  return payloads.map((payload) => ({ tags, payload }));
}

export default function (RED: NodeAPI): void {
  function ActyxPublish(this: Node, config: NodeDef): void {
    RED.nodes.createNode(this, config);
    const node = this;
    const configTags = parseTagList(config.tags);
    let lease: EventSourceLease | null = null;
    let problem: string | null = null;
    try {
      lease = getEventSource(RED, config.actyx);
    } catch (err) {
      problem = errorText(err);
      node.error(problem);
      node.status({
        fill: 'red',
        shape: 'ring',
        text: findActyxConfig(RED, config.actyx) ? 'cannot open source' : 'no event source',
      });
    }
    const source: EventSource | null = lease?.source ?? null;

    let published = 0;
    // Publishes one message after the other, so events keep the order of the messages.
    let queue: Promise<void> = Promise.resolve();

    node.on('input', (msg, send, done) => {
      queue = queue.then(async () => {
        try {
          if (!source) throw new Error(problem ?? 'no event source');
          const events = eventsOf(msg, configTags);
          const result = await source.publish(events);
          published += result.length;
          const assigned = result.map((r, i) => ({
            lamport: r.lamport,
            stream: r.stream,
            offset: r.offset,
            timestamp: r.timestamp,
            tags: events[i]!.tags,
          }));
          msg.published = assigned;
          if (!Array.isArray(msg.payload)) msg.event = assigned[0];
          node.status({ fill: 'green', shape: 'dot', text: `published ${published}` });
          send(msg);
          done();
        } catch (err) {
          node.status({ fill: 'red', shape: 'ring', text: shortStatus(`error: ${errorText(err)}`) });
          done(new Error(`publishing failed: ${errorText(err)}`));
        }
      });
    });

    node.on('close', (_removed: boolean, done: () => void) => {
      queue
        .then(() => lease?.release())
        .catch((err: unknown) => node.warn(`releasing the event source failed: ${errorText(err)}`))
        .finally(done);
    });
  }
  RED.nodes.registerType('actyx-publish', ActyxPublish);
}
