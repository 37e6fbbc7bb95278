/**
 * The metrics of the dataflows of one instance (issue 14, point 4), as Prometheus metric families
 * (core/prometheus-text.ts): which instance holds each dataflow, its state, its lag in events and
 * seconds, and its counters. Counters count since this instance last started the dataflow (a
 * redeploy or a takeover starts again from 0, which Prometheus' rate() treats as a reset).
 *
 * @example
 * prometheusText(dataflowMetrics([{ dataflow: 'df1', name: 'plant', instance: 'a:1', running, errors: 0 }]));
 * // deltaflow_dataflow_info{dataflow="df1",name="plant",this_instance="a:1",holder="a:1"} 1
 * // deltaflow_dataflow_state{dataflow="df1",name="plant",state="live"} 1 …
 */
import type { MetricFamily, MetricSample } from '../core/prometheus-text';
import type { DataflowPhase, RunningDataflow } from './types';

/** Every phase, so each dataflow has one `deltaflow_dataflow_state` sample per phase (1: the current one). */
const PHASES: readonly DataflowPhase[] = [
  'live',
  'catching up',
  'standby',
  'starting',
  'replaying',
  'retrying',
  'error',
  'stopped',
  'idle',
];

export interface DataflowMetricsRow {
  /** The dd-dataflow node's id, and its name (the id when it has none). */
  readonly dataflow: string;
  readonly name: string;
  /** This instance's name (the lease's instance; without a lease, the same default hostname:pid). */
  readonly instance: string;
  /** The running dataflow; null when none runs (no source, nothing deployed yet). */
  readonly running: RunningDataflow | null;
  /** Errors the dataflow reported to its nodes (node.error, Catch nodes) since the node was deployed. */
  readonly errors: number;
}

export function dataflowMetrics(rows: readonly DataflowMetricsRow[]): MetricFamily[] {
  const info: MetricSample[] = [];
  const state: MetricSample[] = [];
  const lagEvents: MetricSample[] = [];
  const lagSeconds: MetricSample[] = [];
  const processed: MetricSample[] = [];
  const commits: MetricSample[] = [];
  const errors: MetricSample[] = [];
  const takeovers: MetricSample[] = [];
  for (const row of rows) {
    const id = { dataflow: row.dataflow, name: row.name };
    const stats = row.running?.stats() ?? null;
    const phase: DataflowPhase = stats?.phase ?? 'stopped';
    // Without a lease the instance itself runs it; with one, the holder as far as this instance knows.
    const holder = stats === null ? '' : stats.leaseHolder === undefined ? row.instance : (stats.leaseHolder ?? '');
    info.push({ labels: { ...id, this_instance: row.instance, holder }, value: 1 });
    for (const p of PHASES) state.push({ labels: { ...id, state: p }, value: p === phase ? 1 : 0 });
    errors.push({ labels: id, value: row.errors });
    if (stats === null) continue;
    const lag = row.running?.lag() ?? null;
    if (lag !== null) {
      lagEvents.push({ labels: id, value: lag.events });
      lagSeconds.push({ labels: id, value: Math.round(lag.seconds * 1000) / 1000 });
    }
    processed.push({ labels: id, value: stats.eventsRead });
    commits.push({ labels: id, value: stats.batchesCommitted });
    if (stats.takeovers !== undefined) takeovers.push({ labels: id, value: stats.takeovers });
  }
  return [
    {
      name: 'deltaflow_dataflow_info',
      help: 'A dataflow of this instance: holder is the instance that holds its lease (runs it), empty when unknown.',
      type: 'gauge',
      samples: info,
    },
    {
      name: 'deltaflow_dataflow_state',
      help: 'The state of a dataflow on this instance: 1 for the current one (live, catching up, standby, ...).',
      type: 'gauge',
      samples: state,
    },
    {
      name: 'deltaflow_lag_events',
      help: 'Events the source holds that the tables do not reflect yet (only on the instance that runs the dataflow).',
      type: 'gauge',
      samples: lagEvents,
    },
    {
      name: 'deltaflow_lag_seconds',
      help: 'Age of the oldest event read and not committed yet, by its timestamp (0 when none; only on the instance that runs the dataflow).',
      type: 'gauge',
      samples: lagSeconds,
    },
    {
      name: 'deltaflow_events_processed_total',
      help: 'Events read and run through the dataflow since this instance last started it (replayed ones included).',
      type: 'counter',
      samples: processed,
    },
    {
      name: 'deltaflow_commits_total',
      help: 'Commits (one transaction per database) since this instance last started the dataflow.',
      type: 'counter',
      samples: commits,
    },
    {
      name: 'deltaflow_errors_total',
      help: 'Errors the dataflow reported to its nodes (and Catch nodes) since it was deployed.',
      type: 'counter',
      samples: errors,
    },
    {
      name: 'deltaflow_lease_takeovers_total',
      help: 'How often this instance acquired the lease of the dataflow (with a lease only).',
      type: 'counter',
      samples: takeovers,
    },
  ];
}
