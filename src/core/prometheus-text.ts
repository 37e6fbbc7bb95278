/**
 * The Prometheus text exposition format (version 0.0.4), which factory monitoring scrapes: one
 * `# HELP` and one `# TYPE` line per metric family, then its samples, label values escaped.
 *
 * @example
 * prometheusText([
 *   { name: 'deltaflow_commits_total', help: 'Commits.', type: 'counter', samples: [{ labels: { dataflow: 'a"b' }, value: 3 }] },
 * ]);
 * // # HELP deltaflow_commits_total Commits.
 * // # TYPE deltaflow_commits_total counter
 * // deltaflow_commits_total{dataflow="a\"b"} 3
 */

export interface MetricSample {
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

export interface MetricFamily {
  /** `[a-zA-Z_:][a-zA-Z0-9_:]*` (checked). */
  readonly name: string;
  readonly help: string;
  readonly type: 'counter' | 'gauge';
  readonly samples: readonly MetricSample[];
}

/** The content type of this format (the `Content-Type` header of a scrape's answer). */
export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** A label value: backslash, double quote and line feed escaped. */
export function escapeLabelValue(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

/** A HELP text: backslash and line feed escaped. */
function escapeHelp(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

/** The families as text; a family without samples is left out. Throws on an invalid metric or label name. */
export function prometheusText(families: readonly MetricFamily[]): string {
  const lines: string[] = [];
  for (const f of families) {
    if (!METRIC_NAME.test(f.name)) throw new Error(`invalid metric name ${JSON.stringify(f.name)}`);
    if (f.samples.length === 0) continue;
    lines.push(`# HELP ${f.name} ${escapeHelp(f.help)}`, `# TYPE ${f.name} ${f.type}`);
    for (const s of f.samples) {
      const labels = Object.keys(s.labels).map((k) => {
        if (!LABEL_NAME.test(k) || k.startsWith('__')) throw new Error(`invalid label name ${JSON.stringify(k)}`);
        return `${k}="${escapeLabelValue(s.labels[k] as string)}"`;
      });
      lines.push(`${f.name}${labels.length > 0 ? `{${labels.join(',')}}` : ''} ${formatValue(s.value)}`);
    }
  }
  return lines.length > 0 ? lines.join('\n') + '\n' : '';
}
