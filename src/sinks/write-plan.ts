/**
 * What a consolidated batch means for a table, before any SQL: the same plan for both dialects.
 * Records are first reduced to their written cells and consolidated again at that level, so two
 * records that differ only in fields no column reads cancel out instead of causing a delete and an
 * insert of the same row.
 */
import type { Batch, Update } from '../engine/types';
import type { SqlValue } from './types';
import { cellsKey, type CompiledTable } from './table-spec';
import { SinkDataError } from './errors';

export interface CountedRow {
  readonly cells: readonly SqlValue[];
  /** How many copies to insert or delete (> 0). */
  readonly count: number;
}

/** Multiset: insert `count` copies of each insert, delete up to `count` matching rows of each delete. */
export interface MultisetPlan {
  readonly mode: 'multiset';
  readonly inserts: readonly CountedRow[];
  readonly deletes: readonly CountedRow[];
}

/** One key of a keyed table: its new row (upsert) or null (delete), and the retracted row if the batch had one. */
export interface KeyedEntry {
  readonly key: readonly SqlValue[];
  readonly next: readonly SqlValue[] | null;
  readonly retracted: readonly SqlValue[] | null;
}

export interface KeyedPlan {
  readonly mode: 'keyed';
  readonly entries: readonly KeyedEntry[];
}

export type WritePlan = MultisetPlan | KeyedPlan;

/** Sums diffs per distinct tuple of cells, dropping tuples that cancel out. */
function consolidateCells(
  table: CompiledTable,
  batch: Batch,
): Map<string, { cells: readonly SqlValue[]; diff: number }> {
  const byCells = new Map<string, { cells: readonly SqlValue[]; diff: number }>();
  for (let i = 0; i < batch.length; i++) {
    const u = batch[i] as Update;
    const diff = u[1];
    if (diff === 0) continue;
    const cells = table.cells(u[0]);
    const k = cellsKey(cells);
    const hit = byCells.get(k);
    if (hit) hit.diff += diff;
    else byCells.set(k, { cells, diff });
  }
  for (const [k, v] of byCells) if (v.diff === 0) byCells.delete(k);
  return byCells;
}

export function planWrites(table: CompiledTable, batch: Batch): WritePlan {
  if (table.spec.mode === 'multiset' && onlyInsertions(batch)) {
    // Only insertions: rows with the same cells would merely add up their counts, so there is
    // nothing to consolidate (the common case of an append-only view while catching up).
    const inserts = new Array<CountedRow>(batch.length);
    for (let i = 0; i < batch.length; i++) {
      const u = batch[i] as Update;
      inserts[i] = { cells: table.cells(u[0]), count: u[1] };
    }
    return { mode: 'multiset', inserts, deletes: [] };
  }
  const rows = consolidateCells(table, batch);
  if (table.spec.mode === 'multiset') {
    const inserts: CountedRow[] = [];
    const deletes: CountedRow[] = [];
    for (const { cells, diff } of rows.values()) (diff > 0 ? inserts : deletes).push({ cells, count: Math.abs(diff) });
    return { mode: 'multiset', inserts, deletes };
  }
  const name = table.spec.name;
  const byKey = new Map<
    string,
    { key: SqlValue[]; next: readonly SqlValue[] | null; retracted: (readonly SqlValue[])[] }
  >();
  for (const { cells, diff } of rows.values()) {
    const key = table.keyPositions.map((i) => cells[i]);
    const nullAt = key.indexOf(null);
    if (nullAt >= 0) {
      throw new SinkDataError(
        name,
        `key column "${table.written[table.keyPositions[nullAt]].name}" is NULL in row ${describeRow(table, cells)}`,
      );
    }
    const k = cellsKey(key);
    let entry = byKey.get(k);
    if (!entry) byKey.set(k, (entry = { key, next: null, retracted: [] }));
    if (diff < 0) {
      entry.retracted.push(cells);
    } else if (diff > 1 || entry.next !== null) {
      throw duplicateKey(table, key, entry.next === null ? null : table.rowObject(entry.next), cells, diff);
    } else {
      entry.next = cells;
    }
  }
  const entries: KeyedEntry[] = [];
  for (const e of byKey.values())
    entries.push({ key: e.key, next: e.next, retracted: e.retracted.length === 1 ? e.retracted[0] : null });
  return { mode: 'keyed', entries };
}

/**
 * The view holds two rows for one key of a keyed table (`first`: the other row, null when `second`
 * comes in `copies` > 1 copies): the same error whether both rows are in one batch or one is
 * already stored, so the outcome does not depend on how the events were batched.
 */
export function duplicateKey(
  table: CompiledTable,
  key: readonly SqlValue[],
  first: Readonly<Record<string, SqlValue>> | null,
  second: readonly SqlValue[],
  copies = 1,
): SinkDataError {
  const rows =
    first === null
      ? `${copies} copies of ${describeRow(table, second)}`
      : [stringify(first), describeRow(table, second)].sort().join(' and ');
  return new SinkDataError(
    table.spec.name,
    `two rows for key ${describeKey(table, key)} in the view (${rows}), and a keyed table holds one row per key; the upstream logic must produce at most one row per key`,
  );
}

function onlyInsertions(batch: Batch): boolean {
  for (let i = 0; i < batch.length; i++) if ((batch[i] as Update)[1] <= 0) return false;
  return true;
}

function describeRow(table: CompiledTable, cells: readonly SqlValue[]): string {
  return stringify(table.rowObject(cells));
}

function describeKey(table: CompiledTable, key: readonly SqlValue[]): string {
  const o: Record<string, SqlValue> = {};
  table.keyPositions.forEach((p, i) => (o[table.written[p].name] = key[i]));
  return stringify(o);
}

function stringify(v: unknown): string {
  const s = JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? x.toString() : x));
  return s.length > 300 ? s.slice(0, 300) + '…' : s;
}
