/**
 * The seed's dashboard and usage tables as db-sink table specs, shared by the end-to-end benchmark
 * and the dataflow tests: dashboard keyed by machine, usage a multiset with an index.
 */
import type { TableSpec } from '../src/sinks/types';

/** `{machine, status, order, since}` records, one row per machine. */
export function dashboardTable(name: string): TableSpec {
  return {
    name,
    mode: 'keyed',
    columns: [
      { name: 'machine', type: 'text not null', value: { path: 'machine' }, key: true },
      { name: 'status', type: 'text not null', value: { path: 'status' } },
      { name: 'manufacturing_order', type: 'text', value: { path: 'order' } },
      { name: 'since', type: 'bigint', value: { path: 'since' } },
    ],
  };
}

/** `{machine, order, started, durationMicros}` records, one row per completed order on a machine. */
export function usageTable(name: string): TableSpec {
  return {
    name,
    mode: 'multiset',
    columns: [
      { name: 'machine', type: 'text not null', value: { path: 'machine' }, index: true },
      { name: 'manufacturing_order', type: 'text', value: { path: 'order' } },
      { name: 'started', type: 'bigint', value: { path: 'started' }, index: true },
      { name: 'duration_micros', type: 'bigint', value: { path: 'durationMicros' } },
    ],
  };
}
