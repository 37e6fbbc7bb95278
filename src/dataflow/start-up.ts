/**
 * Start-up planning: read every sink's stored state, drop the tables to rebuild and create the
 * missing ones, warn about tables ahead of the source, and turn the restart plan's chain of levels
 * (restart-plan.ts) into the bounded reads that bring every sink up to the greatest level.
 */
import { covers, type OffsetMap, offsetOf, offsetsEqual } from '../core/offset-map';
import { asideTableName } from '../sinks/identifiers';
import type { SinkState, StateScope, TableSpec } from '../sinks/types';
import { scopeProblem } from './durable-state';
import type { CommitPipeline } from './commit-pipeline';
import type { DataflowContext, Phase } from './context';
import { planRestart, type Level } from './restart-plan';
import { clockBound, durationText, timeText } from './retention';
import type { SinkMember } from './types';

/** What openSinks found: the kept sinks' levels, and with durable state the level it continues from. */
export interface OpenedSinks {
  readonly levels: Level[];
  /** Durable state: the stored state's level when it is continued, else null (it starts empty). */
  readonly stateLevel: OffsetMap | null;
}

/**
 * Reads every sink's state (and, with durable state, the scope), then drops the tables to rebuild
 * and creates missing ones (in that order, so a table whose columns changed is dropped before the
 * new columns are created) and resets a scope that cannot be continued. Sets the context's
 * watermark, `rebuilt`, `rebuilding` and `stateCutoff`; returns the levels of the sinks kept.
 */
export async function openSinks(
  ctx: DataflowContext,
  commits: CommitPipeline,
  sinks: readonly SinkMember[],
): Promise<OpenedSinks> {
  const states = new Map<string, SinkState>();
  const durable = ctx.durable;
  let scope: StateScope | null = null;
  await Promise.all(
    [...ctx.databases].map(([db, list]) =>
      commits.dbWork(db, () =>
        db.transaction(async (tx) => {
          await commits.fenceIn(db, tx);
          for (const s of list) states.set(s.id, await tx.readState(s.table));
          if (durable !== null && db === durable.db) scope = (await tx.readScope?.(durable.scope)) ?? null;
        }),
      ),
    ),
  );
  // With retention, a stored watermark beyond the clock bound is corrected by a rebuild (retention.ts).
  const now = ctx.now();
  const bound =
    ctx.settings.retentionMicros === null
      ? null
      : {
          bound: clockBound(now, ctx.clockAheadMicros),
          text: `the wall clock ${timeText(Math.floor(now * 1000))} plus ${durationText(ctx.clockAheadMicros)}`,
        };
  const plan = planRestart(
    sinks.map((s) => ({
      id: s.id,
      state: states.get(s.id) as SinkState,
      fingerprint: ctx.fingerprints.get(s.id) as string,
    })),
    bound,
  );
  ctx.watermark = plan.watermark;
  ctx.rebuilt = plan.rebuild.map((r) => ({ ...r }));
  const rebuild = new Map(plan.rebuild.map((r) => [r.id, r.reason]));
  const byId = new Map(sinks.map((s) => [s.id, s]));
  for (const [id, reason] of rebuild) {
    const s = byId.get(id) as SinkMember;
    ctx.rebuilding.add(id);
    ctx.listener.log(
      'warn',
      `db-sink ${s.label} (${id}): rebuilding table ${s.table.name} in ${s.database.label} from the events, because ${reason}`,
    );
  }
  // Durable state continues when it is at or below the lowest kept table's level, else it is
  // rebuilt from the events with the tables (reset in the transaction that drops the rebuilt ones).
  const lowest = plan.levels[0]?.offsets ?? {};
  const stored = scope as StateScope | null;
  const problem = durable === null ? null : scopeProblem(stored, durable.fingerprint, lowest);
  const stateLevel = durable === null || problem !== null ? null : (stored as StateScope).offsets;
  ctx.stateCutoff = stateLevel === null ? null : (stored as StateScope).cutoff;
  if (durable !== null && problem !== null && plan.levels.some((l) => Object.keys(l.offsets).length > 0)) {
    ctx.listener.log('info', `building the operator state in ${durable.db.label} from the events, because ${problem}`);
  }
  // Rebuilt sinks are built aside: a shadow table (dropped first: a stale one of an interrupted
  // rebuild) is created empty with the new fingerprint and filled by the catch-up, while the old
  // table stays as it is until the shadow is swapped in (reader.ts). A stale shadow of a kept sink
  // is dropped. New sinks get their fingerprint at once.
  await Promise.all(
    [...ctx.databases].map(([db, list]) =>
      commits.dbWork(db, () =>
        db.transaction(async (tx) => {
          // NB: on MariaDB the DDL below commits the check with it; the lease then protects the
          // rest of this transaction by time alone (only a rebuild or a new table runs DDL here).
          await commits.fenceIn(db, tx);
          if (durable !== null && db === durable.db && stateLevel === null) await tx.resetScope?.(durable.scope);
          for (const s of list) {
            const shadow = shadowOf(s.table);
            if (rebuild.has(s.id) || (await tx.hasTable(shadow))) await tx.dropTable(shadow);
            const target = rebuild.has(s.id) ? shadow : s.table;
            if (rebuild.has(s.id)) ctx.shadows.set(s.id, shadow);
            await tx.ensureTable(target);
            if (rebuild.has(s.id) || (states.get(s.id) as SinkState).fingerprint === null) {
              await tx.writeState(target, {
                offsets: {},
                fingerprint: ctx.fingerprints.get(s.id) as string,
                watermark: null,
              });
            }
          }
        }),
      ),
    ),
  );
  return { levels: plan.levels.map((l) => ({ offsets: l.offsets, sinkIds: [...l.sinkIds] })), stateLevel };
}

/**
 * Kept tables behind the other tables of their dataflow (below the greatest level) are brought
 * forward aside, like a rebuild: each is copied with its offsets and meta into its shadow table
 * (start-up dropped any stale one), in one transaction per table, and the catch-up writes the copy
 * while readers keep seeing the table as it was; the copy is swapped in when the catch-up ends
 * (reader.ts). Not copied: the tables at the greatest level, which are brought forward to the
 * source's present in place, commit by commit, as live processing moves them (a copy would make
 * every restart pay for the table's size, and an interrupted catch-up would lose its progress:
 * the next start drops the stale shadow); a new table (no offsets: nothing a reader relied on);
 * and, with the operator state in the database, every table (an interrupted catch-up aside would
 * leave the state ahead of the table, so the next start would rebuild the state from all events).
 */
export async function bringForwardAside(
  ctx: DataflowContext,
  commits: CommitPipeline,
  levels: readonly Level[],
): Promise<void> {
  if (ctx.durable !== null) return;
  const behind = new Set<string>();
  for (const level of levels.slice(0, -1)) {
    if (Object.keys(level.offsets).length === 0) continue;
    for (const id of level.sinkIds) if (!ctx.shadows.has(id)) behind.add(id);
  }
  if (behind.size === 0) return;
  // One transaction per table: on MariaDB the next shadow's CREATE TABLE would commit the rows
  // copied before it (SqlSinkTransaction.ddl refuses that). NB: each copy is consistent on its own:
  // only this dataflow writes the table (the lease), and it writes nothing before the copies.
  for (const [db, list] of ctx.databases)
    for (const s of list.filter((x) => behind.has(x.id)))
      await commits.dbWork(db, () =>
        db.transaction(async (tx) => {
          // NB: on MariaDB the shadow's CREATE TABLE commits the fence check with it (as in openSinks).
          await commits.fenceIn(db, tx);
          await tx.copyTable(s.table, shadowOf(s.table));
        }),
      );
  for (const [, list] of ctx.databases)
    for (const s of list) if (behind.has(s.id)) ctx.shadows.set(s.id, shadowOf(s.table));
}

/** The shadow table a sink is rebuilt or brought forward in (swapped in when the catch-up ends). */
function shadowOf(table: TableSpec): TableSpec {
  return { ...table, name: asideTableName(table.name) };
}

/** Tables that reflect events the source does not have (`present`): the log was replaced or reset. */
export function warnIfAhead(
  ctx: DataflowContext,
  present: OffsetMap,
  levels: readonly Level[],
  sinks: readonly SinkMember[],
): void {
  for (const level of levels) {
    if (covers(present, level.offsets)) continue;
    const streams = Object.keys(level.offsets).filter(
      (s) => (level.offsets[s] as number) > (offsetOf(present, s) ?? -1),
    );
    for (const id of level.sinkIds) {
      const sink = sinks.find((s) => s.id === id);
      const message = `table ${sink?.table.name ?? id} reflects events the event source does not have (${streams.slice(0, 3).join(', ')}${streams.length > 3 ? ', …' : ''}): was the event log replaced or reset? Change the db-sink's version to rebuild the table from the current log.`;
      ctx.listener.log('warn', message);
      if (sink) ctx.listener.error(sink.id, message);
    }
  }
}

/** Stored events in (lower, upper], read in `phase`. */
export interface BoundedRead {
  readonly lower: OffsetMap;
  readonly upper: OffsetMap;
  readonly phase: Phase;
}

/**
 * The reads before following the source: first what every table already reflects (the lowest
 * level), writing nothing — this only rebuilds operator state; then each level up to the next,
 * written to the sinks at the levels below (the higher ones already have it). Without levels (no
 * sink kept), the lowest level is the source's present offsets (`present`). `cutoff`: the stored
 * watermark's retention cutoff, so the replay rebuilds exactly the events the state held.
 * `stateLevel`: durable state continued from this level (at or below the lowest): only the events
 * after it are replayed (none when it is the lowest level).
 */
export function restartReads(
  levels: readonly Level[],
  present: OffsetMap,
  cutoff: number | null,
  stateLevel: OffsetMap | null = null,
): BoundedRead[] {
  const effective: Level[] = levels.length > 0 ? [...levels] : [{ offsets: present, sinkIds: [] }];
  const reads: BoundedRead[] = [];
  const lowest = effective[0] as Level;
  const from = stateLevel ?? {};
  if (Object.keys(lowest.offsets).length > 0 && !offsetsEqual(from, lowest.offsets)) {
    reads.push({
      lower: from,
      upper: lowest.offsets,
      phase: { name: 'replaying', writing: new Set(), cutoff, taps: false, decided: true },
    });
  }
  const writing = new Set<string>();
  for (let i = 0; i + 1 < effective.length; i++) {
    for (const id of (effective[i] as Level).sinkIds) writing.add(id);
    reads.push({
      lower: (effective[i] as Level).offsets,
      upper: (effective[i + 1] as Level).offsets,
      phase: { name: 'catching up', writing: new Set(writing), cutoff, taps: false, decided: true },
    });
  }
  return reads;
}
