/**
 * GET /deltaflow/metrics (issue 14, point 4) in the Node-RED runtime (node-red-node-test-helper,
 * the real nodes, one SQLite file): two dd-dataflows of one lease name with different instance
 * names, so one runs and the other is its standby. The scrape is parsed strictly (HELP and TYPE
 * before each family's samples, label values unescaped) and must say who holds the lease, which
 * state each is in, the lag, the counters; a label with quotes, a backslash and a line feed comes
 * back as it was. The route sits behind RED.auth.needsPermission('deltaflow.read').
 */
import { afterEach, after, test } from 'node:test';
import assert from 'node:assert/strict';
import actyxConfig from '../../src/nodes/actyx-config';
import actyxSubscribe from '../../src/nodes/actyx-subscribe';
import dbConfig from '../../src/nodes/db-config';
import dbSink from '../../src/nodes/db-sink';
import ddDataflow from '../../src/nodes/dd-dataflow';
import ddMap from '../../src/nodes/dd-map';
import { METRICS_PATH, METRICS_PERMISSION, registerMetricsEndpoint } from '../../src/nodes/metrics-endpoint';
import type { NodeAPI } from '../../src/nodes/red';
import { escapeLabelValue, prometheusText } from '../../src/core/prometheus-text';
import { openSharedEmbeddedLog } from '../../src/sources/shared-embedded-log';
import { eventually, helper, table, testFolder, type FlowNode } from './dd-helper';

const NODES = [actyxConfig, actyxSubscribe, dbConfig, dbSink, ddDataflow, ddMap];
const folder = testFolder('deltaflow-metrics-');
afterEach(async () => {
  await helper.unload();
});
after(() => folder.remove());

const ODD_NAME = 'hall "B"\\north\nline 2';

function dataflow(id: string, name: string, instance: string, logFile: string, dbFile: string): FlowNode[] {
  return [
    { id: `${id}-log`, type: 'actyx-config', kind: 'embedded', file: logFile },
    { id, type: 'dd-dataflow', name, batchMs: '2', leaseSeconds: '10', leaseName: 'plant', instance },
    { id: `${id}-db`, type: 'db-config', kind: 'sqlite', filename: dbFile },
    {
      id: `${id}-sub`,
      type: 'actyx-subscribe',
      z: 'tab',
      actyx: `${id}-log`,
      query: "'machine'",
      dataflow: id,
      wires: [[`${id}-map`]],
    },
    {
      id: `${id}-map`,
      type: 'dd-map',
      z: 'tab',
      dataflow: id,
      language: 'jsonata',
      func: '{"order": payload.order}',
      wires: [[`${id}-sink`]],
    },
    {
      id: `${id}-sink`,
      type: 'db-sink',
      z: 'tab',
      dataflow: id,
      database: `${id}-db`,
      table: 'orders',
      mode: 'multiset',
      columns: [
        { name: 'order_no', type: 'text', source: 'path', value: 'order', key: false, index: false, exclude: false },
      ],
    },
  ];
}

interface Sample {
  readonly name: string;
  readonly labels: Record<string, string>;
  readonly value: number;
}

/** The text format, strictly: every sample's family has HELP and TYPE lines before it; escapes undone. */
function parse(text: string): { samples: Sample[]; types: Map<string, string> } {
  assert.ok(text.endsWith('\n'), 'the text ends with a line feed');
  const types = new Map<string, string>();
  const helps = new Set<string>();
  const samples: Sample[] = [];
  for (const line of text.slice(0, -1).split('\n')) {
    let m = /^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) (.+)$/.exec(line);
    if (m) {
      assert.ok(!helps.has(m[1] as string), `one HELP line for ${m[1]}`);
      helps.add(m[1] as string);
      continue;
    }
    m = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge)$/.exec(line);
    if (m) {
      assert.ok(helps.has(m[1] as string), `HELP before TYPE for ${m[1]}`);
      types.set(m[1] as string, m[2] as string);
      continue;
    }
    m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (-?[0-9.e+]+|NaN|[+-]Inf)$/.exec(line);
    assert.ok(m, `a sample line: ${JSON.stringify(line)}`);
    const name = m[1] as string;
    assert.ok(types.has(name), `TYPE before the samples of ${name}`);
    if (types.get(name) === 'counter') assert.ok(name.endsWith('_total'), `counter ${name} ends with _total`);
    const labels: Record<string, string> = {};
    const body = m[2] ?? '';
    const label = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)/y;
    while (label.lastIndex < body.length) {
      const l = label.exec(body);
      assert.ok(l, `labels of ${JSON.stringify(line)}`);
      labels[l[1] as string] = (l[2] as string).replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    }
    samples.push({ name, labels, value: Number(m[3]) });
  }
  return { samples, types };
}

function one(samples: Sample[], name: string, labels: Record<string, string>): number {
  const found = samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  assert.equal(found.length, 1, `one ${name} ${JSON.stringify(labels)}`);
  return (found[0] as Sample).value;
}

async function scrape(): Promise<{ samples: Sample[]; types: Map<string, string> }> {
  const res = (await (
    helper as unknown as {
      request(): { get(p: string): Promise<{ status: number; text: string; headers: Record<string, string> }> };
    }
  )
    .request()
    .get(METRICS_PATH)) as { status: number; text: string; headers: Record<string, string> };
  assert.equal(res.status, 200);
  assert.match(res.headers['content-type'] ?? '', /^text\/plain;.*version=0\.0\.4/);
  return parse(res.text);
}

test('a scrape lists both instances of one lease: the holder live with its lag and counters, the other standby', async () => {
  const { logFile, dbFile } = folder.files();
  const handle = openSharedEmbeddedLog(logFile);
  try {
    for (let i = 0; i < 50; i++)
      await handle.log.publishAs('drill1-0', [{ tags: ['machine'], payload: { order: `o${i}` } }]);
  } finally {
    await handle.release();
  }
  const flow = [
    { id: 'tab', type: 'tab' },
    ...dataflow('dfa', ODD_NAME, 'alpha', logFile, dbFile),
    ...dataflow('dfb', 'plant b', 'beta', logFile, dbFile),
  ].map((n) => ('z' in n ? { x: 0, y: 0, ...n } : n));
  await helper.load(NODES as unknown as ((RED: NodeAPI) => void)[], flow);
  await eventually(() => table(dbFile, 'select count(*) as n from orders')[0]?.n === 50, 'the rows', 15_000);

  let parsed = await scrape();
  await eventually(
    async () => {
      parsed = await scrape();
      const live = parsed.samples.filter((s) => s.name === 'deltaflow_dataflow_state' && s.labels.state === 'live');
      const standby = parsed.samples.filter(
        (s) => s.name === 'deltaflow_dataflow_state' && s.labels.state === 'standby',
      );
      return live.filter((s) => s.value === 1).length === 1 && standby.filter((s) => s.value === 1).length === 1;
    },
    'one live, one standby',
    15_000,
  );
  const { samples, types } = parsed;
  assert.equal(types.get('deltaflow_lag_events'), 'gauge');
  assert.equal(types.get('deltaflow_commits_total'), 'counter');
  const ids = { dfa: { name: ODD_NAME, instance: 'alpha' }, dfb: { name: 'plant b', instance: 'beta' } };
  const isLive = (id: string): boolean =>
    one(samples, 'deltaflow_dataflow_state', { dataflow: id, state: 'live' }) === 1;
  const [holder, standby] = isLive('dfa') ? (['dfa', 'dfb'] as const) : (['dfb', 'dfa'] as const);
  const holderName = ids[holder].instance;
  // Both name the same holder; the label with quotes, backslash and line feed came back unchanged.
  for (const id of [holder, standby])
    assert.equal(
      one(samples, 'deltaflow_dataflow_info', {
        dataflow: id,
        name: ids[id].name,
        this_instance: ids[id].instance,
        holder: holderName,
      }),
      1,
    );
  assert.equal(one(samples, 'deltaflow_dataflow_state', { dataflow: standby, state: 'standby' }), 1);
  assert.equal(one(samples, 'deltaflow_dataflow_state', { dataflow: standby, state: 'live' }), 0);
  // The holder: caught up, 50 events processed, at least one commit, one acquisition, no errors.
  assert.equal(one(samples, 'deltaflow_lag_events', { dataflow: holder }), 0);
  assert.equal(one(samples, 'deltaflow_lag_seconds', { dataflow: holder }), 0);
  assert.equal(one(samples, 'deltaflow_events_processed_total', { dataflow: holder }), 50);
  assert.ok(one(samples, 'deltaflow_commits_total', { dataflow: holder }) >= 1);
  assert.equal(one(samples, 'deltaflow_lease_takeovers_total', { dataflow: holder }), 1);
  assert.equal(one(samples, 'deltaflow_errors_total', { dataflow: holder }), 0);
  // The standby reports no lag (it does not run the dataflow) and has processed nothing.
  assert.equal(samples.filter((s) => s.name === 'deltaflow_lag_events' && s.labels.dataflow === standby).length, 0);
  assert.equal(one(samples, 'deltaflow_events_processed_total', { dataflow: standby }), 0);
  assert.equal(one(samples, 'deltaflow_lease_takeovers_total', { dataflow: standby }), 0);
});

test('the text format: label values escaped, HELP escaped, invalid names refused', () => {
  assert.equal(escapeLabelValue('a"b\\c\nd'), 'a\\"b\\\\c\\nd');
  assert.equal(
    prometheusText([
      { name: 'x_total', help: 'one\\two\nthree', type: 'counter', samples: [{ labels: { l: 'q"' }, value: 2 }] },
      { name: 'empty', help: 'none', type: 'gauge', samples: [] },
    ]),
    '# HELP x_total one\\\\two\\nthree\n# TYPE x_total counter\nx_total{l="q\\""} 2\n',
  );
  assert.throws(
    () => prometheusText([{ name: 'bad-name', help: '', type: 'gauge', samples: [] }]),
    /invalid metric name/,
  );
  assert.throws(
    () => prometheusText([{ name: 'ok', help: '', type: 'gauge', samples: [{ labels: { 'a-b': 'x' }, value: 1 }] }]),
    /invalid label name/,
  );
});

test('the route is registered behind RED.auth.needsPermission("deltaflow.read"): refused, the handler does not run', () => {
  const routes: { path: string; handlers: ((req: unknown, res: unknown, next: () => void) => void)[] }[] = [];
  const asked: string[] = [];
  const RED = {
    httpAdmin: { get: (path: string, ...handlers: never[]) => routes.push({ path, handlers }) },
    auth: {
      needsPermission: (p: string) => {
        asked.push(p);
        // Node-RED's middleware answers 401 without calling next when the user lacks the permission.
        return (_req: unknown, res: { status(c: number): { end(): void } }) => res.status(401).end();
      },
    },
    log: { error: () => undefined },
  } as unknown as NodeAPI;
  registerMetricsEndpoint(RED);
  assert.deepEqual(asked, [METRICS_PERMISSION]);
  assert.equal(routes.length, 1);
  const route = routes[0] as (typeof routes)[number];
  assert.equal(route.path, '/deltaflow/metrics');
  let status = 0;
  let sent = false;
  const res = {
    status: (c: number) => ((status = c), { end: () => undefined }),
    set: () => res,
    send: () => ((sent = true), res),
  };
  // Express runs the handlers in order, each calling next to go on.
  const run = (i: number): void => route.handlers[i]?.({}, res, () => run(i + 1));
  run(0);
  assert.equal(status, 401);
  assert.equal(sent, false);
});
