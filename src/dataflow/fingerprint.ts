/**
 * Fingerprints for logic-change detection: a sink stores the hash of the definition of everything
 * upstream of it (every member's definition and inputs, its own table spec and manual version).
 * A different hash at start means the table no longer matches the logic and is rebuilt.
 */
import { createHash } from 'node:crypto';
import type { DataflowMember, SinkMember } from './types';

/**
 * JSON with object keys sorted, so equal definitions hash equally whatever the key order.
 * Functions (column value functions) contribute their source text.
 */
export function canonicalJson(value: unknown): string {
  if (value === null || value === undefined) return 'null';
  switch (typeof value) {
    case 'number':
      return Number.isFinite(value) ? JSON.stringify(value) : JSON.stringify(String(value));
    case 'boolean':
    case 'string':
      return JSON.stringify(value);
    case 'bigint':
      return JSON.stringify(value.toString());
    case 'function':
      return JSON.stringify(`function:${value.toString()}`);
    case 'object': {
      if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
      const obj = value as Record<string, unknown>;
      const keys = Object.keys(obj)
        .filter((k) => obj[k] !== undefined)
        .sort();
      return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`).join(',')}}`;
    }
    default:
      return JSON.stringify(String(value));
  }
}

/** Ids of all members upstream of `id` (not including it), following `inputs`. */
export function upstreamIds(id: string, byId: ReadonlyMap<string, DataflowMember>): Set<string> {
  const seen = new Set<string>();
  const stack = [...(byId.get(id)?.inputs ?? [])];
  while (stack.length > 0) {
    const next = stack.pop() as string;
    if (seen.has(next)) continue;
    seen.add(next);
    const m = byId.get(next);
    if (m) stack.push(...m.inputs);
  }
  return seen;
}

/** What a member contributes to the fingerprints of the sinks downstream of it. */
function memberPart(m: DataflowMember): unknown {
  const part: Record<string, unknown> = {
    id: m.id,
    type: m.type,
    role: m.role,
    inputs: [...m.inputs].sort(),
    definition: m.definition,
  };
  if (m.role === 'source') part.query = m.query;
  return part;
}

/** The fingerprint a sink stores: sha256 of the canonical JSON of its upstream and its own table. */
export function sinkFingerprint(sink: SinkMember, byId: ReadonlyMap<string, DataflowMember>): string {
  const upstream = [...upstreamIds(sink.id, byId)]
    .sort()
    .map((id) => byId.get(id))
    .filter((m): m is DataflowMember => m !== undefined)
    .map(memberPart);
  const own = { ...(memberPart(sink) as Record<string, unknown>), table: sink.table, version: sink.version };
  return createHash('sha256')
    .update(canonicalJson({ upstream, sink: own }))
    .digest('hex');
}
