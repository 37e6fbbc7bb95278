/**
 * Restart planning: from each sink's stored state, decide which tables must be rebuilt and in which
 * order the others are brought forward. Sinks whose offsets form a chain C1 ⊆ C2 ⊆ … are caught up
 * level by level (feeding C1 rebuilds operator state without writing; C2∖C1 is written only to the
 * sinks at C1; …), so no sink ever sees an event twice.
 */
import { covers, type OffsetMap, offsetsEqual, offsetsWeight } from '../core/offset-map';
import type { SinkState } from '../sinks/types';
import { timeText } from './retention';

export interface SinkStart {
  readonly id: string;
  readonly state: SinkState;
  /** The fingerprint of the sink's current definition. */
  readonly fingerprint: string;
}

export interface Rebuild {
  readonly id: string;
  readonly reason: string;
}

export interface Level {
  readonly offsets: OffsetMap;
  readonly sinkIds: readonly string[];
}

export interface RestartPlan {
  /** Sinks whose table is dropped and recreated (they start at the empty offset map). */
  readonly rebuild: readonly Rebuild[];
  /** Distinct offset maps, ascending (each covers the previous), with the sinks at each. */
  readonly levels: readonly Level[];
  /** Greatest stored watermark of the sinks kept, for retention. */
  readonly watermark: number | null;
}

const isEmpty = (o: OffsetMap): boolean => Object.keys(o).length === 0;

/**
 * `watermarkBound`: with a retention window, the clock bound now (retention.ts). A table whose
 * stored watermark is beyond it was written under a cutoff that left events out as outside the
 * window; it is rebuilt, which corrects the watermark (`text` words the bound for the reason).
 */
export function planRestart(
  sinks: readonly SinkStart[],
  watermarkBound: { readonly bound: number; readonly text: string } | null = null,
): RestartPlan {
  const rebuild: Rebuild[] = [];
  const kept: SinkStart[] = [];
  for (const s of sinks) {
    const w = s.state.watermark;
    if (watermarkBound !== null && w !== null && w > watermarkBound.bound) {
      rebuild.push({
        id: s.id,
        reason: `its stored retention watermark ${timeText(w)} is beyond the clock bound (${watermarkBound.text}): the window's cutoff of that watermark left later events out, so the table is rebuilt with the watermark corrected`,
      });
    } else if (s.state.fingerprint === null) {
      if (isEmpty(s.state.offsets)) kept.push(s);
      else rebuild.push({ id: s.id, reason: 'its table has offsets but no stored fingerprint' });
    } else if (s.state.fingerprint !== s.fingerprint) {
      rebuild.push({ id: s.id, reason: 'the definition upstream of it (or its table spec or version) changed' });
    } else {
      kept.push(s);
    }
  }
  // Keep the most advanced sink; walking down, each kept sink must be covered by the one above.
  kept.sort((a, b) => offsetsWeight(b.state.offsets) - offsetsWeight(a.state.offsets));
  const chain: SinkStart[] = [];
  for (const s of kept) {
    const above = chain[chain.length - 1];
    if (above === undefined || covers(above.state.offsets, s.state.offsets)) chain.push(s);
    else
      rebuild.push({
        id: s.id,
        reason: `its offsets are not comparable with those of ${above.id} (neither covers the other)`,
      });
  }
  chain.reverse();
  const levels: { offsets: OffsetMap; sinkIds: string[] }[] = [];
  if (rebuild.length > 0) levels.push({ offsets: {}, sinkIds: rebuild.map((r) => r.id) });
  for (const s of chain) {
    const last = levels[levels.length - 1];
    if (last !== undefined && offsetsEqual(last.offsets, s.state.offsets)) last.sinkIds.push(s.id);
    else levels.push({ offsets: s.state.offsets, sinkIds: [s.id] });
  }
  let watermark: number | null = null;
  for (const s of chain) {
    const w = s.state.watermark;
    if (w !== null && (watermark === null || w > watermark)) watermark = w;
  }
  return { rebuild, levels, watermark };
}
