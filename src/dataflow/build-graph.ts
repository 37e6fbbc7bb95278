/**
 * Turns the members of a dataflow into one engine graph: an input per source member, the
 * operators' own parts (built in topological order), an output per sink and per tapped operator.
 * A member that cannot be built (cycle, missing or wrong input, build error) is reported with its
 * id and excluded together with everything downstream of it; the rest of the dataflow still runs.
 */
import { createGraph } from '../engine';
import type { Collection, Graph } from '../engine/types';
import { matchesEvent, parseQuery } from '../sources/aql';
import { eventOrderKey } from '../sources/event-order';
import type { ActyxEvent } from '../sources/types';
import type { DataflowMember, OperatorMember, SinkMember, SourceMember, Stage } from './types';

export type ParsedQuery = ReturnType<typeof parseQuery>;

export interface BuiltSource {
  readonly member: SourceMember;
  readonly parsed: ParsedQuery;
  /** Whether an event of the dataflow's union query belongs to this source. */
  readonly matches: (event: ActyxEvent) => boolean;
}

export interface MemberFailure {
  readonly memberId: string;
  readonly message: string;
  /** True for the member where the problem is; false for members excluded because an input failed. */
  readonly cause: boolean;
}

export interface BuiltDataflow {
  readonly graph: Graph;
  /** Sources feeding at least one working sink or tap. */
  readonly sources: readonly BuiltSource[];
  readonly sinks: readonly SinkMember[];
  readonly taps: readonly OperatorMember[];
  readonly failures: readonly MemberFailure[];
  readonly byId: ReadonlyMap<string, DataflowMember>;
}

/** Output names in the engine graph (members ids are unique, the prefixes keep the kinds apart). */
export const sinkOutput = (id: string): string => `sink:${id}`;
export const tapOutput = (id: string): string => `tap:${id}`;

function describe(m: DataflowMember): string {
  return `${m.label} (${m.type} ${m.id})`;
}

/** Members in an order where every member comes after its inputs; members on a cycle are returned apart. */
export function topologicalOrder(members: readonly DataflowMember[]): {
  order: DataflowMember[];
  cyclic: DataflowMember[];
} {
  const byId = new Map(members.map((m) => [m.id, m]));
  const pending = new Map<string, number>();
  const downstream = new Map<string, string[]>();
  for (const m of members) {
    const known = m.role === 'source' ? [] : m.inputs.filter((i) => byId.has(i));
    pending.set(m.id, known.length);
    for (const i of known) {
      const list = downstream.get(i) ?? [];
      list.push(m.id);
      downstream.set(i, list);
    }
  }
  const ready = members.filter((m) => pending.get(m.id) === 0).map((m) => m.id);
  const order: DataflowMember[] = [];
  while (ready.length > 0) {
    const id = ready.shift() as string;
    order.push(byId.get(id) as DataflowMember);
    for (const d of downstream.get(id) ?? []) {
      const left = (pending.get(d) as number) - 1;
      pending.set(d, left);
      if (left === 0) ready.push(d);
    }
  }
  const placed = new Set(order.map((m) => m.id));
  return { order, cyclic: members.filter((m) => !placed.has(m.id)) };
}

/** Concatenates several collection stages into one (a wire fan-in); grouped stages cannot be merged. */
function collectionOf(stages: readonly Stage[], who: DataflowMember, byInput: readonly string[]): Collection {
  const cols: Collection[] = [];
  stages.forEach((s, i) => {
    if (s.kind !== 'collection') {
      throw new Error(
        `${describe(who)} needs ungrouped input, but ${byInput[i]} delivers grouped data: put an operator that ungroups (e.g. dd-maxby, dd-aggregate) before it`,
      );
    }
    cols.push(s.collection);
  });
  const [first, ...rest] = cols;
  if (first === undefined) throw new Error(`${describe(who)} has no input`);
  return rest.length === 0 ? first : first.concat(rest, { name: who.id });
}

export function buildDataflow(members: readonly DataflowMember[]): BuiltDataflow {
  const graph = createGraph();
  const byId = new Map(members.map((m) => [m.id, m]));
  const failures: MemberFailure[] = [];
  const failed = new Set<string>();
  const fail = (m: DataflowMember, message: string, cause: boolean): void => {
    failed.add(m.id);
    failures.push({ memberId: m.id, message, cause });
  };

  const sourceMembers = members.filter((m): m is SourceMember => m.role === 'source');
  const sourceIds = new Set(sourceMembers.map((s) => s.sourceId));
  if (sourceIds.size > 1) {
    const list = sourceMembers.map((s) => `${describe(s)} uses ${s.sourceId}`).join('; ');
    for (const m of members)
      fail(m, `all event sources of one dataflow must use the same actyx-config: ${list}`, m.role === 'source');
    return { graph, sources: [], sinks: [], taps: [], failures, byId };
  }

  const { order, cyclic } = topologicalOrder(members);
  if (cyclic.length > 0) {
    const names = cyclic.map(describe).join(', ');
    for (const m of cyclic) fail(m, `wires form a cycle through ${names}; a dataflow must be acyclic`, true);
  }

  const stages = new Map<string, Stage>();
  const parsed = new Map<string, ParsedQuery>();
  const sinks: SinkMember[] = [];
  const taps: OperatorMember[] = [];
  for (const m of order) {
    if (m.role === 'source') {
      try {
        parsed.set(m.id, parseQuery(m.query));
        stages.set(m.id, {
          kind: 'collection',
          collection: graph.input(m.id, { insertOnly: true, order: eventOrderKey }),
        });
      } catch (e) {
        fail(m, `${describe(m)}: invalid query ${JSON.stringify(m.query)}: ${(e as Error).message}`, true);
      }
      continue;
    }
    if (m.inputs.length === 0) {
      fail(m, `${describe(m)} has no input: wire an actyx-subscribe or dd-* node into it`, true);
      continue;
    }
    const missing = m.inputs.filter((i) => !byId.has(i));
    if (missing.length > 0) {
      fail(m, `${describe(m)} has inputs that are not part of this dataflow: ${missing.join(', ')}`, true);
      continue;
    }
    const badInput = m.inputs.find((i) => failed.has(i));
    if (badInput !== undefined) {
      fail(
        m,
        `${describe(m)} is not running because its input ${describe(byId.get(badInput) as DataflowMember)} failed`,
        false,
      );
      continue;
    }
    const inputStages = m.inputs.map((i) => stages.get(i) as Stage);
    try {
      if (m.role === 'operator') {
        const out = m.build(inputStages, m.inputs);
        stages.set(m.id, out);
        if (m.tap) {
          graph.output(
            tapOutput(m.id),
            out.kind === 'collection' ? out.collection : out.grouped.ungroup({ name: m.id }),
          );
          taps.push(m);
        }
      } else {
        // The sinks consolidate by row cells themselves (and an insert-only batch needs no consolidation).
        graph.output(sinkOutput(m.id), collectionOf(inputStages, m, m.inputs), { consolidate: false });
        sinks.push(m);
      }
    } catch (e) {
      fail(
        m,
        (e as Error).message.includes(m.id) ? (e as Error).message : `${describe(m)}: ${(e as Error).message}`,
        true,
      );
    }
  }

  // Sources that feed nothing that runs are not read at all.
  const needed = new Set<string>();
  const mark = (id: string): void => {
    if (needed.has(id)) return;
    needed.add(id);
    for (const i of byId.get(id)?.inputs ?? []) mark(i);
  };
  for (const m of [...sinks, ...taps]) mark(m.id);
  const sources = sourceMembers
    .filter((s) => needed.has(s.id) && parsed.has(s.id))
    .map((s) => {
      const p = parsed.get(s.id) as ParsedQuery;
      return { member: s, parsed: p, matches: (event: ActyxEvent) => matchesEvent(p, event) };
    });
  return { graph, sources, sinks, taps, failures, byId };
}
