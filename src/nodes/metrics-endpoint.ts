/**
 * `GET /deltaflow/metrics` on the Node-RED admin API (issue 14, point 4): the metrics of every
 * dd-dataflow of this instance in the Prometheus text format. Behind Node-RED's admin
 * authentication like the core nodes' admin routes (`RED.auth.needsPermission`): with `adminAuth`
 * set, a scrape needs a user or token with the `deltaflow.read` permission (`read` includes it).
 *
 * @example
 * // settings.js: adminAuth with a token for Prometheus (Node-RED's `tokens` function), then
 * // scrape_configs: [{ job_name: 'node-red', metrics_path: '/deltaflow/metrics', bearer_token: '…' }]
 * // curl -H 'Authorization: Bearer …' http://node-red:1880/deltaflow/metrics
 */
import { errorText } from '../core/message-text';
import { prometheusText, PROMETHEUS_CONTENT_TYPE } from '../core/prometheus-text';
import { dataflowMetrics, type DataflowMetricsRow } from '../dataflow/metrics';
import type { NodeAPI } from './red';

export const METRICS_PATH = '/deltaflow/metrics';
export const METRICS_PERMISSION = 'deltaflow.read';

/** The parts of an Express app, request and response used here. */
interface Response {
  set(field: string, value: string): Response;
  status(code: number): Response;
  send(body: string): Response;
}
type Handler = (req: unknown, res: Response, next: (err?: unknown) => void) => void;
interface AdminApp {
  get(path: string, ...handlers: Handler[]): void;
}

/** The dataflows one runtime reports, by dd-dataflow node id. */
export class MetricsRegistry {
  private readonly rows = new Map<string, () => DataflowMetricsRow>();

  add(id: string, row: () => DataflowMetricsRow): void {
    this.rows.set(id, row);
  }

  /** Removes `row` (not the row a redeployed node of the same id added meanwhile). */
  remove(id: string, row: () => DataflowMetricsRow): void {
    if (this.rows.get(id) === row) this.rows.delete(id);
  }

  /** The exposition text, dataflows in the order of their ids. */
  text(): string {
    const ids = [...this.rows.keys()].sort();
    return prometheusText(dataflowMetrics(ids.map((id) => (this.rows.get(id) as () => DataflowMetricsRow)())));
  }
}

/**
 * Registers the route once per runtime (each call of a node module's function gets its RED);
 * returns the registry the dd-dataflow nodes add themselves to. Without an admin app (admin API
 * disabled: httpAdminRoot false) nothing is served.
 */
export function registerMetricsEndpoint(RED: NodeAPI): MetricsRegistry {
  const registry = new MetricsRegistry();
  const app = RED.httpAdmin as AdminApp | undefined;
  if (app === undefined || typeof app.get !== 'function') return registry;
  const permission: Handler =
    RED.auth !== undefined ? RED.auth.needsPermission(METRICS_PERMISSION) : (_req, _res, next) => next();
  app.get(METRICS_PATH, permission, (_req, res) => {
    try {
      res.set('Content-Type', PROMETHEUS_CONTENT_TYPE).send(registry.text());
    } catch (e) {
      RED.log.error(`${METRICS_PATH}: ${errorText(e)}`);
      res.status(500).send('metrics failed, see the Node-RED log\n');
    }
  });
  return registry;
}
