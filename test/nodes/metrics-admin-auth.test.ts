/**
 * The README's promise for `GET /deltaflow/metrics` under Node-RED's real admin authentication: a
 * real Node-RED runtime (RED.init / RED.start, this package's nodes from nodes/, a deployed
 * dd-dataflow into an SQLite file) with `adminAuth` — users logging in at /auth/token and a
 * `tokens` function for a scraper's bearer token. A user or token with `deltaflow.read` or `read`
 * gets 200 and the dataflow's metrics; one with only other permissions, an unknown token or no
 * token gets 401 (Node-RED's answer for both). test/nodes/metrics-endpoint.test.ts checks the
 * content; this checks the permission as Node-RED enforces it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { join } from 'node:path';
import { rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tempDir } from '../dataflow/support';
import { waitFor } from '../e2e/node-red-process';

const RED = require('node-red') as {
  init(server: http.Server, settings: Record<string, unknown>): void;
  start(): Promise<void>;
  stop(): Promise<void>;
  httpAdmin: http.RequestListener;
};
const express = require('express') as () => http.RequestListener & { use(path: string, h: unknown): void };
const bcrypt = require('bcryptjs') as { hashSync(password: string, rounds: number): string };

const root = join(__dirname, '..', '..');
const PASSWORD = 'correct horse';
/** Bearer tokens the `tokens` function knows, and the permissions of their users. */
const TOKENS: Record<string, string> = { 'scrape-token': 'deltaflow.read', 'flows-token': 'flows.read' };

function flows(dir: string): object[] {
  return [
    { id: 'tab', type: 'tab', label: 'metrics' },
    { id: 'log', type: 'actyx-config', kind: 'embedded', file: join(dir, 'log.sqlite') },
    { id: 'db', type: 'db-config', kind: 'sqlite', filename: join(dir, 'views.sqlite') },
    { id: 'df', type: 'dd-dataflow', name: 'orders', batchMs: '2' },
    {
      id: 'sub',
      type: 'actyx-subscribe',
      z: 'tab',
      actyx: 'log',
      query: "'machine'",
      dataflow: 'df',
      wires: [['map']],
    },
    {
      id: 'map',
      type: 'dd-map',
      z: 'tab',
      dataflow: 'df',
      language: 'jsonata',
      func: '{"order": payload.order}',
      wires: [['sink']],
    },
    {
      id: 'sink',
      type: 'db-sink',
      z: 'tab',
      dataflow: 'df',
      database: 'db',
      table: 'orders',
      mode: 'multiset',
      columns: [
        { name: 'order_no', type: 'text', source: 'path', value: 'order', key: false, index: false, exclude: false },
      ],
    },
  ];
}

test('GET /deltaflow/metrics under adminAuth: deltaflow.read or read gets 200, other permissions and no token get 401', async () => {
  const dir = tempDir('deltaflow-metrics-auth-');
  writeFileSync(join(dir, 'flows.json'), JSON.stringify(flows(dir)));
  const hash = bcrypt.hashSync(PASSWORD, 4);
  const app = express();
  const server = http.createServer(app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  RED.init(server, {
    userDir: dir,
    flowFile: 'flows.json',
    credentialSecret: 'test',
    httpAdminRoot: '/',
    httpNodeRoot: false,
    nodesDir: [join(root, 'nodes')],
    logging: { console: { level: 'warn', metrics: false, audit: false } },
    editorTheme: { tours: false },
    externalModules: { palette: { allowInstall: false } },
    diagnostics: { enabled: false },
    telemetry: { enabled: false },
    adminAuth: {
      type: 'credentials',
      users: [
        { username: 'reader', password: hash, permissions: 'deltaflow.read' },
        { username: 'viewer', password: hash, permissions: 'read' },
        { username: 'designer', password: hash, permissions: ['flows.read', 'flows.write'] },
      ],
      tokens: async (token: string) =>
        TOKENS[token] === undefined ? null : { username: `token ${token}`, permissions: TOKENS[token] },
    },
  });
  app.use('/', RED.httpAdmin);
  const get = async (token?: string): Promise<{ status: number; text: string }> => {
    const r = await fetch(`${base}/deltaflow/metrics`, {
      headers: token === undefined ? {} : { Authorization: `Bearer ${token}` },
    });
    return { status: r.status, text: await r.text() };
  };
  /** Logs in at /auth/token (Node-RED's password grant) asking for `scope`; the access token. */
  const login = async (username: string, scope: string): Promise<string> => {
    const r = await fetch(`${base}/auth/token`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        client_id: 'node-red-admin',
        grant_type: 'password',
        scope,
        username,
        password: PASSWORD,
      }),
    });
    assert.equal(r.status, 200, `${username} logs in`);
    return ((await r.json()) as { access_token: string }).access_token;
  };
  try {
    await RED.start();
    // The deployed dataflow shows up in the metrics (read with the scraper's token).
    const ok = await waitFor(
      'the dataflow in the metrics',
      () => get('scrape-token'),
      (r) => r.status === 200 && /deltaflow_dataflow_state\{dataflow="df"[^}]*state="live"\} 1/.test(r.text),
    );
    assert.match(ok.text, /# TYPE deltaflow_commits_total counter/);

    assert.equal((await get()).status, 401, 'no token');
    assert.equal((await get('unknown-token')).status, 401, 'a token Node-RED does not know');
    assert.equal((await get('flows-token')).status, 401, 'a token whose user lacks deltaflow.read');
    assert.equal((await get(await login('reader', 'deltaflow.read'))).status, 200, 'a user with deltaflow.read');
    assert.equal((await get(await login('viewer', 'read'))).status, 200, 'a user with read');
    const designer = await login('designer', 'flows.read');
    assert.equal((await get(designer)).status, 401, 'a user with flows.read only');
    // The designer's token works where its permission reaches: the check is the permission, not the token.
    assert.equal((await fetch(`${base}/flows`, { headers: { Authorization: `Bearer ${designer}` } })).status, 200);
  } finally {
    await RED.stop();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    rmSync(dir, { recursive: true, force: true });
  }
});
