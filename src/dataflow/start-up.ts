/**
 * Start-up planning: read every sink's stored state, drop the tables to rebuild and create the
 * missing ones, warn about tables ahead of the source, and turn the restart plan's chain of levels
 * (restart-plan.ts) into the bounded reads that bring every sink up to the greatest level.
 */
import { covers, type OffsetMap, offsetOf } from '../core/offset-map';
import { asideTableName } from '../sinks/identifiers';
import type { SinkState, TableSpec } from '../sinks/types';
import type { CommitPipeline } from './commit-pipeline';
import type { DataflowContext, Phase } from './context';
import { planRestart, type Level } from './restart-plan';
import { clockBound, durationText, timeText } from './retention';
import type { SinkMember } from './types';

/**
 * Reads every sink's state, then drops the tables to rebuild and creates missing ones (in that
 * order, so a table whose columns changed is dropped before the new columns are created). Sets the
 * context's watermark, `rebuilt` and `rebuilding`; returns the levels of the sinks kept.
 */
export async function openSinks(
  ctx: DataflowContext,
  commits: CommitPipeline,
  sinks: readonly SinkMember[],
): Promise<Level[]> {
  const states = new Map<string, SinkState>();
  await Promise.all(
    [...ctx.databases].map(([db, list]) =>
      commits.dbWork(db, () =>
        db.transaction(async (tx) => {
          const fence = commits.fenceFor(db);
          if (fence !== undefined) await tx.fence(fence);
          for (const s of list) states.set(s.id, await tx.readState(s.table));
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
          const fence = commits.fenceFor(db);
          if (fence !== undefined) await tx.fence(fence);
          for (const s of list) {
            const shadow: TableSpec = { ...s.table, name: asideTableName(s.table.name) };
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
  return plan.levels.map((l) => ({ offsets: l.offsets, sinkIds: [...l.sinkIds] }));
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
 */
export function restartReads(levels: readonly Level[], present: OffsetMap, cutoff: number | null): BoundedRead[] {
  const effective: Level[] = levels.length > 0 ? [...levels] : [{ offsets: present, sinkIds: [] }];
  const reads: BoundedRead[] = [];
  const lowest = effective[0] as Level;
  if (Object.keys(lowest.offsets).length > 0) {
    reads.push({
      lower: {},
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
